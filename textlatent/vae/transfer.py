"""Style transfer: move a sentence's z along an attribute axis of the latent space, then decode.

Why an axis of its own: the shipped sentiment head's axis lives in the 384-d MiniLM space,
but a decoder reads the VAE's z. So a linear classifier is fitted on the posterior means μ
of labelled sentences (SST-2 train) and its weight vector, normalised, is the axis in z-space:
a logistic regression's weights, or the difference of the class means with a one-dimensional
logistic fit along it (:func:`fit_axis`). The axis, the weight norm, the bias and a typical
margin are stored in the VAE folder (``axes.json``), next to the model they belong to.

What ``degree`` means (``d ≥ 0``, target sign ``s = +1`` for positive, ``−1`` for negative).
With ``ℓ(z) = w·z + b`` the latent classifier's logit and ``m`` the margin (the mean ``|ℓ(μ)|``
of the sentences the axis was fitted on: how far a typical sentence sits from the boundary):

* the target logit is ``ℓ* = s·d·m`` for ``d ≥ 1``: degree 1 puts the sentence where a
  typical sentence of the target class sits, degree 2 twice as far, and so on;
* for ``0 ≤ d < 1`` it slides linearly from the sentence's own logit to ``s·m``:
  ``ℓ* = ℓ(μ) + d·(s·m − ℓ(μ))``, so degree 0 is exactly the reconstruction decode(μ);
* a sentence already further on the target side than ``ℓ*`` is not moved back:
  ``ℓ' = s·max(s·ℓ(μ), s·ℓ*)``;
* the move is along the unit axis only, ``z' = μ + (ℓ' − ℓ(μ)) / ‖w‖ · u``, leaving every
  component orthogonal to the axis (the content, one hopes) as it was.

Everything here talks to the :class:`~textlatent.vae.ops.LatentModel` protocol (encode,
decode), so any decoder behind it (the GRU VAE or a pretrained LM conditioned on z) can be
used; the axis file is found in the model's folder (its ``path`` attribute).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from textlatent.errors import InvalidInputError, ModelUnavailableError, NotFoundError
from textlatent.vae.limits import (
    CONTENT_STEPS,
    CONTENT_THRESHOLD,
    MAX_CANDIDATES,
    MAX_DEGREE,
    MAX_MOVES,
    MAX_SEED,
)
from textlatent.vae.ops import LatentModel, Strategy

log = logging.getLogger("textlatent.vae.transfer")

AXES_FILE = "axes.json"
ATTRIBUTES = ("sentiment",)
TARGETS = {"sentiment": ("negative", "positive")}
RERANK_TEMPERATURE = 0.5  # the sampled candidates' softmax temperature: on the held-out train slice 0.5
# beat 0.8 on flip rate, similarity and fluency alike (docs/benchmarks.md)
RERANKS = ("round-trip", "content")
EMBED_CHUNK = 2048  # candidates embedded per call by content reranking
DEFAULT_DEGREE = 1.0  # used until a degree is selected on held-out training sentences (`fit-transfer`)


def p_target_of(logit: np.ndarray, sign: np.ndarray | float) -> np.ndarray:
    """p(target) from the latent classifier's logit towards the second label: ``sign`` +1 targets the
    second label, −1 the first."""
    return np.asarray(1.0 / (1.0 + np.exp(-np.asarray(sign, dtype=np.float64) * np.asarray(logit, dtype=np.float64))))


@dataclass
class LatentAxis:
    """A linear attribute classifier on z: ``ℓ(z) = scale·(u·z) + bias``, ``u`` a unit vector."""

    attribute: str
    direction: np.ndarray  # unit vector [latent_dim], pointing towards the second label (positive)
    scale: float  # ‖w‖ of the fitted weight vector
    bias: float
    margin: float  # mean |ℓ(μ)| over the fitting sentences: the unit of `degree`
    default_degree: float = DEFAULT_DEGREE
    info: dict[str, Any] = field(default_factory=dict)  # provenance: data, sizes, accuracies, selection table

    @property
    def labels(self) -> tuple[str, str]:
        return TARGETS[self.attribute]

    def logit(self, z: np.ndarray) -> np.ndarray:
        return np.asarray(self.scale * (np.asarray(z, dtype=np.float64) @ self.direction) + self.bias)

    def proba(self, z: np.ndarray) -> np.ndarray:
        """p(second label | z) under the latent classifier."""
        return self.p_target(z, 1.0)

    def p_target(self, z: np.ndarray, sign: np.ndarray | float) -> np.ndarray:
        """p(target | z): the second label's for ``sign`` +1, the first's for −1."""
        return p_target_of(self.logit(z), sign)

    def target_logit(self, logit: np.ndarray, sign: np.ndarray | float, degree: float) -> np.ndarray:
        """ℓ' of the module docstring: where each sentence's logit ends up at ``degree``."""
        logit = np.asarray(logit, dtype=np.float64)
        s = np.broadcast_to(np.asarray(sign, dtype=np.float64), logit.shape)
        goal = s * degree * self.margin if degree >= 1.0 else logit + degree * (s * self.margin - logit)
        return np.asarray(s * np.maximum(s * logit, s * goal))

    def shift(self, mu: np.ndarray, sign: np.ndarray | float, degree: float) -> tuple[np.ndarray, np.ndarray,
                                                                                        np.ndarray]:
        """``z'`` for each row of ``mu``, with the logits before and after."""
        check_degree(degree)
        mu = np.asarray(mu, dtype=np.float32)
        before = self.logit(mu)
        after = self.target_logit(before, sign, degree)
        step = (after - before) / self.scale
        z = mu + (step[:, None] * self.direction[None, :]).astype(np.float32)
        return z.astype(np.float32), before, after

    def to_dict(self) -> dict[str, Any]:
        return {"direction": [float(x) for x in self.direction], "scale": self.scale, "bias": self.bias,
                "margin": self.margin, "default_degree": self.default_degree, "labels": list(self.labels),
                "info": self.info}

    @classmethod
    def from_dict(cls, attribute: str, data: dict[str, Any]) -> LatentAxis:
        return cls(attribute, np.asarray(data["direction"], dtype=np.float64), float(data["scale"]),
                   float(data["bias"]), float(data["margin"]), float(data.get("default_degree", DEFAULT_DEGREE)),
                   dict(data.get("info", {})))


