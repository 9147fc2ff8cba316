"""Bring an index in step with a folder: embed what is new or changed, drop what went.

Incremental by (size, mtime) first and content hash second: an unchanged file
costs one ``stat``; a touched file with the same bytes costs one hash; a moved or
copied file reuses the stored vector; only new content reaches the model. Every
batch is committed in one SQLite transaction, so a killed run resumes where it
stopped, with no duplicate or lost rows.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from indexer.scan import FileInfo, scan
from searchengine.errors import SearchEngineError, UnsupportedImage
from searchengine.imaging import load_image
from searchengine.models.base import Embedder
from searchengine.store.db import Store
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
    seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def processed(self) -> int:
        return self.touched + self.reused + self.embedded + self.failed


@dataclass
class _Prepared:
    """A file after hashing and decoding, before the model."""

    info: FileInfo
    sha256: str | None = None
    image: Image.Image | None = None
    facts: dict = field(default_factory=dict)
    vector: bytes | None = None
    error: str | None = None
    same_content: bool = False


def _sha256(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


class Indexer:
    """Indexes folders into one store with one encoder.

    :param batch_size: images embedded (and committed) together.
    :param max_pixels: larger images are recorded as failed.
    :param workers: threads hashing and decoding ahead of the model.
    """

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        *,
        batch_size: int = 16,
        max_pixels: int = 100_000_000,
        workers: int = 2,
    ) -> None:
        self.store, self.embedder = store, embedder
        self.batch_size, self.max_pixels, self.workers = batch_size, max_pixels, workers

    def plan(
        self, root: str | Path, retry_failed: bool = False
    ) -> tuple[list[tuple[FileInfo, str | None]], list[str], IndexReport]:
        """Scan ``root``; return files to process (with their stored hash), paths gone, report."""
        root_path = Path(root).expanduser().resolve()
        if not root_path.is_dir():
            raise SearchEngineError(f"not a folder: {root}")
        report = IndexReport(root=str(root_path))
        existing = self.store.rows_under(str(root_path))
        todo: list[tuple[FileInfo, str | None]] = []
        seen: set[str] = set()
        for info in scan(root_path):
            seen.add(info.path)
            row = existing.get(info.path)
            if (
                row
                and row.size == info.size
                and row.mtime_ns == info.mtime_ns
                and not (retry_failed and row.status == "failed")
            ):
                report.unchanged += 1
            else:
                todo.append((info, row.sha256 if row and row.status == "ok" else None))
        report.scanned = len(seen)
        gone = sorted(set(existing) - seen)
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

        Hashing and decoding of the next batch run in worker threads while the
        model embeds the current one.

        :param progress: called with the number of files finished, after each batch.
        :param on_plan: called once with the report so far and the number of files to do.
        :raises IndexMismatch: the store was built with another encoder.
        """
        started = time.perf_counter()
        self.store.bind_encoder(self.embedder.id)
        todo, gone, report = self.plan(root, retry_failed)
        if todo:
            self.embedder.load()
        if on_plan:
            on_plan(report, len(todo))
        batches = [todo[i : i + self.batch_size] for i in range(0, len(todo), self.batch_size)]
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="decode") as pool:
            submit = lambda batch: [pool.submit(self._prepare_one, *job) for job in batch]  # noqa: E731
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
        report.seconds = time.perf_counter() - started
        return report

    # -- stages -------------------------------------------------------------
    def _prepare_one(self, info: FileInfo, stored_sha: str | None) -> _Prepared:
        """Hash and decode one file (worker thread; touches no database)."""
        item = _Prepared(info)
        try:
            item.sha256 = _sha256(info.path)
        except OSError as exc:
            item.error = f"unreadable: {exc.strerror or exc}"
            return item
        if stored_sha == item.sha256:
            item.same_content = True
            return item
        try:
            item.image, item.facts = load_image(info.path, self.max_pixels)
        except UnsupportedImage as exc:
            item.error = str(exc)
        return item

    def _commit(self, items: list[_Prepared], report: IndexReport) -> None:
        """Embed what needs it and write the batch in one transaction."""
        for it in items:
            if it.image is not None and it.sha256:
                it.vector = self.store.vector_for_hash(it.sha256)  # moved or copied file
        need = [it for it in items if it.image is not None and it.vector is None]
        if need:
            for it, vec in zip(need, self._embed([it.image for it in need]), strict=True):
                if isinstance(vec, str):
                    it.error = vec
                else:
                    it.vector = vec.astype(np.float32).tobytes()
        rows, vectors = [], {}
        for it in items:
            if it.same_content:
                self.store.touch(it.info.path, it.info.size, it.info.mtime_ns)
                report.touched += 1
                continue
            row = {
                "path": it.info.path,
                "root": report.root,
                "sha256": it.sha256,
                "size": it.info.size,
                "mtime_ns": it.info.mtime_ns,
                "width": it.facts.get("width"),
                "height": it.facts.get("height"),
                "format": it.facts.get("format"),
                "status": "ok",
                "error": None,
            }
            if it.error:
                row.update(status="failed", error=it.error)
                report.failed += 1
                report.failures.append((it.info.path, it.error))
            else:
                vectors[it.info.path] = it.vector
                if it in need:
                    report.embedded += 1
                else:
                    report.reused += 1
            rows.append(row)
        if rows:
            self.store.write_batch(rows, vectors)

    def _embed(self, images: list[Image.Image]) -> list[np.ndarray | str]:
        """Embed a batch; if the batch fails, embed one by one to isolate the bad image."""
        try:
            return list(self.embedder.embed_images(images))
        except Exception as exc:  # noqa: BLE001 - a backend error must not end the run
            if len(images) == 1:
                log.warning("embedding failed: %s", exc)
                return [f"embedding failed: {exc}"]
        return [self._embed([im])[0] for im in images]
