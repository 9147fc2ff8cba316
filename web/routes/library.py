"""The asset library: your tags, collections, near duplicates, catalogue import and SEO export.

``router`` reads; ``admin_router`` changes the library (behind the API key when one is set).
"""

from __future__ import annotations

import tempfile
import unicodedata
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Query, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import Response

from searchengine.errors import NotFound, SearchEngineError
from searchengine.export import records, render, xmp_zip
from searchengine.forget import plan_forget
from searchengine.metadata import import_catalogue
from searchengine.records import Filters
from searchengine.search.request import check_filters
from web import schemas
from web.deps import ImageId, ServiceDep
from web.routes import ADMIN_ERRORS, ref
from web.routes.forget import ForgetResult

router = APIRouter(tags=["library"])
admin_router = APIRouter(tags=["library"])

CollectionName = Annotated[str, PathParam(max_length=200)]
CATALOGUES = (".csv", ".tsv", ".jsonl", ".json", ".ndjson")
EXPORT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/x-ndjson",
    "jsonld": "application/ld+json",
    "xmp": "application/zip",
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
    return [{"images": [_member(recs[i]) for i in g if i in recs]} for g in groups]


@router.get(
    "/api/export",
    responses={
        200: {
            "content": {
                "text/csv": {},
                "application/x-ndjson": {},
                "application/ld+json": {},
                "application/zip": {},
            }
        },
        404: {"model": schemas.Error, "description": "No such collection"},
    },
)
def export(
    service: ServiceDep,
    format: Annotated[str, Query(pattern="^(csv|jsonl|jsonld|xmp)$")] = "csv",
    collection: Annotated[str | None, Query(max_length=200)] = None,
    base_url: Annotated[str | None, Query(max_length=2000)] = None,
):
    """SEO metadata of every image (alt text, title, caption, keywords, OCR text, provenance);
    ``xmp``: a zip of one sidecar per image, named as ``searchengine export --format xmp --out``
    names them. An unknown collection is a 404 that lists the collections."""
    store = service.store()
    filters = Filters(collection=collection) if collection else None
    check_filters(store, filters)
    ids = store.images.filtered_ids(filters).tolist() if filters else None
    items = list(records(store, ids))
    body, name = (xmp_zip(items), "images-xmp.zip") if format == "xmp" else (None, f"images.{format}")
    return Response(
        body if body is not None else render(items, format, base_url),
        media_type=EXPORT_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
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
    store.library.add_to_collection(name, _searchable(service, body.ids))
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
        except SearchEngineError as exc:  # named by the upload's name, not the server's temporary copy
            raise SearchEngineError(str(exc).replace(str(path), path.name)) from None
    return schemas.ImportResult(**report.as_dict())


# -- the page's selection: many images at once (admin) ----------------------------------------
def _searchable(service, ids: list[int]) -> list[int]:
    """``ids`` without repeats, or NotFound listing those that are not searchable images."""
    found = service.store().images.by_id(ids)
    missing = [i for i in ids if i not in found or found[i].status != "ok"]
    if missing:
        more = f" and {len(missing) - 20} more" if len(missing) > 20 else ""
        raise NotFound(f"not searchable images: {', '.join(map(str, missing[:20]))}{more}")
    return list(dict.fromkeys(ids))


def _bulk_tags(service, body: schemas.BulkTagsRequest, add: bool) -> schemas.BulkTagsResult:
    tags = list(dict.fromkeys(" ".join(t.split()) for t in body.tags))
    blank = [t for t in tags if not any(unicodedata.category(c)[0] not in "CZ" for c in t)]
    if blank:
        raise SearchEngineError(f"a tag needs a visible character, not only {blank[0]!r}")
    ids = _searchable(service, body.ids)
    changed = service.store().library.tag_images(ids, add=tags if add else (), remove=() if add else tags)
    return schemas.BulkTagsResult(images=len(ids), tags=tags, changed=changed)


@admin_router.post("/api/tags", response_model=schemas.BulkTagsResult, responses=ADMIN_ERRORS)
def tag_many(service: ServiceDep, body: schemas.BulkTagsRequest):
    """Add tags to many images in one transaction (all or nothing: an unknown id is a 404 naming it)."""
    return _bulk_tags(service, body, add=True)


@admin_router.post("/api/tags/remove", response_model=schemas.BulkTagsResult, responses=ADMIN_ERRORS)
def untag_many(service: ServiceDep, body: schemas.BulkTagsRequest):
    """Remove tags (any case) from many images in one transaction; images without them are left as
    they are."""
    return _bulk_tags(service, body, add=False)


@admin_router.post(
    "/api/collections/{name}/remove", response_model=schemas.Collection, responses=ADMIN_ERRORS
)
def remove_many_from_collection(service: ServiceDep, name: CollectionName, body: schemas.ImagesRequest):
    """Take images out of a collection (they stay indexed); ids not in it are ignored."""
    store = service.store()
    current = {n: (c, t) for n, c, t in store.library.collections()}
    if name not in current:
        raise NotFound(f"no collection named {name!r}; the collections are: {', '.join(current) or 'none'}")
    store.library.remove_from_collection(name, body.ids)
    count, created = next((c, t) for n, c, t in store.library.collections() if n == name)
    return {"name": name, "images": count, "created_at": created}


@admin_router.post("/api/forget/plan", response_model=ForgetResult, responses=ADMIN_ERRORS)
def plan_forgetting(service: ServiceDep, body: schemas.FoldersRequest):
    """What ``POST /api/forget`` would remove for these folders (images, and the tags, collection
    memberships and metadata going with them); changes nothing."""
    return plan_forget(service.store(), body.folders).as_dict()


# -- duplicates review and the XMP zip (the page's Duplicates and Export) -------------------------
def _member(rec) -> schemas.DuplicateImage:
    """A group member as the duplicates view shows it: its reference, size and dimensions."""
    return schemas.DuplicateImage(
        **ref(rec).model_dump(), size=rec.size, width=rec.width, height=rec.height, format=rec.format
    )


@admin_router.post(
    "/api/duplicates/dismiss", response_model=list[schemas.DuplicateGroup], responses=ADMIN_ERRORS
)
def mark_not_duplicates(service: ServiceDep, body: schemas.NotDuplicatesRequest):
    """Mark images as not duplicates of each other (with ``image``: that one image is not a
    duplicate of any of ``ids``). Remembered by content, so the pairs never group again, after
    re-indexing or a move either; returns the groups now."""
    from searchengine.duplicates import mark_not_duplicates as mark

    mark(service.store(), body.ids, body.image)
    return duplicates(service)


@admin_router.delete(
    "/api/duplicates/dismiss", response_model=list[schemas.DuplicateGroup], responses=ADMIN_ERRORS
)
def unmark_not_duplicates(service: ServiceDep, body: schemas.NotDuplicatesRequest):
    """Undo "not duplicates" for the same images: they are grouped again where the near-duplicate
    rule finds them alike; returns the groups now."""
    from searchengine.duplicates import unmark_not_duplicates as unmark

    if not unmark(service.store(), body.ids, body.image):
        raise NotFound("these images were not marked as not duplicates")
    return duplicates(service)
