"""Outliers of a collection: its documents ranked by how little they fit the rest."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from api.deps import get_service, require_api_key
from api.routers.latent import get_latent
from api.schemas import error_responses
from api.schemas_outliers import OutlierOut, OutliersRequest, OutliersResponse
from textlatent.service import TextLatent

router = APIRouter(prefix="/collections", tags=["collections"], dependencies=[Depends(require_api_key)])


@router.post(
    "/{name}/outliers",
    response_model=OutliersResponse,
    responses=error_responses(400, 401, 404, 422),
    summary="The documents that fit the collection least (kNN, Mahalanobis or VAE evidence)",
)
def outliers(
    name: str, request: Request, body: OutliersRequest | None = None, service: TextLatent = Depends(get_service)
) -> OutliersResponse:
    from textlatent.anomaly import collection_outliers

    body = body or OutliersRequest()
    coll = service.collection(name)  # 404 before any model is loaded
    pipeline = get_latent(request).model() if body.method == "elbo" else None  # 404 when no VAE is configured
    result = collection_outliers(coll, method=body.method, k=body.k, n=body.n, pipeline=pipeline)
    return OutliersResponse(collection=result["collection"], method=result["method"], k=result["k"],
                            count=result["count"],
                            results=[OutlierOut(rank=o.rank, id=o.id, text=o.text, score=o.score)
                                     for o in result["results"]])
