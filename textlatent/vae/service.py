"""The latent model the API serves, chosen by the ``vae_model`` setting and loaded once.

Kept apart from :class:`textlatent.service.TextLatent` so that the routes only need a
:class:`LatentModel`: a later decoder (a pretrained LM conditioned on z) plugs in here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from textlatent.errors import NotFoundError, PayloadTooLargeError
from textlatent.vae.ops import LatentModel

if TYPE_CHECKING:
    from pathlib import Path

    from textlatent.config import Settings
    from textlatent.encoder import Encoder


class LatentService:
    """Loads the configured VAE on first use; ``shared_encoder`` hands it the API's MiniLM
    (already in memory) when the VAE was trained on the bundled, frozen encoder."""

    def __init__(self, settings: Settings, shared_encoder: Callable[[], Encoder] | None = None) -> None:
        self.settings = settings
        self._shared_encoder = shared_encoder
        self._model: LatentModel | None = None
        self._lock = threading.Lock()

    def model(self) -> LatentModel:
        with self._lock:
            if self._model is None:
                self._model = self._load()
            return self._model

    def _load(self) -> LatentModel:
        import json

        from textlatent.models import DEFAULT_MODEL_ID

        path = self.settings.vae_model
        if path is None:
            raise NotFoundError(
                "no latent model is configured: set TEXTLATENT_VAE_MODEL to a folder made by "
                "`textlatent vae train --out DIR` and restart the server", param="model")
        encoder = None
        config_file = path / "config.json"
        if self._shared_encoder is not None and config_file.is_file():
            meta: dict[str, Any] = json.loads(config_file.read_text())
            bundled = (meta.get("encoder_id") == DEFAULT_MODEL_ID and not meta.get("trained_encoder")
                       and not meta.get("train", {}).get("encoder_model"))
            if bundled and not self.settings.model:
                encoder = self._shared_encoder()
        return load_latent_model(path, device=self.settings.device, encoder=encoder)

    def check_count(self, n: int, param: str) -> None:
        if n > self.settings.max_batch:
            raise PayloadTooLargeError(f"{param} has {n} items; the limit is {self.settings.max_batch} "
                                       "(TEXTLATENT_MAX_BATCH)", param=param)


def load_latent_model(path: Path, *, device: str = "cpu", encoder: Encoder | None = None) -> LatentModel:
    """The model in ``path``: ``"kind": "optimus"`` in its config.json picks the SmolLM2-decoder
    VAE (:mod:`textlatent.vae.optimus`), anything else the GRU VAE."""
    from textlatent.vae.ops import VAEPipeline
    from textlatent.vae.optimus import OptimusPipeline, is_optimus_folder

    if is_optimus_folder(path):
        return OptimusPipeline(path, device=device, encoder=encoder)
    return VAEPipeline(path, device=device, encoder=encoder)
