"""OpenAI-compatible embeddings: the official ``openai`` client works against this route."""

from __future__ import annotations

import base64

from fastapi import APIRouter, Depends

from api.deps import get_service, require_api_key
from api.schemas import (
    EmbeddingItem,
    EmbeddingRequest,
    EmbeddingResponse,
    ModelCard,
    ModelList,
    Usage,
    error_responses,
)
from textlatent.service import TextLatent

router = APIRouter(prefix="/v1", tags=["embeddings"], dependencies=[Depends(require_api_key)])


@router.post(
    "/embeddings",
    response_model=EmbeddingResponse,
    responses=error_responses(400, 401, 404, 413, 422),
    summary="Embed texts (OpenAI-compatible)",
)
def create_embeddings(body: EmbeddingRequest, service: TextLatent = Depends(get_service)) -> EmbeddingResponse:
    result = service.embed(body.input, model=body.model, dimensions=body.dimensions)
    if body.encoding_format == "base64":
        data = [base64.b64encode(v.astype("<f4").tobytes()).decode("ascii") for v in result.vectors]
    else:
        data = result.vectors.tolist()
    return EmbeddingResponse(
        data=[EmbeddingItem(index=i, embedding=e) for i, e in enumerate(data)],
        model=result.model,
        usage=Usage(prompt_tokens=result.prompt_tokens, total_tokens=result.prompt_tokens),
        truncated=result.truncated,
    )


@router.get("/models", response_model=ModelList, responses=error_responses(401), summary="Models served")
def list_models(service: TextLatent = Depends(get_service)) -> ModelList:
    return ModelList(data=[ModelCard(id=m) for m in service.model_ids()])
