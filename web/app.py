"""The FastAPI app: the HTTP API and the web page, a thin edge over the core.

Run it with ``searchengine serve``; build it in code with :func:`create_app`. The
routes live in :mod:`web.routes` (one router per area); what they share (the
service, the API key checks) in :mod:`web.deps`; what every request must show
first (an allowed Host, no forgery, strict JSON) in :mod:`web.guard`.
"""

from __future__ import annotations

import mimetypes
import sqlite3
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from searchengine.config import Settings
from searchengine.errors import IndexMismatch, IndexNotBuilt, ModelNotFound, NotFound, SearchEngineError
from searchengine.store.db import database_problem, is_disk_full
from web.deps import admin_dependencies, read_dependencies
from web.guard import JSON_MAX_BYTES, ForgeryGuard, HostGuard, JSONBodies
from web.routes import forget, images, index, library, search, session
from web.schemas import Error
from web.service import Busy, Forbidden, IndexerFactory, Service, Unavailable

STATIC = Path(__file__).parent / "static"
# the page's ES modules load only with a JavaScript type; some systems map .js otherwise
mimetypes.add_type("text/javascript", ".js")

#: HTTP status of each known error (the first class that matches); any other is a 400.
STATUSES: dict[type[SearchEngineError], int] = {
    NotFound: 404,
    Forbidden: 403,
    Busy: 409,
    IndexNotBuilt: 409,
    IndexMismatch: 409,
    ModelNotFound: 503,
    Unavailable: 503,
}


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413, before they are parsed or stored."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        message = f"the request body is over the limit of {self.max_bytes:,} bytes"
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            response = JSONResponse({"detail": message}, status_code=413)
            return await response(scope, receive, send)
        seen = 0

        async def limited():
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_bytes:
                    raise HTTPException(413, message)  # FastAPI lets HTTPException through
            return msg

        return await self.app(scope, limited, send)


def create_app(
    settings: Settings | None = None,
    *,
    service: Service | None = None,
    indexer_factory: IndexerFactory | None = None,
) -> FastAPI:
    """Build the app over one index (``settings.index_path``).

    :param settings: default: :meth:`Settings.from_env` (so ``SE_API_KEY`` always
        guards the admin endpoints, whoever builds the app).
    :param service: an already started service (``searchengine serve``), instead of
        ``settings`` and ``indexer_factory``.
    :param indexer_factory: builds the indexer of ``POST /api/index`` runs
        (``indexer.pipeline.Indexer.from_settings``); without one they answer 503.

    The API docs (``/docs``, ``/redoc``) are served with their scripts from the
    package, so they work with no internet access.
    """
    if service is not None and (settings is not None or indexer_factory is not None):
        raise TypeError("create_app takes a service, or settings and an indexer factory: not both")
    owned = service is None
    if service is None:
        service = Service(settings or Settings.from_env(), indexer_factory=indexer_factory)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        if owned:  # a service passed in belongs to its maker (serve closes its own)
            app.state.service.close()

    app = FastAPIOffline(
        title="searchengine",
        summary="Find images by what they show and by the text in them.",
        version=_version(),
        responses={422: {"description": "Invalid parameters"}},
        lifespan=lifespan,
    )
    app.state.service = service
    _add_middleware(app, service.settings)
    _add_error_handlers(app)
    # the schema names the key only where one is set; every route may be refused by the guards
    refused = {403: {"model": Error}, 421: {"model": Error}}
    admin, reads = admin_dependencies(service.settings), read_dependencies(service.settings)
    if reads:
        refused[401] = {"model": Error}
    for router in (search.router, images.router, library.router, index.router):
        app.include_router(router, dependencies=reads, responses=refused)
    for router in (library.admin_router, index.admin_router, forget.admin_router):
        app.include_router(router, dependencies=admin, responses=refused)
    app.include_router(session.router, responses=refused)

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _add_middleware(app: FastAPI, settings: Settings) -> None:
    """The layers around the routes; the last added runs first: the security headers, the
    Host check, the forgery check, the body size limit, CORS, then strict JSON bodies."""
    app.add_middleware(JSONBodies, max_bytes=min(JSON_MAX_BYTES, settings.max_upload_bytes))
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["X-API-Key", "Content-Type", "X-Requested-With"],
        )
    app.add_middleware(BodyLimit, max_bytes=settings.max_upload_bytes)
    app.add_middleware(ForgeryGuard, cors_origins=settings.cors_origins)
    app.add_middleware(HostGuard, allowed_hosts=settings.allowed_hosts)

    @app.middleware("http")
    async def _headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(SearchEngineError)
    async def _known(request: Request, exc: SearchEngineError):
        status = next((code for cls, code in STATUSES.items() if isinstance(exc, cls)), 400)
        return JSONResponse({"detail": str(exc)}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        # FastAPI's own handler echoes each input back and fails (a 500) on one it cannot
        # encode: bytes that are not UTF-8, a lone surrogate; those are echoed by repr
        return JSONResponse({"detail": [_echoable(e) for e in exc.errors()]}, status_code=422)

    @app.exception_handler(sqlite3.DatabaseError)
    async def _database(request: Request, exc: sqlite3.DatabaseError):
        index_dir = request.app.state.service.settings.index_path
        status = 507 if is_disk_full(exc) else 503
        return JSONResponse({"detail": database_problem(exc, index_dir)}, status_code=status)


def _echoable(error: dict) -> dict:
    """A validation error whose ``input`` can be sent back as JSON (by ``repr`` when it cannot)."""
    return jsonable_encoder(error, custom_encoder={bytes: repr, str: _printable})


def _printable(text: str) -> str:
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("searchengine")
    except PackageNotFoundError:
        return "0+unknown"
