"""Benchmark tasks run the way the MTEB leaderboard runs them, so our figures compare with it.

* STS: cosine similarity of the two sentence embeddings, Spearman (and Pearson) against the
  gold scores, x100.
* BEIR retrieval: dense exact search. The corpus text is ``(title + " " + text).strip()``,
  queries are those judged in the split, scores are cosine similarities of normalised
  embeddings, the top ``top_k`` documents are kept (a document whose id equals the query id
  is dropped, MTEB's ``ignore_identical_ids``), and pytrec_eval gives nDCG@10 and Recall@100
  averaged over queries.

numpy is the only heavy import at module level; the encoder is passed in.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from textlatent.errors import InvalidInputError
from textlatent.eval.loaders import BeirDataset, StsData
from textlatent.eval.metrics import pearson, retrieval_metrics, spearman


class TextEncoder(Protocol):
    """What a task needs of an encoder (:class:`textlatent.encoder.Encoder` fits)."""

    def encode(
        self,
        texts: Sequence[str],
        *,
        normalize: bool = True,
        batch_size: int | None = None,
        show_progress: bool = False,
    ) -> np.ndarray: ...


def _model_name(encoder: Any) -> str:
    return str(getattr(encoder, "model_id", type(encoder).__name__))


def encode_all(
    encoder: TextEncoder, texts: Sequence[str], *, batch_size: int | None = None, show_progress: bool = False
) -> np.ndarray:
    """L2-normalised float32 embeddings of ``texts``; a blank text gets a zero vector.

    The encoder refuses blank input (a service should), but a benchmark corpus may hold an
    empty document; a zero vector scores 0 against every query instead of failing the run.
    """
    keep = [i for i, t in enumerate(texts) if t.strip()]
    if not keep:
        raise InvalidInputError("every text is blank: nothing to encode", param="texts")
    if len(keep) == len(texts):
        out = encoder.encode(list(texts), normalize=True, batch_size=batch_size, show_progress=show_progress)
        return np.ascontiguousarray(out, dtype=np.float32)
    part = encoder.encode([texts[i] for i in keep], normalize=True, batch_size=batch_size,
                          show_progress=show_progress)
    out = np.zeros((len(texts), part.shape[1]), dtype=np.float32)
    out[keep] = part
    return out


# --------------------------------------------------------------------------- STS


def evaluate_sts(
    encoder: TextEncoder, data: StsData, *, batch_size: int | None = None, split: str | None = None
) -> dict[str, Any]:
    """Spearman and Pearson (x100) between cosine similarity and the gold scores."""
    start = time.perf_counter()
    emb1 = encode_all(encoder, data.sentences1, batch_size=batch_size)
    emb2 = encode_all(encoder, data.sentences2, batch_size=batch_size)
    cosine = np.einsum("ij,ij->i", emb1.astype(np.float64), emb2.astype(np.float64))
    result: dict[str, Any] = {
        "task": "sts",
        "dataset": "stsb",
        "split": split,
        "model": _model_name(encoder),
        "spearman": round(100 * spearman(cosine.tolist(), data.scores), 4),
        "pearson": round(100 * pearson(cosine.tolist(), data.scores), 4),
        "pairs": len(data),
    }
    result["seconds"] = round(time.perf_counter() - start, 3)
    return result


# --------------------------------------------------------------------------- retrieval


def exact_search(
    query_emb: np.ndarray, corpus_emb: np.ndarray, top_k: int, *, chunk_size: int = 50_000
) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-k: ``(scores, indices)``, each ``[n_queries, min(top_k, n_docs)]``, best first.

    The corpus is scored in chunks so memory stays at ``n_queries x chunk_size`` floats.
    """
    n_docs = corpus_emb.shape[0]
    k = min(top_k, n_docs)
    if k < 1:
        raise InvalidInputError("top_k must be >= 1 and the corpus non-empty", param="top_k")
    best_scores = np.full((query_emb.shape[0], 0), -np.inf, dtype=np.float32)
    best_idx = np.zeros((query_emb.shape[0], 0), dtype=np.int64)
    for lo in range(0, n_docs, chunk_size):
        scores = query_emb @ corpus_emb[lo : lo + chunk_size].T
        kk = min(k, scores.shape[1])
        part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        best_scores = np.concatenate([best_scores, np.take_along_axis(scores, part, axis=1)], axis=1)
        best_idx = np.concatenate([best_idx, part + lo], axis=1)
        if best_scores.shape[1] > k:
            keep = np.argpartition(-best_scores, k - 1, axis=1)[:, :k]
            best_scores = np.take_along_axis(best_scores, keep, axis=1)
            best_idx = np.take_along_axis(best_idx, keep, axis=1)
    order = np.argsort(-best_scores, axis=1, kind="stable")
    return np.take_along_axis(best_scores, order, axis=1), np.take_along_axis(best_idx, order, axis=1)


