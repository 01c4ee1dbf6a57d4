"""A 2-D map of a collection for the explorer page: projection, colours and neighbours.

The map is derived data: every document's stored vector projected to the plane (PCA, or UMAP
on request) and coloured by a k-means cluster or by the configured sentiment head. Building
it costs seconds (UMAP: tens of seconds, most of it numba compiling on first use), so each
piece is memoised under the collection's identity (its ``uid``) and write generation: a
repeated load of an unchanged collection is a dictionary lookup, and any upsert or delete
bumps the generation, so a stale map is never served.

Nothing here re-encodes documents: the projection, the clusters and, when the sentiment
head is a linear head on the collection's own encoder, the sentiment too are computed from
the vectors already stored in SQLite.
"""

from __future__ import annotations

import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from textlatent.collections import Collection, SearchHit
from textlatent.errors import InvalidInputError

if TYPE_CHECKING:
    from textlatent.service import TextLatent

METHODS = ("pca", "umap")
COLORS = ("cluster", "sentiment")
DEFAULT_LIMIT = 5000
MAX_LIMIT = 20000  # an SVG page stays responsive up to about this many points
MAX_CLUSTERS = 50
UMAP_MIN_POINTS = 4  # below this UMAP's neighbour graph is degenerate; PCA says as much
TEXT_CHARS = 240  # hover text; the full document is one GET away
_SAMPLE_SEED = 0


@dataclass(frozen=True)
class Snapshot:
    """The mapped documents of one generation: ``total`` in the collection, ``len(ids)`` mapped."""

    generation: int
    total: int
    ids: list[str]
    texts: list[str]
    vectors: np.ndarray


def check_options(method: str, color: str, clusters: int, limit: int) -> None:
    """Refuse bad options with a 422 naming the field, before any work is done."""
    if method not in METHODS:
        raise InvalidInputError(f"method must be one of {', '.join(METHODS)}, got {method!r}", param="method")
    if color not in COLORS:
        raise InvalidInputError(f"color must be one of {', '.join(COLORS)}, got {color!r}", param="color")
    if isinstance(clusters, bool) or not isinstance(clusters, int) or not 2 <= clusters <= MAX_CLUSTERS:
        raise InvalidInputError(f"clusters must be between 2 and {MAX_CLUSTERS}, got {clusters!r}",
                                param="clusters")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidInputError(f"limit must be between 1 and {MAX_LIMIT}, got {limit!r}", param="limit")


def snapshot(coll: Collection, limit: int) -> Snapshot:
    """Ids, texts and vectors of at most ``limit`` documents, read in one transaction so they
    all belong to the generation they are labelled with.

    A collection larger than ``limit`` is sampled uniformly with a fixed seed (the same sample
    for the same generation), not cut to its oldest documents, so the map shows the whole space.
    """
    generation, total, ids, texts, vectors = coll.snapshot_vectors(limit, seed=_SAMPLE_SEED)
    return Snapshot(generation, total, ids, texts, vectors)


def project(vectors: np.ndarray, method: str) -> tuple[np.ndarray, list[float] | None]:
    """``(n, 2)`` coordinates, and PCA's explained-variance ratios (``None`` for UMAP).

    Fewer points than dimensions are handled by padding with zeros: one document sits at the
    origin, two lie on a line."""
    n = len(vectors)
    coords = np.zeros((n, 2), dtype=np.float64)
    if method == "umap":
        if n < UMAP_MIN_POINTS:
            raise InvalidInputError(f"UMAP needs at least {UMAP_MIN_POINTS} documents, the map has {n}; "
                                    "use method=pca", param="method")
        import umap  # slow to import (numba): only when asked for

        neighbours = min(15, n - 1)
        reducer = umap.UMAP(n_components=2, n_neighbors=neighbours, metric="cosine", random_state=0,
                            init="spectral" if n > 2 * neighbours else "random")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "n_jobs overridden by random_state": determinism is the point
            coords[:] = reducer.fit_transform(vectors)
        return coords, None
    if n < 2:
        return coords, [0.0, 0.0]
    from sklearn.decomposition import PCA

    pca = PCA(n_components=min(2, n, vectors.shape[1]), random_state=0)
    with np.errstate(invalid="ignore", divide="ignore"):  # identical vectors: zero variance
        fitted = pca.fit_transform(vectors.astype(np.float64))
        ratios = np.nan_to_num(pca.explained_variance_ratio_)
    coords[:, : fitted.shape[1]] = np.nan_to_num(fitted)
    explained = [round(float(r), 4) for r in ratios] + [0.0] * (2 - len(ratios))
    return coords, explained


def kmeans(vectors: np.ndarray, clusters: int) -> np.ndarray:
    """K-means cluster of each vector in the full embedding space (not the 2-D projection, which
    distorts distances); at most one cluster per distinct vector."""
    n = len(vectors)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    distinct = len(np.unique(vectors, axis=0))
    k = min(clusters, distinct)
    if k < 2:
        return np.zeros(n, dtype=np.int64)
    from sklearn.cluster import KMeans

    return np.asarray(KMeans(n_clusters=k, n_init=1, random_state=0).fit_predict(vectors), dtype=np.int64)


