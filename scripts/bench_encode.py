"""Encode throughput: textlatent's Encoder side by side with plain sentence-transformers.

Both load the same bundled all-MiniLM-L6-v2 and encode the same texts with the same batch
size; runs are interleaved and repeated, and medians are reported, so machine noise hits
both alike. Usage:

    .venv/bin/python scripts/bench_encode.py [--data-dir ../shared/data] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def load_texts(data_dir: Path, n_short: int, n_long: int) -> dict[str, list[str]]:
    short: list[str] = []
    with open(data_dir / "stsb" / "sts-test.csv", encoding="utf-8") as fh:
        for line in fh:
            cols = line.rstrip("\n").split("\t")
            short += [cols[5], cols[6]]
            if len(short) >= n_short:
                break
    long: list[str] = []
    with open(data_dir / "scifact" / "corpus.jsonl", encoding="utf-8") as fh:
        for line in fh:
            doc = json.loads(line)
            long.append(f"{doc['title']}\n{doc['text']}")
            if len(long) >= n_long:
                break
    return {"STS-B test sentences (short)": short[:n_short], "SciFact abstracts (long, cut at 256 tokens)": long}


def main() -> None:
    from textlatent.cli_options import positive_int

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--short", type=positive_int, default=1024, help="number of short sentences")
    parser.add_argument("--long", type=positive_int, default=128, help="number of long abstracts")
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--repeats", type=positive_int, default=3)
    args = parser.parse_args()

    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    from textlatent.encoder import Encoder
    from textlatent.models import bundled_model_path

    ours = Encoder(batch_size=args.batch_size)
    plain = SentenceTransformer(str(bundled_model_path()), device="cpu")
    workloads = load_texts(args.data_dir, args.short, args.long)

    candidates = {
        "sentence-transformers encode": lambda t: plain.encode(
            t, batch_size=args.batch_size, normalize_embeddings=True, convert_to_numpy=True
        ),
        "textlatent Encoder.encode": lambda t: ours.encode(t),
        "textlatent Encoder.encode_with_info": lambda t: ours.encode_with_info(t).embeddings,
    }
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch threads "
          f"{torch.get_num_threads()}, batch {args.batch_size}, median of {args.repeats}")
    rows = []
    for name, texts in workloads.items():
        reference = candidates["sentence-transformers encode"](texts[:16])  # warm-up
        for fn in candidates.values():
            assert np.allclose(fn(texts[:16]), reference, atol=1e-5), "encoders disagree"
        times: dict[str, list[float]] = {c: [] for c in candidates}
        for _ in range(args.repeats):
            for cand, fn in candidates.items():  # interleaved: noise hits every candidate alike
                start = time.perf_counter()
                fn(texts)
                times[cand].append(time.perf_counter() - start)
        base = statistics.median(times["sentence-transformers encode"])
        for cand, ts in times.items():
            med = statistics.median(ts)
            rows.append((name, cand, len(texts), len(texts) / med, base / med))
    print("| workload | encoder | texts | sentences/s (median) | vs sentence-transformers |")
    print("|---|---|---|---|---|")
    for name, cand, n, rate, ratio in rows:
        print(f"| {name} | {cand} | {n} | {rate:.1f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
