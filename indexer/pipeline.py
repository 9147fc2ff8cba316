"""Bring an index in step with a folder: embed, read and caption what is new or changed.

Incremental by (size, mtime) first and content hash second: an unchanged file
costs one ``stat``; a touched file with the same bytes costs one hash; a moved or
copied file reuses the stored vector; only new content reaches the encoder. A
stage switched on later (OCR, captions) runs on the images that lack it and
nothing else. Every batch is committed in one SQLite transaction, so a killed run
resumes where it stopped, with no duplicate or lost rows.

Stages overlap: worker threads hash, decode and OCR the next batch (onnxruntime
releases the GIL) while the main thread embeds and captions the current one.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from indexer.scan import FileInfo, ScanProblems, scan, visible
from searchengine.config import Settings
from searchengine.duplicates import (
    PHASH_STAGE,
    PHASH_TOOL,
    DuplicateRule,
    perceptual_hash,
    regroup,
)
from searchengine.errors import SearchEngineError, UnsupportedImage
from searchengine.imaging import WORKING_SIDE, load_image
from searchengine.models.base import Embedder
from searchengine.models.ocr import OCR_SIDE
from searchengine.records import Caption, OcrResult
from searchengine.store.db import ImageWrite, Store
from searchengine.store.vectors import VectorIndex

log = logging.getLogger(__name__)

Progress = Callable[[int], None]


@dataclass
class IndexReport:
    """What one run did, for the CLI and tests."""

    root: str
    scanned: int = 0
    unchanged: int = 0
    touched: int = 0
    reused: int = 0
    embedded: int = 0
    failed: int = 0
    deleted: int = 0
    ocr: int = 0
    captioned: int = 0
    stage_failures: int = 0
    seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def processed(self) -> int:
        return self.touched + self.reused + self.embedded + self.failed


@dataclass(frozen=True)
class Job:
    """One file to work on: new content (``embed``) and/or stages it lacks."""

    info: FileInfo
    stored_sha: str | None = None
    embed: bool = True
    stages: frozenset[str] = frozenset()
    missing_if_same: frozenset[str] = frozenset()


@dataclass
class _Prepared:
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


#: Stages whose outputs a moved or copied file takes from another copy (the hash is recomputed).
COPIED_STAGES = ("ocr", "caption")


def _sha256(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


class Indexer:
    """Indexes folders into one store with one encoder, plus optional OCR and captions.

    :param captioner: an object with ``id`` and ``caption(images, texts)``, or None.
    :param ocr: an object with ``id`` and ``read(image, scale)``, or None.
    :param batch_size: images embedded (and committed) together.
    :param max_pixels: larger images are recorded as failed.
    :param workers: threads hashing, decoding and reading text ahead of the model.
    :param duplicates: how near-duplicate groups are found after each run: "index" (the
        thresholds the index was last grouped with, else the defaults), a rule, or None (not).
    """

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        *,
        captioner: Any = None,
        ocr: Any = None,
        batch_size: int = 16,
        max_pixels: int = 100_000_000,
        workers: int = 2,
        duplicates: DuplicateRule | str | None = "index",
    ) -> None:
        self.store, self.embedder = store, embedder
        self.captioner, self.ocr = captioner, ocr
        self.batch_size, self.max_pixels, self.workers = batch_size, max_pixels, workers
        self.tools = {PHASH_STAGE: PHASH_TOOL}  # cheap, always on: near-duplicate detection
        self.tools.update({s: t.id for s, t in (("ocr", ocr), ("caption", captioner)) if t is not None})
        self.duplicates = DuplicateRule.of_index(store) if duplicates == "index" else duplicates

    @classmethod
    def from_settings(cls, store: Store, settings: Settings, model: str | None = None) -> Indexer:
        """Build an indexer with the backends ``settings`` name.

        The encoder is ``model`` if given, else the index's own, else ``settings.model``,
        else the best one present offline. Every backend is created here, so a bad
        name fails before any work.
        """
        from searchengine.models import registry

        recorded = store.encoder()
        spec = model or (recorded.spec if recorded else settings.model or registry.default_spec())
        return cls(
            store,
            registry.create_embedder(spec, store.dir),
            captioner=registry.create_captioner(settings.captioner),
            ocr=registry.create_ocr(settings.ocr),
            batch_size=settings.batch_size,
            max_pixels=settings.max_pixels,
        )

    def plan(self, root: str | Path, retry_failed: bool = False) -> tuple[list[Job], list[str], IndexReport]:
        """Scan ``root``; return the jobs, the paths that are gone, and the report so far."""
        root_path = Path(root).expanduser().resolve()
        if not root_path.is_dir():
            raise SearchEngineError(f"not a folder: {root}")
        report = IndexReport(root=str(root_path))
        existing = self.store.rows_under(str(root_path))
        self._donors = self.store.text_tools_by_hash()  # read-only for the workers
        done = self.store.stages_under(str(root_path))
        todo: list[Job] = []
        seen: set[str] = set()
        problems = ScanProblems()
        for info in scan(root_path, problems):
            seen.add(info.path)
            row = existing.get(info.path)
            have = done.get(info.path, {})
            missing = {
                s
                for s, tool in self.tools.items()
                if s not in have or have[s][0] != tool or (retry_failed and have[s][1])
            }
            if "ocr" in missing and "caption" in self.tools:
                missing.add("caption")  # captions quote the OCR text: redo them with it
            missing = frozenset(missing)
            unchanged = row is not None and row.size == info.size and row.mtime_ns == info.mtime_ns
            if unchanged and row.status == "failed" and not retry_failed:
                report.unchanged += 1
            elif unchanged and row.status == "ok":
                report.unchanged += 1
                if missing:
                    todo.append(Job(info, row.sha256, embed=False, stages=missing))
            else:
                stored = row.sha256 if row and row.status == "ok" else None
                todo.append(
                    Job(
                        info,
                        stored,
                        embed=True,
                        stages=frozenset(self.tools),
                        missing_if_same=missing,
                    )
                )
        if str(root_path) in problems.unlisted:
            raise SearchEngineError(f"cannot list folder {root_path}: check its permissions")
        report.scanned = len(seen)
        report.failures.extend(
            (name, "file name is not valid UTF-8: rename it") for name in problems.bad_names
        )
        gone = sorted(
            path
            for path in set(existing) - seen
            # keep what this scan could not see: unlisted folders, hidden ones indexed directly
            if visible(path[len(str(root_path)) + 1 :])
            and not any(path.startswith(d + "/") for d in problems.unlisted)
        )
        return todo, gone, report

    def run(
        self,
        root: str | Path,
        *,
        retry_failed: bool = False,
        progress: Progress | None = None,
        on_plan: Callable[[IndexReport, int], None] | None = None,
    ) -> IndexReport:
        """Index ``root`` and refresh the vector index.

        :param progress: called with the number of files finished, after each batch.
        :param on_plan: called once with the report so far and the number of files to do.
        :raises IndexMismatch: the store was built with another encoder.
        """
        started = time.perf_counter()
        self.store.bind_encoder(self.embedder.id)
        todo, gone, report = self.plan(root, retry_failed)
        if any(job.embed for job in todo):
            self.embedder.load()
        if on_plan:
            on_plan(report, len(todo))
        batches = [todo[i : i + self.batch_size] for i in range(0, len(todo), self.batch_size)]
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="prepare") as pool:

            def submit(batch: list[Job]) -> list:
                return [pool.submit(self._prepare_one, job) for job in batch]

            pending = submit(batches[0]) if batches else []
            for i in range(len(batches)):
                current = [f.result() for f in pending]
                pending = submit(batches[i + 1]) if i + 1 < len(batches) else []
                self._commit(current, report)
                if progress:
                    progress(len(current))
        # Deleting last lets a moved file reuse the vector of its old path.
        report.deleted = self.store.delete_paths(gone)
        VectorIndex.open(self.store, self.embedder.id.dim)
        if self.duplicates is not None and (todo or gone or not self.duplicates.is_stored(self.store)):
            regroup(self.store, self.duplicates)
        report.seconds = time.perf_counter() - started
        return report

    # -- worker stages: hash, decode, OCR (no database access) ------------------
    def _prepare_one(self, job: Job) -> _Prepared:
        item = _Prepared(job, embed=job.embed, stages=set(job.stages))
        if job.embed:
            try:
                item.sha256 = _sha256(job.info.path)
            except OSError as exc:
                item.error = f"unreadable: {exc.strerror or exc}"
                return item
            if job.stored_sha == item.sha256:
                item.same_content, item.embed, item.stages = True, False, set(job.missing_if_same)
            else:  # a moved or copied file: take the text another copy already has
                donor = self._donors.get(item.sha256, {})
                item.copy_stages = {
                    s: t
                    for s, t in self.tools.items()
                    if s in item.stages and s in COPIED_STAGES and donor.get(s) == t
                }
                if "ocr" in item.stages and "ocr" not in item.copy_stages:
                    item.copy_stages.pop("caption", None)
                item.stages -= set(item.copy_stages)
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
            try:
                item.ocr = self.ocr.read(image, scale=item.facts["width"] / image.width)
            except Exception as exc:  # noqa: BLE001 - one image's OCR failure is recorded
                log.warning("OCR failed on %s: %s", job.info.path, exc)
                item.stage_errors["ocr"] = f"OCR failed: {exc}"
        if max(image.size) > WORKING_SIDE:
            image.thumbnail((WORKING_SIDE, WORKING_SIDE), Image.Resampling.BICUBIC)
        if PHASH_STAGE in item.stages:
            try:
                item.phash = perceptual_hash(image)
            except Exception as exc:  # noqa: BLE001 - recorded like any stage failure
                item.stage_errors[PHASH_STAGE] = f"hashing failed: {exc}"
        item.image = image
        return item

    # -- model stages (main thread) and the commit -------------------------------
    def _commit(self, items: list[_Prepared], report: IndexReport) -> None:
        """Embed and caption what needs it, then write the batch in one transaction."""
        for it in items:
            if it.embed and it.image is not None and it.sha256:
                it.vector = self.store.vector_for_hash(it.sha256)  # moved or copied file
                it.reused = it.vector is not None
        need = [it for it in items if it.embed and it.image is not None and it.vector is None]
        for it, vec in zip(
            need, self._guarded(self.embedder.embed_images, [it.image for it in need]), strict=True
        ):
            if isinstance(vec, str):
                it.error = f"embedding failed: {vec}"
            else:
                it.vector = np.asarray(vec, dtype=np.float32).tobytes()
        self._caption(
            [
                it
                for it in items
                if "caption" in it.stages
                and it.image is not None
                and not it.error
                and "caption" not in it.stage_errors
            ]
        )
        writes = [self._write_for(it, report) for it in items]
        self.store.write_batch([w for w in writes if w is not None])

    def _caption(self, items: list[_Prepared]) -> None:
        if not items:
            return
        stored = self.store.ocr_texts([it.job.info.path for it in items if it.ocr is None])
        # stored text belongs to the stored content: use it only when the content is unchanged
        texts = [
            it.ocr.text if it.ocr is not None else "" if it.embed else stored.get(it.job.info.path, "")
            for it in items
        ]
        results = self._guarded(
            lambda pairs: self.captioner.caption([p[0] for p in pairs], [p[1] for p in pairs]),
            list(zip([it.image for it in items], texts, strict=True)),
        )
        for it, cap in zip(items, results, strict=True):
            if isinstance(cap, str):
                it.stage_errors["caption"] = f"captioning failed: {cap}"
            else:
                it.caption = cap

    def _write_for(self, it: _Prepared, report: IndexReport) -> ImageWrite | None:
        info = it.job.info
        stages = {s: (self.tools[s], it.stage_errors.get(s)) for s in it.stages}
        if it.error is None:
            report.ocr += int(it.ocr is not None)
            report.captioned += int(it.caption is not None)
            report.stage_failures += len(it.stage_errors)
        if not it.embed and not it.error:
            if it.same_content:
                self.store.touch(info.path, info.size, info.mtime_ns)
                report.touched += 1
            if not stages:
                return None
            return ImageWrite(info.path, ocr=it.ocr, caption=it.caption, phash=it.phash, stages=stages)
        row = {
            "path": info.path,
            "root": report.root,
            "sha256": it.sha256,
            "size": info.size,
            "mtime_ns": info.mtime_ns,
            "width": it.facts.get("width"),
            "height": it.facts.get("height"),
            "format": it.facts.get("format"),
            "status": "ok",
            "error": None,
        }
        if it.error:
            row.update(status="failed", error=it.error)
            report.failed += 1
            report.failures.append((info.path, it.error))
            return ImageWrite(info.path, row=row, reset=True)
        if it.reused:
            report.reused += 1
        else:
            report.embedded += 1
        return ImageWrite(
            info.path,
            row=row,
            vector=it.vector,
            reset=True,
            ocr=it.ocr,
            caption=it.caption,
            phash=it.phash,
            stages=stages,
            copy_stages=it.copy_stages,
        )

    @staticmethod
    def _guarded(fn: Callable[[list], Sequence], inputs: list) -> list:
        """Run a batch model call; if it fails, retry one by one to isolate the bad input.

        Returns one result per input, or the error message (str) for inputs that fail.
        """
        if not inputs:
            return []
        try:
            return list(fn(inputs))
        except Exception as exc:  # noqa: BLE001 - a backend error must not end the run
            if len(inputs) == 1:
                log.warning("model call failed: %s", exc)
                return [str(exc) or exc.__class__.__name__]
        return [Indexer._guarded(fn, [x])[0] for x in inputs]
