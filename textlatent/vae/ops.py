"""Using a trained text VAE: encode, decode, sample, reconstruct, interpolate, analogy.

:class:`LatentModel` is the small interface the ``/latent`` routes and the ``vae`` commands
talk to: texts → (μ, log σ²), z → texts. :class:`VAEPipeline` implements it with the
MiniLM posterior and the GRU decoder; another decoder (a pretrained LM conditioned on z)
only has to implement the same few members to serve behind the same routes. The
operations below are written once against that interface.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import pickle
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np

from textlatent.errors import InvalidInputError, NotFoundError
from textlatent.vae.limits import MAX_NO_REPEAT_NGRAM, MAX_SEED, MAX_STEPS, MAX_Z_ABS

if TYPE_CHECKING:
    from textlatent.encoder import Encoder

Strategy = Literal["greedy", "sample", "beam"]
STRATEGIES = ("greedy", "sample", "beam")
NO_REPEAT_NGRAM = 3  # greedy and sampled GRU decodes never repeat a trigram (VAEPipeline)


@runtime_checkable
class LatentModel(Protocol):
    """What a latent text model offers: a posterior over z for texts, and texts for z."""

    name: str
    latent_dim: int

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """μ and log σ² of q(z|x), float32 ``[n, latent_dim]`` each."""
        ...

    def decode(self, z: np.ndarray, *, strategy: Strategy = "greedy", temperature: float = 1.0,
               beam_size: int = 5, seed: int | None = None, no_repeat_ngram: int | None = None) -> list[str]:
        """One sentence per row of ``z`` (``[n, latent_dim]``); ``no_repeat_ngram`` n (2 to 10) forbids
        any n-gram to occur twice in a sentence, 0 allows it, None keeps the model's own default. The API
        passes it only when a request sets it, so a decoder without it still serves the other requests."""
        ...


class PosteriorPipeline:
    """``embed`` and ``encode`` for a loaded model whose ``model.encode`` maps MiniLM sentence
    embeddings to (μ, log σ²): the same for every decoder. Subclasses set ``encoder``,
    ``model`` and ``device``."""

    encoder: Encoder
    model: Any
    device: str

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        from textlatent.encoder import validate_texts

        return self.encoder.encode(validate_texts(list(texts), param="texts"))

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        return self.encode_embeddings(self.embed(texts))

    def encode_embeddings(self, emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(μ, log σ²) of sentences already embedded by ``embed``."""
        import torch

        with torch.no_grad():
            mu, logvar = self.model.encode(torch.from_numpy(np.asarray(emb, dtype=np.float32)).to(self.device))
        return mu.float().cpu().numpy(), logvar.float().cpu().numpy()


