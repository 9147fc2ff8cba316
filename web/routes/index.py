"""The index: health, stats, the models, and index runs.

``router`` reads; ``admin_router`` starts index runs (behind the API key when one is set).
"""

from __future__ import annotations

from fastapi import APIRouter

from searchengine.models.registry import describe
from searchengine.stats import index_stats
from web import schemas
from web.deps import ServiceDep
from web.routes import job_status

router = APIRouter(tags=["index"])
admin_router = APIRouter(tags=["index"])


@router.get("/api/stats", response_model=schemas.Stats)
def stats(service: ServiceDep):
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
        failures=[{"path": f.path, "error": f.error} for f in store.images.failures()[:100]],
        indexing=job_status(service),
    )


@router.get("/api/health", response_model=schemas.Health)
def health(service: ServiceDep):
    """Liveness: the index opens and answers."""
    store = service.store()
    enc = store.encoder()
    return schemas.Health(
        status="ok",
        index=str(store.dir),
        images=store.images.counts().ok,
        encoder=enc.spec if enc else None,
        indexing=service.indexing,
    )


@router.get("/api/models", response_model=list[schemas.ModelInfo])
def models(service: ServiceDep):
    """Every encoder, captioner and OCR engine: licence, weights, whether they are here."""
    enc = service.store().encoder()
    return [
        schemas.ModelInfo(**m, in_use=m["kind"] == "encoder" and enc is not None and enc.name == m["name"])
        for m in describe()
    ]


@router.get("/api/index", response_model=schemas.JobStatus)
def index_status(service: ServiceDep):
    """Progress of the current (or last) index run: counts, rate and ETA."""
    return job_status(service)


@admin_router.post(
    "/api/index",
    response_model=schemas.JobStatus,
    status_code=202,
    responses={
        400: {"model": schemas.Error},
        401: {"model": schemas.Error},
        403: {"model": schemas.Error},
        409: {"model": schemas.Error, "description": "A run is already in progress"},
        503: {"model": schemas.Error, "description": "The service was started without an indexer"},
    },
)
def start_index(service: ServiceDep, request: schemas.IndexRequest | None = None):
    """Start (re)indexing an allowed folder (or all of them) in the background.

    Searches keep working meanwhile; follow progress with `GET /api/index`.
    """
    request = request or schemas.IndexRequest()
    service.start_index(request.root, retry_failed=request.retry_failed)
    return job_status(service)
