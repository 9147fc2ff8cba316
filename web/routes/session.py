"""The page's sign-in: the user enters the API key once; a cookie then lets the browser read.

A page cannot send a header with its ``<img>`` requests, so the key alone would leave
thumbnails and originals unreadable. ``POST /api/session`` checks the key and sets a
``SameSite=Strict``, ``HttpOnly`` cookie holding a keyed hash of it (never the key),
which :func:`web.deps.require_read_key` accepts for reads; changes still need the
``X-API-Key`` header. The cookie lasts until the browser closes or the key changes.
"""

from __future__ import annotations

import secrets

from fastapi import APIRouter, HTTPException, Request, Response

from web import schemas
from web.deps import (
    SESSION_COOKIE,
    ServiceDep,
    has_read_key,
    session_token,
)

router = APIRouter(tags=["session"])


@router.get("/api/session", response_model=schemas.Session)
def session(service: ServiceDep, request: Request):
    """Whether reads need the key, and whether this browser has given it."""
    settings = service.settings  # the key and cookie read by hand: the schema names them only if set
    key, cookie = request.headers.get("x-api-key"), request.cookies.get(SESSION_COOKIE)
    return schemas.Session(
        key_required=bool(settings.api_key) and not settings.public_reads,
        signed_in=has_read_key(settings, key, cookie),
    )


@router.post(
    "/api/session",
    status_code=204,
    response_class=Response,
    responses={400: {"model": schemas.Error}, 401: {"model": schemas.Error}, 409: {"model": schemas.Error}},
)
def sign_in(service: ServiceDep, body: schemas.SessionRequest, request: Request):
    """Check the API key and set the session cookie that lets this browser read (searches, images)."""
    expected = service.settings.api_key
    if expected is None:
        raise HTTPException(409, "this server has no API key: there is nothing to sign in to")
    if not secrets.compare_digest(body.key.encode(), expected.encode()):
        raise HTTPException(401, "wrong API key")
    response = Response(status_code=204)
    response.set_cookie(
        SESSION_COOKIE,
        session_token(expected),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.delete("/api/session", status_code=204, response_class=Response)
def sign_out():
    """Forget the session cookie."""
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="strict")
    return response
