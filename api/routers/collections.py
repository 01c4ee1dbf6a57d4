"""Collections: FAISS index + document store, by name."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response, status

from api.deps import get_service, require_api_key
from api.schemas import (
    CollectionCreate,
    CollectionInfo,
    CollectionList,
    Deleted,
    DocumentBatch,
    DocumentOut,
    SearchHitOut,
    SearchRequest,
    SearchResponse,
    UpsertResult,
    error_responses,
)
from textlatent.service import TextLatent

router = APIRouter(prefix="/collections", tags=["collections"], dependencies=[Depends(require_api_key)])


@router.get("", response_model=CollectionList, responses=error_responses(401), summary="List collections")
def list_collections(service: TextLatent = Depends(get_service)) -> CollectionList:
    return CollectionList(collections=[CollectionInfo(**c) for c in service.list_collections()])


@router.put(
    "/{name}",
    response_model=CollectionInfo,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"description": "Already exists with these settings", "model": CollectionInfo},
               **error_responses(400, 401, 404, 409, 422)},
    summary="Create a collection (idempotent)",
)
def create_collection(
    name: str, response: Response, body: CollectionCreate | None = None, service: TextLatent = Depends(get_service)
) -> CollectionInfo:
    body = body or CollectionCreate()
    info, created = service.create_collection(name, index=body.index, model=body.model)
    if not created:
        response.status_code = status.HTTP_200_OK
    return CollectionInfo(**info)


@router.get("/{name}", response_model=CollectionInfo, responses=error_responses(401, 404, 422))
def get_collection(name: str, service: TextLatent = Depends(get_service)) -> CollectionInfo:
    return CollectionInfo(**service.collection(name).info())


@router.delete("/{name}", response_model=Deleted, responses=error_responses(401, 404, 422, 503))
def delete_collection(name: str, service: TextLatent = Depends(get_service)) -> Deleted:
    service.delete_collection(name)
    return Deleted(id=name)


@router.post(
    "/{name}/documents",
    response_model=UpsertResult,
    responses=error_responses(400, 401, 404, 413, 422, 503),
    summary="Upsert documents (an existing id is replaced)",
)
def upsert_documents(name: str, body: DocumentBatch, service: TextLatent = Depends(get_service)) -> UpsertResult:
    docs = [d.model_dump() for d in body.documents]
    n = service.add_documents(name, docs)
    return UpsertResult(upserted=n, count=service.collection(name).count())


@router.get("/{name}/documents/{doc_id:path}", response_model=DocumentOut, responses=error_responses(401, 404, 422))
def get_document(name: str, doc_id: str, service: TextLatent = Depends(get_service)) -> DocumentOut:
    doc = service.collection(name).get(doc_id)
    return DocumentOut(id=doc.id, text=doc.text, metadata=doc.metadata)


@router.delete(
    "/{name}/documents/{doc_id:path}", response_model=Deleted, responses=error_responses(401, 404, 422, 503)
)
def delete_document(name: str, doc_id: str, service: TextLatent = Depends(get_service)) -> Deleted:
    service.delete_document(name, doc_id)
    return Deleted(id=doc_id)


@router.post(
    "/{name}/search",
    response_model=SearchResponse,
    responses=error_responses(400, 401, 404, 422),
    summary="Top-k documents for a text query or a vector",
)
def search(name: str, body: SearchRequest, service: TextLatent = Depends(get_service)) -> SearchResponse:
    hits = service.search(name, query=body.query, vector=body.vector, k=body.k, filter=body.filter,
                          mode=body.mode, rerank=body.rerank)
    return SearchResponse(
        results=[SearchHitOut(id=h.id, score=h.score, text=h.text, metadata=h.metadata) for h in hits]
    )
