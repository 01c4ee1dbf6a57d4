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
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from textlatent.errors import InvalidInputError
from textlatent.eval.loaders import BeirDataset, StsData
from textlatent.eval.metrics import pearson, retrieval_metrics, spearman

if TYPE_CHECKING:
    from textlatent.retrieval.bm25 import BM25Index


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


RETRIEVAL_MODES = ("dense", "bm25", "hybrid")


class PassageReranker(Protocol):
    """What reranking needs (:class:`textlatent.retrieval.rerank.Reranker` fits)."""

    def rerank(self, query: str, candidates: Sequence[tuple[str, str, float]]) -> list[tuple[str, float]]: ...


def bm25_run(
    query_ids: Sequence[str], queries: Sequence[str], index: BM25Index,
    *, top_k: int = 1000, ignore_identical_ids: bool = True,
) -> dict[str, dict[str, float]]:
    """``{query id: {doc id: BM25 score}}`` from an index built with BEIR's Elasticsearch settings
    (k1=0.9, b=0.4, English stopwords and stemming); documents sharing no term are left out."""
    doc_ids = index.ids
    run: dict[str, dict[str, float]] = {}
    for qid, text in zip(query_ids, queries, strict=True):
        hits = index.search(text, top_k + (1 if ignore_identical_ids else 0))
        pairs = [(doc_ids[i], s) for i, s in hits if not (ignore_identical_ids and doc_ids[i] == qid)]
        run[qid] = dict(pairs[:top_k])
    return run


def fuse_runs(
    lexical: dict[str, dict[str, float]], dense: dict[str, dict[str, float]], *, top_k: int = 1000,
    fusion: str = "weighted", alpha: float = 0.4, depth: int = 100,
) -> dict[str, dict[str, float]]:
    """Per query, RRF (``fusion='rrf'``) or a weighted sum of min-max scores (``'weighted'``,
    ``alpha`` the dense weight) of each run's top ``depth``, as collection search fuses them."""
    from textlatent.retrieval.fusion import ranked, rrf, weighted

    out: dict[str, dict[str, float]] = {}
    for qid in dense.keys() | lexical.keys():
        lex = dict(ranked(lexical.get(qid, {}), depth))
        den = dict(ranked(dense.get(qid, {}), depth))
        if fusion == "rrf":
            order = [[d for d, _ in ranked(lex)], [d for d, _ in ranked(den)]]
            fused = rrf(order)
        elif fusion == "weighted":
            fused = weighted(lex, den, alpha=alpha)
        else:
            raise InvalidInputError(f"fusion must be rrf or weighted, got {fusion!r}", param="fusion")
        out[qid] = dict(ranked(fused, top_k))
    return out


def rerank_run(
    run: dict[str, dict[str, float]], queries: dict[str, str], doc_text: dict[str, str],
    reranker: PassageReranker, *, top_n: int = 30, show_progress: bool = False,
) -> dict[str, dict[str, float]]:
    """Rerank the first ``top_n`` documents of each query; the rest keep their order below them."""
    from tqdm.auto import tqdm

    out: dict[str, dict[str, float]] = {}
    for qid, hits in tqdm(run.items(), desc="rerank", unit="query", disable=not show_progress):
        order = sorted(hits.items(), key=lambda kv: -kv[1])
        head = [(d, doc_text[d], s) for d, s in order[:top_n]]
        reranked = reranker.rerank(queries[qid], head) if head else []
        merged: dict[str, float] = {}
        n = len(order)
        for rank, (d, _) in enumerate(reranked):
            merged[d] = float(2 * n - rank)  # the reranked head, above everything else
        for rank, (d, _) in enumerate(order[top_n:]):
            merged[d] = float(n - rank)
        out[qid] = merged
    return out


