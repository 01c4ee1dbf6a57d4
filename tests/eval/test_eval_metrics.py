"""The metric wrappers against figures worked out by hand from the textbook formulas."""

from __future__ import annotations

import math

import pytest

from textlatent.errors import InvalidInputError
from textlatent.eval import ndcg_at_k, pearson, recall_at_k, retrieval_metrics, spearman


def _dcg(gains: list[float]) -> float:
    """Sum of gain / log2(rank + 1), rank 1-based (trec_eval's ndcg_cut: linear gains)."""
    return sum(g / math.log2(rank + 1) for rank, g in enumerate(gains, start=1))


def test_ndcg_at_10_matches_the_log2_formula() -> None:
    qrels = {"q1": {"d1": 1, "d3": 2}, "q2": {"a": 1}, "q3": {"x": 1}}
    run = {
        # q1 ranks: d2 (not relevant), d1 (rel 1), d3 (rel 2), d4.
        "q1": {"d2": 0.9, "d1": 0.8, "d3": 0.7, "d4": 0.6},
        # q2: the one relevant document first.
        "q2": {"a": 0.5, "b": 0.4},
        # q3: the relevant document only at rank 11, past the cut-off.
        "q3": {f"n{i}": 1.0 - i / 100 for i in range(10)} | {"x": 0.01},
    }
    q1 = _dcg([0, 1, 2, 0]) / _dcg([2, 1])
    expected = (q1 + 1.0 + 0.0) / 3
    assert q1 == pytest.approx(0.6199, abs=1e-4)  # (1/log2 3 + 2/log2 4) / (2 + 1/log2 3)
    assert ndcg_at_k(qrels, run, 10) == pytest.approx(expected, abs=1e-9)


def test_queries_the_run_skips_count_as_zero() -> None:
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}}
    run = {"q1": {"d1": 1.0}}
    assert ndcg_at_k(qrels, run, 10) == pytest.approx(0.5)


def test_recall_at_k_counts_relevant_docs_in_the_top_k() -> None:
    qrels = {"q1": {"d1": 1, "d2": 1}, "q2": {"e1": 1}}
    run = {
        "q1": {"d1": 0.9, "z": 0.8, "d2": 0.1},  # d2 at rank 3: outside the top 2
        "q2": {"e1": 0.3},
    }
    assert recall_at_k(qrels, run, 2) == pytest.approx((0.5 + 1.0) / 2)
    assert recall_at_k(qrels, run, 3) == pytest.approx(1.0)
    both = retrieval_metrics(qrels, run, ndcg_at=(1,), recall_at=(2,))
    assert set(both) == {"ndcg@1", "recall@2"}
    assert both["ndcg@1"] == pytest.approx(1.0)


def test_empty_qrels_is_refused() -> None:
    with pytest.raises(InvalidInputError):
        ndcg_at_k({}, {"q": {"d": 1.0}})


def test_spearman_matches_the_rank_formula() -> None:
    # Ranks of predicted: 1, 3, 2, 4 against 1, 2, 3, 4: sum d^2 = 2, rho = 1 - 6*2 / (4*(16-1)) = 0.8.
    assert spearman([0.1, 0.4, 0.35, 0.8], [1, 2, 3, 4]) == pytest.approx(0.8)
    # Only ranks matter: any increasing transform correlates perfectly.
    xs = [0.3, -1.0, 2.5, 0.7, 1.1]
    assert spearman([math.exp(x) for x in xs], xs) == pytest.approx(1.0)
    assert spearman([-x for x in xs], xs) == pytest.approx(-1.0)


def test_pearson_on_a_toy_case() -> None:
    # x = 1, 2, 3; y = 1, 3, 2: cov = 0.5 (sample), var x = var y = 1 -> r = 0.5.
    assert pearson([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)


def test_correlation_input_checks() -> None:
    with pytest.raises(InvalidInputError, match="3 predictions for 2 gold"):
        spearman([1, 2, 3], [1, 2])
    with pytest.raises(InvalidInputError, match="at least two"):
        pearson([1], [1])
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))
