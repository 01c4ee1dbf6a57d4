"""Retrieval-augmented generation: ranked passages → a cited prompt within a token budget.

An LLM app asks for the passages that ground an answer. It gets them ranked, each with a
citation number, its id, score, character offsets into the parent document and metadata,
plus a ready prompt (system and user messages, and the same as one string) in which the
passages appear as ``[1] …``, ``[2] …`` and the model is told to cite them that way.

The budget ``max_context_tokens`` bounds the whole prompt (instructions, passages and
question), counted with the encoder's tokenizer (WordPiece; for English within a few per cent
of the BPE tokenizers of common LLMs; leave headroom for a chat template). Passages are
added best first; the first one that does not fit is cut at a token boundary (and marked
``truncated``) when a useful part of it fits, and the rest are left out (``dropped``).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from textlatent.errors import InvalidInputError

if TYPE_CHECKING:
    from textlatent.collections import SearchHit
    from textlatent.config import Settings
    from textlatent.retrieval.generate_llm import Generator
    from textlatent.service import TextLatent

SYSTEM_PROMPT = (
    "Answer the question using only the numbered passages. Cite the passages you use by their "
    "number in square brackets, like [1] or [2][3]. If the passages do not contain the answer, say so."
)
MIN_PARTIAL_TOKENS = 32  # below this, a cut passage is more noise than help
MAX_CONTEXT_TOKENS = 32768


@dataclass
class Passage:
    citation: int  # the number the prompt cites it by
    id: str
    score: float
    text: str  # as it appears in the prompt (cut when truncated)
    metadata: dict[str, Any]
    parent_id: str  # the source document (a chunk's parent, or the document itself)
    start: int | None  # character offsets of ``text`` in the parent document, when known
    end: int | None
    truncated: bool = False


@dataclass
class RagContext:
    query: str
    passages: list[Passage]
    messages: list[dict[str, str]]
    prompt: str
    prompt_tokens: int
    max_context_tokens: int
    dropped: list[str] = field(default_factory=list)  # ids retrieved but left out for the budget
    token_counter: str = ""


def _user_message(query: str, blocks: Sequence[str]) -> str:
    body = "\n\n".join(blocks) if blocks else "(no passages found)"
    return f"Passages:\n\n{body}\n\nQuestion: {query}\nAnswer:"


def _block(n: int, source: str, text: str) -> str:
    return f"[{n}] (source: {source}) {text}"


def build_context(
    query: str, hits: Sequence[SearchHit], *, max_context_tokens: int, tokenizer: Any, token_counter: str = ""
) -> RagContext:
    """Number the hits and pack them, best first, into a prompt of at most ``max_context_tokens``."""
    from textlatent.retrieval.chunking import token_spans

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    def render(blocks: Sequence[str]) -> str:
        return SYSTEM_PROMPT + "\n\n" + _user_message(query, blocks)

    base = count(render([]))
    if base > max_context_tokens:
        raise InvalidInputError(
            f"max_context_tokens={max_context_tokens} is too small: the instructions and the question alone "
            f"take {base} tokens", param="max_context_tokens")
    blocks: list[str] = []
    passages: list[Passage] = []
    dropped: list[str] = []
    spent = False  # once a passage did not fit whole, the rest are left out (ranks stay in order)
    used = count(render(["x"])) - count("x")  # the frame with one block slot
    for hit in hits:
        if spent:
            dropped.append(hit.id)
            continue
        n = len(passages) + 1
        meta = dict(hit.metadata)
        parent = str(meta.get("parent_id", hit.id))
        start = meta.get("start") if isinstance(meta.get("start"), int) else None
        block = _block(n, parent, hit.text)
        cost = count(block) + (count("\n\n") if blocks else 0)
        text, truncated = hit.text, False
        if used + cost > max_context_tokens:
            room = max_context_tokens - used - count(_block(n, parent, "")) - (count("\n\n") if blocks else 0) - 1
            spans = token_spans(hit.text, tokenizer)
            spent = True
            if room < MIN_PARTIAL_TOKENS or not spans:
                dropped.append(hit.id)
                continue
            text, truncated = hit.text[: spans[min(room, len(spans)) - 1][1]], True
            block = _block(n, parent, text)
            cost = count(block) + (count("\n\n") if blocks else 0)
        blocks.append(block)
        used += cost
        passages.append(Passage(
            citation=n, id=hit.id, score=hit.score, text=text, metadata=meta, parent_id=parent,
            start=start, end=(start + len(text)) if start is not None else None, truncated=truncated))
    # Token counts of pieces are additive up to the seams; make sure the whole fits.
    while passages and count(render(blocks)) > max_context_tokens:
        dropped.insert(0, passages.pop().id)
        blocks.pop()
    user = _user_message(query, blocks)
    prompt = render(blocks)
    return RagContext(
        query=query, passages=passages,
        messages=[{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}],
        prompt=prompt, prompt_tokens=count(prompt), max_context_tokens=max_context_tokens, dropped=dropped,
        token_counter=token_counter,
    )


def rag_context(
    tl: TextLatent,
    collection: str,
    query: str,
    *,
    k: int = 5,
    mode: str = "hybrid",
    rerank: bool = False,
    max_context_tokens: int = 2048,
    filter: dict[str, Any] | None = None,
) -> RagContext:
    """Retrieve ``k`` passages from ``collection`` and build the cited prompt."""
    if not isinstance(max_context_tokens, int) or isinstance(max_context_tokens, bool) \
            or not 1 <= max_context_tokens <= MAX_CONTEXT_TOKENS:
        raise InvalidInputError(f"max_context_tokens must be between 1 and {MAX_CONTEXT_TOKENS}",
                                param="max_context_tokens")
    hits = tl.search(collection, query=query, k=k, filter=filter, mode=mode, rerank=rerank)
    coll = tl.collection(collection)
    model = coll.config.model if coll.config.model in tl.model_ids() else None
    encoder = tl.encoder(model)
    return build_context(query, hits, max_context_tokens=max_context_tokens, tokenizer=encoder.model.tokenizer,
                         token_counter=encoder.model_id)


# --------------------------------------------------------------------------- answer generation

_generators: dict[tuple[str, ...], Any] = {}
_generators_lock = threading.Lock()


def get_generator(settings: Settings, backend: str = "auto") -> Generator:
    """The answer generator: ``remote`` (``TEXTLATENT_LLM_URL``), ``local`` (SmolLM2), or ``auto``
    (remote when a URL is configured). Local models load once per process."""
    from textlatent.retrieval.generate_llm import LocalGenerator, RemoteGenerator

    if backend not in ("auto", "local", "remote"):
        raise InvalidInputError(f"backend must be auto, local or remote, got {backend!r}", param="generate.backend")
    if backend == "auto":
        backend = "remote" if settings.llm_url else "local"
    if backend == "remote":
        if not settings.llm_url:
            raise InvalidInputError("remote generation needs TEXTLATENT_LLM_URL (an OpenAI-compatible "
                                    "chat-completions URL)", param="generate.backend")
        return RemoteGenerator(settings.llm_url, model=settings.llm_model, api_key=settings.llm_api_key,
                               timeout=settings.llm_timeout)
    key = ("local", settings.device)
    with _generators_lock:
        if key not in _generators:
            _generators[key] = LocalGenerator(device=settings.device)
        return _generators[key]  # type: ignore[no-any-return]
