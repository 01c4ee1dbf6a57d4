"""Per-query latency of collection search in each mode, through the library a server uses.

Builds a SciFact collection in a temporary folder from the cached corpus embeddings (no
re-encoding: see textlatent.cache), then runs the test queries one at a time
through ``TextLatent.search`` (encode + search + fusion + rerank, as POST /collections/{name}/search
does) and ``rag_context`` (+ prompt building), reporting p50/p95 latency and nDCG@10 of the
served results, so the figures in docs/benchmarks.md are side by side on one machine and run.

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/bench_rag.py [--data-dir ../shared/data]
        [--reranker /work/models/reranker-scifact] [--queries 100]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main() -> None:
    from textlatent.cli_options import positive_int

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--dataset", default="scifact")
    parser.add_argument("--reranker", default=None)
    parser.add_argument("--queries", type=positive_int, default=100, help="test queries to time (first N)")
    args = parser.parse_args()

    from textlatent.cache import cached_embeddings
    from textlatent.collections import Document
    from textlatent.config import Settings
    from textlatent.eval import encode_all, load_beir
    from textlatent.eval.metrics import retrieval_metrics
    from textlatent.retrieval.rag import rag_context
    from textlatent.service import TextLatent

    data = load_beir(args.data_dir, args.dataset, "test")
    ids, texts = data.corpus_texts()
    with tempfile.TemporaryDirectory() as root:
        tl = TextLatent(Settings(index_dir=Path(root), device="cpu", reranker=args.reranker))
        enc = tl.encoder()
        vectors = cached_embeddings(enc, ids, texts, lambda ts: encode_all(enc, ts, show_progress=True))
        tl.create_collection("bench")
        coll = tl.collection("bench")
        for lo in range(0, len(ids), 1000):
            coll.upsert([Document(id=i, text=t, metadata={}) for i, t in zip(ids[lo:lo + 1000], texts[lo:lo + 1000],
                                                                           strict=True)], vectors[lo:lo + 1000])
        qids = list(data.queries)[: args.queries]
        start = time.perf_counter()
        tl.search("bench", query="warm up", k=10, mode="bm25")  # builds the BM25 sidecar once
        bm25_build = time.perf_counter() - start
        configs = [("dense", False), ("bm25", False), ("hybrid", False)]
        if args.reranker:
            configs.append(("hybrid", True))
            tl.search("bench", query="warm up", k=10, mode="hybrid", rerank=True)
        rows = []
        for mode, rerank in configs:
            times, run = [], {}
            for q in qids:
                t0 = time.perf_counter()
                hits = tl.search("bench", query=data.queries[q], k=10, mode=mode, rerank=rerank)
                times.append(1000 * (time.perf_counter() - t0))
                run[q] = {h.id: float(len(hits) - r) for r, h in enumerate(hits)}
            rag_times = []
            for q in qids[:20]:
                t0 = time.perf_counter()
                rag_context(tl, "bench", data.queries[q], k=5, mode=mode, rerank=rerank, max_context_tokens=1500)
                rag_times.append(1000 * (time.perf_counter() - t0))
            score = retrieval_metrics({q: data.qrels[q] for q in qids}, run, ndcg_at=(10,), recall_at=(10,))
            rows.append({"mode": mode, "rerank": rerank, "queries": len(qids), "ndcg@10": round(score["ndcg@10"], 4),
                         "search_ms_p50": round(statistics.median(times), 1),
                         "search_ms_p95": round(pct(times, 0.95), 1),
                         "rag_ms_p50": round(statistics.median(rag_times), 1)})
            print(json.dumps(rows[-1]), flush=True)
        print(json.dumps({"docs": len(ids), "bm25_build_s": round(bm25_build, 2)}))


if __name__ == "__main__":
    main()