@dataclass(frozen=True)
class Transfer:
    """One transferred sentence; probabilities are the latent classifier's, before and after the move."""

    source: str
    output: str
    target: str
    degree: float
    p_before: float  # p(target | μ)
    p_after: float  # p(target | z')
    z: np.ndarray


# ---------------------------------------------------------------------------- checks


def check_attribute(attribute: Any) -> str:
    if attribute not in ATTRIBUTES:
        raise InvalidInputError(f"attribute must be one of {', '.join(ATTRIBUTES)}, got {attribute!r}",
                                param="attribute")
    return str(attribute)


def check_target(attribute: str, target: Any) -> float:
    """The sign of the move towards ``target``: +1 for the second label, −1 for the first."""
    labels = TARGETS[attribute]
    if target not in labels:
        raise InvalidInputError(f"target must be one of {', '.join(labels)} for {attribute}, got {target!r}",
                                param="target")
    return 1.0 if target == labels[1] else -1.0


def check_candidates(candidates: Any) -> int:
    if isinstance(candidates, bool) or not isinstance(candidates, int) or not 1 <= candidates <= MAX_CANDIDATES:
        raise InvalidInputError(f"candidates must be a whole number between 1 and {MAX_CANDIDATES}, got "
                                f"{candidates!r}", param="candidates")
    return candidates


def check_rerank(rerank: Any) -> str:
    if rerank not in RERANKS:
        raise InvalidInputError(f"rerank must be one of {', '.join(RERANKS)}, got {rerank!r}", param="rerank")
    return str(rerank)


