"""Shared fixtures: one sentence encoder for the whole session, fresh index folders per test."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from collections.abc import Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402

from textlatent.config import Settings  # noqa: E402
from textlatent.models import DEFAULT_MODEL_ID  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """ONNX exports and cached embeddings go to a per-session folder, never the user's cache."""
    old = os.environ.get("TEXTLATENT_CACHE_DIR")
    os.environ["TEXTLATENT_CACHE_DIR"] = str(tmp_path_factory.mktemp("textlatent-cache"))
    yield
    if old is None:
        os.environ.pop("TEXTLATENT_CACHE_DIR", None)
    else:
        os.environ["TEXTLATENT_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def encoder() -> Any:
    """The bundled all-MiniLM-L6-v2, loaded once (about 10 s) and shared by every test."""
    from textlatent.encoder import Encoder

    return Encoder(device="cpu")


def _inject(service: Any, encoder: Any) -> Any:
    service._encoders[DEFAULT_MODEL_ID] = encoder
    return service


@pytest.fixture
def service_factory(encoder: Any, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Any]:
    """Build a ``TextLatent`` on a fresh index folder (unless ``index_dir`` is given) that reuses
    the session encoder instead of loading the model again."""
    from textlatent.service import TextLatent

    def make(**overrides: Any) -> TextLatent:
        overrides.setdefault("index_dir", tmp_path_factory.mktemp("indexes"))
        overrides.setdefault("device", "cpu")
        return _inject(TextLatent(Settings(**overrides)), encoder)

    return make


@pytest.fixture
def service(service_factory: Callable[..., Any]) -> Any:
    return service_factory()


@pytest.fixture
def app_factory(encoder: Any, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Any]:
    """Build the FastAPI app on a fresh index folder with the session encoder injected, so the
    lifespan's preload finds it already loaded."""
    from api.app import create_app

    def make(**overrides: Any) -> Any:
        overrides.setdefault("index_dir", tmp_path_factory.mktemp("api-indexes"))
        overrides.setdefault("device", "cpu")
        application = create_app(Settings(**overrides))
        _inject(application.state.service, encoder)
        return application

    return make


def _no_server_errors(response: Any) -> None:
    response.read()
    assert response.status_code < 500, (
        f"{response.request.method} {response.request.url} answered {response.status_code}: {response.text}"
    )


@pytest.fixture
def client_factory(app_factory: Callable[..., Any]) -> Iterator[Callable[..., Any]]:
    """TestClients (lifespan run) for apps built with the given settings; closed at teardown.

    Every response passes through a hook that fails the test on any 5xx: no input, however
    bad, may make the API answer with a server error."""
    from fastapi.testclient import TestClient

    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        client = TestClient(app_factory(**overrides), raise_server_exceptions=False)
        client.event_hooks["response"].append(_no_server_errors)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(client_factory: Callable[..., Any]) -> Any:
    return client_factory()


@pytest.fixture
def data_dir() -> Path:
    """``../shared/data`` next to the repository (real corpora); skips when it is not there."""
    if not DATA_DIR.is_dir():
        pytest.skip(f"shared data folder {DATA_DIR} is absent (real corpora are not available here)")
    return DATA_DIR
