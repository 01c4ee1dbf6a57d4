"""The latent-space explorer: a page at ``/explore`` and the two routes it reads.

``GET /collections/{name}/map`` projects a collection to 2-D and colours it;
``GET /collections/{name}/neighbors`` lists a document's nearest documents. The page itself is
a static file shipped in the package (``api/static/explore.html``: no CDN, it works offline);
it calls these routes, ``GET /collections`` and ``POST /latent/interpolate``.
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
from functools import lru_cache
from importlib import resources
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse

from api.deps import require_api_key
from api.schemas import SearchHitOut, error_responses
from api.schemas_explore import CollectionMap, NeighborsResponse
from textlatent import explore
from textlatent.explore import CollectionMaps

router = APIRouter(tags=["explore"])
_KEY = [Depends(require_api_key)]  # the page holds no data, so it needs no key; the routes it calls do
_lock = threading.Lock()


def get_maps(request: Request) -> CollectionMaps:
    """One map cache per app, created on first use (projections are kept per collection generation)."""
    state = request.app.state
    with _lock:
        maps = getattr(state, "collection_maps", None)
        if maps is None:
            maps = state.collection_maps = CollectionMaps(state.service)
    return maps


@lru_cache(maxsize=1)
def _page() -> str:
    return resources.files("api").joinpath("static/explore.html").read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def _security_headers() -> dict[str, str]:
    """A Content-Security-Policy that lets the page run only its own inline script and style (by
    hash) and talk only to this server: injected markup could neither run nor send data away."""
    page = _page()

    def hashes(tag: str) -> str:
        blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", page, flags=re.S)
        return " ".join("'sha256-" + base64.b64encode(hashlib.sha256(b.encode()).digest()).decode() + "'"
                        for b in blocks) or "'none'"

    csp = (f"default-src 'none'; script-src {hashes('script')}; style-src {hashes('style')}; "
           "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
    return {"Content-Security-Policy": csp, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "DENY"}


@router.get("/explore", response_class=HTMLResponse, include_in_schema=False)
def explore_page() -> HTMLResponse:
    return HTMLResponse(_page(), headers=_security_headers())


@router.get(
    "/collections/{name}/map",
    dependencies=_KEY,
    response_model=CollectionMap,
    responses=error_responses(401, 404, 422),
    summary="2-D map of a collection, coloured by k-means cluster or sentiment",
)
def collection_map(
    name: str,
    method: Literal["pca", "umap"] = Query("pca", description="pca (fast) or umap (slower; seconds to minutes)."),
    color: Literal["cluster", "sentiment"] = Query("cluster", description="k-means cluster or the sentiment head."),
    clusters: int = Query(8, ge=2, le=explore.MAX_CLUSTERS, description="k of k-means (color=cluster)."),
    limit: int = Query(explore.DEFAULT_LIMIT, ge=1, le=explore.MAX_LIMIT,
                       description="Most documents on the map; a larger collection is sampled."),
    maps: CollectionMaps = Depends(get_maps),
) -> JSONResponse:
    # Returned as built (the library shapes it exactly as CollectionMap): validating 20,000
    # points through pydantic again would cost more than the cached map itself.
    return JSONResponse(maps.map(name, method=method, color=color, clusters=clusters, limit=limit))


@router.get(
    "/collections/{name}/neighbors",
    dependencies=_KEY,
    response_model=NeighborsResponse,
    responses=error_responses(401, 404, 422),
    summary="Nearest documents to a stored document, by its stored vector",
)
def neighbors(
    name: str,
    id: str = Query(min_length=1, max_length=512, description="Id of a document of the collection."),
    k: int = Query(10, ge=1, le=100, description="How many neighbours."),
    maps: CollectionMaps = Depends(get_maps),
) -> NeighborsResponse:
    hits = maps.neighbors(name, id, k)
    return NeighborsResponse(
        id=id, results=[SearchHitOut(id=h.id, score=h.score, text=h.text, metadata=h.metadata) for h in hits]
    )
