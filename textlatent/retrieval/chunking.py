"""Token-aware chunking of long documents, with overlap and exact character offsets.

The encoder reads at most 256 tokens (all-MiniLM-L6-v2 was trained on 128), so a long
document is cut into windows of ``max_tokens`` tokens of the *encoder's own tokenizer*,
consecutive windows sharing ``overlap`` tokens so that a sentence cut at a boundary is
whole in one of them. Offsets come from the fast tokenizer's offset mapping, so
``text[start:end]`` is exactly the chunk text, whatever the Unicode (offsets are Python
string indices, i.e. code points, not bytes). A window's end is moved back to the last
sentence or word break in its final quarter when there is one, so chunks rarely stop
mid-word; a run of characters with no break at all (a long URL, a base64 blob) is cut at
token boundaries like anything else (see :func:`token_spans`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from textlatent.errors import InvalidInputError

DEFAULT_MAX_TOKENS = 200
DEFAULT_OVERLAP = 40


@dataclass(frozen=True)
class Chunk:
    text: str
    start: int  # character offset of the chunk in its document (code points)
    end: int  # exclusive
    index: int  # position of the chunk in its document, from 0


def _check(max_tokens: int, overlap: int) -> None:
    if not isinstance(max_tokens, int) or max_tokens < 1:
        raise InvalidInputError(f"chunk size must be a positive number of tokens, got {max_tokens!r}",
                                param="max_tokens")
    if not isinstance(overlap, int) or not 0 <= overlap < max_tokens:
        raise InvalidInputError(f"overlap must be between 0 and chunk size - 1 ({max_tokens - 1}), got {overlap!r}",
                                param="overlap")


LONG_TOKEN_CHARS = 100  # WordPiece's max_input_chars_per_word: a longer "word" is one [UNK]


def token_spans(text: str, tokenizer: Any, *, offset: int = 0) -> list[tuple[int, int]]:
    """Character ``(start, end)`` of every token of ``text`` (no special tokens).

    A token spanning more than ``LONG_TOKEN_CHARS`` characters (WordPiece reads an unbroken
    run longer than that as a single ``[UNK]``) is tokenised again in pieces of that many
    characters, so one huge "word" cannot become one huge chunk.
    """
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, truncation=False, verbose=False)
    spans: list[tuple[int, int]] = []
    for a, b in enc["offset_mapping"]:
        a, b = int(a), int(b)
        if b - a <= LONG_TOKEN_CHARS:
            if b > a:
                spans.append((offset + a, offset + b))
            continue
        for p in range(a, b, LONG_TOKEN_CHARS):
            q = min(p + LONG_TOKEN_CHARS, b)
            piece = token_spans(text[p:q], tokenizer, offset=offset + p)
            spans.extend(piece or [(offset + p, offset + q)])
    return spans


def _break_after(text: str, spans: list[tuple[int, int]], lo: int, hi: int) -> int:
    """The token index (exclusive end) in ``(lo, hi]`` after which ``text`` has a sentence break,
    else a word break, searched in the last quarter of the window; ``hi`` when there is none."""
    floor = lo + max(1, (hi - lo) * 3 // 4)
    word = None
    for j in range(hi, floor, -1):
        if j >= len(spans):
            return j  # the window reaches the end of the text
        gap = text[spans[j - 1][1] : spans[j][0]]
        if not gap:
            continue
        if text[spans[j - 1][1] - 1] in ".!?;:" or "\n" in gap:
            return j
        if word is None and gap.isspace():
            word = j
    return word or hi


def chunk_text(
    text: str, tokenizer: Any, *, max_tokens: int = DEFAULT_MAX_TOKENS, overlap: int = DEFAULT_OVERLAP
) -> list[Chunk]:
    """Cut ``text`` into chunks of at most ``max_tokens`` tokens; an empty or blank text has none."""
    _check(max_tokens, overlap)
    if not isinstance(text, str):
        raise InvalidInputError("text must be a string", param="text")
    if not text.strip():
        return []
    spans = token_spans(text, tokenizer)
    if not spans:  # nothing the tokenizer reads (e.g. only control characters): keep it whole
        start = len(text) - len(text.lstrip())
        return [Chunk(text=text.strip(), start=start, end=start + len(text.strip()), index=0)]
    chunks: list[Chunk] = []
    lo = 0
    while lo < len(spans):
        hi = min(lo + max_tokens, len(spans))
        if hi < len(spans):
            hi = _break_after(text, spans, lo, hi)
        start, end = spans[lo][0], spans[hi - 1][1]
        chunks.append(Chunk(text=text[start:end], start=start, end=end, index=len(chunks)))
        if hi >= len(spans):
            break
        lo = max(hi - overlap, lo + 1)  # always move forward
    return chunks


def chunk_documents(
    documents: Iterable[Mapping[str, Any]],
    tokenizer: Any,
    *,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    overlap: int = DEFAULT_OVERLAP,
) -> Iterator[dict[str, Any]]:
    """``{id, text, metadata}`` documents → chunk documents ``{id: "<id>#<n>", text, metadata}``.

    Each chunk's metadata is the document's plus ``parent_id``, ``chunk``, ``start`` and ``end``
    (character offsets into the parent text), so a citation can point back into the source.
    """
    _check(max_tokens, overlap)
    for doc in documents:
        metadata = dict(doc.get("metadata") or {})
        for chunk in chunk_text(doc["text"], tokenizer, max_tokens=max_tokens, overlap=overlap):
            yield {
                "id": f"{doc['id']}#{chunk.index}",
                "text": chunk.text,
                "metadata": {**metadata, "parent_id": doc["id"], "chunk": chunk.index, "start": chunk.start,
                             "end": chunk.end},
            }
