"""POST /v1/embeddings and GET /v1/models: OpenAI-compatible shape, values and errors."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from tests.api.helpers import assert_error

TEXTS = ["The quick brown fox.", "Vitamin D and bone health.", "A third, different sentence."]


def test_openai_shape_and_values(client, encoder):
    resp = client.post("/v1/embeddings", json={"input": TEXTS, "model": "all-MiniLM-L6-v2"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["object"] == "list"
    assert body["model"] == "all-MiniLM-L6-v2"
    assert [d["object"] for d in body["data"]] == ["embedding"] * 3
    assert [d["index"] for d in body["data"]] == [0, 1, 2]
    usage = body["usage"]
    assert usage["prompt_tokens"] == usage["total_tokens"] > 0
    assert usage["prompt_tokens"] == int(encoder.token_counts(TEXTS).sum())
    assert body["truncated"] == []
    got = np.asarray([d["embedding"] for d in body["data"]], dtype=np.float32)
    assert got.shape == (3, 384)
    np.testing.assert_allclose(got, encoder.encode(TEXTS), atol=1e-5)


def test_single_string_and_default_model(client, encoder):
    resp = client.post("/v1/embeddings", json={"input": TEXTS[1]})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert len(body["data"]) == 1 and body["model"] == "all-MiniLM-L6-v2"
    np.testing.assert_allclose(body["data"][0]["embedding"], encoder.encode(TEXTS[1])[0], atol=1e-5)


@pytest.mark.parametrize("model", ["sentence-transformers/all-MiniLM-L6-v2", "default"])
def test_model_aliases(client, model):
    resp = client.post("/v1/embeddings", json={"input": "x y z", "model": model})
    assert resp.status_code == 200, resp.text
    assert resp.json()["model"] == "all-MiniLM-L6-v2"


def test_base64_encoding(client, encoder):
    resp = client.post("/v1/embeddings", json={"input": TEXTS, "encoding_format": "base64"})
    assert resp.status_code == 200, resp.text
    data = resp.json()["data"]
    assert all(isinstance(d["embedding"], str) for d in data)
    got = np.vstack([np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in data])
    assert got.shape == (3, 384)
    np.testing.assert_allclose(got, encoder.encode(TEXTS), atol=1e-5)


def test_dimensions_truncation(client, encoder):
    resp = client.post("/v1/embeddings", json={"input": TEXTS, "dimensions": 64})
    assert resp.status_code == 200, resp.text
    got = np.asarray([d["embedding"] for d in resp.json()["data"]], dtype=np.float32)
    assert got.shape == (3, 64)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    full = encoder.encode(TEXTS)[:, :64]
    np.testing.assert_allclose(got, full / np.linalg.norm(full, axis=1, keepdims=True), atol=1e-5)
    # all 384 is the identity
    resp = client.post("/v1/embeddings", json={"input": TEXTS, "dimensions": 384})
    assert resp.status_code == 200
    assert len(resp.json()["data"][0]["embedding"]) == 384


def test_truncated_lists_long_inputs(client, encoder):
    long_text = "science " * 600
    resp = client.post("/v1/embeddings", json={"input": ["short one", long_text, "also short"]})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["truncated"] == [1]
    short = int(encoder.token_counts(["short one", "also short"]).sum())
    assert body["usage"]["prompt_tokens"] == short + encoder.max_seq_length


def test_user_field_accepted(client):
    resp = client.post("/v1/embeddings", json={"input": "hi there", "user": "someone"})
    assert resp.status_code == 200


@pytest.mark.parametrize(
    ("payload", "status", "param"),
    [
        ({"input": []}, 422, "input"),
        ({"input": ""}, 422, "input"),
        ({"input": ["ok", "  "]}, 422, "input[1]"),
        ({"input": ["ok", 3]}, 422, "input[1]"),
        ({"input": [1, 2, 3]}, 422, "input"),  # token ids (OpenAI's other form): said so, below
        ({"input": [[9906, 1917]]}, 422, "input"),
        ({"input": None}, 422, "input"),
        ({}, 422, "input"),
        ({"input": "x", "model": "no-such-model"}, 404, "model"),
        ({"input": "x", "model": "../../etc/passwd"}, 404, "model"),
        ({"input": "x", "dimensions": 0}, 422, "dimensions"),
        ({"input": "x", "dimensions": 385}, 422, "dimensions"),
        ({"input": "x", "dimensions": -3}, 422, "dimensions"),
        ({"input": "x", "encoding_format": "int8"}, 422, "encoding_format"),
    ],
)
def test_bad_inputs(client, payload, status, param):
    err = assert_error(client.post("/v1/embeddings", json=payload), status, param=param)
    if status == 404:
        assert err["type"] == "not_found"
        assert "all-MiniLM-L6-v2" in err["message"]  # tells what is served
    if isinstance(payload.get("input"), list) and payload["input"] and not isinstance(payload["input"][-1], str):
        assert ("token" in err["message"]) == (payload["input"] != ["ok", 3])


def test_over_max_batch(client_factory):
    client = client_factory(max_batch=3)
    assert client.post("/v1/embeddings", json={"input": ["a", "b", "c"]}).status_code == 200
    err = assert_error(client.post("/v1/embeddings", json={"input": ["a", "b", "c", "d"]}), 413, param="input")
    assert err["type"] == "payload_too_large"
    assert "3" in err["message"]


def test_body_over_max_request_bytes(client_factory):
    client = client_factory(max_request_bytes=1024)
    assert client.post("/v1/embeddings", json={"input": "small"}).status_code == 200
    big = json.dumps({"input": ["word " * 100] * 5})
    assert len(big) > 1024
    resp = client.post("/v1/embeddings", content=big, headers={"content-type": "application/json"})
    err = assert_error(resp, 413)
    assert "1024" in err["message"]


def test_chunked_body_over_max_request_bytes(client_factory):
    """A body sent without Content-Length (chunked) must not slip past the size limit."""
    client = client_factory(max_request_bytes=1024)
    big = json.dumps({"input": ["word " * 100] * 5}).encode()

    def chunks():
        for i in range(0, len(big), 256):
            yield big[i : i + 256]

    resp = client.post("/v1/embeddings", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in {k.lower() for k in resp.request.headers}
    assert_error(resp, 413)
    # a small chunked body still works
    small = json.dumps({"input": "small"}).encode()
    resp = client.post("/v1/embeddings", content=iter([small[:5], small[5:]]),
                       headers={"content-type": "application/json"})
    assert resp.status_code == 200, resp.text


@pytest.mark.parametrize("raw", [b"{not json", b'{"input": "x",}', b"", b'{"input": "unterminated'])
def test_malformed_json(client, raw):
    resp = client.post("/v1/embeddings", content=raw, headers={"content-type": "application/json"})
    if raw == b"":
        # an empty body is a missing body, not broken JSON
        assert_error(resp, 422)
    else:
        err = assert_error(resp, 400)
        assert "JSON" in err["message"]


def test_wrong_method_and_unknown_route(client):
    assert_error(client.get("/v1/embeddings"), 405)
    assert_error(client.get("/v1/nothing-here"), 404)


def test_models(client):
    resp = client.get("/v1/models")
    assert resp.status_code == 200
    body = resp.json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == ["all-MiniLM-L6-v2"]
    assert body["data"][0]["object"] == "model"


def test_healthz(client):
    resp = client.get("/healthz")
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "ok"
    assert body["model"] == "all-MiniLM-L6-v2"
    assert body["encoder_loaded"] is True


def test_healthz_before_preload(client_factory):
    client = client_factory(preload=False)
    client.app.state.service._encoders.clear()
    assert client.get("/healthz").json()["encoder_loaded"] is False
