"""The latent sentence space: encode, decode, sample, interpolate, analogy, style transfer.

The model is chosen by the ``vae_model`` setting (TEXTLATENT_VAE_MODEL) and loaded on the
first request; without one every route answers 404 saying how to set it.
"""

from __future__ import annotations

import threading

import numpy as np
from fastapi import APIRouter, Depends, Request

from api.deps import require_api_key
from api.schemas import error_responses
from api.schemas_latent import (
    AnalogyRequest,
    AnalogyResponse,
    DecodeRequest,
    DecodingOptions,
    EncodeRequest,
    EncodeResponse,
    InterpolateRequest,
    LatentModelInfo,
    PointsResponse,
    SampleRequest,
    TextsResponse,
    TransferRequest,
    TransferResponse,
)
from textlatent.errors import PayloadTooLargeError
from textlatent.vae import ops
from textlatent.vae import transfer as style
from textlatent.vae.service import LatentService

router = APIRouter(prefix="/latent", tags=["latent"], dependencies=[Depends(require_api_key)])
_ERRORS = error_responses(400, 401, 404, 413, 422, 503)
_lock = threading.Lock()


def get_latent(request: Request) -> LatentService:
    state = request.app.state
    with _lock:
        latent = getattr(state, "latent", None)
        if latent is None:
            service = state.service
            latent = state.latent = LatentService(state.settings, shared_encoder=service.encoder)
    return latent


def _rows(z: np.ndarray) -> list[list[float]]:
    return [[round(float(x), 6) for x in row] for row in z]


@router.get("/model", response_model=LatentModelInfo, responses=error_responses(401, 404, 503),
            summary="The served latent model: decoder, latent size, prior")
def model_info(latent: LatentService = Depends(get_latent)) -> LatentModelInfo:
    model = latent.model()
    inner = getattr(model, "model", None)
    prior = getattr(inner, "prior", None)
    return LatentModelInfo(
        model=model.name, decoder="optimus" if getattr(model, "kind", None) == "optimus" else "gru",
        latent_dim=model.latent_dim,
        prior={"kind": "standard"} if prior is None else {"kind": "gaussian-mixture", "components": prior.components})


def _ngram(body: DecodingOptions) -> dict[str, int]:
    """``no_repeat_ngram`` for ``decode`` only when the request sets it, so a decoder that implements
    the plain :class:`~textlatent.vae.ops.LatentModel` interface still serves the other requests."""
    return {} if body.no_repeat_ngram is None else {"no_repeat_ngram": body.no_repeat_ngram}


@router.post("/encode", response_model=EncodeResponse, responses=_ERRORS, summary="Texts → posterior μ, σ")
def encode(body: EncodeRequest, latent: LatentService = Depends(get_latent)) -> EncodeResponse:
    latent.check_count(len(body.texts), "texts")
    model = latent.model()
    mu, logvar = model.encode(body.texts)
    return EncodeResponse(model=model.name, latent_dim=model.latent_dim, mu=_rows(mu),
                          sigma=_rows(np.exp(0.5 * logvar)))


@router.post("/decode", response_model=TextsResponse, responses=_ERRORS, summary="Latent vectors → sentences")
def decode(body: DecodeRequest, latent: LatentService = Depends(get_latent)) -> TextsResponse:
    model = latent.model()
    z = ops.check_z(body.z, model.latent_dim)
    latent.check_count(z.shape[0], "z", strategy=body.strategy, beam_size=body.beam_size)
    texts = model.decode(z, strategy=body.strategy, temperature=body.temperature, beam_size=body.beam_size,
                         seed=body.seed, **_ngram(body))
    return TextsResponse(model=model.name, texts=texts)


@router.post("/sample", response_model=PointsResponse, responses=_ERRORS, summary="Sentences from the prior")
def sample(body: SampleRequest, latent: LatentService = Depends(get_latent)) -> PointsResponse:
    latent.check_count(body.n, "n", strategy=body.strategy, beam_size=body.beam_size)
    model = latent.model()
    z, texts = ops.sample(model, body.n, seed=body.seed, strategy=body.strategy, temperature=body.temperature,
                          beam_size=body.beam_size, **_ngram(body))
    return PointsResponse(model=model.name, texts=texts, z=_rows(z))


@router.post("/interpolate", response_model=PointsResponse, responses=_ERRORS,
             summary="Sentences along the path from a to b")
def interpolate(body: InterpolateRequest, latent: LatentService = Depends(get_latent)) -> PointsResponse:
    latent.check_count(body.steps, "steps", strategy=body.strategy, beam_size=body.beam_size)
    model = latent.model()
    z, texts = ops.interpolate(model, body.a, body.b, body.steps, strategy=body.strategy,
                               temperature=body.temperature, beam_size=body.beam_size, seed=body.seed,
                               **_ngram(body))
    return PointsResponse(model=model.name, texts=texts, z=_rows(z))


@router.post("/analogy", response_model=AnalogyResponse, responses=_ERRORS, summary="decode(c + (b − a))")
def analogy(body: AnalogyRequest, latent: LatentService = Depends(get_latent)) -> AnalogyResponse:
    model = latent.model()
    z, text = ops.analogy(model, body.a, body.b, body.c, strategy=body.strategy, temperature=body.temperature,
                          beam_size=body.beam_size, seed=body.seed, **_ngram(body))
    return AnalogyResponse(model=model.name, text=text, z=[round(float(x), 6) for x in z])


@router.post("/transfer", response_model=TransferResponse, responses=_ERRORS,
             summary="Move a sentence along an attribute axis (sentiment) and decode it")
def transfer(body: TransferRequest, latent: LatentService = Depends(get_latent)) -> TransferResponse:
    attribute = style.check_attribute(body.attribute)
    style.check_target(attribute, body.target)
    if body.degree is not None:
        style.check_degree(body.degree)
    style.check_candidates(body.candidates)
    latent.check_count(body.candidates, "candidates", strategy=body.strategy, beam_size=body.beam_size)
    if body.rerank == "content" and body.degree != 0:  # at degree 0 nothing moves and content reranking is off
        decodes = body.candidates * body.moves
        width = body.beam_size if body.strategy == "beam" else 1  # counted as check_count counts a beam
        if decodes * width > latent.settings.max_batch:
            beam = f" at beam_size {width}" if width > 1 else ""
            raise PayloadTooLargeError(f"content reranking decodes {body.moves} moves x {body.candidates} "
                                       f"candidates = {decodes}{beam}; the limit is {latent.settings.max_batch} "
                                       "(TEXTLATENT_MAX_BATCH): ask for fewer candidates or moves",
                                       param="candidates")
    model = latent.model()
    axis = style.load_axis(model, attribute, latent_dim=model.latent_dim)
    [moved] = style.transfer(model, axis, [body.text], body.target, body.degree, strategy=body.strategy,
                             temperature=body.temperature, beam_size=body.beam_size, seed=body.seed,
                             candidates=body.candidates, rerank=body.rerank,
                             min_p_target=body.min_p_target, moves=body.moves, **_ngram(body))
    return TransferResponse(model=model.name, attribute=attribute, target=moved.target, source=moved.source,
                            output=moved.output, degree=moved.degree, p_before=round(moved.p_before, 6),
                            p_after=round(moved.p_after, 6), z=[round(float(x), 6) for x in moved.z])