def dense_run(
    query_ids: Sequence[str],
    query_emb: np.ndarray,
    doc_ids: Sequence[str],
    corpus_emb: np.ndarray,
    *,
    top_k: int = 1000,
    ignore_identical_ids: bool = True,
) -> dict[str, dict[str, float]]:
    """``{query id: {doc id: score}}`` of the top ``top_k`` documents per query.

    With ``ignore_identical_ids`` one extra document is fetched so that dropping a document
    whose id equals the query id still leaves ``top_k``.
    """
    scores, idx = exact_search(query_emb, corpus_emb, top_k + (1 if ignore_identical_ids else 0))
    run: dict[str, dict[str, float]] = {}
    for row, qid in enumerate(query_ids):
        hits: dict[str, float] = {}
        for s, j in zip(scores[row], idx[row], strict=True):
            did = doc_ids[int(j)]
            if ignore_identical_ids and did == qid:
                continue
            hits[did] = float(s)
            if len(hits) == top_k:
                break
        run[qid] = hits
    return run


def evaluate_beir(
    encoder: TextEncoder,
    data: BeirDataset,
    *,
    batch_size: int | None = None,
    top_k: int = 1000,
    ignore_identical_ids: bool = True,
    show_progress: bool = False,
) -> dict[str, Any]:
    """nDCG@10 and Recall@100 of dense exact search, with timings.

    ``queries_per_s`` counts query encoding plus search (what a user waits for once the corpus
    is indexed); ``corpus_seconds`` is the time to embed the corpus.
    """
    start = time.perf_counter()
    doc_ids, doc_texts = data.corpus_texts()
    if not doc_ids:
        raise InvalidInputError(f"dataset {data.name!r} has an empty corpus", param="dataset")
    corpus_emb = encode_all(encoder, doc_texts, batch_size=batch_size, show_progress=show_progress)
    corpus_seconds = time.perf_counter() - start

    query_start = time.perf_counter()
    query_ids = list(data.queries)
    query_emb = encode_all(encoder, [data.queries[q] for q in query_ids], batch_size=batch_size)
    run = dense_run(query_ids, query_emb, doc_ids, corpus_emb, top_k=top_k, ignore_identical_ids=ignore_identical_ids)
    query_seconds = time.perf_counter() - query_start

    scores = retrieval_metrics(data.qrels, run, ndcg_at=(10,), recall_at=(100,))
    return {
        "task": "beir",
        "dataset": data.name,
        "split": data.split,
        "model": _model_name(encoder),
        "ndcg@10": round(scores["ndcg@10"], 5),
        "recall@100": round(scores["recall@100"], 5),
        "queries": len(query_ids),
        "docs": len(doc_ids),
        "queries_per_s": round(len(query_ids) / max(query_seconds, 1e-9), 2),
        "corpus_seconds": round(corpus_seconds, 3),
        "seconds": round(time.perf_counter() - start, 3),
    }
