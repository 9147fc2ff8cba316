"""The worker stages of an index run: hash, decode, OCR and perceptual hash, off the main thread.

They touch no database (onnxruntime releases the GIL, so OCR overlaps the model
stages of the previous batch). A failure here belongs to one file, except running
out of memory, which stops the run (:class:`SystemicFailure`).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from indexer.plan import Job
from searchengine.duplicates import PHASH_STAGE, perceptual_hash
from searchengine.errors import SystemicFailure, UnsupportedImage
from searchengine.imaging import WORKING_SIDE, load_image
from searchengine.models.ocr import OCR_SIDE
from searchengine.records import Caption, OcrResult

log = logging.getLogger(__name__)

#: Stages whose outputs a moved or copied file takes from another copy (the hash is recomputed).
COPIED_STAGES = ("ocr", "caption")


@dataclass
class Prepared:
    """A file after the worker stages (hash, decode, OCR), before the model stages."""

    job: Job
    embed: bool = False
    stages: set[str] = field(default_factory=set)
    sha256: str | None = None
    image: Image.Image | None = None
    facts: dict = field(default_factory=dict)
    vector: bytes | None = None
    error: str | None = None
    same_content: bool = False
    reused: bool = False
    copy_stages: dict[str, str] = field(default_factory=dict)
    ocr: OcrResult | None = None
    caption: Caption | None = None
    phash: str | None = None
    stage_errors: dict[str, str] = field(default_factory=dict)
    ocr_crashed: bool = False  # the OCR engine raised (as opposed to an unreadable image)


def sha256_of(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


class Preparer:
    """Runs the worker stages of one job.

    :param tools: stage -> tool id of this run.
    :param donors: sha256 -> stage -> tool of the outputs stored for that content
        (a moved or copied file takes them instead of computing them again).
    """

    def __init__(self, tools: dict[str, str], donors: dict[str, dict[str, str]], ocr: Any, max_pixels: int):
        self.tools, self.donors, self.ocr, self.max_pixels = tools, donors, ocr, max_pixels

    def __call__(self, job: Job) -> Prepared:
        item = Prepared(job, embed=job.embed, stages=set(job.stages))
        if job.error is not None:  # skipped by the scan: recorded, never opened
            item.error, item.stages = job.error, set()
            return item
        if job.embed and not self._hash(item):
            return item
        if not (item.embed or item.stages):
            return item
        side = OCR_SIDE if "ocr" in item.stages else WORKING_SIDE
        try:
            image, item.facts = load_image(job.info.path, self.max_pixels, max_side=side)
        except UnsupportedImage as exc:
            if item.embed:
                item.error = str(exc)
            else:
                item.stage_errors.update({s: str(exc) for s in item.stages})
            return item
        if "ocr" in item.stages:
            self._read(item, image)
        if max(image.size) > WORKING_SIDE:
            image.thumbnail((WORKING_SIDE, WORKING_SIDE), Image.Resampling.BICUBIC)
        if PHASH_STAGE in item.stages:
            try:
                item.phash = perceptual_hash(image)
            except MemoryError as exc:
                raise SystemicFailure("out of memory while hashing images: the run stopped") from exc
            except Exception as exc:  # noqa: BLE001 - recorded like any stage failure
                item.stage_errors[PHASH_STAGE] = f"hashing failed: {exc}"
        item.image = image
        return item

    def _hash(self, item: Prepared) -> bool:
        """Hash the file; decide what same or moved content spares. False: unreadable."""
        try:
            item.sha256 = sha256_of(item.job.info.path)
        except OSError as exc:
            item.error = f"unreadable: {exc.strerror or exc}"
            return False
        if item.job.stored_sha == item.sha256:
            item.same_content, item.embed, item.stages = True, False, set(item.job.missing_if_same)
            return True
        donor = self.donors.get(item.sha256, {})  # a moved or copied file: take the text another copy has
        item.copy_stages = {
            s: t
            for s, t in self.tools.items()
            if s in item.stages and s in COPIED_STAGES and donor.get(s) == t
        }
        if "ocr" in item.stages and "ocr" not in item.copy_stages:
            item.copy_stages.pop("caption", None)
        item.stages -= set(item.copy_stages)
        return True

    def _read(self, item: Prepared, image: Image.Image) -> None:
        try:
            item.ocr = self.ocr.read(image, scale=item.facts["width"] / image.width)
        except MemoryError as exc:
            raise SystemicFailure("out of memory while reading text: the run stopped") from exc
        except Exception as exc:  # noqa: BLE001 - one image's OCR failure is recorded
            log.warning("OCR failed on %s: %s", item.job.info.path, exc)
            item.stage_errors["ocr"] = f"OCR failed: {exc}"
            item.ocr_crashed = True