def check_min_p_target(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.5 <= value <= 0.99:
        raise InvalidInputError(f"min_p_target must be a number from 0.5 to 0.99, got {value!r}", param="min_p_target")
    return float(value)


def check_moves(moves: Any) -> int:
    if isinstance(moves, bool) or not isinstance(moves, int) or not 1 <= moves <= MAX_MOVES:
        raise InvalidInputError(f"moves must be a whole number between 1 and {MAX_MOVES}, got {moves!r}", param="moves")
    return moves


def check_degree(degree: Any) -> float:
    if isinstance(degree, bool) or not isinstance(degree, int | float) or not math.isfinite(degree) \
            or not 0.0 <= float(degree) <= MAX_DEGREE:
        raise InvalidInputError(f"degree must be a number between 0 and {MAX_DEGREE:g}, got {degree!r}",
                                param="degree")
    return float(degree)


# ---------------------------------------------------------------------------- fitting and storage


AXIS_METHODS = ("logistic", "mean")


def check_axis_method(method: Any, *, auto: bool = False) -> str:
    """One of :data:`AXIS_METHODS`, or also ``auto`` (fit both, keep the better) where a caller offers it."""
    allowed = ("auto", *AXIS_METHODS) if auto else AXIS_METHODS
    if method not in allowed:
        raise InvalidInputError(f"the axis method must be one of {', '.join(allowed)}, got {method!r}", param="axis")
    return str(method)


def fit_axis(mu: np.ndarray, labels: Sequence[int], attribute: str = "sentiment", *, c: float = 1.0,
             seed: int = 0, method: str = "logistic") -> LatentAxis:
    """The attribute axis from ``mu`` and ``labels`` (0/1), by one of two methods (``method``):

    * ``logistic``: scikit-learn's L2-regularised logistic regression (lbfgs) of the labels on
      ``mu``; its normalised weight vector is the axis. The most *discriminative* direction: it
      leans on components whose spread within a class is small, which a decoder may hardly read.
    * ``mean``: the difference of the two classes' mean ``mu``, normalised: the direction in which
      the classes' sentences actually differ on average. A one-dimensional logistic regression of the
      labels on the projection ``u·mu`` then gives the scale and bias, so ``degree`` keeps its
      meaning (multiples of a typical sentence's margin) under either method.

    On the held-out train slice a 128-d inverter flips the judge at degree 2-3 along the class-mean
    axis, against 12-16 along the logistic one (docs/benchmarks.md)."""
    from sklearn.linear_model import LogisticRegression

    method = check_axis_method(method)
    x = np.asarray(mu, dtype=np.float64)
    y = np.asarray(labels)
    if x.ndim != 2 or x.shape[0] != y.shape[0] or x.shape[0] < 2:
        raise InvalidInputError("need one latent vector per label, at least two", param="labels")
    if set(np.unique(y).tolist()) != {0, 1}:
        raise InvalidInputError("labels must hold both classes, 0 and 1", param="labels")
    if method == "mean":
        gap = x[y == 1].mean(axis=0) - x[y == 0].mean(axis=0)
        norm = float(np.linalg.norm(gap))
        if not norm > 0.0:
            raise InvalidInputError("the two classes have the same mean latent vector: no direction to move along",
                                    param="labels")
        direction = gap / norm
        clf = LogisticRegression(C=c, max_iter=1000, random_state=seed).fit((x @ direction)[:, None], y)
        w = float(clf.coef_[0, 0]) * direction
    else:
        clf = LogisticRegression(C=c, max_iter=1000, random_state=seed).fit(x, y)
        w = clf.coef_[0].astype(np.float64)
    scale = float(np.linalg.norm(w))
    if scale == 0.0:
        raise InvalidInputError("the latent classifier found no direction (all weights zero)", param="labels")
    logits = x @ w + float(clf.intercept_[0])
    return LatentAxis(attribute, w / scale, scale, float(clf.intercept_[0]), float(np.abs(logits).mean()),
                      info={"fit_sentences": int(x.shape[0]), "fit_accuracy": float(((logits > 0) == y).mean()),
                            "c": c, "method": method})


def axes_path(model: LatentModel | str | Path) -> Path:
    if isinstance(model, str | Path):
        return Path(model) / AXES_FILE
    folder = getattr(model, "path", None)
    if folder is None:
        raise NotFoundError(f"latent model {model.name!r} has no folder to keep its axes in", param="model")
    return Path(folder) / AXES_FILE


def save_axis(model: LatentModel | str | Path, axis: LatentAxis) -> Path:
    """Write (or replace) this attribute's entry in ``axes.json``, atomically."""
    path = axes_path(model)
    data: Any = {}
    if path.is_file():
        try:
            data = json.loads(path.read_text())
        except ValueError:
            data = None
        if not isinstance(data, dict):  # damaged: nothing in it can be kept, and the fit just made is not lost
            log.warning("%s was not a readable axes file; writing it anew with the %s axis", path, axis.attribute)
            data = {}
    data[axis.attribute] = axis.to_dict()
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)
    return path


