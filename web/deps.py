"""What routes ask FastAPI for: the service, the admin key check, typed path parameters."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.params import Depends as DependsParam
from fastapi.security import APIKeyHeader

from searchengine.config import Settings
from web.schemas import INT64_MAX
from web.service import Service

api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="Set by serve --api-key (or SE_API_KEY)."
)


def get_service(request: Request) -> Service:
    """The service behind the app serving this request."""
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(get_service)]

ImageId = Annotated[int, PathParam(ge=1, le=INT64_MAX, description="Image id.")]


def require_key(service: ServiceDep, key: Annotated[str | None, Depends(api_key_header)]) -> None:
    """Refuse (401) a request without the configured ``X-API-Key``.

    Compared in constant time; with no key configured every request is refused, so
    the check can never be left open by mistake (it is only applied when one is set).
    """
    expected = service.settings.api_key
    if key is None or expected is None or not secrets.compare_digest(key.encode(), expected.encode()):
        raise HTTPException(401, "missing or wrong API key: send it in the X-API-Key header")


AdminDep = Depends(require_key)


def admin_dependencies(settings: Settings) -> list[DependsParam]:
    """The dependencies of the admin (write, indexing) routes: the key check, if a key is set.

    Given to ``include_router``, so the OpenAPI schema declares the key only where one is set.
    """
    return [AdminDep] if settings.api_key else []