def sentiment(service: TextLatent, coll: Collection, snap: Snapshot) -> tuple[np.ndarray, str]:
    """Probability of 'positive' per mapped document, and the sentiment model's id.

    A linear head over the very encoder that embedded the collection reads the stored vectors
    directly, except for the documents its text normaliser changes (Penn-Treebank-tokenised
    text, for the bundled head): the stored vector is of the raw text, so those few are
    re-encoded, normalised, as ``/sentiment`` would score them. Any other head (a fine-tuned
    classifier, a head on another encoder) reads the full texts, which costs an encoder pass
    over them once per generation."""
    model = service.sentiment_model()
    encoder = getattr(model, "encoder", None)
    if hasattr(model, "proba_from_embeddings") and getattr(encoder, "model_id", None) == coll.config.model:
        proba = np.asarray(model.proba_from_embeddings(snap.vectors), dtype=np.float64)
        normalize = getattr(model, "normalize", None)
        changed = [i for i, t in enumerate(snap.texts) if normalize(t) != t] if normalize is not None else []
        if changed:
            proba[changed] = model.positive_proba([snap.texts[i] for i in changed])
        return proba, model.model_id
    return np.asarray(model.positive_proba(snap.texts), dtype=np.float64), model.model_id


def _short(text: str) -> str:
    return text if len(text) <= TEXT_CHARS else text[: TEXT_CHARS - 1].rstrip() + "…"


class CollectionMaps:
    """Memoised maps of the collections of one :class:`TextLatent` (one per API process).

    Entries are keyed by collection uid and generation; an LRU bound keeps memory small (a
    snapshot of 5,000 MiniLM vectors is 7.7 MB). Each key has its own lock, so two requests for
    the same map compute it once while a slow UMAP never blocks a PCA of another collection.
    """

    def __init__(self, service: TextLatent, *, max_entries: int = 32) -> None:
        self.service = service
        self.max_entries = max_entries
        self._cache: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[tuple[Any, ...], threading.Lock] = {}

    def _memo(self, key: tuple[Any, ...], compute: Callable[[], Any]) -> tuple[Any, bool]:
        """``(value, was_cached)``."""
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key], True
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._cache:
                    return self._cache[key], True
            value = compute()
            with self._lock:
                self._cache[key] = value
                while len(self._cache) > self.max_entries:
                    self._cache.popitem(last=False)
                self._key_locks.pop(key, None)
            return value, False

    def map(self, name: str, *, method: str = "pca", color: str = "cluster", clusters: int = 8,
            limit: int = DEFAULT_LIMIT) -> dict[str, Any]:
        """The map of collection ``name`` as a JSON-ready dict (see ``api/routers/explore.py``).

        The finished map is memoised too: 20,000 points take a second or two to assemble."""
        check_options(method, color, clusters, limit)
        coll = self.service.collection(name)
        base = (coll.config.uid, name, coll.generation(), limit)
        colour_key = clusters if color == "cluster" else self.service.settings.sentiment_model
        built, cached = self._memo(("map", *base, method, color, colour_key),
                                   lambda: self._build(coll, base, method, color, clusters))
        return {**built, "cached": cached}

    def _build(self, coll: Collection, base: tuple[Any, ...], method: str, color: str,
               clusters: int) -> dict[str, Any]:
        limit = base[-1]
        snap, _ = self._memo(("snapshot", *base), lambda: snapshot(coll, limit))
        (coords, explained), _ = self._memo(("projection", *base, method), lambda: project(snap.vectors, method))
        cluster_ids: np.ndarray | None = None
        positive: np.ndarray | None = None
        sentiment_model = None
        if color == "cluster":
            cluster_ids, _ = self._memo(("cluster", *base, clusters), lambda: kmeans(snap.vectors, clusters))
        else:
            (positive, sentiment_model), _ = self._memo(
                ("sentiment", *base, self.service.settings.sentiment_model),
                lambda: sentiment(self.service, coll, snap))
        points = []
        for i, (doc_id, text) in enumerate(zip(snap.ids, snap.texts, strict=True)):
            point: dict[str, Any] = {"id": doc_id, "text": _short(text), "x": round(float(coords[i, 0]), 5),
                                     "y": round(float(coords[i, 1]), 5), "cluster": None, "label": None,
                                     "score": None, "positive": None}
            if cluster_ids is not None:
                point["cluster"] = int(cluster_ids[i])
            if positive is not None:
                p = float(positive[i])
                point["label"] = "positive" if p >= 0.5 else "negative"  # ties go to positive, as predict()
                point["score"] = round(p if p >= 0.5 else 1.0 - p, 4)
                point["positive"] = round(p, 4)
            points.append(point)
        return {
            "collection": coll.name,
            "generation": snap.generation,
            "method": method,
            "color": color,
            "total": snap.total,
            "count": len(points),
            "clusters": int(cluster_ids.max()) + 1 if cluster_ids is not None and len(cluster_ids) else None,
            "sentiment_model": sentiment_model,
            "explained_variance": explained,
            "points": points,
        }

    def neighbors(self, name: str, doc_id: str, k: int = 10) -> list[SearchHit]:
        """The ``k`` documents nearest to a stored document, by its stored vector (no re-encoding,
        so it works whichever model built the collection); the document itself is left out."""
        max_k = self.service.settings.max_k
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k < max_k:
            raise InvalidInputError(f"k must be between 1 and {max_k - 1}, got {k!r}", param="k")
        vector = self.service.collection(name).get_vector(doc_id)
        hits = self.service.search(name, vector=vector[None, :], k=k + 1)
        return [h for h in hits if h.id != doc_id][:k]
