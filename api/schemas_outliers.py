"""Request and response models of ``POST /collections/{name}/outliers``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class OutliersRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Literal["knn", "mahalanobis", "elbo"] = Field(
        "knn", description="knn: mean cosine distance to the k nearest other documents; mahalanobis: distance to "
                           "the collection's mean under a Ledoit-Wolf covariance; elbo: -ELBO per token under the "
                           "configured text VAE (TEXTLATENT_VAE_MODEL).")
    k: int = Field(10, ge=1, le=1000, description="Neighbours for knn (ignored by the other methods).")
    n: int = Field(10, ge=1, le=1000, description="How many of the most anomalous documents to return.")


class OutlierOut(BaseModel):
    rank: int
    id: str
    text: str
    score: float = Field(description="Higher is more anomalous; comparable only within one method.")


class OutliersResponse(BaseModel):
    collection: str
    method: str
    k: int | None = Field(description="The k used (knn only).")
    count: int = Field(description="Documents scored (the whole collection).")
    results: list[OutlierOut]