def evaluate_beir(
    encoder: TextEncoder | None,
    data: BeirDataset,
    *,
    mode: str = "dense",
    reranker: PassageReranker | None = None,
    rerank_top: int = 10,
    fusion: str = "weighted",
    alpha: float = 0.4,
    batch_size: int | None = None,
    top_k: int = 1000,
    ignore_identical_ids: bool = True,
    show_progress: bool = False,
    cache: bool = False,
) -> dict[str, Any]:
    """nDCG@10 and Recall@100 of ``mode`` retrieval (dense exact search, BM25 or their fusion),
    optionally reranked, with timings.

    ``queries_per_s`` counts what a user waits for once the corpus is indexed: query encoding,
    search, fusion and reranking. ``corpus_seconds`` is the time to index the corpus (embedding,
    unless ``cache`` is set and the embeddings came from the disk cache, see
    :mod:`textlatent.cache`; ``textlatent eval beir`` sets it).
    """
    if mode not in RETRIEVAL_MODES:
        raise InvalidInputError(f"mode must be one of {', '.join(RETRIEVAL_MODES)}, got {mode!r}", param="mode")
    if mode != "bm25" and encoder is None:
        raise InvalidInputError(f"mode {mode!r} needs an encoder", param="mode")
    start = time.perf_counter()
    doc_ids, doc_texts = data.corpus_texts()
    if not doc_ids:
        raise InvalidInputError(f"dataset {data.name!r} has an empty corpus", param="dataset")
    corpus_emb = bm25 = None
    if mode in ("bm25", "hybrid"):
        from textlatent.retrieval.bm25 import BM25Index

        bm25 = BM25Index.build(doc_ids, doc_texts, show_progress=show_progress)
    if mode != "bm25":
        assert encoder is not None

        def embed(texts: Sequence[str]) -> np.ndarray:
            return encode_all(encoder, texts, batch_size=batch_size, show_progress=show_progress)

        if cache:
            from textlatent.cache import cached_embeddings

            corpus_emb = cached_embeddings(encoder, doc_ids, doc_texts, embed)
        else:
            corpus_emb = embed(doc_texts)
    corpus_seconds = time.perf_counter() - start

    query_start = time.perf_counter()
    query_ids = list(data.queries)
    query_texts = [data.queries[q] for q in query_ids]
    runs: dict[str, dict[str, dict[str, float]]] = {}
    if bm25 is not None:
        runs["bm25"] = bm25_run(query_ids, query_texts, bm25, top_k=top_k,
                                ignore_identical_ids=ignore_identical_ids)
    if corpus_emb is not None:
        assert encoder is not None
        query_emb = encode_all(encoder, query_texts, batch_size=batch_size)
        runs["dense"] = dense_run(query_ids, query_emb, doc_ids, corpus_emb, top_k=top_k,
                                  ignore_identical_ids=ignore_identical_ids)
    run = runs[mode] if mode != "hybrid" else fuse_runs(runs["bm25"], runs["dense"], top_k=top_k,
                                                       fusion=fusion, alpha=alpha)
    if reranker is not None:
        run = rerank_run(run, data.queries, dict(zip(doc_ids, doc_texts, strict=True)), reranker,
                         top_n=rerank_top, show_progress=show_progress)
    query_seconds = time.perf_counter() - query_start

    scores = retrieval_metrics(data.qrels, run, ndcg_at=(10,), recall_at=(100,))
    result: dict[str, Any] = {
        "task": "beir",
        "dataset": data.name,
        "split": data.split,
        "mode": mode,
        "model": _model_name(encoder) if encoder is not None else None,
        "ndcg@10": round(scores["ndcg@10"], 5),
        "recall@100": round(scores["recall@100"], 5),
        "queries": len(query_ids),
        "docs": len(doc_ids),
        "queries_per_s": round(len(query_ids) / max(query_seconds, 1e-9), 2),
        "ms_per_query": round(1000 * query_seconds / max(len(query_ids), 1), 2),
        "corpus_seconds": round(corpus_seconds, 3),
    }
    if mode == "hybrid":
        result["fusion"] = fusion if fusion == "rrf" else f"weighted(alpha={alpha})"
    if reranker is not None:
        result["reranker"] = str(getattr(reranker, "name", type(reranker).__name__))
        result["rerank_top"] = rerank_top
    result["seconds"] = round(time.perf_counter() - start, 3)
    return result
