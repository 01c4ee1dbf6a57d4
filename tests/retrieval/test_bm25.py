"""BM25: the index itself, and the collection sidecar staying in step with every write."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from textlatent.retrieval.bm25 import BM25Index, collection_bm25


def test_bm25_index_stems_drops_stopwords_and_skips_non_matches() -> None:
    index = BM25Index.build(["a", "b", "c"], ["The cats are running home", "Dogs bark loudly", "A cat sat"])
    hits = index.search("cat runs", 10)
    assert [index.ids[i] for i, _ in hits] == ["a", "c"]  # 'cats'/'running' match 'cat'/'runs'; 'b' shares nothing
    assert hits[0][1] > hits[1][1] > 0
    assert index.search("the and of", 10) == []  # only stopwords
    assert index.search("zebra", 10) == []  # unknown term


def test_bm25_index_round_trips_through_disk(tmp_path: Path) -> None:
    index = BM25Index.build(["a", "b"], ["solar panels on roofs", "wind turbines at sea"], keys=[7, 9])
    index.save(tmp_path / "bm25")
    again = BM25Index.load(tmp_path / "bm25")
    assert again.ids == ["a", "b"] and again.keys.tolist() == [7, 9]
    np.testing.assert_allclose(again.scores("wind at sea"), index.scores("wind at sea"))
    empty = BM25Index.build([], [])
    empty.save(tmp_path / "empty")
    assert BM25Index.load(tmp_path / "empty").search("anything", 5) == []


def test_documents_without_a_searchable_word_match_nothing(tmp_path: Path) -> None:
    """Punctuation or stopwords only: bm25s has no vocabulary to index (it raised, a 500 through the API)."""
    index = BM25Index.build(["a", "b"], ["!!!", "the and of"])
    assert index.search("anything at all", 5) == []
    index.save(tmp_path / "bm25")
    again = BM25Index.load(tmp_path / "bm25")
    assert again.ids == ["a", "b"] and again.search("the", 5) == []


def test_bm25_allowed_keys_filter() -> None:
    index = BM25Index.build(["a", "b"], ["red apple", "red car"], keys=[10, 20])
    assert [index.ids[i] for i, _ in index.search("red", 5, allowed_keys=np.array([20]))] == ["b"]


def _bm25_ids(service: Any, query: str) -> list[str]:
    return [h.id for h in service.search("kb", query=query, k=10, mode="bm25")]


def test_sidecar_stays_in_step_after_delete_and_upsert(small: Any) -> None:
    coll = small.collection("kb")
    assert _bm25_ids(small, "sourdough bread") == ["bread"]
    gen = coll.generation()
    assert (coll.path / f"bm25-{gen:012d}").is_dir()

    small.delete_document("kb", "bread")
    assert _bm25_ids(small, "sourdough bread") == []
    # Upsert replaces a text: the old words are gone, the new ones are found.
    small.add_documents("kb", [{"id": "cats", "text": "Sourdough loaves cool on the rack.", "metadata": {}}])
    assert _bm25_ids(small, "sourdough") == ["cats"]
    assert _bm25_ids(small, "carnivores mats") == []
    small.add_documents("kb", [{"id": "new", "text": "Quantum computers use qubits.", "metadata": {}}])
    assert _bm25_ids(small, "qubits") == ["new"]
    # Only the current generation's folder is kept.
    folders = sorted(p.name for p in coll.path.iterdir() if p.name.startswith("bm25-"))
    assert folders == [f"bm25-{coll.generation():012d}"]


def test_sidecar_is_shared_across_processes_through_disk(small: Any, service_factory: Any) -> None:
    """A second service on the same folder (another process, in effect) sees writes made by the first."""
    other = service_factory(index_dir=small.settings.index_dir)
    assert [h.id for h in other.search("kb", query="wolves", k=3, mode="bm25")] == ["dogs"]
    small.add_documents("kb", [{"id": "wolf2", "text": "Grey wolves hunt in packs.", "metadata": {}}])
    assert {h.id for h in other.search("kb", query="wolves", k=3, mode="bm25")} == {"dogs", "wolf2"}


def test_recreated_collection_does_not_serve_the_old_index(small: Any) -> None:
    assert _bm25_ids(small, "wolves") == ["dogs"]
    small.delete_collection("kb")
    small.create_collection("kb")
    small.add_documents("kb", [{"id": "z", "text": "Zebras graze on the savanna.", "metadata": {}}])
    assert _bm25_ids(small, "wolves") == []
    assert _bm25_ids(small, "zebras") == ["z"]


def test_bm25_filter_and_empty_collection(small: Any) -> None:
    hits = small.search("kb", query="domesticated", k=10, mode="bm25", filter={"topic": "animals"})
    assert {h.id for h in hits} == {"cats", "dogs"}
    assert small.search("kb", query="domesticated", k=10, mode="bm25", filter={"topic": "none"}) == []
    small.create_collection("void")
    assert small.search("void", query="anything", k=3, mode="bm25") == []
    assert len(collection_bm25(small.collection("void"))) == 0
