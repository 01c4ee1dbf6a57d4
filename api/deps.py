"""Dependencies shared by the routers: the library service and API-key auth."""

from __future__ import annotations

import secrets

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from textlatent.service import TextLatent

_bearer = HTTPBearer(auto_error=False, description="Needed when TEXTLATENT_API_KEYS is set.")


def get_service(request: Request) -> TextLatent:
    return request.app.state.service


def require_api_key(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
) -> None:
    keys: list[str] = request.app.state.api_keys
    if not keys:
        return
    given = credentials.credentials.encode() if credentials is not None else b""
    # Compare against every key, in constant time, so timing reveals neither key nor position.
    matched = False
    for key in keys:
        matched |= secrets.compare_digest(given, key.encode())
    if credentials is None or credentials.scheme.lower() != "bearer" or not matched:
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="missing or invalid API key: send 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
