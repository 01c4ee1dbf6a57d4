"""A real uvicorn server, driven by the official ``openai`` client."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

openai = pytest.importorskip("openai")

REPO_ROOT = Path(__file__).resolve().parents[2]
KEY = "right-key"
TEXTS = ["The quick brown fox.", "Vitamin D and bone health.", "Interest rates rose again."]
MAX_BYTES = 64 * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("server")
    port = free_port()
    env = {
        **os.environ,
        "TEXTLATENT_INDEX_DIR": str(tmp / "indexes"),
        "TEXTLATENT_API_KEYS": KEY,
        "TEXTLATENT_DEVICE": "cpu",
        "TEXTLATENT_MAX_REQUEST_BYTES": str(MAX_BYTES),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
    }
    log = open(tmp / "server.log", "wb")  # noqa: SIM115 - closed in the finally below
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "api.app:app_from_env",
         "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}:\n{(tmp / 'server.log').read_text()[-3000:]}")
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server not up after 120 s:\n{(tmp / 'server.log').read_text()[-3000:]}")
            time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def make_client(base: str, key: str):
    return openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=60)


def test_health_reports_loaded_encoder(server):
    body = httpx.get(f"{server}/healthz").json()
    assert body["status"] == "ok" and body["encoder_loaded"] is True


def test_default_base64(server, encoder):
    # the client asks for base64 unless told otherwise, and decodes it to floats itself
    resp = make_client(server, KEY).embeddings.create(model="all-MiniLM-L6-v2", input=TEXTS)
    assert resp.model == "all-MiniLM-L6-v2"
    assert [d.index for d in resp.data] == [0, 1, 2]
    got = np.asarray([d.embedding for d in resp.data], dtype=np.float32)
    assert got.shape == (3, 384)
    np.testing.assert_allclose(got, encoder.encode(TEXTS), atol=1e-5)
    assert resp.usage.prompt_tokens == resp.usage.total_tokens == int(encoder.token_counts(TEXTS).sum())


def test_float_format(server, encoder):
    client = make_client(server, KEY)
    resp = client.embeddings.create(model="all-MiniLM-L6-v2", input=TEXTS, encoding_format="float")
    got = np.asarray([d.embedding for d in resp.data], dtype=np.float32)
    np.testing.assert_allclose(got, encoder.encode(TEXTS), atol=1e-5)
    one = client.embeddings.create(model="all-MiniLM-L6-v2", input="Vitamin D and bone health.")
    np.testing.assert_allclose(one.data[0].embedding, got[1], atol=1e-5)


def test_dimensions(server, encoder):
    resp = make_client(server, KEY).embeddings.create(model="all-MiniLM-L6-v2", input=TEXTS, dimensions=32)
    got = np.asarray([d.embedding for d in resp.data], dtype=np.float32)
    assert got.shape == (3, 32)
    cut = encoder.encode(TEXTS)[:, :32]
    np.testing.assert_allclose(got, cut / np.linalg.norm(cut, axis=1, keepdims=True), atol=1e-5)


def test_models_list(server):
    assert [m.id for m in make_client(server, KEY).models.list().data] == ["all-MiniLM-L6-v2"]


def test_wrong_key_raises_authentication_error(server):
    with pytest.raises(openai.AuthenticationError) as info:
        make_client(server, "wrong-key").embeddings.create(model="all-MiniLM-L6-v2", input=TEXTS)
    assert info.value.status_code == 401


def test_client_errors_map_to_openai_exceptions(server):
    client = make_client(server, KEY)
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="text-embedding-3-small", input=TEXTS)
    with pytest.raises(openai.UnprocessableEntityError) as info:
        client.embeddings.create(model="all-MiniLM-L6-v2", input=["ok", ""])
    assert info.value.body["param"] == "input[1]"  # the client unwraps {"error": ...}


def test_oversized_bodies_refused_by_the_real_server(server):
    headers = {"Authorization": f"Bearer {KEY}", "content-type": "application/json"}
    big = json.dumps({"input": ["word " * 1000] * 20}).encode()
    assert len(big) > MAX_BYTES
    resp = httpx.post(f"{server}/v1/embeddings", content=big, headers=headers, timeout=60)
    assert resp.status_code == 413 and resp.json()["error"]["code"] == 413

    def chunks():  # no Content-Length: Transfer-Encoding chunked
        for i in range(0, len(big), 4096):
            yield big[i : i + 4096]

    try:
        resp = httpx.post(f"{server}/v1/embeddings", content=chunks(), headers=headers, timeout=60)
    except httpx.TransportError:
        pass  # the server may close the connection before the client finishes sending: also refused
    else:
        assert resp.status_code == 413, resp.text[:300]
    # and the server is still healthy afterwards
    assert httpx.get(f"{server}/healthz", timeout=5).status_code == 200
