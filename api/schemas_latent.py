"""Request and response models of the ``/latent`` routes (the text VAE's latent space)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from textlatent.vae.limits import (
    CONTENT_STEPS,
    CONTENT_THRESHOLD,
    MAX_CANDIDATES,
    MAX_DEGREE,
    MAX_MOVES,
    MAX_NO_REPEAT_NGRAM,
    MAX_SEED,
    MAX_STEPS,
)

Strategy = Literal["greedy", "sample", "beam"]


class DecodingOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt option is an error, not ignored
    strategy: Strategy = Field("greedy", description="greedy (argmax), sample (at `temperature`) or beam; the GRU "
                                                     "decoder's greedy and sampled sentences never repeat a trigram "
                                                     "unless `no_repeat_ngram` says otherwise.")
    temperature: float = Field(1.0, gt=0, le=10, description="Softmax temperature when strategy is 'sample'.")
    beam_size: int = Field(5, ge=1, le=20, description="Beams when strategy is 'beam'.")
    seed: int | None = Field(None, ge=0, le=MAX_SEED,
                             description="Seed for 'sample' (and for the prior draw of /latent/sample).")
    no_repeat_ngram: int | None = Field(
        None, ge=0, le=MAX_NO_REPEAT_NGRAM,
        description="n > 1: no n-gram occurs twice in a sentence; 0: repeats allowed; null: the model's default "
                    "(3 for the GRU decoder, which applies it to greedy and sampled decodes; 0 for SmolLM2, which "
                    "applies it to every strategy, over its own tokens). 1 is refused.")

    @field_validator("no_repeat_ngram")
    @classmethod
    def _not_one(cls, value: int | None) -> int | None:
        if value == 1:  # refused before any model work, on every route
            raise ValueError(f"must be 0 (repeats allowed) or from 2 to {MAX_NO_REPEAT_NGRAM}; 1 (no word twice) is "
                             "not offered")
        return value


class LatentModelInfo(BaseModel):
    model: str = Field(description="The served model folder's name.")
    decoder: Literal["gru", "optimus"] = Field(description="gru (the small decoder) or optimus (SmolLM2).")
    latent_dim: int = Field(description="Size of every z the routes take and return.")
    prior: dict[str, str | int] = Field(
        description="p(z) that /latent/sample draws from: {kind: standard} for N(0, I), or "
                    "{kind: gaussian-mixture, components: K} when a prior was fitted (`vae fit-prior`).")


class EncodeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt option is an error, not ignored
    texts: list[str] = Field(min_length=1, description="Sentences to place in the latent space.")


class EncodeResponse(BaseModel):
    model: str
    latent_dim: int
    mu: list[list[float]] = Field(description="Posterior means, one vector per text.")
    sigma: list[list[float]] = Field(description="Posterior standard deviations, one vector per text.")


class DecodeRequest(DecodingOptions):
    z: list[float] | list[list[float]] = Field(description="One latent vector or a list of them.")


class TextsResponse(BaseModel):
    model: str
    texts: list[str]


class SampleRequest(DecodingOptions):
    n: int = Field(1, ge=1, le=1000, description="Sentences to draw from the model's prior (N(0, I), or the "
                   "one fitted after training: `textlatent vae fit-prior`).")


class PointsResponse(BaseModel):
    model: str
    texts: list[str]
    z: list[list[float]] = Field(description="The latent point each text was decoded from.")


class InterpolateRequest(DecodingOptions):
    a: str = Field(description="Sentence at the start of the path.")
    b: str = Field(description="Sentence at the end of the path.")
    steps: int = Field(5, ge=2, le=MAX_STEPS, description=f"Points on the path, both ends included (2-{MAX_STEPS}).")


class AnalogyRequest(DecodingOptions):
    a: str
    b: str
    c: str


class AnalogyResponse(BaseModel):
    model: str
    text: str = Field(description="decode(μ(c) + μ(b) − μ(a)).")
    z: list[float]


class TransferRequest(DecodingOptions):
    text: str = Field(description="The sentence to move.")
    attribute: str = Field("sentiment", description="The attribute axis to move along; only 'sentiment' so far.")
    target: str = Field(description="'positive' or 'negative'.")
    degree: float | None = Field(
        None, strict=True,
        description=f"How far, 0-{MAX_DEGREE:g}: 0 is the reconstruction, 1 a typical sentence of the target class on "
                    "the latent classifier, 2 twice as far; omitted: the degree fitted for the model.")
    candidates: int = Field(
        1, strict=True,
        description=f"Decode the moved point this many times (1-{MAX_CANDIDATES}: the chosen strategy once, then "
                    "samples at temperature 0.5) and return the candidate whose own posterior mean is nearest it "
                    "(round-trip reranking). 1: one decode. See `rerank` for the other way to choose.")
    rerank: Literal["round-trip", "content"] = Field(
        "round-trip",
        description="How one of the candidates is chosen. 'round-trip': as `candidates` says. 'content': the point "
                    "is moved to degree × j/`moves` for j = 1 … `moves` (default 8: 1/8, 2/8, … 1), each decoded "
                    "`candidates` times, and the candidate "
                    "kept is the one nearest the source (MiniLM cosine) among those the latent classifier puts at "
                    "p(target) ≥ `min_p_target` (else the one with the highest p(target)); `degree` in the answer "
                    "says which move it came from. `moves` times the decoding, and the choice optimises the very "
                    "similarity that `textlatent eval transfer` reports.")
    min_p_target: float = Field(
        CONTENT_THRESHOLD, ge=0.5, le=0.99, strict=True,
        description="With rerank 'content': the latent classifier's p(target) a candidate needs to be kept for its "
                    "closeness to the source (0.5-0.99); lower keeps more of the source, higher flips more often.")
    moves: int = Field(
        CONTENT_STEPS, ge=1, le=MAX_MOVES, strict=True,
        description=f"With rerank 'content': how many moves, evenly spaced up to `degree`, are decoded "
                    f"(1-{MAX_MOVES}).")


class TransferResponse(BaseModel):
    model: str
    attribute: str
    target: str
    source: str
    output: str = Field(description="The sentence decoded from the moved latent point.")
    degree: float = Field(description="The degree used.")
    p_before: float = Field(description="Latent classifier's p(target) at μ(source).")
    p_after: float = Field(description="Latent classifier's p(target) at the moved point.")
    z: list[float] = Field(description="The moved latent point.")
