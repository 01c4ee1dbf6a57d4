"""The latent model the API serves, chosen by the ``vae_model`` setting and loaded once.

Kept apart from :class:`textlatent.service.TextLatent` so that the routes only need a
:class:`LatentModel`: a later decoder (a pretrained LM conditioned on z) plugs in here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from textlatent.errors import InvalidInputError, ModelUnavailableError, NotFoundError, PayloadTooLargeError
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
        from textlatent.models import bundled_model_path
        from textlatent.vae.ops import trained_on

        path = self.settings.vae_model
        if path is None:
            raise NotFoundError(
                "no latent model is configured: set TEXTLATENT_VAE_MODEL to a folder made by "
                "`textlatent vae train --out DIR` and restart the server", param="model")
        encoder = None
        # the API's encoder is the bundled one (no TEXTLATENT_MODEL); loaded only when the VAE can use it
        if self._shared_encoder is not None and not self.settings.model and trained_on(path, bundled_model_path()):
            encoder = self._shared_encoder()
        try:
            return load_latent_model(path, device=self.settings.device, encoder=encoder)
        except InvalidInputError as exc:  # a damaged or foreign folder: the server's setting, not the request
            raise ModelUnavailableError(f"the latent model set by TEXTLATENT_VAE_MODEL cannot be used: {exc.message}",
                                        param="model") from exc

    def check_count(self, n: int, param: str, *, strategy: str = "greedy", beam_size: int = 1) -> None:
        """At most ``max_batch`` rows per request; a beam search of width w counts each row w times
        (it costs about that much), so one request cannot hold the decoder for minutes."""
        limit = self.settings.max_batch
        if n > limit:
            raise PayloadTooLargeError(f"{param} has {n} items; the limit is {limit} (TEXTLATENT_MAX_BATCH)",
                                       param=param)
        if strategy == "beam" and n * beam_size > limit:
            raise PayloadTooLargeError(f"{param} has {n} items at beam_size {beam_size}, which counts as "
                                       f"{n * beam_size}; the limit is {limit} (TEXTLATENT_MAX_BATCH): send fewer "
                                       "or use a smaller beam", param=param)


def load_latent_model(path: Path, *, device: str = "cpu", encoder: Encoder | None = None,
                      standard_prior: bool = False) -> LatentModel:
    """The model in ``path``: ``"kind": "optimus"`` in its config.json picks the SmolLM2-decoder
    VAE (:mod:`textlatent.vae.optimus`), anything else the GRU VAE (with its fitted prior, if it
    has one, unless ``standard_prior``)."""
    from textlatent.vae.ops import VAEPipeline
    from textlatent.vae.optimus import OptimusPipeline, is_optimus_folder

    if is_optimus_folder(path):
        return OptimusPipeline(path, device=device, encoder=encoder)
    return VAEPipeline(path, device=device, encoder=encoder, standard_prior=standard_prior)
