from __future__ import annotations

from fastapi import APIRouter, Depends

from api.deps import get_service
from api.schemas import Health
from textlatent import __version__
from textlatent.service import TextLatent

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="Liveness (no API key needed)")
def healthz(service: TextLatent = Depends(get_service)) -> Health:
    return Health(
        version=__version__, model=service.default_model, encoder_loaded=service.is_loaded()
    )
