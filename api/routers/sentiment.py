"""Sentiment of texts: a label and a calibrated probability each, from the configured head."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from api.deps import get_service, require_api_key
from api.schemas import SentimentItem, SentimentRequest, SentimentResponse, error_responses
from textlatent.service import TextLatent

router = APIRouter(tags=["sentiment"], dependencies=[Depends(require_api_key)])


@router.post(
    "/sentiment",
    response_model=SentimentResponse,
    responses=error_responses(400, 401, 404, 413, 422),
    summary="Classify the sentiment of texts",
)
def classify(body: SentimentRequest, service: TextLatent = Depends(get_service)) -> SentimentResponse:
    predictions, model = service.sentiment(body.texts)
    return SentimentResponse(
        model=model, data=[SentimentItem(index=i, label=p.label, score=p.score) for i, p in enumerate(predictions)]
    )
