"""Fine-tuning step time on SST-2 train: random batches against length-grouped ones.

GLUE's SST-2 train rows are mostly short phrases (median 10 MiniLM tokens, a few of 66), so a
random batch of 32 is padded to its longest row: ~2.9x the real tokens, against ~1.05x when
batches are drawn from length-sorted groups (transformers' ``LengthGroupedSampler``). This
measures what that is worth per training step on this machine: ``train_finetuned`` runs
``--steps`` steps each way (100 = two of the sampler's 50-batch groups, so both see whole groups),
alternating, each repeat in a fresh process; the dev evaluation at the last step, which falls inside the
training time, is subtracted (the one after training was never counted).

    .venv/bin/python scripts/bench_finetune.py --steps 100 --repeats 2
"""

from __future__ import annotations

import argparse
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

ONE_RUN = """
import json, sys
from textlatent.sentiment.train import train_finetuned
r = train_finetuned(sys.argv[1], sys.argv[2], max_steps=int(sys.argv[3]), eval_steps=int(sys.argv[3]),
                    batch_size=32, learning_rate=8e-5, device="cpu", group_by_length=sys.argv[4] == "grouped")
print(json.dumps({"steps": r["steps"], "train_seconds": r["train_seconds"], "eval_seconds": r["eval_seconds"]}))
"""


def main() -> None:
    from textlatent.cli_options import positive_int

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--steps", type=positive_int, default=100)
    parser.add_argument("--repeats", type=positive_int, default=2)
    args = parser.parse_args()
    if not (args.data_dir / "sst2" / "glue" / "train.tsv").is_file():
        sys.exit(f"SST-2 not found under {args.data_dir}: pass --data-dir")
    results: dict[str, list[float]] = {"random": [], "grouped": []}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeats):
            for kind in ("random", "grouped"):
                out = Path(tmp) / f"{kind}{rep}"
                proc = subprocess.run([sys.executable, "-c", ONE_RUN, str(out), str(args.data_dir), str(args.steps),
                                       kind], capture_output=True, text=True, check=True, cwd=ROOT)
                r = json.loads(proc.stdout.strip().splitlines()[-1])
                per_step = (r["train_seconds"] - r["eval_seconds"]) / r["steps"]
                results[kind].append(per_step)
                print(f"{kind:8s} run {rep + 1}: {per_step:.3f} s/step over {r['steps']} steps", file=sys.stderr)
    med = {k: statistics.median(v) for k, v in results.items()}
    print(json.dumps({
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(), "steps": args.steps, "seconds_per_step": results, "median": med,
        "speedup_grouped": round(med["random"] / med["grouped"], 2),
    }, indent=1))


if __name__ == "__main__":
    main()
