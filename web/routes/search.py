"""Search by text, by an indexed image, by an uploaded image; and what searches can filter by."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, File, HTTPException, Query, UploadFile

from searchengine.errors import ImageTooLarge, UnsupportedImage
from searchengine.search import build_request
from web import schemas
from web.deps import ServiceDep
from web.routes import ERRORS, urls
from web.service import Service

router = APIRouter(tags=["search"])


def run_search(service: Service, params: schemas.SearchParams, image=None) -> schemas.SearchResponse:
    """Run one search (the query image, if any, already decoded) and shape its page for the API."""
    started = time.perf_counter()
    request = build_request(
        params.q,
        image=image,
        like=params.like,
        limit=params.limit,
        offset=params.offset,
        mode=params.mode,
        fusion=params.fusion,
        rrf_k=params.rrf_k,
        vector_weight=params.vector_weight,
        keyword_weight=params.keyword_weight,
        min_score=params.min_score,
        facets=params.facet,
        facet_top=params.facet_limit,
        explain=params.explain,
        folder=params.folder,
        types=params.type,
        after=params.after,
        before=params.before,
        min_size=params.min_size,
        max_size=params.max_size,
        tags=params.tag,
        where=params.where,
        collection=params.collection,
    )
    page = service.engine(need_encoder=request.needs_encoder).run(request)
    return schemas.SearchResponse(
        query=params.q,
        image_query=image is not None,
        like=params.like,
        mode=page.mode,
        fusion=page.fusion,
        encoder=page.encoder,
        total=page.total,
        offset=page.offset,
        limit=page.limit,
        cutoff=round(page.cutoff, 6) if page.cutoff > -1 else None,
        took_ms=round((time.perf_counter() - started) * 1000, 1),
        facets={k: [schemas.Count(value=v, count=n) for v, n in c] for k, c in page.facets.items()},
        results=[schemas.Hit(**h.as_dict(), **urls(h.id)) for h in page.hits],
    )


@router.get("/api/search", response_model=schemas.SearchResponse, responses=ERRORS)
def search(service: ServiceDep, params: Annotated[schemas.SearchParams, Query()]):
    """Search by text, by an indexed image (`like`), or both, fused into one explained ranking."""
    return run_search(service, params)


@router.post(
    "/api/search",
    response_model=schemas.SearchResponse,
    responses={
        **ERRORS,
        413: {"model": schemas.Error},
        415: {"model": schemas.Error},
        503: {"model": schemas.Error, "description": "Busy decoding other images: try again shortly"},
    },
)
def search_by_image(
    service: ServiceDep,
    params: Annotated[schemas.SearchParams, Query()],
    image: Annotated[UploadFile, File(description="An image to find similar ones to.")],
):
    """Search with an uploaded image (alone, or with `q`: "like this, but red")."""
    try:
        limit = min(service.settings.max_upload_pixels, service.settings.max_pixels)  # SE_MAX_PIXELS too
        query_image, _ = service.decode(image.file, limit)
    except UnsupportedImage as exc:
        status = 413 if isinstance(exc, ImageTooLarge) else 415
        raise HTTPException(status, f"the upload cannot be used as a query image: {exc}") from None
    return run_search(service, params, image=query_image)


@router.get("/api/filters", response_model=schemas.FilterOptions)
def filters(service: ServiceDep):
    """What searches can be filtered by: folders, types and tags, with image counts."""
    store = service.store()
    facets = store.text.filter_options()
    return schemas.FilterOptions(
        folders=[{"value": v, "count": n} for v, n in facets["folders"]],
        types=[{"value": v, "count": n} for v, n in facets["formats"]],
        tags=[{"value": v, "count": n} for v, n in facets["tags"]],
        fields=[
            {"key": k, "images": n, "distinct": d, "numeric": num > n / 2, "min": lo, "max": hi}
            for k, n, d, num, lo, hi in store.library.metadata_fields()
        ],
        collections=[{"value": name, "count": n} for name, n, _ in store.library.collections()],
    )