class VAEPipeline(PosteriorPipeline):
    """A trained VAE folder (see :func:`textlatent.vae.train.train_vae`) ready to use.

    ``encoder`` may be passed in to share an already loaded MiniLM (the API's), as long as
    it is the one the VAE was trained on; a VAE trained with ``--train-encoder`` loads its
    own fine-tuned copy from ``<dir>/encoder``.

    Greedy and sampled decodes never repeat a trigram (``no_repeat_ngram``, 0 turns it off): the
    GRU's greedy decodes otherwise loop ("it 's very slow , slow , slow , slow …"), and on the held-out
    train slice of the style-transfer protocol blocking them raised both the flip rate and the content
    similarity (docs/benchmarks.md, style transfer, session 16). Beam search is left as it is."""

    def __init__(self, path: str | Path, *, device: str = "cpu", encoder: Encoder | None = None,
                 standard_prior: bool = False, no_repeat_ngram: int = NO_REPEAT_NGRAM) -> None:
        import torch

        from textlatent.encoder import Encoder
        from textlatent.models import resolve_device
        from textlatent.vae.data import Vocab
        from textlatent.vae.model import TextVAE, VAEConfig

        self.no_repeat_ngram = check_no_repeat_ngram(no_repeat_ngram)
        self.path = Path(path).expanduser()
        config_file, weights = self.path / "config.json", self.path / "model.pt"
        if not config_file.is_file() or not weights.is_file():
            raise NotFoundError(
                f"{str(self.path)!r} is not a trained VAE folder (needs config.json and model.pt); "
                "train one with `textlatent vae train`", param="model")
        self.device = resolve_device(device)
        try:  # a damaged folder is named, not a traceback; only reading is inside (not the move to a device)
            meta = json.loads(config_file.read_text())
            if not isinstance(meta, dict):
                raise TypeError("config.json is not an object")
            self.vocab = Vocab.load(self.path / "vocab.txt")
            self.config = VAEConfig.from_dict(meta["model"])
            model = TextVAE(self.config)
            raw = weights.read_bytes()  # read once: the weights loaded are the ones hashed
            model.load_state_dict(torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True))
            self.weights_sha256 = hashlib.sha256(raw).hexdigest()  # what a fitted prior records
        except (OSError, ValueError, KeyError, TypeError, RuntimeError, pickle.UnpicklingError) as exc:
            raise InvalidInputError(f"{str(self.path)!r} is not a readable VAE folder ({type(exc).__name__}: "
                                    f"{str(exc)[:200]})", param="model") from exc
        self.model = model.to(self.device)
        self.model.eval()
        self.name = self.path.resolve().name
        self.latent_dim = self.config.latent_dim
        # p(z): the prior fitted after training (`vae fit-prior`, prior.json) unless told to use N(0, I)
        from textlatent.vae.prior import MixturePrior

        prior = None if standard_prior else MixturePrior.load(self.path, self.latent_dim,
                                                               weights_sha256=self.weights_sha256)
        self.model.prior = prior.to(self.device) if prior is not None else None
        own_encoder = self.path / "encoder"
        train = meta.get("train")
        if meta.get("trained_encoder"):
            if not own_encoder.is_dir():  # the base encoder would put texts at the wrong points of z
                raise InvalidInputError(f"{str(self.path)!r} was trained with its encoder, but its encoder/ folder "
                                        "is missing", param="model")
            self.encoder = Encoder(own_encoder, device=self.device)
        elif encoder is not None:
            self.encoder = encoder
        else:  # the encoder it was trained on: the bundled MiniLM unless training named another folder
            self.encoder = Encoder(train.get("encoder_model") if isinstance(train, dict) else None,
                                   device=self.device)
        self._lock = threading.Lock()  # the decoder's generation is not re-entrant across threads

    def decode(self, z: np.ndarray, *, strategy: Strategy = "greedy", temperature: float = 1.0,
               beam_size: int = 5, seed: int | None = None, no_repeat_ngram: int | None = None) -> list[str]:
        import torch

        z_arr = check_z(z, self.latent_dim)
        check_decoding(strategy, temperature, beam_size, seed)
        n = self.no_repeat_ngram if no_repeat_ngram is None else check_no_repeat_ngram(no_repeat_ngram)
        with self._lock, torch.no_grad(), seeded_rng(seed, self.device):
            ids = self.model.generate(torch.from_numpy(z_arr).to(self.device), strategy=strategy,
                                      temperature=temperature, beam_size=beam_size, no_repeat_ngram=n)
        return [self.vocab.decode(s) for s in ids]

    def prior_sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` draws of z from the model's prior: the fitted one, or N(0, I)."""
        prior = self.model.prior
        if prior is None:
            return rng.standard_normal((n, self.latent_dim)).astype(np.float32)
        return prior.sample(n, rng)


def trained_on(folder: str | Path, encoder_path: str | Path) -> bool:
    """Whether the GRU VAE in ``folder`` was trained, frozen, on the encoder in ``encoder_path``, so
    that it may use that already loaded encoder (and vectors it made) instead of loading its own."""
    from textlatent.models import DEFAULT_MODEL_ID, bundled_model_path

    try:
        meta = json.loads((Path(folder) / "config.json").read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(meta, dict) or meta.get("trained_encoder"):
        return False
    here = Path(encoder_path).resolve()
    if isinstance(meta.get("encoder"), str) and Path(meta["encoder"]).resolve() == here:
        return True
    train = meta.get("train")
    train = train if isinstance(train, dict) else {}
    # trained on the bundled MiniLM (perhaps where the venv lived elsewhere) and offered the bundled one
    # here: compared by path, since a fine-tuned folder may carry the same basename
    return (meta.get("encoder_id") == DEFAULT_MODEL_ID and not train.get("encoder_model")
            and here == bundled_model_path().resolve())


@contextlib.contextmanager
def seeded_rng(seed: int | None, device: str) -> Iterator[None]:
    """Seed torch for the block (a seeded decode is repeatable) and give back the random state
    after it, so a client's seed never fixes what later unseeded requests sample."""
    if seed is None:
        yield
        return
    import torch

    dev = torch.device(device)
    if dev.type == "cpu":
        fork = torch.random.fork_rng(devices=[])
    else:  # manual_seed also seeds the accelerator's generator (cuda, mps): give that back too
        fork = torch.random.fork_rng(devices=[dev.index or 0], device_type=dev.type)
    with fork:
        torch.manual_seed(seed)
        yield


# ---------------------------------------------------------------------------- checks


def check_z(z: Any, latent_dim: int, *, param: str = "z") -> np.ndarray:
    """``z`` as float32 ``[n, latent_dim]`` (a single vector becomes one row), or a clear error."""
    try:
        arr = np.asarray(z, dtype=np.float32)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{param} must be a list of numbers or a list of such lists", param=param) from None
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise InvalidInputError(f"{param} must be one vector or a non-empty list of vectors", param=param)
    if arr.shape[1] != latent_dim:
        raise InvalidInputError(f"{param} has {arr.shape[1]} components; this model's latent size is {latent_dim}",
                                param=param)
    if not np.isfinite(arr).all():
        raise InvalidInputError(f"{param} holds NaN or infinite values", param=param)
    if np.abs(arr).max() > MAX_Z_ABS:  # far outside any prior: such points mean nothing, and overflow the decoder
        raise InvalidInputError(f"{param} has a component of size {float(np.abs(arr).max()):.3g}; components must "
                                f"lie within ±{MAX_Z_ABS:g} (the prior is near a standard normal)", param=param)
    return np.ascontiguousarray(arr)


def check_seed(seed: int | None) -> None:
    """A decoding or sampling seed: none, or an integer in [0, MAX_SEED]."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED):
        raise InvalidInputError(f"seed must be an integer between 0 and {MAX_SEED}, got {seed!r}", param="seed")


def check_no_repeat_ngram(n: Any) -> int:
    """0 (repeats allowed) or a whole n from 2 to MAX_NO_REPEAT_NGRAM (no n-gram twice in a sentence)."""
    whole = isinstance(n, int) and not isinstance(n, bool)
    if not whole or n == 1 or not 0 <= n <= MAX_NO_REPEAT_NGRAM:
        raise InvalidInputError(f"no_repeat_ngram must be 0 (off) or a whole number from 2 to {MAX_NO_REPEAT_NGRAM}, "
                                f"got {n!r}", param="no_repeat_ngram")
    return int(n)


def check_decoding(strategy: str, temperature: float, beam_size: int, seed: int | None = None) -> None:
    check_seed(seed)
    if strategy not in STRATEGIES:
        raise InvalidInputError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}",
                                param="strategy")
    if not (0 < temperature <= 10):
        raise InvalidInputError(f"temperature must be in (0, 10], got {temperature}", param="temperature")
    if not (1 <= beam_size <= 20):
        raise InvalidInputError(f"beam_size must be between 1 and 20, got {beam_size}", param="beam_size")


# ---------------------------------------------------------------------------- operations


def reconstruct(model: LatentModel, texts: Sequence[str], *, strategy: Strategy = "greedy", **kw: Any) -> list[str]:
    """decode(μ(x)): what the latent space keeps of each text."""
    mu, _ = model.encode(texts)
    return model.decode(mu, strategy=strategy, **kw)


def sample(model: LatentModel, n: int, *, seed: int | None = None, strategy: Strategy = "greedy",
           **kw: Any) -> tuple[np.ndarray, list[str]]:
    """Sentences decoded from z ~ p(z), the model's prior (N(0, I), or the one fitted after training
    when the model has it): every point of the space is a sentence."""
    if not 1 <= n <= 1000:
        raise InvalidInputError(f"n must be between 1 and 1000, got {n}", param="n")
    check_seed(seed)
    rng = np.random.default_rng(seed)
    draw = getattr(model, "prior_sample", None)
    z = draw(n, rng) if draw is not None else rng.standard_normal((n, model.latent_dim)).astype(np.float32)
    return z, model.decode(z, strategy=strategy, seed=seed, **kw)


def _check_named_texts(**texts: Any) -> None:
    """Each input checked under its own name (``b is empty``), not as an item of a list."""
    from textlatent.encoder import validate_texts

    for name, text in texts.items():
        if not isinstance(text, str):
            raise InvalidInputError(f"{name} must be a string", param=name)
        validate_texts(text, param=name)


def interpolate(model: LatentModel, a: str, b: str, steps: int = 5, *, strategy: Strategy = "greedy",
                **kw: Any) -> tuple[np.ndarray, list[str]]:
    """Sentences along the straight path from μ(a) to μ(b), both ends included (``steps`` points)."""
    if not 2 <= steps <= MAX_STEPS:
        raise InvalidInputError(f"steps must be between 2 and {MAX_STEPS}, got {steps}", param="steps")
    _check_named_texts(a=a, b=b)
    mu, _ = model.encode([a, b])
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]
    z = (1 - t) * mu[0] + t * mu[1]
    return z, model.decode(z, strategy=strategy, **kw)


def analogy(model: LatentModel, a: str, b: str, c: str, *, strategy: Strategy = "greedy",
            **kw: Any) -> tuple[np.ndarray, str]:
    """a : b :: c : ? — decode(μ(c) + μ(b) − μ(a))."""
    _check_named_texts(a=a, b=b, c=c)
    mu, _ = model.encode([a, b, c])
    z = mu[2] + (mu[1] - mu[0])
    return z, model.decode(z[None, :], strategy=strategy, **kw)[0]
