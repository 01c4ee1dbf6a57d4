"""Collection search in dense, BM25 and hybrid modes, and reranking, through the service."""

from __future__ import annotations

from typing import Any

import pytest

from textlatent.errors import InvalidInputError


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_every_mode_finds_the_obvious_document(small: Any, mode: str) -> None:
    hits = small.search("kb", query="vitamin D and multiple sclerosis", k=3, mode=mode)
    assert hits[0].id == "vitd"
    assert hits[0].text.startswith("Vitamin D") and hits[0].metadata == {"topic": "health"}
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_hybrid_finds_what_only_one_side_finds(small: Any) -> None:
    # 'kitten' shares no term with any document (BM25 finds nothing); dense still finds the cats.
    assert small.search("kb", query="kitten", k=3, mode="bm25") == []
    assert small.search("kb", query="kitten", k=3, mode="hybrid")[0].id == "cats"


def test_hybrid_respects_filter_and_k(small: Any) -> None:
    hits = small.search("kb", query="domesticated animals", k=1, mode="hybrid", filter={"topic": "animals"})
    assert len(hits) == 1 and hits[0].id in {"cats", "dogs"}


def test_bad_mode_and_vector_queries(small: Any) -> None:
    with pytest.raises(InvalidInputError) as exc:
        small.search("kb", query="x", k=3, mode="sparse")
    assert exc.value.param == "mode"
    vector = small.collection("kb").get_vector("cats")
    assert small.search("kb", vector=vector, k=1, mode="dense")[0].id == "cats"
    for mode in ("bm25", "hybrid"):
        with pytest.raises(InvalidInputError, match="text query"):
            small.search("kb", vector=vector, k=1, mode=mode)


def test_rerank_without_a_reranker_is_a_clear_error(small: Any) -> None:
    with pytest.raises(InvalidInputError, match="TEXTLATENT_RERANKER") as exc:
        small.search("kb", query="cats", k=3, rerank=True)
    assert exc.value.param == "rerank"


class _ReverseReranker:
    """Stands in for a cross-encoder: prefers the first stage's worst candidates."""

    top_n = 10

    def rerank(self, query: str, candidates: Any) -> list[tuple[str, float]]:
        items = list(reversed(candidates))
        return [(c[0], float(len(items) - i)) for i, c in enumerate(items)]


def test_rerank_reorders_the_candidates(small: Any) -> None:
    small._reranker = _ReverseReranker()
    plain = [h.id for h in small.search("kb", query="domesticated cats", k=5, mode="hybrid")]
    assert len(plain) == 5  # every document is a candidate (top_n=10 > 5)
    reranked = [h.id for h in small.search("kb", query="domesticated cats", k=5, mode="hybrid", rerank=True)]
    assert reranked == plain[::-1]
    top2 = [h.id for h in small.search("kb", query="domesticated cats", k=2, mode="hybrid", rerank=True)]
    assert top2 == plain[::-1][:2]  # k cuts after reranking, not before
