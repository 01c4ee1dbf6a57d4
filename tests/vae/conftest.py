"""One tiny VAE trained once per session for the tests that only use a trained model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.vae.helpers import train_tiny


@pytest.fixture(scope="session")
def tiny_vae_dir(encoder: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny-vae")
    train_tiny(out, encoder, tmp_path_factory.mktemp("vae-cache"), epochs=10)
    return out


@pytest.fixture(scope="session")
def tiny_pipeline(tiny_vae_dir: Path, encoder: Any) -> Any:
    from textlatent.vae.ops import VAEPipeline

    return VAEPipeline(tiny_vae_dir, device="cpu", encoder=encoder)
