"""Request and response models of the HTTP API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from textlatent.collections import Scalar  # the filter values the library accepts


class ErrorDetail(BaseModel):
    message: str
    type: str = Field(description="Machine-readable error kind, e.g. invalid_input, not_found.")
    param: str | None = Field(None, description="The request field at fault, when there is one.")
    code: int = Field(description="The HTTP status code.")


class ErrorResponse(BaseModel):
    error: ErrorDetail


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        400: "Malformed request (e.g. a body that is not JSON)",
        401: "Missing or wrong API key",
        404: "Unknown collection, document or model",
        409: "Conflicts with what exists",
        413: "Too many items or too large a body",
        422: "Invalid input (the message names the field)",
        502: "The remote LLM endpoint failed",
        503: "Busy (a collection being written by another process: retry shortly, see Retry-After), or a "
             "model folder on the server that cannot be read (model_unavailable: fix the server's files)",
    }
    return {c: {"model": ErrorResponse, "description": descriptions[c]} for c in codes}


# ---- embeddings (OpenAI-compatible)


class EmbeddingRequest(BaseModel):
    # Any: the texts are checked by the library, which names the bad item (input[3]) and says that
    # token arrays (OpenAI's other input form) are not accepted
    input: Any = Field(description="A text or a list of texts to embed (token arrays are not supported).")
    model: str | None = Field(None, description="Model id; empty means the served default.")
    encoding_format: Literal["float", "base64"] = Field(
        "float", description="'base64' packs each vector as little-endian float32 bytes."
    )
    dimensions: int | None = Field(None, ge=1, description="Keep the first n dimensions and re-normalise.")
    user: str | None = Field(None, description="Accepted for OpenAI compatibility; ignored.")


class EmbeddingItem(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class Usage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingItem]
    model: str
    usage: Usage
    truncated: list[int] = Field(
        default_factory=list, description="Indices of inputs cut to the model's token limit."
    )


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    owned_by: str = "textlatent"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


# ---- collections


class CollectionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    index: str = Field("Flat", description="FAISS index_factory string of a supported family: Flat, SQ8, "
                                            "HNSW32[,SQ8|,PQ16], IVF256[_HNSW32],Flat|SQ8|PQ16[x4fs] (your own "
                                            "numbers)")
    model: str | None = Field(None, description="Model id used to embed documents and text queries.")


class CollectionInfo(BaseModel):
    model_config = ConfigDict(protected_namespaces=())
    name: str
    index: str
    dim: int
    model: str
    count: int
    trained: bool = Field(
        description="False while a trainable index waits for enough vectors (exact search meanwhile)."
    )
    train_threshold: int
    created_at: float


class CollectionList(BaseModel):
    collections: list[CollectionInfo]


class Deleted(BaseModel):
    id: str
    deleted: bool = True


class DocumentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=512)
    text: str = Field(min_length=1)
    metadata: dict[str, Any] = Field(default_factory=dict)


class DocumentOut(BaseModel):
    id: str
    text: str
    metadata: dict[str, Any]


class DocumentBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    documents: list[DocumentIn]


class UpsertResult(BaseModel):
    upserted: int
    count: int


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str | None = Field(None, description="Text to search for (give this or vector).")
    vector: list[float] | None = Field(None, description="Query vector of the collection's dimension.")
    k: int = Field(10, description="How many results (1 to the server's max_k).")
    filter: dict[str, Scalar] | None = Field(None, description="Metadata fields that must equal these values.")
    mode: Literal["dense", "bm25", "hybrid"] = Field(
        "dense", description="dense (FAISS), bm25 (lexical) or hybrid (both, fused as a weighted sum of min-max "
                    "normalised scores, dense weight 0.4).")
    rerank: bool = Field(False, description="Rerank the candidates with the trained cross-encoder "
                         "(TEXTLATENT_RERANKER); needs a text query.")


class SearchHitOut(BaseModel):
    id: str
    score: float
    text: str
    metadata: dict[str, Any]


class SearchResponse(BaseModel):
    results: list[SearchHitOut]


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    version: str
    model: str
    encoder_loaded: bool


# ---- sentiment


class SentimentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    texts: list[str] = Field(description="Texts to classify (non-empty strings).", examples=[["a gripping film"]])


class SentimentItem(BaseModel):
    index: int
    label: Literal["negative", "positive"]
    score: float = Field(description="Calibrated probability of `label` (temperature-scaled on SST-2 dev).")


class SentimentResponse(BaseModel):
    model: str = Field(description="The sentiment model that answered.")
    data: list[SentimentItem]
