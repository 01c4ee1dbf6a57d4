"""The cited prompt: numbering, offsets, the token budget."""

from __future__ import annotations

from typing import Any

import pytest

from textlatent.collections import SearchHit
from textlatent.errors import InvalidInputError
from textlatent.retrieval.rag import SYSTEM_PROMPT, build_context, rag_context


def _count(tokenizer: Any, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def _hits(n: int, words: int = 60) -> list[SearchHit]:
    return [SearchHit(id=f"doc{i}#0", score=1.0 - i / 10, text=" ".join(f"word{i}x{j}" for j in range(words)),
                      metadata={"parent_id": f"doc{i}", "start": 10 * i, "end": 10 * i + 1}) for i in range(n)]


def test_passages_are_numbered_and_cited_in_the_prompt(tokenizer: Any) -> None:
    ctx = build_context("what?", _hits(3, words=5), max_context_tokens=2000, tokenizer=tokenizer)
    assert [p.citation for p in ctx.passages] == [1, 2, 3]
    assert [p.parent_id for p in ctx.passages] == ["doc0", "doc1", "doc2"]
    assert ctx.dropped == []
    for p in ctx.passages:
        assert f"[{p.citation}] (source: {p.parent_id}) {p.text}" in ctx.prompt
        assert p.start == 10 * (p.citation - 1) and p.end == p.start + len(p.text)
    assert ctx.messages[0] == {"role": "system", "content": SYSTEM_PROMPT}
    assert ctx.messages[1]["content"].endswith("Question: what?\nAnswer:")
    assert ctx.prompt_tokens == _count(tokenizer, ctx.prompt)


@pytest.mark.parametrize("budget", [120, 200, 333, 500])
def test_prompt_fits_the_budget_best_passages_first(tokenizer: Any, budget: int) -> None:
    hits = _hits(6)
    ctx = build_context("a question about words", hits, max_context_tokens=budget, tokenizer=tokenizer)
    assert ctx.prompt_tokens <= budget
    assert _count(tokenizer, ctx.prompt) <= budget
    kept = [p.id for p in ctx.passages]
    assert kept == [h.id for h in hits[: len(kept)]]  # a prefix of the ranking
    assert ctx.dropped == [h.id for h in hits[len(kept):]]
    assert all(not p.truncated for p in ctx.passages[:-1])
    for p, h in zip(ctx.passages, hits, strict=False):
        assert h.text.startswith(p.text)  # a cut passage is a prefix of the original


def test_budget_cut_keeps_a_truncated_passage(tokenizer: Any) -> None:
    ctx = build_context("q", _hits(2, words=200), max_context_tokens=300, tokenizer=tokenizer)
    assert len(ctx.passages) == 1 and ctx.passages[0].truncated and ctx.dropped == ["doc1#0"]
    assert ctx.passages[0].end == ctx.passages[0].start + len(ctx.passages[0].text)


def test_too_small_a_budget_is_refused(tokenizer: Any) -> None:
    with pytest.raises(InvalidInputError) as exc:
        build_context("q", _hits(1), max_context_tokens=10, tokenizer=tokenizer)
    assert exc.value.param == "max_context_tokens"


def test_no_hits_still_gives_a_prompt(tokenizer: Any) -> None:
    ctx = build_context("q", [], max_context_tokens=500, tokenizer=tokenizer)
    assert ctx.passages == [] and "(no passages found)" in ctx.prompt


def test_rag_context_on_a_collection(small: Any) -> None:
    ctx = rag_context(small, "kb", "Which animals were domesticated from wolves?", k=3, mode="hybrid",
                      max_context_tokens=400)
    assert ctx.passages[0].id == "dogs" and ctx.passages[0].parent_id == "dogs"
    assert "[1] (source: dogs) Dogs were domesticated" in ctx.prompt
    assert ctx.token_counter == "all-MiniLM-L6-v2"
    with pytest.raises(InvalidInputError):
        rag_context(small, "kb", "q", max_context_tokens=0)
