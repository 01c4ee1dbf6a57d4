"""Request and response models of ``POST /rag/query``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from textlatent.collections import Scalar


class GenerateOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    backend: Literal["auto", "local", "remote"] = Field(
        "auto", description="local (SmolLM2-135M-Instruct), remote (TEXTLATENT_LLM_URL) or auto "
        "(remote when a URL is configured, else local).")
    max_new_tokens: int = Field(256, description="Most tokens to generate (1-1024).")
    temperature: float = Field(0.0, description="0 is greedy; up to 2.")
    stream: bool = Field(False, description="Reply with server-sent events: passages, then answer deltas.")


class RagQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1, description="The question.")
    collection: str = Field(min_length=1, description="Collection to retrieve from.")
    k: int = Field(5, description="Passages to retrieve (1 to the server's max_k).")
    mode: Literal["dense", "bm25", "hybrid"] = Field("hybrid", description="Retrieval mode.")
    rerank: bool = Field(False, description="Rerank with the trained cross-encoder (TEXTLATENT_RERANKER).")
    max_context_tokens: int = Field(2048, description="Budget of the whole prompt, in the encoder's tokens.")
    filter: dict[str, Scalar] | None = Field(None, description="Metadata fields that must equal these values.")
    generate: bool | GenerateOptions = Field(
        False, description="Also generate an answer: true for the defaults, or options.")


class PassageOut(BaseModel):
    citation: int = Field(description="The number the prompt cites this passage by: [n].")
    id: str
    score: float
    text: str = Field(description="The passage as it appears in the prompt.")
    parent_id: str = Field(description="The source document (a chunk's parent).")
    start: int | None = Field(None, description="Character offset of the text in the parent document.")
    end: int | None = None
    truncated: bool = Field(False, description="Cut to fit the token budget.")
    metadata: dict[str, Any]


class Message(BaseModel):
    role: str
    content: str


class Answer(BaseModel):
    text: str
    model: str


class RagResponse(BaseModel):
    query: str
    collection: str
    mode: str
    reranked: bool
    passages: list[PassageOut]
    prompt: str = Field(description="System instructions, numbered passages and the question, as one text.")
    messages: list[Message] = Field(description="The same prompt as chat messages (system, user).")
    prompt_tokens: int
    max_context_tokens: int
    token_counter: str = Field(description="Tokenizer the budget is counted with.")
    dropped: list[str] = Field(description="Ids retrieved but left out to fit the budget.")
    answer: Answer | None = None
