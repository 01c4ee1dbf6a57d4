"""Response models of the explorer routes (the collection map and a document's neighbours)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from api.schemas import SearchHitOut


class MapPoint(BaseModel):
    id: str
    text: str = Field(description="The document's text, cut to 240 characters.")
    x: float
    y: float
    cluster: int | None = Field(None, description="K-means cluster (color=cluster).")
    label: str | None = Field(None, description="'positive' or 'negative' (color=sentiment).")
    score: float | None = Field(None, description="Calibrated probability of `label` (color=sentiment).")
    positive: float | None = Field(None, description="Probability of 'positive' (color=sentiment).")


class CollectionMap(BaseModel):
    collection: str
    generation: int = Field(description="The collection's write generation the map was built from.")
    method: str
    color: str
    total: int = Field(description="Documents in the collection.")
    count: int = Field(description="Documents on the map (a seeded uniform sample when total > limit).")
    clusters: int | None = Field(None, description="Clusters found (at most the number asked for).")
    sentiment_model: str | None = None
    explained_variance: list[float] | None = Field(None, description="PCA: share of variance per axis.")
    cached: bool = Field(description="True when every part came from the cache of this generation.")
    points: list[MapPoint]


class NeighborsResponse(BaseModel):
    id: str
    results: list[SearchHitOut] = Field(description="Nearest documents by stored vector, the document itself left out.")
