"""Anomaly scores in the latent space: what does not belong to a reference set of texts.

Three scorers, each fitted on reference embeddings (or, for ELBO, on reference text through a
trained VAE); every score is "higher = more anomalous":

* ``knn``: cosine distance to the k nearest reference vectors (the mean over the k, or the
  k-th alone), by exact inner-product search in FAISS. Makes no assumption about the shape of
  the in-domain data, which in a sentence space is many small clusters, not one blob.
* ``mahalanobis``: squared Mahalanobis distance to the reference mean under the Ledoit-Wolf
  shrunk covariance (scikit-learn ``LedoitWolf``). Shrinkage, not ``EmpiricalCovariance``:
  a collection often has fewer vectors than the 384 dimensions, where the empirical covariance
  is singular and its inverse meaningless; Ledoit-Wolf picks the shrinkage towards a scaled
  identity in closed form, so there is no knob to tune and it is defined for any n >= 2.
  (``shrinkage="empirical"`` is kept for comparison on large reference sets.)
* ``elbo``: −ELBO of the text under a trained text VAE (:mod:`textlatent.vae`), per token by
  default (a long sentence is not more anomalous for being long) or per sentence. The VAE is
  the reference: it must be trained on in-domain text.

:func:`collection_outliers` ranks a collection's own documents: the reference is the collection
itself, leave-one-out for kNN (a vector is never its own neighbour). :func:`auroc` is the
out-of-distribution figure of ``textlatent eval ood``.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from textlatent.errors import InvalidInputError

if TYPE_CHECKING:
    from textlatent.collections import Collection
    from textlatent.vae.ops import VAEPipeline

METHODS = ("knn", "mahalanobis", "elbo")
KNN_AGGREGATES = ("mean", "kth")
SHRINKAGES = ("ledoit-wolf", "empirical")
MAX_K = 1000
Method = Literal["knn", "mahalanobis", "elbo"]


def check_method(method: str) -> str:
    if method not in METHODS:
        raise InvalidInputError(f"method must be one of {', '.join(METHODS)}, got {method!r}", param="method")
    return method


def check_k(k: Any) -> int:
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
        raise InvalidInputError(f"k must be an integer between 1 and {MAX_K}, got {k!r}", param="k")
    return k


def _matrix(vectors: Any, param: str = "vectors") -> np.ndarray:
    try:
        arr = np.asarray(vectors, dtype=np.float32)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{param} must be a 2-D array of numbers", param=param) from None
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InvalidInputError(f"{param} must be a non-empty 2-D array, got shape {arr.shape}", param=param)
    if not np.isfinite(arr).all():
        raise InvalidInputError(f"{param} holds NaN or infinite values", param=param)
    return np.ascontiguousarray(arr)


def _normalise(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x / np.clip(np.linalg.norm(x, axis=1, keepdims=True), 1e-12, None), dtype=np.float32)


REFERENCE_BLOCK_CELLS = 2_000_000  # neighbour-list entries scored at a time (~80 MB of working arrays)


class KnnScorer:
    """Cosine distance to the ``k`` nearest reference vectors (mean of the k, or the k-th).

    Vectors are L2-normalised here, so inner product is cosine whatever the caller passes."""

    def __init__(self, k: int = 10, aggregate: str = "mean") -> None:
        self.k = check_k(k)
        if aggregate not in KNN_AGGREGATES:
            raise InvalidInputError(f"aggregate must be one of {', '.join(KNN_AGGREGATES)}, got {aggregate!r}",
                                    param="aggregate")
        self.aggregate = aggregate
        self._index: Any = None
        self._n = 0

    def fit(self, reference: Any) -> KnnScorer:
        import faiss

        ref = _normalise(_matrix(reference, "reference"))
        if ref.shape[0] < self.k:
            raise InvalidInputError(f"k={self.k} needs at least {self.k} reference vectors, got {ref.shape[0]}",
                                    param="k")
        self._index = faiss.IndexFlatIP(ref.shape[1])
        self._index.add(ref)
        self._n = ref.shape[0]
        return self

    def _similarities(self, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self._index is None:
            raise RuntimeError("KnnScorer.fit must be called before scoring")
        if x.shape[1] != self._index.d:
            raise InvalidInputError(f"vectors have dimension {x.shape[1]}, the reference {self._index.d}",
                                    param="vectors")
        sims, idx = self._index.search(_normalise(x), k)
        return sims.astype(np.float64), idx

    def _reduce(self, sims: np.ndarray) -> np.ndarray:
        dist = 1.0 - sims
        return dist.mean(axis=1) if self.aggregate == "mean" else dist[:, -1]

    def score(self, vectors: Any) -> np.ndarray:
        """Scores of new vectors against the whole reference, ``[n]`` float64."""
        sims, _ = self._similarities(_matrix(vectors), self.k)
        return self._reduce(sims)

    def neighbour_distances(self, vectors: Any) -> np.ndarray:
        """Cosine distances to the ``k`` nearest reference vectors, nearest first, ``[n, k]``: one
        search serves every smaller k and both aggregates (how ``eval ood`` picks k)."""
        sims, _ = self._similarities(_matrix(vectors), self.k)
        return 1.0 - sims

    def score_reference(self) -> np.ndarray:
        """Leave-one-out scores of the reference vectors themselves: each point's own entry is
        removed from its neighbour list (by index, so an exact duplicate still counts as a
        neighbour, as it should: a text stored twice is not an outlier)."""
        if self._index is None:
            raise RuntimeError("KnnScorer.fit must be called before scoring")
        if self._n < self.k + 1:
            raise InvalidInputError(f"k={self.k} needs at least {self.k + 1} documents (each one is left out of "
                                    f"its own neighbours), the collection has {self._n}", param="k")
        out = np.empty(self._n, dtype=np.float64)
        # in blocks of rows: the neighbour lists of a whole large collection at k near 1,000 would
        # take gigabytes at once (n × (k + 1) similarities, ids and masks)
        block = max(1, REFERENCE_BLOCK_CELLS // (self.k + 1))
        for start in range(0, self._n, block):
            stop = min(self._n, start + block)
            ref = self._index.reconstruct_n(start, stop - start)
            sims, idx = self._similarities(ref, self.k + 1)
            rows = stop - start
            own = idx == np.arange(start, stop)[:, None]
            # drop the own entry where it was found, else the (k+1)-th neighbour
            drop = np.where(own.any(axis=1), own.argmax(axis=1), self.k)
            keep = np.ones_like(own)
            keep[np.arange(rows), drop] = False
            out[start:stop] = self._reduce(sims[keep].reshape(rows, self.k))
        return out


class MahalanobisScorer:
    """Squared Mahalanobis distance to the reference mean under a shrunk covariance (see module doc)."""

    def __init__(self, shrinkage: str = "ledoit-wolf") -> None:
        if shrinkage not in SHRINKAGES:
            raise InvalidInputError(f"shrinkage must be one of {', '.join(SHRINKAGES)}, got {shrinkage!r}",
                                    param="shrinkage")
        self.shrinkage = shrinkage
        self._cov: Any = None

    def fit(self, reference: Any) -> MahalanobisScorer:
        from sklearn.covariance import EmpiricalCovariance, LedoitWolf

        ref = _matrix(reference, "reference").astype(np.float64)
        if ref.shape[0] < 3:
            raise InvalidInputError(f"a covariance needs at least 3 reference vectors, got {ref.shape[0]}",
                                    param="reference")
        if self.shrinkage == "empirical" and ref.shape[0] <= ref.shape[1]:
            raise InvalidInputError(f"the empirical covariance of {ref.shape[0]} vectors in {ref.shape[1]} "
                                    "dimensions is singular; use ledoit-wolf shrinkage", param="shrinkage")
        self._cov = (LedoitWolf() if self.shrinkage == "ledoit-wolf" else EmpiricalCovariance()).fit(ref)
        return self

    @property
    def shrinkage_(self) -> float | None:
        """The shrinkage Ledoit-Wolf chose (0 = empirical, 1 = scaled identity)."""
        return float(self._cov.shrinkage_) if self._cov is not None and hasattr(self._cov, "shrinkage_") else None

    def score(self, vectors: Any) -> np.ndarray:
        if self._cov is None:
            raise RuntimeError("MahalanobisScorer.fit must be called before scoring")
        x = _matrix(vectors).astype(np.float64)
        if x.shape[1] != self._cov.location_.shape[0]:
            raise InvalidInputError(f"vectors have dimension {x.shape[1]}, the reference "
                                    f"{self._cov.location_.shape[0]}", param="vectors")
        return np.asarray(self._cov.mahalanobis(x), dtype=np.float64)


class ElboScorer:
    """−ELBO of texts under a trained text VAE: reconstruction NLL at one z drawn from q(z|x)
    (the noise seeded by the text, so a text always gets the same score) plus the KL to the model's prior
    (closed form under N(0, I); under a fitted prior, estimated at that same z), per token
    (``<eos>`` counted, as in the VAE's perplexity) or per sentence."""

    def __init__(self, pipeline: VAEPipeline, *, per: str = "token", seed: int = 0, batch_size: int = 128) -> None:
        if per not in ("token", "sentence"):
            raise InvalidInputError(f"per must be 'token' or 'sentence', got {per!r}", param="per")
        if not hasattr(pipeline, "model") or not hasattr(pipeline, "vocab"):
            raise InvalidInputError(f"the latent model {getattr(pipeline, 'name', '?')!r} offers no likelihood; "
                                    "ELBO scores need a GRU text VAE (`textlatent vae train`)", param="method")
        self.pipeline, self.per, self.seed, self.batch_size = pipeline, per, seed, batch_size

    def score_texts(self, texts: Sequence[str], *, embeddings: np.ndarray | None = None,
                    show_progress: bool = False, cache: bool = True) -> np.ndarray:
        """Scores ``[n]``; ``embeddings`` (the encoder's, L2-normalised) may be passed when already known.
        ``cache`` False encodes without the on-disk embedding cache (a server scoring what clients
        send must not grow a cache file per request)."""
        import torch
        from tqdm.auto import tqdm

        from textlatent.vae.data import cached_embeddings
        from textlatent.vae.train import length_batches, pad_batch

        items = [str(t) for t in texts]
        if not items or any(not t.strip() for t in items):
            raise InvalidInputError("texts must be non-empty strings", param="texts")
        model, vocab, device = self.pipeline.model, self.pipeline.vocab, self.pipeline.device
        if embeddings is None and cache:
            embeddings = cached_embeddings(self.pipeline.encoder, items, show_progress=show_progress)
        elif embeddings is None:
            embeddings = np.asarray(self.pipeline.encoder.encode(items, show_progress=show_progress))
        emb = torch.from_numpy(np.ascontiguousarray(embeddings, dtype=np.float32))
        ids = [vocab.encode(t) for t in items]
        out = np.zeros(len(items), dtype=np.float64)
        # One noise draw per text, seeded by the text itself: its score does not depend on which
        # other texts share its batch or call.
        noise = torch.stack([torch.randn(model.config.latent_dim, generator=torch.Generator().manual_seed(
            (self.seed * 1_000_003 + zlib.crc32(t.encode("utf-8", "surrogatepass"))) % (2**63)))
            for t in items])
        batches = list(length_batches([len(s) for s in ids], self.batch_size, None))
        with torch.no_grad():
            for idx in tqdm(batches, desc="elbo", unit="batch", disable=not show_progress, mininterval=5):
                mu, logvar = model.encode(emb[idx].to(device))
                eps = noise[idx].to(device=device, dtype=mu.dtype)
                z = mu + (0.5 * logvar).exp() * eps
                rec = model.reconstruction_nll(z, pad_batch([ids[i] for i in idx], device))
                nll = (rec + model.kl(mu, logvar, z=z)).double().cpu().numpy()
                if self.per == "token":
                    nll = nll / np.array([len(ids[i]) for i in idx], dtype=np.float64)
                out[idx] = nll
        return out


class UnigramBackground:
    """Unigram model over a VAE vocabulary, fitted on the reference text: the background model of
    a likelihood ratio (Ren et al. 2019). Subtracting its per-token NLL from the VAE's removes
    what is plain word frequency from the evidence, leaving how much better the VAE explains a
    text than word counts do.

    ``<unk>`` gets the Good-Turing mass of unseen words (the share of tokens that are words seen
    once), not its own count: a vocabulary built from the reference has no ``<unk>`` in it, and an
    add-one count would make every unknown word look far more surprising to the background than
    to the VAE. Other words: counts plus one half."""

    def __init__(self, vocab: Any) -> None:
        self.vocab = vocab
        self.log_probs: np.ndarray | None = None

    def fit(self, texts: Sequence[str]) -> UnigramBackground:
        counts = np.zeros(len(self.vocab), dtype=np.float64)
        for t in texts:
            np.add.at(counts, self.vocab.encode(str(t)), 1.0)
        total = counts.sum()
        if total == 0:
            raise InvalidInputError("the background model needs some reference text", param="texts")
        unk = self.vocab.unk
        singletons = float(np.sum(np.delete(counts, unk) == 1))
        p_unk = (counts[unk] + max(singletons, 1.0)) / (total + max(singletons, 1.0))
        known = np.delete(counts, unk) + 0.5
        probs = np.insert(known / known.sum() * (1.0 - p_unk), unk, p_unk)
        self.log_probs = np.log(probs)
        return self

    def nll_per_token(self, texts: Sequence[str]) -> np.ndarray:
        if self.log_probs is None:
            raise RuntimeError("fit the background model first")
        lp = self.log_probs
        return np.array([-float(lp[self.vocab.encode(str(t))].mean()) for t in texts], dtype=np.float64)


def auroc(in_domain: Any, out_of_domain: Any) -> float:
    """Area under the ROC curve of telling out-of-domain (positive) from in-domain scores, with
    higher scores meaning more anomalous (scikit-learn ``roc_auc_score``). 1.0: every OOD item
    scores above every in-domain one; 0.5: chance."""
    from sklearn.metrics import roc_auc_score

    a = np.asarray(in_domain, dtype=np.float64).ravel()
    b = np.asarray(out_of_domain, dtype=np.float64).ravel()
    if a.size == 0 or b.size == 0:
        raise InvalidInputError("AUROC needs scores for both in-domain and out-of-domain items", param="scores")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise InvalidInputError("scores hold NaN or infinite values", param="scores")
    labels = np.concatenate([np.zeros(a.size), np.ones(b.size)])
    return float(roc_auc_score(labels, np.concatenate([a, b])))


# --------------------------------------------------------------------------- collections


@dataclass(frozen=True)
class Outlier:
    id: str
    text: str
    score: float
    rank: int


def read_collection(coll: Collection) -> tuple[list[str], list[str], np.ndarray]:
    """Ids, texts and stored vectors of every document, from one read transaction (so the
    three agree even while another process writes)."""
    _, _, ids, texts, vectors = coll.snapshot_vectors()
    return ids, texts, vectors


def collection_outliers(
    coll: Collection, *, method: str = "knn", k: int = 10, n: int = 10, pipeline: Any = None,
) -> dict[str, Any]:
    """The ``n`` documents of ``coll`` that fit it least, most anomalous first.

    The reference is the collection itself: kNN leaves each document out of its own
    neighbours; Mahalanobis fits one covariance on all documents (each point's own weight in
    it is 1/N, which Ledoit-Wolf's shrinkage dampens further); ELBO asks ``pipeline`` (a VAE
    trained on text like the collection's) and ignores ``k``."""
    check_method(method)
    k = check_k(k)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise InvalidInputError(f"n must be a positive integer, got {n!r}", param="n")
    if method == "elbo" and pipeline is None:
        raise InvalidInputError("method 'elbo' needs a trained VAE: set TEXTLATENT_VAE_MODEL (API) or pass "
                                "--vae DIR (CLI)", param="method")
    ids, texts, vecs = read_collection(coll)
    if not ids:
        raise InvalidInputError(f"collection {coll.name!r} is empty: nothing to score", param="name")
    if method == "knn":
        if len(ids) < k + 1:
            raise InvalidInputError(f"k={k} needs at least {k + 1} documents (each one is left out of its own "
                                    f"neighbours); collection {coll.name!r} has {len(ids)}", param="k")
        scores = KnnScorer(k=k).fit(vecs).score_reference()
    elif method == "mahalanobis":
        if len(ids) < 3:
            raise InvalidInputError(f"a covariance needs at least 3 documents; collection {coll.name!r} has "
                                    f"{len(ids)}", param="name")
        scores = MahalanobisScorer().fit(vecs).score(vecs)
    else:
        assert pipeline is not None
        # No embedding cache: every change to a collection would leave another file of its size on disk.
        scores = ElboScorer(pipeline).score_texts(texts, cache=False)
    order = np.argsort(-scores, kind="stable")[:n]
    results = [Outlier(id=ids[i], text=texts[i], score=round(float(scores[i]), 6), rank=r + 1)
               for r, i in enumerate(order)]
    return {"collection": coll.name, "method": method, "k": k if method == "knn" else None, "count": len(ids),
            "results": results}
