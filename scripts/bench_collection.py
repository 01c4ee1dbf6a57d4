"""Collection timings: upsert throughput and search latency per FAISS index type.

Part 1 uses random unit vectors (dim 384) so that it times the store itself (SQLite, FAISS,
atomic persistence), not the encoder. Part 2, with --collection, times text queries
(encode + search) against a real collection, e.g. SciFact built with `textlatent add`.

    .venv/bin/python scripts/bench_collection.py [--n 5183 --n 50000] \
        [--index-dir indexes --collection scifact --queries ../shared/data/scifact/queries.jsonl]
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


def bench_store(n: int, factories: list[str], batch: int, n_queries: int) -> None:
    import numpy as np

    from textlatent.collections import CollectionStore, Document

    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(n, 384)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    docs = [Document(id=f"doc-{i}", text=f"document number {i}", metadata={"group": i % 10}) for i in range(n)]
    queries = vecs[rng.choice(n, n_queries, replace=False)]
    for factory in factories:
        with tempfile.TemporaryDirectory() as root:
            store = CollectionStore(root, device="cpu")
            coll, _ = store.create("bench", index=factory, dim=384, model="random")
            start = time.perf_counter()
            for i in range(0, n, batch):
                coll.upsert(docs[i : i + batch], vecs[i : i + batch])
            took = time.perf_counter() - start
            lat, lat_f = [], []
            hits = 0
            for q in queries:
                t = time.perf_counter()
                res = coll.search(q, k=10)[0]
                lat.append(time.perf_counter() - t)
                hits += bool(res) and float(res[0].score) > 0.999
                t = time.perf_counter()
                coll.search(q, k=10, filter={"group": 3})
                lat_f.append(time.perf_counter() - t)
            t = time.perf_counter()
            CollectionStore(root, device="cpu").get("bench").search(queries[0], k=10)
            reopen = time.perf_counter() - t
            print(f"| {factory} | {n} | {n / took:,.0f} | {took:.1f} | {1e3 * statistics.median(lat):.2f} | "
                  f"{1e3 * pct(lat, 0.95):.2f} | {1e3 * statistics.median(lat_f):.2f} | {hits / len(queries):.2f} | "
                  f"{1e3 * reopen:.0f} |")


def bench_text_queries(index_dir: Path, name: str, queries_file: Path, limit: int) -> None:
    from textlatent.config import Settings
    from textlatent.service import TextLatent

    service = TextLatent(Settings(index_dir=index_dir))
    with open(queries_file, encoding="utf-8") as fh:
        texts = [json.loads(line)["text"] for line in fh][:limit]
    service.search(name, query=texts[0], k=10)  # load the encoder
    lat = []
    for text in texts:
        t = time.perf_counter()
        service.search(name, query=text, k=10)
        lat.append(time.perf_counter() - t)
    info = service.collection(name).info()
    print(f"\ntext queries against `{name}` ({info['count']} docs, {info['index']}): {len(texts)} queries, "
          f"median {1e3 * statistics.median(lat):.1f} ms, p95 {1e3 * pct(lat, 0.95):.1f} ms, "
          f"{len(texts) / sum(lat):.1f} queries/s (encode + search, one query at a time)")


def main() -> None:
    from textlatent.cli_options import positive_int

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=positive_int, action="append", help="collection sizes (repeatable)")
    parser.add_argument("--index", action="append", help="factory strings (repeatable)")
    parser.add_argument("--batch", type=positive_int, default=256, help="documents per upsert")
    parser.add_argument("--queries-n", type=positive_int, default=200, help="vector queries per collection")
    parser.add_argument("--index-dir", type=Path)
    parser.add_argument("--collection")
    parser.add_argument("--queries", type=Path, default=Path("../shared/data/scifact/queries.jsonl"))
    parser.add_argument("--limit", type=positive_int, default=300, help="text queries to time")
    args = parser.parse_args()
    sizes = args.n or [5183, 50_000]
    factories = args.index or ["Flat", "HNSW32", "IVF256,Flat"]
    print("| index | docs | upsert docs/s | upsert total s | search ms (median) | search ms (p95) | "
          "filtered search ms (median) | self-hit@1 | reopen + first search ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in sizes:
        bench_store(n, factories, args.batch, args.queries_n)
    if args.collection:
        bench_text_queries(args.index_dir or Path("indexes"), args.collection, args.queries, args.limit)


if __name__ == "__main__":
    main()
