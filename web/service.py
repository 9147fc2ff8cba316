"""What the web app shares between requests: stores per thread, one encoder, one FAISS cache,
thumbnails and the background index run.

Every request thread gets its own SQLite connection (WAL: readers never wait for the
indexer's writes); the FAISS index is shared and swapped atomically when the store
moves on; the query encoder is shared and serialised (tokenizers are not thread-safe);
an index run gets its own connection and its own encoder instance, so a long batch
never makes a search wait for the model.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from searchengine.config import Settings
from searchengine.errors import IndexNotBuilt, NotFound, SearchEngineError
from searchengine.imaging import WORKING_SIDE, load_image
from searchengine.models.base import Embedder, TextCache
from searchengine.records import EncoderId, ImageRecord
from searchengine.search import SearchEngine
from searchengine.store.db import Store
from searchengine.store.lock import IndexBusy, IndexLock
from searchengine.store.vectors import VectorCache

__all__ = [
    "Busy",
    "Forbidden",
    "IndexerFactory",
    "IndexerLike",
    "JobState",
    "NotFound",
    "Overloaded",
    "Service",
    "Unavailable",
]

log = logging.getLogger(__name__)

#: Thumbnail sizes served (longest side, px); a request is rounded up to one of them.
THUMB_SIZES = (128, 256, 512, 1024)
THUMBS_DIR = "thumbs"


class IndexerLike(Protocol):
    """What an index run needs of an indexer (``indexer.pipeline.Indexer`` is one)."""

    def run(
        self,
        root: str,
        *,
        retry_failed: bool = False,
        on_plan: Callable[[Any, int], None] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> Any: ...


#: Builds an indexer over a store (its own connection) with the service's settings:
#: ``indexer.pipeline.Indexer.from_settings``, passed in by ``searchengine serve``.
IndexerFactory = Callable[[Store, Settings], IndexerLike]


class Forbidden(SearchEngineError):
    """The request names something the service must not hand out."""


class Unavailable(SearchEngineError):
    """The service was started without what the request needs (an indexer)."""


class Busy(SearchEngineError):
    """An index run is already in progress."""


class Overloaded(Unavailable):
    """Every decode slot stayed taken while the request waited: try again shortly."""


class _Serialised:
    """One encoder shared by request threads, one call at a time, remembering the last
    2,048 query texts (:class:`~searchengine.models.base.TextCache`)."""

    TEXT_CACHE = 2048

    def __init__(self, inner: Embedder) -> None:
        self.inner, self.id = TextCache(inner, self.TEXT_CACHE), inner.id
        self._lock = threading.Lock()

    def load(self) -> None:
        with self._lock:
            self.inner.load()

    def embed_texts(self, texts):
        with self._lock:
            return self.inner.embed_texts(texts)

    def embed_images(self, images):
        with self._lock:
            return self.inner.embed_images(images)


@dataclass
class JobState:
    """Progress of the latest index run, as ``GET /api/index`` reports it."""

    state: str = "idle"  # idle | running | done | failed
    roots: list[str] = field(default_factory=list)
    current_root: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    scanned: int = 0
    todo: int = 0
    done: int = 0
    rate: float | None = None  # images per second
    eta_seconds: float | None = None
    reports: list[dict] = field(default_factory=list)
    error: str | None = None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Service:
    """The state behind one running app (one index folder).

    Images are decoded (uploads, thumbnails) through :meth:`decode`: at most
    ``decode_slots`` at once, server-wide, as a decode may hold a full-size buffer
    (~190 MiB for a 49 MP PNG); the others wait up to ``decode_wait`` seconds, then get
    :class:`Overloaded` (503). The decodes run on ``decode_slots`` threads of their own:
    glibc keeps freed memory in the arena of the thread that used it, so decoding on
    each of the many request threads in turn would keep up to one full-size buffer per
    thread. Peak memory is about slots x the largest decode.
    """

    decode_slots = min(4, os.cpu_count() or 1)
    decode_wait = 30.0

    def __init__(self, settings: Settings, indexer_factory: IndexerFactory | None = None) -> None:
        """Open (create, migrate) the index at ``settings.index_path``.

        :param indexer_factory: ``factory(store, settings)`` builds the indexer an index run
            uses (``Indexer.from_settings``); without one, index runs are refused.
        """
        self.settings = settings
        self.indexer_factory = indexer_factory
        self.index_dir = Path(settings.index_path)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._embedder: _Serialised | None = None
        self._cache: VectorCache | None = None
        self._job = JobState()
        self._job_thread: threading.Thread | None = None
        self._job_started = 0.0
        self._decodes = threading.BoundedSemaphore(self.decode_slots)
        self._decoder = ThreadPoolExecutor(self.decode_slots, thread_name_prefix="decode")
        self._thumbs_unwritable = False  # warned once that thumbnails cannot be cached
        self.store()  # creates and migrates the database before serving

    # -- per-thread store and engines ----------------------------------------------
    def store(self) -> Store:
        """Return this thread's connection to the index."""
        store = getattr(self._local, "store", None)
        if store is None:
            store = self._local.store = Store(self.index_dir)
        return store

    def engine(self, need_encoder: bool) -> SearchEngine:
        """Return a search engine on this thread's connection.

        :param need_encoder: False for keyword-only searches (no model is loaded).
        :raises IndexNotBuilt: the index holds nothing yet.
        """
        store = self.store()
        recorded = store.encoder()
        if not need_encoder:
            return SearchEngine(store, None)
        if recorded is None:
            raise IndexNotBuilt(f"the index at {self.index_dir} is empty: index a folder first")
        embedder, cache = self._shared(recorded)
        return SearchEngine(store, embedder, cache)

    def _shared(self, recorded: EncoderId) -> tuple[_Serialised, VectorCache]:
        with self._lock:
            if self._embedder is None or self._embedder.id != recorded:
                from searchengine.models.registry import create_embedder

                self._embedder = _Serialised(create_embedder(recorded.spec, self.index_dir))
                self._cache = VectorCache(recorded.dim, self.settings.refresh_interval)
                self._cache.min_interval = self.settings.refresh_interval if self.indexing else 0.0
            return self._embedder, self._cache

    def warm_up(self) -> None:
        """Load both encoder towers and the FAISS index before the first query (if there is an index)."""
        try:
            engine = self.engine(need_encoder=True)
        except IndexNotBuilt:
            return
        engine.embedder.load()
        engine.embedder.embed_texts(["warm up"])  # text towers may load lazily
        engine.cutoff()

    # -- files ------------------------------------------------------------------------
    def record(self, image_id: int) -> ImageRecord:
        """Return an indexed image by id.

        :raises NotFound: no such id.
        """
        rec = self.store().images.by_id([image_id]).get(image_id)
        if rec is None:
            raise NotFound(f"no indexed image with id {image_id}")
        return rec

    def servable(self, rec: ImageRecord) -> Path:
        """Return the real path of an indexed image, if the service may hand it out.

        Only searchable images are served, and only when the file really lies inside
        one of the index's folders: a symlink leading out of all of them is refused.

        :raises Forbidden: outside every indexed folder.
        :raises NotFound: failed when indexed, or gone since.
        """
        if rec.status != "ok":
            raise NotFound(f"image {rec.id} is not searchable ({rec.error})")
        self.check_inside(rec, "not served")
        real = os.path.realpath(rec.path)
        if not os.path.isfile(real):
            raise NotFound(f"image {rec.id} is gone from disk since it was indexed: re-index its folder")
        return Path(real)

    def check_inside(self, rec: ImageRecord, what: str) -> None:
        """Refuse what the index knows of a file that really lies outside every indexed folder.

        The rule of files and thumbnails holds for facts, captions and OCR text too: they
        were read from the file, so they would tell what a symlink leads to (a size and
        hash of ``/etc/passwd``, the text of a picture elsewhere on the disk). It is the
        indexer's rule (:func:`indexer.scan.scan`): a link into another folder of the same
        index (an album of links into an indexed ``Pictures``) is served.

        :raises Forbidden: the path resolves (through symlinks) outside all of the index's roots.
        """
        real = os.path.realpath(rec.path)
        if real.startswith(os.path.realpath(rec.root).rstrip("/") + "/"):
            return  # the common case, without a query
        roots = tuple(os.path.realpath(r).rstrip("/") + "/" for r in self.store().images.roots())
        if not (roots and real.startswith(roots)):
            raise Forbidden(
                f"image {rec.id} leads outside its indexed folder and the index's others (a symlink): {what};"
                " index its folder again to record it as failed"
            )

    def decode(self, source: str | os.PathLike | BinaryIO, max_pixels: int, max_side: int = WORKING_SIDE):
        """:func:`~searchengine.imaging.load_image` within the server-wide bound on concurrent decodes.

        :raises Overloaded: no decode slot came free within ``decode_wait`` seconds.
        :raises UnsupportedImage: as ``load_image``.
        """
        if not self._decodes.acquire(timeout=self.decode_wait):
            raise Overloaded(
                f"the server is busy decoding other images ({self.decode_slots} at a time): try again shortly"
            )
        try:
            return self._decoder.submit(load_image, source, max_pixels=max_pixels, max_side=max_side).result()
        finally:
            self._decodes.release()

    def thumbnail(self, rec: ImageRecord, size: int) -> Path | bytes:
        """Return a cached WebP thumbnail of ``rec`` (made on first request), or its bytes
        when it cannot be cached (a read-only index folder, a full disk).

        Cached by content hash, so a changed file gets a new one.
        """
        side = next((s for s in THUMB_SIZES if s >= size), THUMB_SIZES[-1])
        source = self.servable(rec)
        out = self.index_dir / THUMBS_DIR / rec.sha256[:2] / f"{rec.sha256}-{side}.webp"
        if out.is_file():
            return out
        image, _ = self.decode(source, self.settings.max_pixels, max_side=side)
        tmp = out.with_name(f".{out.name}.{os.getpid()}-{threading.get_ident()}.tmp")
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            image.save(tmp, "WEBP", quality=82, method=4)
            os.replace(tmp, out)
            return out
        except OSError as exc:  # served from memory: a thumbnail is never worth a 500
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            if not self._thumbs_unwritable:
                self._thumbs_unwritable = True
                log.warning("thumbnails are not cached (%s): %s", out.parent.parent, exc)
        buf = io.BytesIO()
        image.save(buf, "WEBP", quality=82, method=4)
        return buf.getvalue()

    def close(self) -> None:
        """Let the decode threads go (the app's shutdown); waits for decodes under way."""
        self._decoder.shutdown(wait=True)

    # -- indexing -----------------------------------------------------------------------
    @property
    def indexing(self) -> bool:
        return self._job.state == "running"

    def allowed_roots(self) -> list[str]:
        """Folders the service may index: the configured ones, else the index's own."""
        if self.settings.roots:
            return [str(Path(r).expanduser().resolve()) for r in self.settings.roots]
        return self.store().images.roots()

    def job(self) -> JobState:
        job = self._job
        if job.state == "running" and job.done:
            elapsed = time.monotonic() - self._job_started
            job.rate = round(job.done / max(elapsed, 1e-9), 2)
            job.eta_seconds = round((job.todo - job.done) / job.rate, 1) if job.rate else None
        return job

    def start_index(self, root: str | None = None, retry_failed: bool = False) -> JobState:
        """Start (re)indexing ``root`` (or every allowed root) in the background.

        :raises Unavailable: the service was started without an indexer.
        :raises Forbidden: ``root`` is not one the service may index.
        :raises Busy: a run is in progress.
        :raises SearchEngineError: there is nothing to index.
        """
        if self.indexer_factory is None:
            raise Unavailable("this service was started without an indexer: run it with 'searchengine serve'")
        allowed = self.allowed_roots()
        if root is not None:
            try:
                wanted = str(Path(root).expanduser().resolve())
            except (OSError, ValueError, RuntimeError):
                wanted = None
            if wanted not in allowed:
                raise Forbidden(
                    f"{root!r} is not a folder this service indexes; allowed: {', '.join(allowed) or 'none'}"
                    " (start it with --root FOLDER)"
                )
            roots = [wanted]
        else:
            roots = allowed
        if not roots:
            raise SearchEngineError("no folder to index: start the service with --root FOLDER")
        with self._lock:
            if self.indexing:
                raise Busy("an index run is already in progress: see GET /api/index")
            lock = IndexLock(self.index_dir)  # a CLI run on the same index: 409 with who runs it
            try:
                lock.acquire()
            except IndexBusy as exc:
                raise Busy(str(exc)) from None
            self._job = JobState(state="running", roots=roots, started_at=_now())
            self._job_started = time.monotonic()
            if self._cache is not None:
                self._cache.min_interval = self.settings.refresh_interval
            self._job_thread = threading.Thread(
                target=self._run_index, args=(roots, retry_failed, lock), name="index-run", daemon=True
            )
            try:
                self._job_thread.start()
            except BaseException:
                lock.release()
                self._job.state, self._job.error = "failed", "the index run could not start"
                raise
        return self._job

    @contextlib.contextmanager
    def writer(self) -> Iterator[None]:
        """Hold the index's writer lock for a change a request makes in its own thread (forget).

        Refused with :class:`Busy` (409) while an index run of this service or of another
        process holds it. The index lock is re-entrant within a process, so it alone would not
        keep this service's own runs out: the service's lock is held throughout instead (no
        run starts meanwhile, and searches by meaning wait for it: the change is short).
        """
        with self._lock:
            if self.indexing:
                raise Busy("an index run is in progress: try again when it ends (see GET /api/index)")
            lock = IndexLock(self.index_dir)
            try:
                lock.acquire()
            except IndexBusy as exc:
                raise Busy(str(exc)) from None
            try:
                yield
            finally:
                lock.release()

    def wait_for_index(self, timeout: float | None = None) -> JobState:
        """Block until the current run ends (tests, benchmarks)."""
        thread = self._job_thread
        if thread is not None:
            thread.join(timeout)
        return self.job()

    def _run_index(self, roots: list[str], retry_failed: bool, lock: IndexLock) -> None:
        job = self._job
        store = None
        try:
            store = Store(self.index_dir)  # the run's own connection, and its own encoder
            indexer = self.indexer_factory(store, self.settings)

            def planned(report, todo: int) -> None:
                job.scanned += report.scanned
                job.todo += todo

            def advanced(n: int) -> None:
                job.done += n

            for root in roots:
                job.current_root = root
                report = indexer.run(root, retry_failed=retry_failed, on_plan=planned, progress=advanced)
                job.reports.append(
                    {
                        **asdict(report),
                        "seconds": round(report.seconds, 2),
                        "failures": [{"path": p, "error": e} for p, e in report.failures[:100]],
                    }
                )
            job.state = "done"
        except Exception as exc:  # reported through GET /api/index, never lost in a thread
            log.exception("index run failed")
            job.state, job.error = "failed", f"{exc.__class__.__name__}: {exc}"
        finally:
            job.current_root = None
            job.finished_at = _now()
            if store is not None:
                store.close()
            lock.release()
            if self._cache is not None:
                self._cache.min_interval = 0.0

    def faiss_key(self) -> str | None:
        """The FAISS index type being searched, once one is loaded."""
        current = self._cache.current if self._cache else None
        return current.key if current else None
