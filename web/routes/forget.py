"""Forget folders: take their images out of the index (as ``searchengine forget``).

One admin route (behind the API key when one is set). It holds the index's writer lock
(:meth:`web.service.Service.writer`), so it never races an index run; when the images
carry user data (tags, collection memberships, imported metadata) it needs
``"confirm": true``, and answers 409 with the counts otherwise, so a client can ask.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints, field_validator

from searchengine.forget import NeedsConfirmation, forget
from web import schemas
from web.deps import ServiceDep
from web.routes import ADMIN_ERRORS

admin_router = APIRouter(tags=["library"])

Folder = Annotated[str, StringConstraints(min_length=1, max_length=4096)]


class ForgetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    folders: list[Folder] = Field(min_length=1, max_length=100, description="Folders whose images go.")
    confirm: StrictBool = Field(False, description="Let the images' tags, collections and metadata go.")
    agreed: int | None = Field(
        None,
        ge=0,
        le=2**53,
        description="With confirm: how many images with user data the plan you confirmed showed "
        "(POST /api/forget/plan); if more have user data now, nothing changes and the answer is 409.",
    )

    @field_validator("folders")
    @classmethod
    def _no_nul(cls, value: list[str]) -> list[str]:
        if any("\x00" in v for v in value):
            raise ValueError("must not contain NUL characters")
        return value


class FolderCount(BaseModel):
    folder: str
    images: int


class ComesBack(BaseModel):
    folder: str = Field(description="A forgotten folder still on disk ...")
    root: str = Field(description="... inside this indexed folder: indexing it adds the images back.")


class ForgetResult(BaseModel):
    """What was (or, with 409, would be) forgotten."""

    images: int
    folders: list[FolderCount]
    tagged: int = Field(description="Images that had your tags.")
    in_collections: int = Field(description="Images that were in a collection.")
    with_metadata: int = Field(description="Images that had imported metadata.")
    with_user_data: int = Field(description="Images that had any of the three.")
    handed_over: int = Field(description="Images whose user data moved to their one copy indexed elsewhere.")
    comes_back: list[ComesBack]
    everything: bool = Field(description="No image is (or would be) left in the index.")


class NeedsConfirm(ForgetResult):
    detail: str


@admin_router.post(
    "/api/forget",
    response_model=ForgetResult,
    responses={
        **ADMIN_ERRORS,
        404: {"model": schemas.Error, "description": "Nothing is indexed under a folder"},
        409: {
            "model": NeedsConfirm | schemas.Error,
            "description": "User data or every image would go (send confirm: true), or an index run "
            "is in progress",
        },
    },
)
def forget_folders(service: ServiceDep, body: ForgetRequest):
    """Remove every image under the folders from the index, on disk or not (files are not touched).

    Other images, tags, collections and metadata stay; the forgotten images' own user data
    goes with them.
    """
    with service.writer():
        try:
            plan = forget(service.store(), body.folders, confirmed=body.confirm, agreed=body.agreed)
        except NeedsConfirmation as exc:
            return JSONResponse({"detail": str(exc), **exc.plan.as_dict()}, status_code=409)
    return plan.as_dict()
