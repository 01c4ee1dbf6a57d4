"""The leaderboard figures of the bundled all-MiniLM-L6-v2, reproduced on ../shared/data (slow).

Run with ``make test-slow`` or ``pytest -m slow tests/eval``. STS-B takes about a minute on two
cores; SciFact embeds 5,183 abstracts, 10-30 minutes on two busy cores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from textlatent.eval import evaluate_beir, evaluate_sts, load_beir, load_stsb

pytestmark = pytest.mark.slow


def test_stsb_test_spearman_matches_mteb(data_dir: Path, encoder: Any) -> None:
    result = evaluate_sts(encoder, load_stsb(data_dir, "test"), split="test")
    assert result["pairs"] == 1379
    assert result["spearman"] == pytest.approx(82.03, abs=0.3), result


def test_scifact_ndcg_at_10_matches_mteb(data_dir: Path, encoder: Any) -> None:
    result = evaluate_beir(encoder, load_beir(data_dir, "scifact", "test"))
    assert (result["queries"], result["docs"]) == (300, 5183)
    assert result["ndcg@10"] == pytest.approx(0.645, abs=0.01), result