def load_axis(model: LatentModel | str | Path, attribute: str = "sentiment", *,
              latent_dim: int | None = None) -> LatentAxis:
    attribute = check_attribute(attribute)
    path = axes_path(model)
    if not path.is_file():
        raise NotFoundError(f"{path.parent} has no {AXES_FILE}: fit the {attribute} axis with "
                            f"`textlatent fit-transfer --model {path.parent}`", param="model")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelUnavailableError(f"{path} is not a readable axes file ({exc}); refit it with "
                                    f"`textlatent fit-transfer --model {path.parent}`", param="model") from exc
    if not isinstance(data, dict):
        raise ModelUnavailableError(f"{path} is not a readable axes file (not a JSON object); refit it with "
                                    f"`textlatent fit-transfer --model {path.parent}`", param="model")
    if attribute not in data:
        raise NotFoundError(f"{path} has no {attribute} axis; fit it with `textlatent fit-transfer`",
                            param="attribute")
    try:
        axis = LatentAxis.from_dict(attribute, data[attribute])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ModelUnavailableError(f"{path}: the {attribute} axis is damaged ({type(exc).__name__}: {exc}); "
                                    f"refit it with `textlatent fit-transfer --model {path.parent}`",
                                    param="model") from exc
    if latent_dim is not None and axis.direction.shape != (latent_dim,):
        raise ModelUnavailableError(f"{path}: the {attribute} axis has {axis.direction.shape[0]} components but the "
                                f"model's latent size is {latent_dim}; refit it", param="model")
    return axis


def posterior_means(model: LatentModel, texts: Sequence[str], *, progress: bool = False,
                    batch_size: int = 512, cache: bool = True) -> np.ndarray:
    """μ of many texts. For the GRU VAE the MiniLM embeddings go through the project's embedding
    cache (training the VAE already filled it for its training text) unless ``cache`` is False
    (throwaway texts); any other LatentModel, or ``cache=False``, is asked in batches."""
    from textlatent.vae.ops import VAEPipeline

    if cache and isinstance(model, VAEPipeline):
        import torch

        from textlatent.vae.data import cached_embeddings

        emb = cached_embeddings(model.encoder, list(texts), show_progress=progress)
        out = []
        with torch.no_grad():
            for i in range(0, len(emb), 4096):
                mu, _ = model.model.encode(torch.from_numpy(emb[i:i + 4096]).to(model.device))
                out.append(mu.float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, model.latent_dim), dtype=np.float32)
    from tqdm.auto import tqdm

    parts = [model.encode(list(texts[i:i + batch_size]))[0]
             for i in tqdm(range(0, len(texts), batch_size), disable=not progress, desc="encode")]
    return np.concatenate(parts) if parts else np.zeros((0, model.latent_dim), dtype=np.float32)


# ---------------------------------------------------------------------------- transfer


