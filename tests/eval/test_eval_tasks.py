"""Exact search and the task runners, with a stand-in encoder whose geometry is known."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from textlatent.eval import dense_run, encode_all, evaluate_beir, evaluate_sts, exact_search, load_beir, load_stsb


class TableEncoder:
    """Maps each known text to a fixed vector; records what it was asked to encode."""

    model_id = "table"

    def __init__(self, table: dict[str, Sequence[float]]) -> None:
        self.table = table
        self.calls: list[list[str]] = []

    def encode(
        self,
        texts: Sequence[str],
        *,
        normalize: bool = True,
        batch_size: int | None = None,
        show_progress: bool = False,
    ) -> np.ndarray:
        assert all(t.strip() for t in texts), "blank text reached the encoder"
        self.calls.append(list(texts))
        out = np.array([self.table[t] for t in texts], dtype=np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True) if normalize else out


def test_exact_search_equals_brute_force_across_chunks() -> None:
    rng = np.random.default_rng(0)
    queries = rng.standard_normal((7, 16)).astype(np.float32)
    corpus = rng.standard_normal((103, 16)).astype(np.float32)
    full = queries @ corpus.T
    want = np.argsort(-full, axis=1)[:, :10]
    for chunk in (5, 10, 50, 1000):
        scores, idx = exact_search(queries, corpus, 10, chunk_size=chunk)
        assert idx.tolist() == want.tolist(), chunk
        np.testing.assert_allclose(scores, np.take_along_axis(full, want, axis=1), rtol=1e-6)
    scores, idx = exact_search(queries, corpus, 500)  # more than the corpus holds
    assert idx.shape == (7, 103)


def test_dense_run_drops_identical_ids_and_keeps_top_k() -> None:
    query_emb = np.array([[1.0, 0.0]], dtype=np.float32)
    corpus_emb = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]], dtype=np.float32)
    run = dense_run(["a"], query_emb, ["a", "b", "c"], corpus_emb, top_k=2)
    assert list(run["a"]) == ["b", "c"]
    run = dense_run(["a"], query_emb, ["a", "b", "c"], corpus_emb, top_k=2, ignore_identical_ids=False)
    assert list(run["a"]) == ["a", "b"]


def test_encode_all_gives_blank_texts_a_zero_vector() -> None:
    enc = TableEncoder({"x": [3.0, 4.0]})
    out = encode_all(enc, ["x", "  ", "x"])
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0], [0.6, 0.8]], rtol=1e-6)
    assert enc.calls == [["x", "x"]]


def test_evaluate_beir_on_a_toy_dataset(tiny_data_dir: Path) -> None:
    data = load_beir(tiny_data_dir, "toyfact", "test")
    table = {
        # Corpus texts as MTEB builds them: (title + " " + text).strip().
        "Aspirin Aspirin reduces the risk of heart attack.": [1.0, 0.0, 0.0],  # d1
        "Vitamin C does not prevent the common cold.": [0.0, 1.0, 0.0],  # d2
        "Sleep Adults need seven hours of sleep.": [0.0, 0.0, 1.0],  # d3
        # Document 'q9' and query 'q9' share this text (and so the vector).
        "A document whose id equals a query id.": [0.0, 0.6, 0.8],
        "Does aspirin prevent heart attacks?": [1.0, 0.0, 0.0],  # q1: d1 first
        "Does vitamin C cure colds?": [0.8, 0.6, 0.0],  # q2: d1 (0.8) above d2 (0.6)
    }
    enc = TableEncoder(table)
    result = evaluate_beir(enc, data, top_k=10)
    assert enc.calls[0] == data.corpus_texts()[1]
    assert (result["queries"], result["docs"]) == (3, 4)
    # q1: 1. q2: relevant d2 at rank 2, 1/log2(3). q9: document 'q9' (score 1.0) is dropped as the
    # query itself, so relevant d3 (0.8) ranks first: 1.
    assert result["ndcg@10"] == pytest.approx((1 + 1 / np.log2(3) + 1) / 3, abs=1e-5)
    assert result["recall@100"] == pytest.approx(1.0)
    assert result["task"] == "beir" and result["dataset"] == "toyfact" and result["model"] == "table"
    assert result["queries_per_s"] > 0 and result["seconds"] >= result["corpus_seconds"] >= 0
    # Keeping identical ids puts document 'q9' first for query q9 and d3 second.
    kept = evaluate_beir(TableEncoder(table), data, top_k=10, ignore_identical_ids=False)
    assert kept["ndcg@10"] == pytest.approx((1 + 2 / np.log2(3)) / 3, abs=1e-5)


def test_evaluate_sts_uses_cosine_and_scales_by_100(tiny_data_dir: Path) -> None:
    data = load_stsb(tiny_data_dir, "test")
    # Cosine similarity of each pair rises strictly with its gold score: ranks agree exactly.
    golds = data.scores
    order = sorted(range(len(golds)), key=lambda i: golds[i])
    table: dict[str, Sequence[float]] = {}
    for rank, i in enumerate(order):
        angle = (len(order) - 1 - rank) * 0.2
        table[data.sentences1[i]] = [1.0, 0.0]
        table[data.sentences2[i]] = [float(np.cos(angle)), float(np.sin(angle))]
    result = evaluate_sts(TableEncoder(table), data, split="test")
    assert result["pairs"] == 6
    assert result["spearman"] == pytest.approx(100.0)
    assert 90 < result["pearson"] <= 100.0 + 1e-6
    assert result["task"] == "sts" and result["split"] == "test"
