#!/usr/bin/env python
"""Cron-friendly sentiment scoring: `textlatent score` with the same arguments.

    .venv/bin/python scripts/score_sentiment.py reviews.csv -o reviews.scored.csv --text-column review

Re-running the same command after an interruption resumes where it stopped; the exit code is
0 on success (including "already complete") and 2 on a usage or input error.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from textlatent.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.argv = [sys.argv[0], "score", *sys.argv[1:]]
    main()
