"""The FastAPI app: the HTTP API and the web page, a thin edge over the core.

Run it with ``searchengine serve``; build it in code with :func:`create_app`. The
routes live in :mod:`web.routes` (one router per area); what they share (the
service, the API key check) in :mod:`web.deps`.
"""

from __future__ import annotations

import mimetypes
import sqlite3
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from searchengine.config import Settings
from searchengine.errors import IndexMismatch, IndexNotBuilt, ModelNotFound, NotFound, SearchEngineError
from web.deps import admin_dependencies
from web.routes import images, index, library, search
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
    if service is None:
        service = Service(settings or Settings.from_env(), indexer_factory=indexer_factory)
    app = FastAPIOffline(
        title="searchengine",
        summary="Find images by what they show and by the text in them.",
        version=_version(),
        responses={422: {"description": "Invalid parameters"}},
    )
    app.state.service = service
    _add_middleware(app, service.settings)
    _add_error_handlers(app)
    admin = admin_dependencies(service.settings)  # the schema names the key only where one is set
    for router in (search.router, images.router, library.router, index.router):
        app.include_router(router)
    for router in (library.admin_router, index.admin_router):
        app.include_router(router, dependencies=admin)

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _add_middleware(app: FastAPI, settings: Settings) -> None:
    app.add_middleware(BodyLimit, max_bytes=settings.max_upload_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["X-API-Key", "Content-Type"],
        )

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

    @app.exception_handler(sqlite3.DatabaseError)
    async def _database(request: Request, exc: sqlite3.DatabaseError):
        return JSONResponse({"detail": f"the index database is busy or unusable: {exc}"}, status_code=503)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("searchengine")
    except PackageNotFoundError:
        return "0+unknown"
