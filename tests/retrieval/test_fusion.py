"""Rank fusion on hand-worked examples."""

from __future__ import annotations

import pytest

from textlatent.retrieval.fusion import minmax, ranked, rrf, weighted


def test_rrf_hand_example() -> None:
    lexical = ["a", "b", "c"]
    dense = ["c", "a", "d"]
    fused = rrf([lexical, dense], k=60)
    # a: 1/61 + 1/62; c: 1/63 + 1/61; b: 1/62; d: 1/63
    assert fused["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert fused["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert fused["b"] == pytest.approx(1 / 62)
    assert fused["d"] == pytest.approx(1 / 63)
    assert [d for d, _ in ranked(fused)] == ["a", "c", "b", "d"]


def test_rrf_weights_and_empty_lists() -> None:
    assert rrf([[], []]) == {}
    fused = rrf([["x"], ["y"]], k=0, weights=[2.0, 1.0])
    assert fused == {"x": 2.0, "y": 1.0}
    with pytest.raises(ValueError):
        rrf([["x"]], weights=[1.0, 2.0])


def test_weighted_fusion_hand_example() -> None:
    lexical = {"a": 10.0, "b": 5.0, "c": 0.0}  # → 1, 0.5, 0
    dense = {"a": 0.2, "c": 0.8}  # → 0, 1
    fused = weighted(lexical, dense, alpha=0.25)
    assert fused["a"] == pytest.approx(0.75 * 1.0 + 0.25 * 0.0)
    assert fused["b"] == pytest.approx(0.75 * 0.5)
    assert fused["c"] == pytest.approx(0.25 * 1.0)
    assert [d for d, _ in ranked(fused)] == ["a", "b", "c"]


def test_minmax_edge_cases() -> None:
    assert minmax({}) == {}
    assert minmax({"a": 3.0, "b": 3.0}) == {"a": 1.0, "b": 1.0}
    with pytest.raises(ValueError):
        weighted({}, {}, alpha=1.5)


def test_ranked_breaks_ties_by_id() -> None:
    assert ranked({"b": 1.0, "a": 1.0, "c": 2.0}, 2) == [("c", 2.0), ("a", 1.0)]
