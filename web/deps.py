"""What routes ask FastAPI for: the service, the key checks, typed path parameters."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.params import Depends as DependsParam
from fastapi.security import APIKeyCookie, APIKeyHeader

from searchengine.config import Settings
from web.schemas import INT64_MAX
from web.service import Service

api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="Set by serve --api-key (or SE_API_KEY)."
)
#: The cookie ``POST /api/session`` sets once the page's user has entered the key.
SESSION_COOKIE = "se_session"
session_cookie = APIKeyCookie(
    name=SESSION_COOKIE,
    auto_error=False,
    description="Set by POST /api/session after the key is given there; lets a browser read (not change).",
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


def session_token(api_key: str) -> str:
    """The session cookie's value for ``api_key``: a keyed hash, so the cookie never holds the key.

    Fixed for a key (it outlives a restart); changing the key ends every session.
    """
    return hmac.new(api_key.encode(), b"searchengine read session 1", hashlib.sha256).hexdigest()


def has_read_key(settings: Settings, key: str | None, cookie: str | None) -> bool:
    """Whether a request carries the configured key (``X-API-Key``) or the page's session cookie."""
    expected = settings.api_key
    if expected is None:
        return False
    if key is not None and secrets.compare_digest(key.encode(), expected.encode()):
        return True
    return cookie is not None and secrets.compare_digest(cookie.encode(), session_token(expected).encode())


def require_read_key(
    service: ServiceDep,
    key: Annotated[str | None, Depends(api_key_header)],
    cookie: Annotated[str | None, Depends(session_cookie)],
) -> None:
    """Refuse (401) a read without the key: the ``X-API-Key`` header or the page's session cookie.

    The cookie (``SameSite=Strict``, ``HttpOnly``) lets the page's ``<img>`` tags load
    thumbnails and originals, which cannot send a header.
    """
    if not has_read_key(service.settings, key, cookie):
        raise HTTPException(
            401, "this server needs its API key: send it in the X-API-Key header (the page asks for it)"
        )


def read_dependencies(settings: Settings) -> list[DependsParam]:
    """The dependencies of the read routes: the key (or session) check, if a key is set and
    reads are not public."""
    return [Depends(require_read_key)] if settings.api_key and not settings.public_reads else []


def admin_dependencies(settings: Settings) -> list[DependsParam]:
    """The dependencies of the admin (write, indexing) routes: the key check, if a key is set.

    Given to ``include_router``, so the OpenAPI schema declares the key only where one is set.
    """
    return [AdminDep] if settings.api_key else []