def transfer(model: LatentModel, axis: LatentAxis, texts: Sequence[str], target: str | Sequence[str],
             degree: float | None = None, *, strategy: Strategy = "greedy", candidates: int = 1,
             rerank: str = "round-trip", min_p_target: float = CONTENT_THRESHOLD, moves: int = CONTENT_STEPS,
             **decode_kw: Any) -> list[Transfer]:
    """Move each text's μ towards ``target`` (one label for all, or one per text) and decode.

    ``degree`` None uses the axis's default (chosen on held-out training sentences).
    ``candidates`` > 1 decodes that many sentences per move and keeps one: with ``rerank``
    ``"round-trip"`` the round-trip nearest (:func:`round_trip_rerank`), with ``"content"`` the one
    nearest the source among those the latent classifier puts at p(target) ≥ ``min_p_target``, over
    ``moves`` moves up to ``degree`` (:func:`content_rerank`)."""
    from textlatent.encoder import validate_texts

    items = validate_texts(texts[0], param="text") if len(texts) == 1 else validate_texts(list(texts), param="texts")
    targets = [target] * len(items) if isinstance(target, str) else list(target)
    if len(targets) != len(items):
        raise InvalidInputError("give one target, or one per text", param="target")
    signs = np.array([check_target(axis.attribute, t) for t in targets])
    deg = axis.default_degree if degree is None else check_degree(degree)
    check_reranking(model, candidates, rerank, min_p_target, moves)
    mu, _ = model.encode(items)
    return _decode_moves(model, axis, items, mu, targets, signs, deg, strategy=strategy, candidates=candidates,
                         rerank=rerank, min_p_target=min_p_target, moves=moves, **decode_kw)


def round_trip_rerank(model: LatentModel, z: np.ndarray, candidates: int, *, strategy: Strategy = "greedy",
                      rerank_temperature: float = RERANK_TEMPERATURE, **decode_kw: Any) -> list[str]:
    """For each row of ``z``: decode it once with ``strategy`` and ``decode_kw`` (the caller's
    temperature, beam size and seed) and ``candidates − 1`` times by sampling (at
    ``rerank_temperature``, seeds ``s + 1 …``, ``s`` the ``seed`` in ``decode_kw``, else 0), and keep the
    sentence whose own posterior mean μ(c) lies nearest ``z`` (Euclidean): the decode the model
    itself maps back closest to the point asked for.

    Neither a sentiment judge nor a similarity to the source is consulted; the choice is the
    model's own round trip. Empty candidates are never kept unless all are empty."""
    check_candidates(candidates)
    z = np.asarray(z, dtype=np.float32)
    pool = _candidate_pool(model, z, candidates, strategy, rerank_temperature, decode_kw)
    if candidates == 1:
        return pool[0]
    flat = [(k, i) for k in range(candidates) for i in range(len(z)) if pool[k][i].strip()]
    dist = np.full((candidates, len(z)), np.inf)
    if flat:
        mu_c = posterior_means(model, [pool[k][i] for k, i in flat], cache=False)  # throwaway texts
        rows = np.array([i for _, i in flat])
        dist[tuple(np.array(flat).T)] = ((mu_c - z[rows]) ** 2).sum(axis=1)
    best = np.where(np.isinf(dist).all(axis=0), 0, dist.argmin(axis=0))
    return [pool[int(best[i])][i] for i in range(len(z))]


def _candidate_pool(model: LatentModel, z: np.ndarray, candidates: int, strategy: Strategy,
                    rerank_temperature: float, decode_kw: dict[str, Any]) -> list[list[str]]:
    """``candidates`` decodes of each row of ``z``: one with the caller's ``strategy`` and
    ``decode_kw``, the rest sampled at ``rerank_temperature`` with seeds ``s + 1 …`` (``s`` the
    caller's seed, else 0)."""
    pool = [model.decode(z, strategy=strategy, **decode_kw)]
    seed = decode_kw.get("seed") or 0
    sample_kw = {k: v for k, v in decode_kw.items() if k not in ("temperature", "seed")}
    pool += [model.decode(z, strategy="sample", temperature=rerank_temperature, seed=(seed + k) % (MAX_SEED + 1),
                          **sample_kw)  # wrapped: a client's largest seed stays a valid one
             for k in range(1, candidates)]
    return pool


