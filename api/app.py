"""FastAPI application: a thin layer that parses, calls ``textlatent`` and shapes replies."""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.routers import collections, embeddings, health, latent, sentiment
from api.routers import explore as explore_router
from api.routers import outliers as outliers_router
from api.routers import rag as rag_router
from textlatent import __version__
from textlatent.config import Settings, get_settings
from textlatent.errors import BusyError, TextLatentError
from textlatent.service import TextLatent

log = logging.getLogger("textlatent.api")

_ERROR_TYPES = {400: "invalid_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed",
                409: "conflict", 413: "payload_too_large", 422: "invalid_input", 503: "busy"}


def _error(status: int, message: str, *, param: str | None = None, type_: str | None = None,
           headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": type_ or _ERROR_TYPES.get(status, "error"),
                      "param": param, "code": status}}
    return JSONResponse(body, status_code=status, headers=headers)


class BodySizeLimit:
    """Refuse bodies larger than the configured limit with 413, before they are read.

    A declared Content-Length over the limit is refused at once; a body without one (chunked)
    is counted as it arrives and refused as soon as it passes the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            response = _error(413, f"request body is {int(length)} bytes; the limit is {self.max_bytes} "
                                   "(TEXTLATENT_MAX_REQUEST_BYTES)")
            await response(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise StarletteHTTPException(
                        413, f"request body is over the limit of {self.max_bytes} bytes (TEXTLATENT_MAX_REQUEST_BYTES)"
                    )
            return message

        await self.app(scope, counting_receive, send)


def _describe_validation(exc: RequestValidationError) -> tuple[int, str, str | None]:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return 400, "request body is not valid JSON: " + "; ".join(str(e.get("msg")) for e in errors), None
    parts, param = [], None
    for e in errors[:5]:
        field = _field_name(e.get("loc", ()))
        param = param or field
        parts.append(f"{field}: {e.get('msg')}")
    return 422, "; ".join(parts), param


# pydantic's location of an error in a union says which member it tried ('str', 'list[float]', a
# model class such as 'GenerateOptions'): not a field the client sent, so it is left out of the name.
# (Our request fields are snake_case; a metadata key spelt like a tag is the one name this can cut.)
_UNION_TAG = re.compile(r"(str|int|float|bool|bytes|none|list\[.*\]|dict\[.*\]|literal\[.*\]|function-.*|"
                        r"[A-Z][A-Za-z0-9]*)")


def _field_name(loc: Sequence[Any]) -> str:
    """A validation error's location as the client wrote it: ``texts[1]``, ``k``, ``filter.year``."""
    name = ""
    for i, part in enumerate(loc):
        if i == 0 and part in ("body", "query", "path"):
            continue
        if isinstance(part, int):
            name += f"[{part}]"
        elif not _UNION_TAG.fullmatch(str(part)):
            name += f".{part}" if name else str(part)
    return name or "body"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service: TextLatent = app.state.service
        if settings.preload:
            service.encoder()  # load weights once at start, not on the first request
        yield

    app = FastAPIOffline(  # a FastAPI app whose /docs and /redoc need no CDN
        title="textlatent",
        version=__version__,
        summary="Text into latent spaces: OpenAI-compatible embeddings and FAISS collections.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.service = TextLatent(settings)
    app.state.api_keys = settings.api_key_list()
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)

    @app.exception_handler(TextLatentError)
    async def _library_error(_: Request, exc: TextLatentError) -> JSONResponse:
        # a busy collection frees up in a moment; a damaged model folder does not
        headers = {"Retry-After": "1"} if isinstance(exc, BusyError) else None
        return _error(exc.status_code, exc.message, param=exc.param, type_=exc.code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        status, message, param = _describe_validation(exc)
        return _error(status, message, param=param)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(sqlite3.OperationalError)
    async def _database_busy(_: Request, exc: sqlite3.OperationalError) -> JSONResponse:
        if "locked" in str(exc) or "busy" in str(exc):
            return _error(503, "the collection's database is busy; try again shortly", type_="busy",
                          headers={"Retry-After": "1"})
        log.exception("database error")
        return _error(500, "internal error; the server log has the details", type_="internal_error")

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return _error(500, "internal error; the server log has the details", type_="internal_error")

    app.include_router(health.router)
    app.include_router(embeddings.router)
    app.include_router(collections.router)
    app.include_router(sentiment.router)
    app.include_router(rag_router.router)
    app.include_router(latent.router)
    app.include_router(explore_router.router)
    app.include_router(outliers_router.router)
    return app


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory api.app:app_from_env``: settings from the environment."""
    return create_app(Settings())


def __getattr__(name: str) -> Any:  # `uvicorn api.app:app` without building an app at import
    if name == "app":
        return app_from_env()
    raise AttributeError(name)
