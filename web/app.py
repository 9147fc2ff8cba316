"""The FastAPI app: the HTTP API and the web page, a thin edge over the core.

Run it with ``searchengine serve``; build it in code with :func:`create_app`.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import time
from datetime import date, datetime
from datetime import time as dtime
from pathlib import Path
from typing import Annotated

from fastapi import Depends, File, HTTPException, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import APIKeyHeader
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from searchengine.errors import (
    IndexMismatch,
    IndexNotBuilt,
    ModelNotFound,
    SearchEngineError,
    UnsupportedImage,
)
from searchengine.imaging import MEDIA_TYPES, load_image, normalise_format
from searchengine.metadata import normalise_key, parse_condition
from searchengine.records import Filters, ImageRecord
from searchengine.search import SearchPage, index_stats
from web import schemas
from web.service import Busy, Forbidden, NotFound, Service, ServiceConfig

STATIC = Path(__file__).parent / "static"
INT64 = (-(2**63), 2**63 - 1)
ERRORS = {
    400: {"model": schemas.Error, "description": "Bad request"},
    404: {"model": schemas.Error, "description": "Not found"},
    409: {"model": schemas.Error, "description": "The index is empty or built with another encoder"},
}

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="Set by serve --api-key.")


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


def _day_ns(day: date | None, end: bool = False) -> int | None:
    """A day (local time) -> its first (or last) nanosecond since the epoch, clamped to int64."""
    if day is None:
        return None
    try:
        moment = datetime.combine(day, dtime.max if end else dtime.min)
        ns = int(moment.timestamp() * 1e9)
    except (OverflowError, ValueError, OSError):
        ns = INT64[1] if day.year > 1970 else INT64[0]
    return max(INT64[0], min(INT64[1], ns))


def _iso(ns: int) -> str:
    try:
        return datetime.fromtimestamp(ns / 1e9).astimezone().isoformat(timespec="seconds")
    except (OverflowError, ValueError, OSError):  # a file dated outside what the OS can show
        return ""


def _folder(path: str) -> str:
    return path.rsplit("/", 1)[0]


def _urls(image_id: int) -> dict:
    return {"thumbnail": f"/api/images/{image_id}/thumbnail", "file": f"/api/images/{image_id}/file"}


def create_app(config: ServiceConfig | None = None, service: Service | None = None):
    """Build the app over one index (``config.settings.index_path``).

    The API docs (``/docs``, ``/redoc``) are served with their scripts from the
    package, so they work with no internet access.
    """
    service = service or Service(config or ServiceConfig())
    config = service.config
    app = FastAPIOffline(
        title="searchengine",
        summary="Find images by what they show and by the text in them.",
        version=_version(),
        responses={422: {"description": "Invalid parameters"}},
    )
    app.state.service = service
    app.add_middleware(BodyLimit, max_bytes=config.max_upload_bytes)
    if config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["X-API-Key", "Content-Type"],
        )

    @app.middleware("http")
    async def _headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    statuses = {
        NotFound: 404,
        Forbidden: 403,
        Busy: 409,
        IndexNotBuilt: 409,
        IndexMismatch: 409,
        ModelNotFound: 503,
    }

    @app.exception_handler(SearchEngineError)
    async def _known(request: Request, exc: SearchEngineError):
        status = next((code for cls, code in statuses.items() if isinstance(exc, cls)), 400)
        return JSONResponse({"detail": str(exc)}, status_code=status)

    @app.exception_handler(sqlite3.DatabaseError)
    async def _database(request: Request, exc: sqlite3.DatabaseError):
        return JSONResponse({"detail": f"the index database is busy or unusable: {exc}"}, status_code=503)

    def require_key(key: Annotated[str | None, Depends(api_key_header)]) -> None:
        if key is None or not secrets.compare_digest(key.encode(), config.api_key.encode()):
            raise HTTPException(401, "missing or wrong API key: send it in the X-API-Key header")

    # the schema names the key only where one is set
    admin = [Depends(require_key)] if config.api_key else []
    admin_errors = {**ERRORS, 401: {"model": schemas.Error}}

    # -- search ------------------------------------------------------------------------
    def run_search(params: schemas.SearchParams, image=None) -> schemas.SearchResponse:
        started = time.perf_counter()
        has_text = bool(params.q and params.q.strip())
        browse = not has_text and image is None and params.like is None
        engine = service.engine(need_encoder=not browse and (params.mode != "keyword" or image is not None))
        if params.like is not None:
            rec = service.record(params.like)
            if rec.status != "ok":
                raise NotFound(f"image {params.like} is not searchable ({rec.error})")
        filters = Filters(
            folder=params.folder.rstrip("/") or "/" if params.folder else None,
            formats=tuple(normalise_format(t) for t in params.type if t.strip()),
            modified_after=_day_ns(params.after),
            modified_before=_day_ns(params.before, end=True),
            min_bytes=params.min_size,
            max_bytes=params.max_size,
            tags=tuple(t for t in params.tag if t.strip()),
            where=tuple(parse_condition(c) for c in params.where if c.strip()),
            collection=params.collection,
        )
        page: SearchPage = engine.query(
            params.q if has_text else None,
            image=image,
            like=params.like,
            limit=params.limit,
            offset=params.offset,
            mode=params.mode,
            fusion=params.fusion,
            rrf_k=params.rrf_k,
            weights={"vector": params.vector_weight, "keyword": params.keyword_weight},
            filters=filters if filters.active else None,
            min_score=params.min_score,
        )
        store = engine.store
        shown = [h.id for h in page.hits]
        captions, meta, dups = store.captions_of(shown), store.metadata_of(shown), store.duplicates_of(shown)
        keys = list(dict.fromkeys(normalise_key(f) for f in params.facet if f.strip()))
        facets = store.facets(page.ids, keys) if keys else {}
        results = [
            schemas.Hit(
                id=h.id,
                rank=h.rank,
                score=round(h.score, 6),
                path=h.path,
                name=os.path.basename(h.path),
                folder=_folder(h.path),
                width=h.width,
                height=h.height,
                format=h.format,
                caption=captions.get(h.id),
                title=meta.get(h.id, {}).get("title"),
                duplicates=len(dups.get(h.id, [])),
                legs=h.legs if params.explain else None,
                **_urls(h.id),
            )
            for h in page.hits
        ]
        return schemas.SearchResponse(
            query=params.q,
            image_query=image is not None,
            like=params.like,
            mode=page.mode,
            fusion=page.fusion,
            encoder=engine.encoder.spec if engine.encoder else None,
            total=page.total,
            offset=page.offset,
            limit=page.limit,
            cutoff=round(page.cutoff, 6) if page.cutoff > -1 else None,
            took_ms=round((time.perf_counter() - started) * 1000, 1),
            facets={k: [schemas.Count(value=v, count=n) for v, n in c] for k, c in facets.items()},
            results=results,
        )

    @app.get("/api/search", response_model=schemas.SearchResponse, responses=ERRORS, tags=["search"])
    def search(params: Annotated[schemas.SearchParams, Query()]):
        """Search by text, by an indexed image (`like`), or both, fused into one explained ranking."""
        return run_search(params)

    @app.post(
        "/api/search",
        response_model=schemas.SearchResponse,
        responses={**ERRORS, 413: {"model": schemas.Error}, 415: {"model": schemas.Error}},
        tags=["search"],
    )
    def search_by_image(
        params: Annotated[schemas.SearchParams, Query()],
        image: Annotated[UploadFile, File(description="An image to find similar ones to.")],
    ):
        """Search with an uploaded image (alone, or with `q`: "like this, but red")."""
        try:
            query_image, _ = load_image(image.file, max_pixels=config.max_upload_pixels)
        except UnsupportedImage as exc:
            status = 413 if "too large" in str(exc) else 415
            raise HTTPException(status, f"the upload cannot be used as a query image: {exc}") from None
        return run_search(params, image=query_image)

    # -- images ------------------------------------------------------------------------
    def ref(rec: ImageRecord) -> schemas.Ref:
        return schemas.Ref(id=rec.id, name=os.path.basename(rec.path), path=rec.path, **_urls(rec.id))

    def detail(rec: ImageRecord) -> schemas.ImageDetail:
        store = service.store()
        text = store.image_text(rec.id)
        library = store.library_of(rec.id)
        library["duplicates"] = [ref(r) for r in store.images_by_id(library["duplicates"]).values()]
        return schemas.ImageDetail(
            id=rec.id,
            path=rec.path,
            name=os.path.basename(rec.path),
            folder=_folder(rec.path),
            root=rec.root,
            status=rec.status,
            error=rec.error,
            size=rec.size,
            modified=_iso(rec.mtime_ns),
            width=rec.width,
            height=rec.height,
            format=rec.format,
            sha256=rec.sha256,
            caption=text["caption"],
            caption_model=text["caption_model"],
            tags=text["tags"],
            ocr_text=text["ocr_text"],
            ocr_engine=text["ocr_engine"],
            ocr_lines=text["ocr_lines"],
            stages=text["stages"],
            **library,
            **_urls(rec.id),
        )

    @app.get("/api/images/lookup", response_model=schemas.ImageDetail, responses=ERRORS, tags=["images"])
    def image_by_path(path: Annotated[str, Query(max_length=4096, description="An indexed file's path.")]):
        """What the index knows of the image at exactly this indexed path."""
        rec = service.store().image_by_path(path) if "\x00" not in path else None
        if rec is None:
            raise NotFound("no indexed image has this path")
        return detail(rec)

    @app.get("/api/images/{image_id}", response_model=schemas.ImageDetail, responses=ERRORS, tags=["images"])
    def image(image_id: Annotated[int, _id_param()]):
        """File facts, caption, tags and OCR lines (with boxes) of one image."""
        return detail(service.record(image_id))

    @app.get(
        "/api/images/{image_id}/thumbnail",
        response_class=FileResponse,
        responses={**ERRORS, 403: {"model": schemas.Error}, 200: {"content": {"image/webp": {}}}},
        tags=["images"],
    )
    def thumbnail(
        image_id: Annotated[int, _id_param()],
        size: Annotated[int, Query(ge=16, le=1024, description="Longest side in pixels.")] = 256,
    ):
        """A WebP thumbnail, made on first request and cached with the index."""
        rec = service.record(image_id)
        try:
            path = service.thumbnail(rec, size)
        except UnsupportedImage as exc:
            raise NotFound(f"image {image_id} cannot be read any more ({exc}): re-index its folder") from None
        return FileResponse(
            path, media_type="image/webp", headers={"Cache-Control": "public, max-age=86400, immutable"}
        )

    @app.get(
        "/api/images/{image_id}/file",
        response_class=FileResponse,
        responses={**ERRORS, 403: {"model": schemas.Error}, 200: {"content": {"image/*": {}}}},
        tags=["images"],
    )
    def original(image_id: Annotated[int, _id_param()]):
        """The original file, as indexed (only files inside an indexed folder are served)."""
        rec = service.record(image_id)
        path = service.servable(rec)
        return FileResponse(
            path,
            media_type=MEDIA_TYPES.get(rec.format or "", "application/octet-stream"),
            filename=os.path.basename(rec.path),
            content_disposition_type="inline",
        )

    @app.get("/api/filters", response_model=schemas.FilterOptions, tags=["search"])
    def filters():
        """What searches can be filtered by: folders, types and tags, with image counts."""
        store = service.store()
        facets = store.facet_counts()
        return schemas.FilterOptions(
            folders=[{"value": v, "count": n} for v, n in facets["folders"]],
            types=[{"value": v, "count": n} for v, n in facets["formats"]],
            tags=[{"value": v, "count": n} for v, n in facets["tags"]],
            fields=[
                {"key": k, "images": n, "distinct": d, "numeric": num > n / 2, "min": lo, "max": hi}
                for k, n, d, num, lo, hi in store.metadata_fields()
            ],
            collections=[{"value": name, "count": n} for name, n, _ in store.collections()],
        )

    # -- asset library ---------------------------------------------------------------
    @app.post(
        "/api/images/{image_id}/tags",
        response_model=list[str],
        dependencies=admin,
        responses=admin_errors,
        tags=["library"],
    )
    def add_tags(image_id: Annotated[int, _id_param()], body: schemas.TagsRequest):
        """Add your own tags to an image (searched by keyword, filtered with `tag`); returns its tags."""
        rec = service.record(image_id)
        service.store().add_tags(rec.id, [" ".join(t.split()) for t in body.tags])
        return service.store().user_tags(rec.id)

    @app.delete(
        "/api/images/{image_id}/tags/{tag}",
        response_model=list[str],
        dependencies=admin,
        responses=admin_errors,
        tags=["library"],
    )
    def remove_tag(image_id: Annotated[int, _id_param()], tag: Annotated[str, PathParam(max_length=100)]):
        """Remove one of your tags from an image; returns its tags."""
        rec = service.record(image_id)
        if not service.store().remove_tags(rec.id, [tag]):
            raise NotFound(f"image {image_id} has no tag {tag!r}")
        return service.store().user_tags(rec.id)

    @app.get("/api/collections", response_model=list[schemas.Collection], tags=["library"])
    def collections():
        """Every collection with its size."""
        return [{"name": n, "images": c, "created_at": t} for n, c, t in service.store().collections()]

    def collection_name(name: str) -> str:
        name = " ".join(name.split())
        if not name or "\x00" in name:
            raise SearchEngineError("a collection needs a name")
        return name

    @app.post(
        "/api/collections/{name}",
        response_model=schemas.Collection,
        dependencies=admin,
        responses=admin_errors,
        tags=["library"],
    )
    def add_to_collection(name: Annotated[str, PathParam(max_length=200)], body: schemas.ImagesRequest):
        """Add images to a collection, creating it if new."""
        name = collection_name(name)
        store = service.store()
        found = store.images_by_id(body.ids)
        missing = [i for i in body.ids if i not in found or found[i].status != "ok"]
        if missing:
            raise NotFound(f"not searchable images: {', '.join(map(str, missing[:20]))}")
        store.add_to_collection(name, body.ids)
        return next({"name": n, "images": c, "created_at": t} for n, c, t in store.collections() if n == name)

    @app.delete(
        "/api/collections/{name}/images/{image_id}",
        status_code=204,
        dependencies=admin,
        responses=admin_errors,
        tags=["library"],
    )
    def remove_from_collection(
        name: Annotated[str, PathParam(max_length=200)], image_id: Annotated[int, _id_param()]
    ):
        """Take an image out of a collection."""
        if not service.store().remove_from_collection(name, [image_id]):
            raise NotFound(f"image {image_id} is not in collection {name!r}")

    @app.delete(
        "/api/collections/{name}",
        status_code=204,
        dependencies=admin,
        responses=admin_errors,
        tags=["library"],
    )
    def delete_collection(name: Annotated[str, PathParam(max_length=200)]):
        """Delete a collection (its images stay indexed)."""
        if not service.store().delete_collection(name):
            raise NotFound(f"no collection named {name!r}")

    @app.get("/api/duplicates", response_model=list[schemas.DuplicateGroup], tags=["library"])
    def duplicates():
        """Near-duplicate groups, found at index time (perceptual hash confirmed by embeddings)."""
        store = service.store()
        groups = store.duplicate_groups()
        recs = store.images_by_id([i for g in groups for i in g])
        return [{"images": [ref(recs[i]) for i in g if i in recs]} for g in groups]

    @app.post(
        "/api/import",
        response_model=schemas.ImportResult,
        dependencies=admin,
        responses={**admin_errors, 413: {"model": schemas.Error}},
        tags=["library"],
    )
    def import_catalogue_file(
        catalogue: Annotated[UploadFile, File(description="A .csv or .jsonl catalogue.")],
        image_column: Annotated[str | None, Query(max_length=200)] = None,
        dry_run: bool = False,
    ):
        """Attach product metadata from a catalogue to indexed images (as `searchengine import`)."""
        import tempfile

        from searchengine.metadata import import_catalogue

        suffix = Path(catalogue.filename or "").suffix.lower()
        if suffix not in (".csv", ".tsv", ".jsonl", ".json", ".ndjson"):
            raise SearchEngineError("the catalogue must be a .csv, .tsv or .jsonl file")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(catalogue.filename).name
            path.write_bytes(catalogue.file.read())
            try:
                report = import_catalogue(service.store(), path, image_column=image_column, dry_run=dry_run)
            except UnicodeDecodeError as exc:
                raise SearchEngineError(f"the catalogue is not UTF-8 text: {exc.reason}") from None
        return schemas.ImportResult(**report.as_dict())

    @app.get(
        "/api/export",
        responses={200: {"content": {"text/csv": {}, "application/x-ndjson": {}, "application/ld+json": {}}}},
        tags=["library"],
    )
    def export(
        format: Annotated[str, Query(pattern="^(csv|jsonl|jsonld)$")] = "csv",
        collection: Annotated[str | None, Query(max_length=200)] = None,
        base_url: Annotated[str | None, Query(max_length=2000)] = None,
    ):
        """SEO metadata of every image (alt text, title, caption, keywords, OCR text, provenance)."""
        from fastapi.responses import Response

        from searchengine.export import records, render

        store = service.store()
        ids = store.filtered_ids(Filters(collection=collection)).tolist() if collection else None
        media = {
            "csv": "text/csv; charset=utf-8",
            "jsonl": "application/x-ndjson",
            "jsonld": "application/ld+json",
        }
        return Response(
            render(list(records(store, ids)), format, base_url),
            media_type=media[format],
            headers={"Content-Disposition": f'attachment; filename="images.{format}"'},
        )

    # -- index -------------------------------------------------------------------------
    @app.get("/api/stats", response_model=schemas.Stats, tags=["index"])
    def stats():
        """What the index holds: counts, encoder, roots, failures and the index run."""
        store = service.store()
        data = index_stats(store)
        enc = data.encoder
        return schemas.Stats(
            path=data.path,
            encoder=enc.spec if enc else None,
            dim=enc.dim if enc else None,
            images=data.images,
            ok=data.ok,
            failed=data.failed,
            vectors=data.vectors,
            faiss_key=service.faiss_key(),
            captions=data.captions,
            ocr=data.ocr,
            with_text=data.with_text,
            stage_errors=data.stage_errors,
            roots=data.roots,
            failures=[{"path": f.path, "error": f.error} for f in store.failures()[:100]],
            indexing=_job(service),
        )

    @app.get("/api/health", response_model=schemas.Health, tags=["index"])
    def health():
        """Liveness: the index opens and answers."""
        store = service.store()
        enc = store.encoder()
        return schemas.Health(
            status="ok",
            index=str(store.dir),
            images=store.counts()["ok"],
            encoder=enc.spec if enc else None,
            indexing=service.indexing,
        )

    @app.get("/api/models", response_model=list[schemas.ModelInfo], tags=["index"])
    def models():
        """Every encoder, captioner and OCR engine: licence, weights, whether they are here."""
        from searchengine.models.registry import describe

        enc = service.store().encoder()
        return [
            schemas.ModelInfo(
                **m, in_use=m["kind"] == "encoder" and enc is not None and enc.name == m["name"]
            )
            for m in describe()
        ]

    @app.get("/api/index", response_model=schemas.JobStatus, tags=["index"])
    def index_status():
        """Progress of the current (or last) index run: counts, rate and ETA."""
        return _job(service)

    @app.post(
        "/api/index",
        response_model=schemas.JobStatus,
        status_code=202,
        dependencies=admin,
        responses={
            400: {"model": schemas.Error},
            401: {"model": schemas.Error},
            403: {"model": schemas.Error},
            409: {"model": schemas.Error, "description": "A run is already in progress"},
        },
        tags=["index"],
    )
    def start_index(request: schemas.IndexRequest | None = None):
        """Start (re)indexing an allowed folder (or all of them) in the background.

        Searches keep working meanwhile; follow progress with `GET /api/index`.
        """
        request = request or schemas.IndexRequest()
        service.start_index(request.root, retry_failed=request.retry_failed)
        return _job(service)

    # -- the page ------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _id_param():
    return PathParam(ge=1, le=INT64[1], description="Image id.")


def _job(service: Service) -> schemas.JobStatus:
    job = service.job()
    return schemas.JobStatus(**{k: getattr(job, k) for k in schemas.JobStatus.model_fields})


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("searchengine")
    except PackageNotFoundError:
        return "0+unknown"
