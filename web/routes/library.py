"""The asset library: your tags, collections, near duplicates, catalogue import and SEO export.

``router`` reads; ``admin_router`` changes the library (behind the API key when one is set).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Query, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import Response

from searchengine.errors import NotFound, SearchEngineError
from searchengine.export import records, render
from searchengine.metadata import import_catalogue
from searchengine.records import Filters
from searchengine.search.request import check_filters
from web import schemas
from web.deps import ImageId, ServiceDep
from web.routes import ADMIN_ERRORS, ref

router = APIRouter(tags=["library"])
admin_router = APIRouter(tags=["library"])

CollectionName = Annotated[str, PathParam(max_length=200)]
CATALOGUES = (".csv", ".tsv", ".jsonl", ".json", ".ndjson")
EXPORT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/x-ndjson",
    "jsonld": "application/ld+json",
}


def _collection_name(name: str) -> str:
    name = " ".join(name.split())
    if not name or "\x00" in name:
        raise SearchEngineError("a collection needs a name")
    return name


# -- reads ---------------------------------------------------------------------------------
@router.get("/api/collections", response_model=list[schemas.Collection])
def collections(service: ServiceDep):
    """Every collection with its size."""
    return [{"name": n, "images": c, "created_at": t} for n, c, t in service.store().library.collections()]


@router.get("/api/duplicates", response_model=list[schemas.DuplicateGroup])
def duplicates(service: ServiceDep):
    """Near-duplicate groups, found at index time (perceptual hash confirmed by embeddings)."""
    store = service.store()
    groups = store.duplicates.groups()
    recs = store.images.by_id([i for g in groups for i in g])
    return [{"images": [ref(recs[i]) for i in g if i in recs]} for g in groups]


@router.get(
    "/api/export",
    responses={
        200: {"content": {"text/csv": {}, "application/x-ndjson": {}, "application/ld+json": {}}},
        404: {"model": schemas.Error, "description": "No such collection"},
    },
)
def export(
    service: ServiceDep,
    format: Annotated[str, Query(pattern="^(csv|jsonl|jsonld)$")] = "csv",
    collection: Annotated[str | None, Query(max_length=200)] = None,
    base_url: Annotated[str | None, Query(max_length=2000)] = None,
):
    """SEO metadata of every image (alt text, title, caption, keywords, OCR text, provenance);
    an unknown collection is a 404 that lists the collections."""
    store = service.store()
    filters = Filters(collection=collection) if collection else None
    check_filters(store, filters)
    ids = store.images.filtered_ids(filters).tolist() if filters else None
    return Response(
        render(list(records(store, ids)), format, base_url),
        media_type=EXPORT_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="images.{format}"'},
    )


# -- changes (admin) -------------------------------------------------------------------------
@admin_router.post("/api/images/{image_id}/tags", response_model=list[str], responses=ADMIN_ERRORS)
def add_tags(service: ServiceDep, image_id: ImageId, body: schemas.TagsRequest):
    """Add your own tags to an image (searched by keyword, filtered with `tag`); returns its tags."""
    rec = service.record(image_id)
    service.store().library.add_tags(rec.id, [" ".join(t.split()) for t in body.tags])
    return service.store().library.user_tags(rec.id)


@admin_router.delete("/api/images/{image_id}/tags/{tag}", response_model=list[str], responses=ADMIN_ERRORS)
def remove_tag(service: ServiceDep, image_id: ImageId, tag: Annotated[str, PathParam(max_length=100)]):
    """Remove one of your tags from an image; returns its tags."""
    rec = service.record(image_id)
    if not service.store().library.remove_tags(rec.id, [tag]):
        raise NotFound(f"image {image_id} has no tag {tag!r}")
    return service.store().library.user_tags(rec.id)


@admin_router.post("/api/collections/{name}", response_model=schemas.Collection, responses=ADMIN_ERRORS)
def add_to_collection(service: ServiceDep, name: CollectionName, body: schemas.ImagesRequest):
    """Add images to a collection, creating it if new."""
    name = _collection_name(name)
    store = service.store()
    found = store.images.by_id(body.ids)
    missing = [i for i in body.ids if i not in found or found[i].status != "ok"]
    if missing:
        raise NotFound(f"not searchable images: {', '.join(map(str, missing[:20]))}")
    store.library.add_to_collection(name, body.ids)
    return next(
        {"name": n, "images": c, "created_at": t} for n, c, t in store.library.collections() if n == name
    )


@admin_router.delete("/api/collections/{name}/images/{image_id}", status_code=204, responses=ADMIN_ERRORS)
def remove_from_collection(service: ServiceDep, name: CollectionName, image_id: ImageId):
    """Take an image out of a collection."""
    if not service.store().library.remove_from_collection(name, [image_id]):
        raise NotFound(f"image {image_id} is not in collection {name!r}")


@admin_router.delete("/api/collections/{name}", status_code=204, responses=ADMIN_ERRORS)
def delete_collection(service: ServiceDep, name: CollectionName):
    """Delete a collection (its images stay indexed)."""
    if not service.store().library.delete_collection(name):
        raise NotFound(f"no collection named {name!r}")


@admin_router.post(
    "/api/import",
    response_model=schemas.ImportResult,
    responses={**ADMIN_ERRORS, 413: {"model": schemas.Error}},
)
def import_catalogue_file(
    service: ServiceDep,
    catalogue: Annotated[UploadFile, File(description="A .csv or .jsonl catalogue.")],
    image_column: Annotated[str | None, Query(max_length=200)] = None,
    dry_run: bool = False,
):
    """Attach product metadata from a catalogue to indexed images (as `searchengine import`)."""
    suffix = Path(catalogue.filename or "").suffix.lower()
    if suffix not in CATALOGUES:
        raise SearchEngineError("the catalogue must be a .csv, .tsv or .jsonl file")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(catalogue.filename).name
        path.write_bytes(catalogue.file.read())
        try:
            report = import_catalogue(service.store(), path, image_column=image_column, dry_run=dry_run)
        except UnicodeDecodeError as exc:
            raise SearchEngineError(f"the catalogue is not UTF-8 text: {exc.reason}") from None
    return schemas.ImportResult(**report.as_dict())
