"""One indexed image: what the index knows of it, its thumbnail and its original file."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, Response

from searchengine.errors import NotFound, UnsupportedImage
from searchengine.imaging import MEDIA_TYPES
from searchengine.records import ImageRecord
from web import schemas
from web.deps import ImageId, ServiceDep
from web.routes import ERRORS, ref, urls
from web.service import Service

router = APIRouter(tags=["images"])
SERVED = {**ERRORS, 403: {"model": schemas.Error}}


def _iso(ns: int) -> str:
    try:
        return datetime.fromtimestamp(ns / 1e9).astimezone().isoformat(timespec="seconds")
    except (OverflowError, ValueError, OSError):  # a file dated outside what the OS can show
        return ""


def detail(service: Service, rec: ImageRecord) -> schemas.ImageDetail:
    """Everything the index knows of one image: file facts, text, library, duplicates.

    :raises Forbidden: the file leads outside every indexed folder (see :meth:`Service.check_inside`).
    """
    service.check_inside(rec, "its facts and text are not served")
    store = service.store()
    text = store.text.of(rec.id).as_dict()
    library = store.library.of(rec.id)
    return schemas.ImageDetail(
        id=rec.id,
        path=rec.path,
        name=os.path.basename(rec.path),
        folder=rec.path.rsplit("/", 1)[0],
        root=rec.root,
        status=rec.status,
        error=rec.error,
        size=rec.size,
        modified=_iso(rec.mtime_ns),
        width=rec.width,
        height=rec.height,
        format=rec.format,
        sha256=rec.sha256,
        **text,
        metadata=library.metadata,
        metadata_sources=library.metadata_sources,
        user_tags=list(library.user_tags),
        collections=list(library.collections),
        duplicates=[ref(r) for r in store.images.by_id(library.duplicates).values()],
        **urls(rec.id),
    )


@router.get("/api/images/lookup", response_model=schemas.ImageDetail, responses=SERVED)
def image_by_path(
    service: ServiceDep,
    path: Annotated[str, Query(max_length=4096, description="An indexed file's path.")],
):
    """What the index knows of the image at exactly this indexed path."""
    rec = service.store().images.by_path(path) if "\x00" not in path else None
    if rec is None:
        raise NotFound("no indexed image has this path")
    return detail(service, rec)


@router.get("/api/images/{image_id}", response_model=schemas.ImageDetail, responses=SERVED)
def image(service: ServiceDep, image_id: ImageId):
    """File facts, caption, tags and OCR lines (with boxes) of one image."""
    return detail(service, service.record(image_id))


@router.get(
    "/api/images/{image_id}/thumbnail",
    response_class=FileResponse,
    responses={**SERVED, 200: {"content": {"image/webp": {}}}, 503: {"model": schemas.Error}},
)
def thumbnail(
    service: ServiceDep,
    image_id: ImageId,
    size: Annotated[int, Query(ge=16, le=1024, description="Longest side in pixels.")] = 256,
):
    """A WebP thumbnail, made on first request and cached with the index (503: busy decoding others).

    Shared caches may keep it only when anyone may read it: behind a key it is ``private``.
    """
    rec = service.record(image_id)
    try:
        thumb = service.thumbnail(rec, size)
    except UnsupportedImage as exc:
        raise NotFound(f"image {image_id} cannot be read any more ({exc}): re-index its folder") from None
    settings = service.settings
    who = "private" if settings.api_key and not settings.public_reads else "public"
    headers = {"Cache-Control": f"{who}, max-age=86400, immutable"}
    if isinstance(thumb, bytes):  # the index folder cannot hold it (read-only, disk full)
        return Response(thumb, media_type="image/webp", headers=headers)
    return FileResponse(thumb, media_type="image/webp", headers=headers)


@router.get(
    "/api/images/{image_id}/file",
    response_class=FileResponse,
    responses={**SERVED, 200: {"content": {"image/*": {}}}},
)
def original(service: ServiceDep, image_id: ImageId):
    """The original file, as indexed (only files inside an indexed folder are served)."""
    rec = service.record(image_id)
    path = service.servable(rec)
    return FileResponse(
        path,
        media_type=MEDIA_TYPES.get(rec.format or "", "application/octet-stream"),
        filename=os.path.basename(rec.path),
        content_disposition_type="inline",
    )
