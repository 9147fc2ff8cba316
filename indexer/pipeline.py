"""Bring an index in step with a folder: embed, read and caption what is new or changed.

:mod:`indexer.plan` decides what to do, :mod:`indexer.prepare` hashes, decodes and
reads text in worker threads, and this module runs the model stages (embedding,
captions) on the main thread and writes each batch in one SQLite transaction, so a
killed run resumes where it stopped, with no duplicate or lost rows. A moved or
copied file reuses the stored vector; only new content reaches the encoder.

A failure that belongs to one file (it cannot be decoded, the model refuses it) is
recorded for that file and the run goes on. A failure of the machine or a backend
(out of memory; a model or OCR engine that fails on every image of a batch and then
on a plain test image too) stops the run with :class:`SystemicFailure`, before that
batch is written: recording it per file would mark good images failed for good.

A run holds the index folder's lock (:mod:`searchengine.store.lock`): a second run on
the same index is refused at once. Each batch commit also marks the near-duplicate
groups pending, and regrouping clears the mark, so a run that dies between its last
commit and regrouping is finished by the next run, even one with nothing else to do.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from indexer.plan import IndexReport, Job, plan_run
from indexer.prepare import Prepared, Preparer
from searchengine import derived
from searchengine.config import Settings
from searchengine.duplicates import PHASH_STAGE, PHASH_TOOL, DuplicateRule
from searchengine.errors import ModelNotFound, SystemicFailure
from searchengine.models.base import Embedder
from searchengine.store.db import Store
from searchengine.store.images import ImageWrite
from searchengine.store.lock import IndexLock

log = logging.getLogger(__name__)

Progress = Callable[[int], None]
#: Exceptions that are never one input's fault.
SYSTEMIC = (MemoryError, ModelNotFound, SystemicFailure)

__all__ = ["IndexReport", "Indexer", "Job", "guarded"]


def guarded(what: str, fn: Callable[[list], Sequence], inputs: list, probe: Any = None) -> list:
    """Run a batch model call; if it fails, retry one by one to isolate the bad input.

    Returns one result per input, or the error message (str) for inputs that fail.

    :param probe: an input the backend must accept (a plain small image): when every
        one of two or more inputs fails alone, the backend is tried on it; failing on
        it too means the backend is broken, not the inputs.
    :raises SystemicFailure: a systemic exception, or a backend that fails on the probe.
    """
    if not inputs:
        return []
    try:
        return list(fn(inputs))
    except SYSTEMIC as exc:
        raise SystemicFailure(
            f"{what} failed: {exc}; the run stopped, nothing of this batch was recorded"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - isolated below
        if len(inputs) == 1:
            log.warning("%s failed: %s", what, exc)
            return [str(exc) or exc.__class__.__name__]
    out = [guarded(what, fn, [x])[0] for x in inputs]
    if probe is not None and all(isinstance(r, str) for r in out):
        backend_works(what, lambda: fn([probe]), out[0])
    return out


def backend_works(what: str, call: Callable[[], Any], seen: str) -> None:
    """Try a backend on a known-good input after it failed on a whole batch.

    :raises SystemicFailure: it fails there too.
    """
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - any failure on the probe is the backend's
        raise SystemicFailure(
            f"{what} failed on every image of a batch ({seen}) and on a plain test image ({exc}): "
            "the backend is broken, not the images. The run stopped and nothing of this batch was "
            "recorded; fix it and run again."
        ) from exc


def probe_image() -> Image.Image:
    """A plain image every backend must accept."""
    return Image.new("RGB", (64, 64), (128, 128, 128))


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
        plan = plan_run(self.store, root, self.tools, retry_failed)
        return plan.jobs, plan.gone, plan.report

    def run(
        self,
        root: str | Path,
        *,
        retry_failed: bool = False,
        progress: Progress | None = None,
        on_plan: Callable[[IndexReport, int], None] | None = None,
    ) -> IndexReport:
        """Index ``root`` and refresh the derived structures (FAISS, duplicate groups).

        Holds the index folder's lock throughout (:class:`~searchengine.store.lock.IndexLock`),
        so a second run on the same index is refused instead of doing the same work again.

        :param progress: called with the number of files finished, after each batch.
        :param on_plan: called once with the report so far and the number of files to do.
        :raises IndexBusy: another process is updating this index.
        :raises IndexMismatch: the store was built with another encoder.
        :raises SearchEngineError: the database is damaged (nothing is written).
        :raises SystemicFailure: the machine or a backend failed; what was committed stays.
        """
        with IndexLock(self.store.dir):
            return self._run(root, retry_failed, progress, on_plan)

    def _run(
        self,
        root: str | Path,
        retry_failed: bool,
        progress: Progress | None,
        on_plan: Callable[[IndexReport, int], None] | None,
    ) -> IndexReport:
        started = time.perf_counter()
        self.store.ensure_sound()
        self.store.bind_encoder(self.embedder.id)
        todo, gone, report = self.plan(root, retry_failed)
        if any(job.embed for job in todo):
            self.embedder.load()
        if on_plan:
            on_plan(report, len(todo))
        prepare = Preparer(self.tools, self.store.images.text_tools_by_hash(), self.ocr, self.max_pixels)
        batches = [todo[i : i + self.batch_size] for i in range(0, len(todo), self.batch_size)]
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="prepare") as pool:
            pending = [pool.submit(prepare, job) for job in batches[0]] if batches else []
            for i in range(len(batches)):
                current = [f.result() for f in pending]
                pending = (
                    [pool.submit(prepare, job) for job in batches[i + 1]] if i + 1 < len(batches) else []
                )
                self._commit(current, report)
                derived.keep_up_midway(self.store, self.embedder.id.dim)
                if progress:
                    progress(len(current))
        # Deleting last lets a moved file reuse the vector of its old path.
        with self.store.writing():
            report.deleted = self.store.images.delete_paths(gone)
            if report.deleted:
                self.store.duplicates.mark_pending()
        # Due after any commit above, and after a run that died before regrouping: the
        # pending mark outlives the process, so this run regroups even with nothing to do.
        regroup = self.duplicates is not None and (
            self.store.duplicates.pending() or not self.duplicates.is_stored(self.store)
        )
        derived.refresh(self.store, self.embedder.id.dim, self.duplicates if regroup else None)
        report.seconds = time.perf_counter() - started
        return report

    # -- model stages (main thread) and the commit -------------------------------
    def _commit(self, items: list[Prepared], report: IndexReport) -> None:
        """Embed and caption what needs it, then write the batch in one transaction.

        :raises SystemicFailure: see :func:`guarded`; also when OCR crashed on every image of
            a batch that read two or more.
        """
        read = [it for it in items if "ocr" in it.stages and it.image is not None]
        if len(read) >= 2 and all(it.ocr_crashed for it in read):
            backend_works("OCR", lambda: self.ocr.read(probe_image(), scale=1.0), read[0].stage_errors["ocr"])
        for it in items:
            if it.embed and it.image is not None and it.sha256:
                it.vector = self.store.embeddings.for_hash(it.sha256)  # moved or copied file
                it.reused = it.vector is not None
        need = [it for it in items if it.embed and it.image is not None and it.vector is None]
        for it, vec in zip(
            need,
            guarded("embedding", self.embedder.embed_images, [it.image for it in need], probe_image()),
            strict=True,
        ):
            if isinstance(vec, str):
                it.error = f"embedding failed: {vec}"
            else:
                it.vector = np.asarray(vec, dtype=np.float32).tobytes()
        self._caption([it for it in items if self._wants_caption(it)])
        writes = [w for w in (self._write_for(it, report) for it in items) if w is not None]
        with self.store.writing():  # the groups are due again, recorded with the change itself
            self.store.images.write_batch(writes)
            if writes:
                self.store.duplicates.mark_pending()

    @staticmethod
    def _wants_caption(it: Prepared) -> bool:
        return (
            "caption" in it.stages
            and it.image is not None
            and not it.error
            and "caption" not in it.stage_errors
        )

    def _caption(self, items: list[Prepared]) -> None:
        if not items:
            return
        stored = self.store.text.ocr_texts([it.job.info.path for it in items if it.ocr is None])
        # stored text belongs to the stored content: use it only when the content is unchanged
        texts = [
            it.ocr.text if it.ocr is not None else "" if it.embed else stored.get(it.job.info.path, "")
            for it in items
        ]
        results = guarded(
            "captioning",
            lambda pairs: self.captioner.caption([p[0] for p in pairs], [p[1] for p in pairs]),
            list(zip([it.image for it in items], texts, strict=True)),
            (probe_image(), ""),
        )
        for it, cap in zip(items, results, strict=True):
            if isinstance(cap, str):
                it.stage_errors["caption"] = f"captioning failed: {cap}"
            else:
                it.caption = cap

    def _write_for(self, it: Prepared, report: IndexReport) -> ImageWrite | None:
        info = it.job.info
        stages = {s: (self.tools[s], it.stage_errors.get(s)) for s in it.stages}
        if it.error is None:
            report.ocr += int(it.ocr is not None)
            report.captioned += int(it.caption is not None)
            report.stage_failures += len(it.stage_errors)
        if not it.embed and not it.error:
            if it.same_content:
                self.store.images.touch(info.path, info.size, info.mtime_ns)
                report.touched += 1
            if not stages:
                return None
            return ImageWrite(info.path, ocr=it.ocr, caption=it.caption, phash=it.phash, stages=stages)
        row = {"path": info.path, "root": report.root, "sha256": it.sha256, "size": info.size}
        row.update(mtime_ns=info.mtime_ns, status="ok", error=None)
        row.update({k: it.facts.get(k) for k in ("width", "height", "format")})
        if it.error:
            return self._failed_write(it, row, report)
        report.reused += int(it.reused)
        report.embedded += int(not it.reused)
        return ImageWrite(
            info.path,
            row=row,
            vector=it.vector,
            reset=it.sha256 != it.job.kept_sha,  # a failed row's kept outputs, content back unchanged
            ocr=it.ocr,
            caption=it.caption,
            phash=it.phash,
            stages=stages,
            copy_stages=it.copy_stages,
        )

    def _failed_write(self, it: Prepared, row: dict, report: IndexReport) -> ImageWrite:
        """Record a file as failed. One whose content could not be read at all (skipped by the
        scan, unreadable) keeps its row's content facts and what was read from it before (OCR,
        captions: paid work), so a link to a disk unmounted for a while comes back whole; its
        vector goes (a failed image is not searchable). New content that fails drops them.
        """
        row.update(status="failed", error=it.error)
        report.failed += 1
        report.failures.append((it.job.info.path, it.error))
        kept = it.sha256 is None and (it.job.kept_sha or it.job.stored_sha) is not None
        if kept:
            prev = self.store.images.by_path(it.job.info.path)
            if prev is not None:
                row.update(sha256=prev.sha256, width=prev.width, height=prev.height, format=prev.format)
        return ImageWrite(it.job.info.path, row=row, reset=not kept)