def check_reranking(model: LatentModel, candidates: Any, rerank: Any, min_p_target: Any,
                    moves: Any = CONTENT_STEPS) -> None:
    """The candidate options of a transfer, before any work: their ranges, and for content reranking
    a model that can embed its candidates."""
    check_candidates(candidates)
    if check_rerank(rerank) == "content":
        content_embedder(model)
    check_min_p_target(min_p_target)
    check_moves(moves)


def content_embedder(model: LatentModel) -> tuple[Any, Any]:
    """The model's ``embed`` (sentence → embedding) and ``encode_embeddings`` (embedding → μ, log σ²),
    which content reranking needs; a clear error, before any work, for a model without them."""
    embed, encode_embeddings = getattr(model, "embed", None), getattr(model, "encode_embeddings", None)
    if embed is None or encode_embeddings is None:
        raise InvalidInputError("content reranking needs a model that embeds sentences (the VAE pipelines do)",
                                param="rerank")
    return embed, encode_embeddings


def content_rerank(model: LatentModel, axis: LatentAxis, source_emb: np.ndarray, mu: np.ndarray,
                   signs: np.ndarray, degree: float, candidates: int, *, strategy: Strategy = "greedy",
                   rerank_temperature: float = RERANK_TEMPERATURE, steps: int = CONTENT_STEPS,
                   threshold: float = CONTENT_THRESHOLD, progress: bool = False,
                   **decode_kw: Any) -> tuple[list[str], np.ndarray]:
    """For each sentence: moves to ``degree·j/steps`` (j = 1 … ``steps``), each decoded ``candidates``
    times as :func:`round_trip_rerank` does; keep the candidate nearest the source (cosine of
    sentence embeddings, ``source_emb`` from the model's own ``embed``) among those whose own μ the
    latent classifier puts at p(target) ≥ ``threshold``; if none is, the one with the highest
    p(target). An empty candidate is never kept unless all are empty. Returns the outputs and, per
    sentence, the degree of the move it came from. ``progress`` shows bars for the moves and the scoring.

    The sentiment judge is never consulted, but when the model embeds with the bundled MiniLM (every
    VAE trained here does) the similarity kept is the one ``eval transfer`` reports as
    ``content_similarity``: this reranker optimises that measure directly."""
    from tqdm.auto import tqdm

    content_embedder(model)  # a model that cannot embed is refused before any decoding
    check_candidates(candidates)
    check_moves(steps)
    src = np.asarray(source_emb, dtype=np.float64)
    src = src / np.maximum(np.linalg.norm(src, axis=1, keepdims=True), 1e-12)
    pool: list[list[str]] = []  # [move × candidate][sentence]
    for j in tqdm(range(1, steps + 1), desc="content rerank: moves", disable=not progress, leave=False):
        z, _, _ = axis.shift(mu, signs, degree * j / steps)
        pool += _candidate_pool(model, z, candidates, strategy, rerank_temperature, decode_kw)
    flat = [o for outs in pool for o in outs]
    rows = np.tile(np.arange(len(mu)), len(pool))  # the sentence each candidate belongs to
    sign = np.broadcast_to(np.asarray(signs, dtype=np.float64), (len(mu),))[rows]
    sim, p = content_scores(model, axis, flat, src[rows], sign, progress=progress)
    kept = np.array([bool(o.strip()) for o in flat])  # an empty candidate never passes, nor is it near
    near = np.where(kept, sim, 0.0).reshape(len(pool), len(mu))
    p_kept = np.where(kept, p, 0.0).reshape(len(pool), len(mu))
    ok = p_kept >= threshold
    best = np.where(ok.any(axis=0), np.where(ok, near, -np.inf).argmax(axis=0), p_kept.argmax(axis=0))
    return [pool[int(best[i])][i] for i in range(len(mu))], degree * (best // candidates + 1) / steps


def content_scores(model: LatentModel, axis: LatentAxis, texts: Sequence[str], source_unit: np.ndarray,
                   signs: np.ndarray, *, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """For each candidate text: its cosine to ``source_unit`` (the unit embedding of the sentence it
    came from, one row per text) and the latent classifier's p(target) at its own μ. Each distinct
    text is embedded once (sampled candidates repeat: 5-6 % within a move of 64, more across moves), in
    batches of ``EMBED_CHUNK`` so memory stays bounded. An empty text is embedded as "." (MiniLM needs
    text); the caller decides what an empty candidate is worth."""
    from tqdm.auto import tqdm

    embed, encode_embeddings = content_embedder(model)
    safe = [o if o.strip() else "." for o in texts]
    distinct = list(dict.fromkeys(safe))
    where = {t: i for i, t in enumerate(distinct)}
    unit = np.empty((len(distinct), source_unit.shape[1]))
    logit = np.empty(len(distinct))  # the latent classifier's, towards the second label
    for a in tqdm(range(0, len(distinct), EMBED_CHUNK), desc="content rerank: scoring", disable=not progress,
                  leave=False):
        emb = np.asarray(embed(distinct[a:a + EMBED_CHUNK]), dtype=np.float64)
        mu_c, _ = encode_embeddings(emb.astype(np.float32))
        unit[a:a + len(emb)] = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        logit[a:a + len(emb)] = axis.logit(mu_c)
    idx = np.array([where[o] for o in safe], dtype=np.int64)
    sim = (unit[idx] * source_unit).sum(axis=1)
    return sim, p_target_of(logit[idx], signs)


def _decode_moves(model: LatentModel, axis: LatentAxis, items: Sequence[str], mu: np.ndarray,
                  targets: Sequence[str], signs: np.ndarray, degree: float, *, strategy: Strategy = "greedy",
                  candidates: int = 1, rerank: str = "round-trip", min_p_target: float = CONTENT_THRESHOLD,
                  moves: int = CONTENT_STEPS, progress: bool = False, **decode_kw: Any) -> list[Transfer]:
    signs = np.asarray(signs, dtype=np.float64)
    if check_rerank(rerank) == "content" and degree > 0.0:  # at degree 0 nothing moves: no target side to keep
        embed, _ = content_embedder(model)
        outputs, degrees = content_rerank(model, axis, np.asarray(embed(list(items))), mu, signs, degree, candidates,
                                          strategy=strategy, threshold=check_min_p_target(min_p_target),
                                          steps=moves, progress=progress, **decode_kw)
        z = np.empty_like(np.asarray(mu, dtype=np.float32))
        before, after = np.empty(len(items)), np.empty(len(items))
        for d in np.unique(degrees):  # the point each kept output was decoded from
            rows = degrees == d
            z[rows], before[rows], after[rows] = axis.shift(mu[rows], signs[rows], float(d))
    else:
        # degree 0 leaves z = μ exactly, so decoding it (greedily, one candidate) is the reconstruction
        degrees = np.full(len(items), degree)
        z, before, after = axis.shift(mu, signs, degree)
        outputs = round_trip_rerank(model, z, candidates, strategy=strategy, **decode_kw)
    p_before, p_after = p_target_of(before, signs), p_target_of(after, signs)
    return [Transfer(src, out, tgt, float(d), float(pb), float(pa), zi)
            for src, out, tgt, d, pb, pa, zi in zip(items, outputs, targets, degrees, p_before, p_after, z,
                                                     strict=True)]


def transfer_from_means(model: LatentModel, axis: LatentAxis, texts: Sequence[str], mu: np.ndarray,
                        targets: Sequence[str], degree: float, **decode_kw: Any) -> list[Transfer]:
    """:func:`transfer` for texts whose μ is already known (evaluation: encode once, try many degrees)."""
    signs = np.array([check_target(axis.attribute, t) for t in targets])
    return _decode_moves(model, axis, texts, mu, targets, signs, check_degree(degree), **decode_kw)
