"""A prior fitted to the aggregate posterior, after training (Tomczak & Welling 2018; Ghosh et al. 2020).

A VAE is trained against the standard normal prior p(z) = N(0, I), but its encoder does not
spread the training sentences over exactly that shape: the aggregate posterior
q(z) = E_x q(z|x) is shifted, scaled and correlated. The ELBO pays for the mismatch,
E_x KL(q(z|x) ‖ p(z)) = I(x; z) + KL(q(z) ‖ p(z)), and so does every sample drawn from N(0, I)
that lands where no sentence was encoded. With the decoder fixed, the prior that maximises
the ELBO is the aggregate posterior itself, so a density fitted to it by maximum likelihood
(here a Gaussian mixture with full covariances, EM by scikit-learn, on draws z ~ q(z|x) of
the training sentences) is the ELBO-optimal prior within its family. The model is then
p(x) = ∫ p(x|z) p_ψ(z) dz: a different (better) generative model with the same decoder, and
all its figures (ELBO, IW-NLL, samples) use p_ψ.

The prior lives beside the weights in ``prior.json``. A model without one uses N(0, I);
``textlatent vae fit-prior`` writes one, deleting the file goes back to N(0, I).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from textlatent.errors import InvalidInputError
from textlatent.vae.metrics import LOG_2PI, standard_log_prob

log = logging.getLogger("textlatent.vae")

PRIOR_FILE = "prior.json"
MIN_SCALE = 1e-6  # smallest diagonal entry of a component's Cholesky factor (std. dev. along an axis)
_CHUNK_ELEMENTS = 1 << 24  # rows × components × dim per step of log_prob (float64: 128 MB)
MAX_COMPONENTS = 256


class MixturePrior:
    """p_ψ(z) = Σ_k π_k N(z; m_k, L_k L_kᵀ): ``weights`` [K], ``means`` [K, d], ``scale_tril`` [K, d, d]
    (lower-triangular Cholesky factors). Plain tensors, not a module: the VAE's ``state_dict`` (and
    so ``model.pt``) is the same with or without a fitted prior."""

    def __init__(self, weights: torch.Tensor, means: torch.Tensor, scale_tril: torch.Tensor,
                 meta: dict[str, Any] | None = None) -> None:
        if weights.ndim != 1 or means.ndim != 2 or scale_tril.ndim != 3 or not (
                weights.shape[0] == means.shape[0] == scale_tril.shape[0]
                and scale_tril.shape[1:] == (means.shape[1], means.shape[1])):
            raise ValueError(f"inconsistent mixture shapes: weights {tuple(weights.shape)}, means "
                             f"{tuple(means.shape)}, scale_tril {tuple(scale_tril.shape)}")
        if not (torch.isfinite(weights).all() and torch.isfinite(means).all() and torch.isfinite(scale_tril).all()):
            raise ValueError("the mixture has non-finite parameters")
        if (weights <= 0).any() or abs(float(weights.sum()) - 1.0) > 1e-4:
            raise ValueError("mixture weights must be positive and sum to 1")
        diag = torch.diagonal(scale_tril, dim1=-2, dim2=-1)
        if (diag < MIN_SCALE).any():  # a (near-)singular component would make every density NaN or infinite
            raise ValueError(f"scale_tril must have a diagonal of at least {MIN_SCALE:g}")
        # float64 where the device has it (MPS has no float64)
        dtype = torch.float32 if weights.device.type == "mps" else torch.float64
        self.weights = weights.to(dtype)
        self.means = means.to(dtype)
        self.scale_tril = torch.tril(scale_tril.to(dtype))
        self.meta = dict(meta or {})
        eye = torch.eye(self.dim, dtype=dtype, device=self.scale_tril.device).expand_as(self.scale_tril)
        # L⁻¹, once: whitening is then one batched product (solving per call broadcasts L to every z)
        self._whiten = torch.linalg.solve_triangular(self.scale_tril, eye, upper=False)
        self._log_norm = (torch.log(self.weights) - torch.log(torch.diagonal(self.scale_tril, dim1=-2, dim2=-1)).sum(-1)
                          - 0.5 * self.dim * LOG_2PI)  # [K]: log π_k − log |L_k| − d/2 log 2π
        if not (torch.isfinite(self._whiten).all() and torch.isfinite(self._log_norm).all()):
            raise ValueError("the mixture's covariances are too close to singular")
        self._numpy = (self.weights.cpu().double().numpy(), self.means.cpu().double().numpy(),
                       self.scale_tril.cpu().double().numpy())  # for draws, which are made on the CPU

    @property
    def components(self) -> int:
        return int(self.weights.shape[0])

    @property
    def dim(self) -> int:
        return int(self.means.shape[1])

    def to(self, device: str | torch.device) -> MixturePrior:
        dtype = torch.float32 if torch.device(device).type == "mps" else torch.float64
        return MixturePrior(self.weights.to(device=device, dtype=dtype), self.means.to(device=device, dtype=dtype),
                            self.scale_tril.to(device=device, dtype=dtype), self.meta)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p_ψ(z) over the last dimension of ``z`` ``[..., d]`` → ``[...]`` (in ``z``'s dtype)."""
        if z.shape[-1] != self.dim:
            raise ValueError(f"z has {z.shape[-1]} components; the prior has {self.dim}")
        lead = z.shape[:-1]
        flat = z.reshape(-1, self.dim).to(self.means)
        rows = max(1, _CHUNK_ELEMENTS // (self.components * self.dim))  # [rows, K, d] stays ~128 MB
        parts = []
        for chunk in torch.split(flat, rows):
            x = chunk.unsqueeze(1) - self.means  # [n, K, d]
            white = torch.einsum("kij,nkj->nki", self._whiten, x)  # L_k⁻¹ (z − m_k)
            parts.append(torch.logsumexp(self._log_norm - 0.5 * white.pow(2).sum(-1), dim=-1))
        out = torch.cat(parts) if parts else flat.new_zeros(0)
        return out.reshape(lead).to(z.dtype)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` draws, float32 ``[n, d]``, from a numpy generator (seeded requests repeat)."""
        weights, means, tril = self._numpy
        k = rng.choice(self.components, size=n, p=weights / weights.sum())
        eps = rng.standard_normal((n, self.dim))
        z = means[k] + np.einsum("nij,nj->ni", tril[k], eps)
        return z.astype(np.float32)

    # ------------------------------------------------------------------ storage

    def to_dict(self) -> dict[str, Any]:
        return {**self.meta, "kind": "gaussian-mixture", "components": self.components, "dim": self.dim,
                "weights": self.weights.cpu().tolist(), "means": self.means.cpu().tolist(),
                "scale_tril": self.scale_tril.cpu().tolist()}

    def save(self, folder: str | Path) -> Path:
        """Write ``prior.json`` into ``folder`` atomically (a reader never sees half a file), readable
        as the umask allows (a server running as another user reads it too)."""
        folder = Path(folder)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".prior-", suffix=".json")
        try:
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(fd, 0o666 & ~umask)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(self.to_dict(), fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, folder / PRIOR_FILE)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return folder / PRIOR_FILE

    @classmethod
    def load(cls, folder: str | Path, latent_dim: int, *, weights_sha256: str | None = None) -> MixturePrior | None:
        """The prior saved in ``folder``, or None when there is none (the model uses N(0, I)).
        ``weights_sha256``: the hash of the weights loaded beside it (read from model.pt otherwise);
        a prior fitted to other weights is refused."""
        path = Path(folder) / PRIOR_FILE
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("kind") != "gaussian-mixture":
                raise ValueError("not a gaussian-mixture prior")
            meta = {k: v for k, v in data.items()
                    if k not in ("kind", "components", "dim", "weights", "means", "scale_tril")}
            prior = cls(torch.tensor(data["weights"], dtype=torch.float64),
                        torch.tensor(data["means"], dtype=torch.float64),
                        torch.tensor(data["scale_tril"], dtype=torch.float64), meta)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise InvalidInputError(f"{str(path)!r} is not a readable prior ({type(exc).__name__}: {str(exc)[:200]}); "
                                    "refit it with `textlatent vae fit-prior` or delete it to use N(0, I)",
                                    param="model") from exc
        if prior.dim != latent_dim:
            raise InvalidInputError(f"{str(path)!r} is a prior over {prior.dim} dimensions; this model's latent "
                                    f"size is {latent_dim}; refit it or delete it", param="model")
        fitted_to = prior.meta.get("model_sha256")
        if fitted_to is None:  # written before priors recorded their weights: cannot be checked
            log.warning("%s records no model_sha256 (fitted by an older textlatent): it cannot be checked against "
                        "the weights; refit it with `textlatent vae fit-prior`", path)
        elif fitted_to != (weights_sha256 or weights_digest(Path(folder))):
            raise InvalidInputError(f"{str(path)!r} was fitted to other weights than this folder's model.pt (it was "
                                    "retrained or replaced since); refit it with `textlatent vae fit-prior` or "
                                    "delete it", param="model")
        return prior


def weights_digest(folder: Path) -> str | None:
    """SHA-256 of ``folder/model.pt``: what a prior records it was fitted to."""
    import hashlib

    path = folder / "model.pt"
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def posterior_draws(mu: np.ndarray, logvar: np.ndarray, draws: int, rng: np.random.Generator) -> np.ndarray:
    """``draws`` samples z ~ q(z|x) per row: ``[draws · N, d]`` (float64)."""
    mu, logvar = np.asarray(mu, dtype=np.float64), np.asarray(logvar, dtype=np.float64)
    eps = rng.standard_normal((draws, *mu.shape))
    return (mu[None] + np.exp(0.5 * logvar)[None] * eps).reshape(-1, mu.shape[1])


def check_components(components: Sequence[int]) -> list[int]:
    """Distinct mixture sizes, each in [1, MAX_COMPONENTS], in the order given."""
    if not components:
        raise InvalidInputError("give at least one number of components", param="components")
    out: list[int] = []
    for k in components:
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_COMPONENTS:
            raise InvalidInputError(f"components must be whole numbers from 1 to {MAX_COMPONENTS}, got {k!r}",
                                    param="components")
        if k not in out:
            out.append(k)
    return out


def fit_mixture(mu: np.ndarray, logvar: np.ndarray, components: int, *, draws: int = 2, seed: int = 0,
                max_iter: int = 200) -> MixturePrior:
    """A full-covariance Gaussian mixture fitted by EM to ``draws`` samples of each posterior
    N(``mu``, diag exp(``logvar``)) (rows: the training sentences)."""
    from sklearn.mixture import GaussianMixture

    if mu.shape[0] * draws < 2 * components:
        raise InvalidInputError(f"{mu.shape[0]} sentences are too few to fit {components} components",
                                param="components")
    z = posterior_draws(mu, logvar, draws, np.random.default_rng(seed))
    gm = GaussianMixture(components, covariance_type="full", reg_covar=1e-4, max_iter=max_iter,
                         random_state=seed).fit(z)
    meta = {"fitted_on": int(mu.shape[0]), "draws": draws, "seed": seed, "converged": bool(gm.converged_)}
    return MixturePrior(torch.from_numpy(gm.weights_), torch.from_numpy(gm.means_),
                        torch.linalg.cholesky(torch.from_numpy(gm.covariances_)), meta)


def cross_entropy_gain(prior: MixturePrior, mu: np.ndarray, logvar: np.ndarray, *, draws: int = 20,
                       seed: int = 0) -> float:
    """E_x E_q(z|x)[log p_ψ(z) − log N(z; 0, I)] per sentence: by how many nats the prior raises the
    ELBO of these posteriors (the reconstruction term does not depend on the prior)."""
    z = torch.from_numpy(posterior_draws(mu, logvar, draws, np.random.default_rng(seed)))
    return float((prior.log_prob(z) - standard_log_prob(z)).mean())  # log_prob works in bounded chunks


def posteriors_of(pipeline: Any, texts: Sequence[str], *, batch_size: int = 4096,
                  progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """μ, log σ² (float64 ``[N, d]``) of q(z|x) for ``texts`` under a GRU VAE pipeline, through the
    embedding cache (training text is embedded once)."""
    from textlatent.vae.data import cached_embeddings

    emb = torch.from_numpy(np.ascontiguousarray(cached_embeddings(pipeline.encoder, texts, show_progress=progress),
                                                dtype=np.float32))
    mus, logvars = [], []
    with torch.no_grad():
        for chunk in torch.split(emb, batch_size):
            mu, logvar = pipeline.model.encode(chunk.to(pipeline.device))
            mus.append(mu.double().cpu())
            logvars.append(logvar.double().cpu())
    return torch.cat(mus).numpy(), torch.cat(logvars).numpy()


def fit_prior(pipeline: Any, train_texts: Sequence[str], valid_texts: Sequence[str] | None,
              components: Sequence[int], *, draws: int = 2, seed: int = 0,
              progress: bool = False) -> tuple[MixturePrior | None, dict[str, Any]]:
    """Fit a mixture of each size in ``components`` to the aggregate posterior of ``train_texts``.

    With ``valid_texts``, each candidate is scored by how much it raises the ELBO of the valid
    sentences (:func:`cross_entropy_gain`; N(0, I) is the candidate scoring 0), and the best is
    returned, or None when N(0, I) is best. Without, there must be one candidate, returned as is.
    The report gives every candidate's gain, so the choice can be checked."""
    from tqdm.auto import tqdm

    sizes = check_components(list(components))
    if valid_texts is None and len(sizes) > 1:
        raise InvalidInputError("choosing among several --components needs --valid (held-out sentences)",
                                param="valid")
    if not 0 < draws <= 100:
        raise InvalidInputError(f"draws must be between 1 and 100, got {draws}", param="draws")
    mu, logvar = posteriors_of(pipeline, train_texts, progress=progress)
    valid = posteriors_of(pipeline, valid_texts, progress=progress) if valid_texts is not None else None
    best: MixturePrior | None = None
    best_gain = 0.0
    candidates = []
    for k in tqdm(sizes, desc="fit prior", unit="candidate", disable=not progress):
        prior = fit_mixture(mu, logvar, k, draws=draws, seed=seed)
        gain = cross_entropy_gain(prior, *valid, seed=seed) if valid is not None else None
        candidates.append({"components": k, "valid_elbo_gain": gain, "converged": prior.meta["converged"]})
        if gain is None or gain > best_gain:
            best, best_gain = prior, gain if gain is not None else 0.0
    report: dict[str, Any] = {"train_sentences": len(train_texts),
                              "valid_sentences": len(valid_texts) if valid_texts is not None else None,
                              "candidates": candidates, "chosen": best.components if best is not None else "standard",
                              "valid_elbo_gain": best_gain if valid is not None else None}
    if best is not None:  # the weights the posteriors came from (hashed when they were read): refused beside others
        best.meta["model_sha256"] = getattr(pipeline, "weights_sha256", None) or weights_digest(Path(pipeline.path))
        best.meta.update({"valid_elbo_gain": report["valid_elbo_gain"], "valid_sentences": report["valid_sentences"],
                          "candidates": candidates})
    return best, report
