"""The API's routers, one per area (tag): search, images, library, index.

Each module has a ``router``; the library and index areas also have an
``admin_router`` for what changes the index, which the app includes behind the
API key when one is set (see :func:`web.deps.admin_dependencies`).
"""

from __future__ import annotations

import os

from searchengine.records import ImageRecord
from web import schemas
from web.service import Service

ERRORS: dict[int | str, dict] = {
    400: {"model": schemas.Error, "description": "Bad request"},
    404: {"model": schemas.Error, "description": "Not found"},
    409: {"model": schemas.Error, "description": "The index is empty or built with another encoder"},
}
ADMIN_ERRORS: dict[int | str, dict] = {**ERRORS, 401: {"model": schemas.Error}}


def urls(image_id: int) -> dict[str, str]:
    """Where the API serves an image's thumbnail and original file."""
    return {"thumbnail": f"/api/images/{image_id}/thumbnail", "file": f"/api/images/{image_id}/file"}


def ref(rec: ImageRecord) -> schemas.Ref:
    """A short reference to an indexed image, with its URLs."""
    return schemas.Ref(id=rec.id, name=os.path.basename(rec.path), path=rec.path, **urls(rec.id))


def job_status(service: Service) -> schemas.JobStatus:
    """The current (or last) index run, as the API reports it."""
    job = service.job()
    return schemas.JobStatus(**{k: getattr(job, k) for k in schemas.JobStatus.model_fields})
