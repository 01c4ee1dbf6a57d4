"""Token-aware chunking: edge cases, offsets, overlap."""

from __future__ import annotations

from typing import Any

import pytest

from textlatent.errors import InvalidInputError
from textlatent.retrieval.chunking import chunk_documents, chunk_text, token_spans


def _tokens(tokenizer: Any, text: str) -> int:
    return len(token_spans(text, tokenizer))


def _check_offsets(text: str, chunks: list[Any]) -> None:
    for c in chunks:
        assert text[c.start : c.end] == c.text
    assert [c.index for c in chunks] == list(range(len(chunks)))


@pytest.mark.parametrize("text", ["", "   ", "\n\t \n"])
def test_empty_or_blank_text_has_no_chunks(tokenizer: Any, text: str) -> None:
    assert chunk_text(text, tokenizer, max_tokens=10, overlap=2) == []


def test_short_text_is_one_chunk_with_exact_offsets(tokenizer: Any) -> None:
    text = "  A short note about cats.  "
    [chunk] = chunk_text(text, tokenizer, max_tokens=50, overlap=5)
    assert chunk.text == "A short note about cats."
    assert (chunk.start, chunk.end) == (2, 2 + len(chunk.text))


def test_long_text_respects_the_token_limit_and_overlaps(tokenizer: Any) -> None:
    text = " ".join(f"Sentence number {i} talks about topic {i % 7}." for i in range(80))
    chunks = chunk_text(text, tokenizer, max_tokens=40, overlap=8)
    assert len(chunks) > 5
    _check_offsets(text, chunks)
    assert all(_tokens(tokenizer, c.text) <= 40 for c in chunks)
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert b.start < a.end, "consecutive chunks must overlap"
        assert b.start > a.start, "chunks must move forward"
    assert chunks[0].start == 0 and chunks[-1].end == len(text)
    # Everything is covered: no gap between consecutive chunks.
    assert all(b.start <= a.end for a, b in zip(chunks, chunks[1:], strict=False))


def test_chunks_prefer_to_end_at_a_sentence(tokenizer: Any) -> None:
    text = " ".join(f"This is sentence {i} of the text." for i in range(60))
    chunks = chunk_text(text, tokenizer, max_tokens=50, overlap=10)
    assert all(c.text.endswith(".") for c in chunks)


def test_one_unbroken_run_longer_than_a_chunk(tokenizer: Any) -> None:
    """WordPiece reads a 3000-character 'word' as one [UNK]; it must still be cut into bounded chunks."""
    text = "x" * 3000
    chunks = chunk_text(text, tokenizer, max_tokens=30, overlap=5)
    assert len(chunks) > 1
    _check_offsets(text, chunks)
    assert chunks[0].start == 0 and chunks[-1].end == len(text)
    assert max(len(c.text) for c in chunks) < 1000


def test_multibyte_unicode_offsets_are_code_points(tokenizer: Any) -> None:
    text = "Ünïcödé café — 日本語のテキスト 🎉 naïve façade. " * 30
    chunks = chunk_text(text, tokenizer, max_tokens=25, overlap=5)
    assert len(chunks) > 3
    _check_offsets(text, chunks)
    assert any("日本" in c.text for c in chunks) and any("é" in c.text for c in chunks)


@pytest.mark.parametrize(("max_tokens", "overlap"), [(0, 0), (10, 10), (10, -1), (5, 7)])
def test_bad_sizes_are_refused(tokenizer: Any, max_tokens: int, overlap: int) -> None:
    with pytest.raises(InvalidInputError):
        chunk_text("some text", tokenizer, max_tokens=max_tokens, overlap=overlap)


def test_chunk_documents_carry_parent_offsets_and_metadata(tokenizer: Any) -> None:
    text = "Alpha beta gamma. " * 40
    docs = list(chunk_documents([{"id": "doc-1", "text": text, "metadata": {"lang": "en"}},
                                 {"id": "empty", "text": "  ", "metadata": {}}], tokenizer, max_tokens=20, overlap=4))
    assert docs and all(d["id"].startswith("doc-1#") for d in docs)
    for n, d in enumerate(docs):
        m = d["metadata"]
        assert m["lang"] == "en" and m["parent_id"] == "doc-1" and m["chunk"] == n
        assert text[m["start"] : m["end"]] == d["text"]
