"""How small can a sentence vector get before search and similarity suffer?

Each :class:`Codec` turns float32 vectors into the bytes a store would keep, and scores
stored items the way a system would: a *query* arrives in full float32 and is compared with
stored codes (asymmetric, as FAISS does for SQ and PQ), while two *stored* items (an STS pair)
are compared code to code. Fitting (PCA, quantiser ranges, PQ codebooks) uses only data a
system owns in advance: the SciFact corpus for retrieval, STS-B train sentences for STS;
never queries or test pairs.

* ``float32``: the baseline, 4 bytes x 384.
* ``pca``: project onto the top ``d`` principal components (scikit-learn), float32, cosine.
* ``truncate``: the first ``d`` components, re-normalised ("Matryoshka" truncation). MiniLM
  was not trained Matryoshka-style, so this is the honest baseline a truncation gets for free.
* ``int8``: FAISS ``ScalarQuantizer`` ``QT_8bit`` (a min/max range per dimension), 1 byte each.
* ``binary``: the sign of each component, 1 bit each, compared by Hamming distance; the
  ``+rescore`` variant re-ranks the Hamming top ``rescore_depth`` with the float query against
  the stored ±1 vector (nothing more is stored).
* ``pq``: FAISS ``ProductQuantizer`` with ``m`` sub-quantizers of 8 bits: ``m`` bytes.

Codebooks and projections are shared by all vectors and not counted in ``bytes_per_vector``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from textlatent.errors import InvalidInputError

DEFAULT_DIMS = (32, 64, 128, 256)
DEFAULT_PQ = (8, 16, 32, 48, 96)


def _unit(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x / np.clip(np.linalg.norm(x, axis=1, keepdims=True), 1e-12, None),
                                dtype=np.float32)


class Codec:
    """Base: ``fit`` on owned data, ``encode`` to stored codes, ``query_scores`` (float query vs
    stored codes, ``[nq, n]``) and ``pair_scores`` (stored vs stored, row by row, ``[n]``)."""

    method = "float32"
    setting = ""

    def fit(self, train: np.ndarray) -> Codec:
        return self

    def encode(self, x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(x, dtype=np.float32)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Vectors in the space scores are taken in (reduced for PCA and truncation)."""
        return np.asarray(codes, dtype=np.float32)

    def query_space(self, queries: np.ndarray) -> np.ndarray:
        """A float query mapped into the space of :meth:`decode` (identity unless reduced)."""
        return np.ascontiguousarray(queries, dtype=np.float32)

    def bytes_per_vector(self, codes: np.ndarray) -> int:
        return int(codes.nbytes // max(codes.shape[0], 1))

    def query_scores(self, queries: np.ndarray, codes: np.ndarray) -> np.ndarray:
        return self.query_space(queries) @ self.decode(codes).T

    def pair_scores(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        x, y = _unit(self.decode(a)), _unit(self.decode(b))
        return np.einsum("ij,ij->i", x.astype(np.float64), y.astype(np.float64))

    @property
    def name(self) -> str:
        return f"{self.method}({self.setting})" if self.setting else self.method


class Float32(Codec):
    pass


class Truncate(Codec):
    method = "truncate"

    def __init__(self, d: int) -> None:
        self.d, self.setting = d, f"d={d}"

    def encode(self, x: np.ndarray) -> np.ndarray:
        if self.d > x.shape[1]:
            raise InvalidInputError(f"cannot keep {self.d} of {x.shape[1]} dimensions", param="dims")
        return _unit(x[:, : self.d])

    def query_space(self, queries: np.ndarray) -> np.ndarray:
        return self.encode(queries)


class PCA(Codec):
    method = "pca"

    def __init__(self, d: int) -> None:
        self.d, self.setting = d, f"d={d}"
        self._pca: Any = None

    def fit(self, train: np.ndarray) -> PCA:
        from sklearn.decomposition import PCA as SkPCA

        if self.d > min(train.shape):
            raise InvalidInputError(f"PCA to {self.d} needs at least {self.d} training vectors and dimensions, "
                                    f"got {train.shape}", param="dims")
        self._pca = SkPCA(n_components=self.d, svd_solver="full", random_state=0).fit(train.astype(np.float64))
        return self

    def encode(self, x: np.ndarray) -> np.ndarray:
        return _unit(self._pca.transform(x.astype(np.float64)))

    def query_space(self, queries: np.ndarray) -> np.ndarray:
        return self.encode(queries)


class Int8(Codec):
    """FAISS scalar quantiser, 8 bits per dimension over each dimension's trained range."""

    method = "int8"

    def __init__(self) -> None:
        self._sq: Any = None

    def fit(self, train: np.ndarray) -> Int8:
        import faiss

        self._sq = faiss.ScalarQuantizer(train.shape[1], faiss.ScalarQuantizer.QT_8bit)
        self._sq.train(np.ascontiguousarray(train, dtype=np.float32))
        return self

    def encode(self, x: np.ndarray) -> np.ndarray:
        return self._sq.compute_codes(np.ascontiguousarray(x, dtype=np.float32))

    def decode(self, codes: np.ndarray) -> np.ndarray:
        return self._sq.decode(codes)


class ProductQuantizer(Codec):
    """FAISS product quantiser: ``m`` sub-vectors, each replaced by one of 256 centroids (1 byte)."""

    method = "pq"

    def __init__(self, m: int) -> None:
        self.m, self.setting = m, f"m={m}"
        self._pq: Any = None

    def fit(self, train: np.ndarray) -> ProductQuantizer:
        import faiss

        d = train.shape[1]
        if d % self.m:
            raise InvalidInputError(f"PQ sub-quantizers must divide the dimension {d}; {self.m} does not",
                                    param="pq")
        if train.shape[0] < 256:
            raise InvalidInputError(f"8-bit PQ needs at least 256 training vectors, got {train.shape[0]}", param="pq")
        self._pq = faiss.ProductQuantizer(d, self.m, 8)
        self._pq.verbose = False
        self._pq.cp.seed = 0
        self._pq.train(np.ascontiguousarray(train, dtype=np.float32))
        return self

    def encode(self, x: np.ndarray) -> np.ndarray:
        return self._pq.compute_codes(np.ascontiguousarray(x, dtype=np.float32))

    def decode(self, codes: np.ndarray) -> np.ndarray:
        return self._pq.decode(codes)


class Binary(Codec):
    """Sign bits, packed 8 to a byte; Hamming distance (as a similarity: dimensions that agree),
    optionally re-ranked with the float query against the stored ±1 vectors."""

    method = "binary"

    def __init__(self, rescore_depth: int = 0) -> None:
        self.rescore_depth = rescore_depth
        self.setting = f"rescore@{rescore_depth}" if rescore_depth else "hamming"

    def encode(self, x: np.ndarray) -> np.ndarray:
        return np.packbits(np.asarray(x) > 0, axis=1)

    def _signs(self, codes: np.ndarray, d: int) -> np.ndarray:
        return np.unpackbits(codes, axis=1)[:, :d].astype(np.float32) * 2.0 - 1.0

    def decode(self, codes: np.ndarray) -> np.ndarray:
        return self._signs(codes, codes.shape[1] * 8)

    def query_scores(self, queries: np.ndarray, codes: np.ndarray) -> np.ndarray:
        d = queries.shape[1]
        docs = self._signs(codes, d)
        agree = self._signs(self.encode(queries), d) @ docs.T  # d - 2 * hamming
        if not self.rescore_depth:
            return agree
        depth = min(self.rescore_depth, docs.shape[0])
        top = np.argpartition(-agree, depth - 1, axis=1)[:, :depth]
        out = np.full(agree.shape, -np.inf, dtype=np.float32)
        rescored = np.einsum("qd,qkd->qk", queries.astype(np.float32), docs[top])
        np.put_along_axis(out, top, rescored, axis=1)
        return out

    def pair_scores(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        x, y = self.decode(a), self.decode(b)
        return np.einsum("ij,ij->i", x.astype(np.float64), y.astype(np.float64))


def codecs(dims: Sequence[int] = DEFAULT_DIMS, pq: Sequence[int] = DEFAULT_PQ, *, full_dim: int = 384,
           rescore_depth: int = 100) -> list[Codec]:
    """Every method and setting of the benchmark, in table order."""
    for d in dims:
        if not 1 <= d < full_dim:
            raise InvalidInputError(f"dims must be between 1 and {full_dim - 1}, got {d}", param="dims")
    for m in pq:
        if not 1 <= m <= full_dim or full_dim % m:
            raise InvalidInputError(f"PQ sub-quantizers must be a positive divisor of the dimension {full_dim}; "
                                    f"{m} is not", param="pq")
    out: list[Codec] = [Float32()]
    out += [PCA(d) for d in dims]
    out += [Truncate(d) for d in dims]
    out.append(Int8())
    out += [Binary(), Binary(rescore_depth)]
    out += [ProductQuantizer(m) for m in pq]
    return out


# --------------------------------------------------------------------------- the benchmark


@dataclass
class RetrievalData:
    doc_ids: list[str]
    corpus: np.ndarray  # [n_docs, d], L2-normalised
    query_ids: list[str]
    queries: np.ndarray  # [n_queries, d]
    qrels: Mapping[str, Mapping[str, int]]


@dataclass
class StsPairs:
    fit: np.ndarray  # STS-B train sentence embeddings (to fit codecs on)
    a: np.ndarray
    b: np.ndarray
    gold: list[float]


def _run(scores: np.ndarray, query_ids: Sequence[str], doc_ids: Sequence[str], top_k: int = 100
         ) -> dict[str, dict[str, float]]:
    """Top ``top_k`` per query; a document whose id equals the query's is skipped (MTEB)."""
    k = min(top_k + 1, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    run: dict[str, dict[str, float]] = {}
    for row, qid in enumerate(query_ids):
        cand = part[row][np.argsort(-scores[row, part[row]], kind="stable")]
        hits = {}
        for j in cand:
            s = float(scores[row, j])
            if doc_ids[j] == qid or not np.isfinite(s):
                continue
            hits[doc_ids[j]] = s
            if len(hits) == top_k:
                break
        run[qid] = hits
    return run


def evaluate_codec(codec: Codec, retrieval: RetrievalData | None, sts: StsPairs | None) -> dict[str, Any]:
    """One row of the table: bytes per vector, SciFact nDCG@10, STS-B Spearman (x100)."""
    from textlatent.eval.metrics import ndcg_at_k, spearman

    start = time.perf_counter()
    row: dict[str, Any] = {"method": codec.method, "setting": codec.setting or None}
    if retrieval is not None:
        codec.fit(retrieval.corpus)
        codes = codec.encode(retrieval.corpus)
        row["bytes_per_vector"] = codec.bytes_per_vector(codes)
        scores = codec.query_scores(retrieval.queries, codes)
        row["ndcg@10"] = round(ndcg_at_k(retrieval.qrels, _run(scores, retrieval.query_ids, retrieval.doc_ids)), 5)
    if sts is not None:
        codec.fit(sts.fit)
        a, b = codec.encode(sts.a), codec.encode(sts.b)
        row.setdefault("bytes_per_vector", codec.bytes_per_vector(a))
        row["spearman"] = round(100 * spearman(codec.pair_scores(a, b).tolist(), sts.gold), 3)
    row["seconds"] = round(time.perf_counter() - start, 2)
    return row


def evaluate_compression(retrieval: RetrievalData | None, sts: StsPairs | None, *,
                         dims: Sequence[int] = DEFAULT_DIMS, pq: Sequence[int] = DEFAULT_PQ,
                         show_progress: bool = False) -> list[dict[str, Any]]:
    from tqdm.auto import tqdm

    if retrieval is None and sts is None:
        raise InvalidInputError("nothing to evaluate: give retrieval data, STS pairs or both", param="task")
    full = (retrieval.corpus if retrieval is not None else sts.a).shape[1]  # type: ignore[union-attr]
    return [evaluate_codec(c, retrieval, sts)
            for c in tqdm(codecs(dims, pq, full_dim=full), desc="codecs", disable=not show_progress)]


def plot(rows: Sequence[Mapping[str, Any]], path: str, *, title: str = "") -> None:
    """Quality against bytes per vector (log scale), one line per method, one panel per task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in ("ndcg@10", "spearman") if any(m in r for r in rows)]
    fig, axes = plt.subplots(1, len(metrics), figsize=(6 * len(metrics), 4.2), squeeze=False)
    labels = {"ndcg@10": "SciFact nDCG@10", "spearman": "STS-B test Spearman x100"}
    for ax, metric in zip(axes[0], metrics, strict=True):
        methods: dict[str, list[tuple[int, float, str]]] = {}
        for r in rows:
            if metric in r:
                key = r["method"] + (" +rescore" if str(r.get("setting") or "").startswith("rescore") else "")
                methods.setdefault(key, []).append((r["bytes_per_vector"], r[metric], r.get("setting") or ""))
        for method, points in methods.items():
            points.sort()
            xs, ys = [p[0] for p in points], [p[1] for p in points]
            ax.plot(xs, ys, marker="o", label=method)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("bytes per vector (log2)")
        ax.set_ylabel(labels[metric])
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
