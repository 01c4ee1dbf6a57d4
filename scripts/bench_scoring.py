"""Sentiment batch scoring: `textlatent score` against the naive pipeline, and memory against rows.

Throughput: all score the same CSV of SST-2 sentences with the same bundled head, model and
batch size. The naive pipeline is what a script would do by hand: pandas reads the file,
sentence-transformers ``encode`` embeds every row, scikit-learn's ``predict_proba`` (the same
logistic-regression weights) labels them, pandas writes the result. Each run is a fresh
process; runs alternate and repeat, and medians and their ratio are reported.

Memory: peak RSS (the scorer and its worker processes summed, sampled every 50 ms) while
scoring growing files. With ``--memory-model fake`` the model is replaced by a constant so the
streaming I/O path can be pushed to a million rows in minutes; ``real`` uses the bundled head.

    .venv/bin/python scripts/bench_scoring.py throughput --rows 4000 --repeats 2
    .venv/bin/python scripts/bench_scoring.py memory --rows 10000 100000 1000000 --memory-model fake
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]


def make_csv(path: Path, data_dir: Path, rows: int) -> Path:
    with open(data_dir / "sst2" / "glue" / "train.tsv", encoding="utf-8") as fh:
        sentences = [line.split("\t")[0].strip() for line in list(fh)[1:]]
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "text"])
        for i in range(rows):
            writer.writerow([i, sentences[i % len(sentences)]])
    return path


NAIVE = """
import sys, time, numpy as np, pandas as pd, torch
from sentence_transformers import SentenceTransformer
from sklearn.linear_model import LogisticRegression
from textlatent.sentiment.heads import BUNDLED_HEAD, read_config
from textlatent.models import bundled_model_path
from textlatent.text import text_normalizer
src, out, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
config = read_config(BUNDLED_HEAD)
norm = text_normalizer(config.get("normalize"))  # the head's own text normalisation, as `score` applies it
clf = LogisticRegression()
clf.coef_ = np.asarray([config["weights"]]); clf.intercept_ = np.asarray([config["bias"]])
clf.classes_ = np.array([0, 1])
model = SentenceTransformer(str(bundled_model_path()), device="cpu")
start = time.perf_counter()
df = pd.read_csv(src)
emb = model.encode([norm(t) for t in df["text"].astype(str)], batch_size=batch, normalize_embeddings=True)
p = clf.predict_proba(emb)[:, 1]
df["label"] = np.where(p >= 0.5, "positive", "negative"); df["score"] = np.where(p >= 0.5, p, 1 - p)
df.to_csv(out, index=False)
print(time.perf_counter() - start)
"""

OURS = """
import sys, time
from textlatent.scoring import score_file
from textlatent.sentiment import ParallelPredictor
src, out, batch, workers, precision = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
predictor = ParallelPredictor(None, workers=workers, batch_size=batch, precision=precision)
start = time.perf_counter()
score_file(src, out, predictor, model_id=predictor.model_id, precision=predictor.precision, overwrite=True,
           show_progress=False, in_flight=2 * workers)
print(time.perf_counter() - start)
predictor.close()
"""

FAKE = """
import sys, numpy as np
from textlatent.scoring import score_file
score_file(sys.argv[1], sys.argv[2], lambda texts: np.full(len(texts), 0.7), model_id="fake", overwrite=True,
           show_progress=False)
"""


def run_measured(code: str, *args: str) -> tuple[float, float]:
    """Run ``code`` in a fresh interpreter; return (seconds it printed, peak RSS MiB of its process tree)."""
    import psutil

    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    parent = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            tree = [parent, *parent.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.05)
    out, err = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"benchmark run failed:\n{err[-3000:]}")
    lines = out.strip().splitlines()
    return (float(lines[-1]) if lines else float("nan")), peak / 2**20


def throughput(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        src = make_csv(Path(tmp) / "in.csv", args.data_dir, args.rows)
        # naive, then `score` as it runs by default (--precision fast), then with --precision fp32 and int8
        runs: dict[str, list[float]] = {"naive": [], "textlatent": [], "textlatent_fp32": [], "textlatent_int8": []}
        for _ in range(args.repeats):
            for name in runs:
                if name == "naive":
                    secs, _ = run_measured(NAIVE, str(src), f"{tmp}/naive.csv", str(args.batch_size))
                else:
                    precision = name.split("_")[1] if "_" in name else "fast"
                    secs, _ = run_measured(OURS, str(src), f"{tmp}/ours.csv", str(args.batch_size),
                                           str(args.workers), precision)
                runs[name].append(args.rows / secs)
                print(f"{name}: {runs[name][-1]:.1f} rows/s", file=sys.stderr)
    from textlatent.sentiment.heads import scoring_precision

    med = {k: statistics.median(v) for k, v in runs.items()}
    return {"rows": args.rows, "batch_size": args.batch_size, "workers": args.workers,
            "fast_precision": scoring_precision("fast", "cpu"),
            "rows_per_second": {k: [round(x, 1) for x in v] for k, v in runs.items()},
            "median_rows_per_second": {k: round(v, 1) for k, v in med.items()},
            "speedup": round(med["textlatent"] / med["naive"], 2),
            "speedup_fp32": round(med["textlatent_fp32"] / med["naive"], 2),
            "speedup_int8": round(med["textlatent_int8"] / med["naive"], 2)}


def memory(args: argparse.Namespace) -> dict:
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rows in args.rows_list:
            src = make_csv(Path(tmp) / f"in{rows}.csv", args.data_dir, rows)
            if args.memory_model == "fake":
                secs, peak = run_measured(FAKE, str(src), f"{tmp}/out.csv")
            else:
                secs, peak = run_measured(OURS, str(src), f"{tmp}/out.csv", str(args.batch_size), str(args.workers),
                                          "fast")
            results[rows] = round(peak, 1)
            print(f"{rows:,} rows: peak RSS {peak:.0f} MiB", file=sys.stderr)
            Path(src).unlink()
    return {"model": args.memory_model, "workers": args.workers, "peak_rss_mib": results}


def main() -> None:
    from textlatent.cli_options import positive_int

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["throughput", "memory"])
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--rows", type=positive_int, nargs="+", default=[4000])
    parser.add_argument("--repeats", type=positive_int, default=2)
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument("--workers", type=positive_int, default=os.cpu_count() or 1)
    parser.add_argument("--memory-model", choices=["fake", "real"], default="fake")
    args = parser.parse_args()
    args.rows_list = args.rows
    args.rows = args.rows[0]
    result = throughput(args) if args.what == "throughput" else memory(args)
    result.update(machine=f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
                  date=time.strftime("%Y-%m-%d"))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
