"""What an index run has to do: the scan of a folder compared with what the store holds.

Incremental by (size, mtime) first and content hash second (see
:mod:`indexer.prepare`): an unchanged file costs one ``stat``; a stage switched on
later (OCR, captions) runs on the images that lack it and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from indexer.scan import FileInfo, ScanProblems, scan, visible
from searchengine.errors import SearchEngineError
from searchengine.records import ImageRecord
from searchengine.store.db import Store


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
    skipped: int = 0
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
    """One file to work on: new content (``embed``) and/or stages it lacks.

    A job with an ``error`` records the file as failed with that reason, untouched:
    the scan skipped it (see :class:`~indexer.scan.ScanProblems`). ``kept_sha`` is the
    content whose OCR and captions a failed row still holds (it failed without being
    read: a broken link to an unmounted disk): the same content back keeps them.
    """

    info: FileInfo
    stored_sha: str | None = None
    embed: bool = True
    stages: frozenset[str] = frozenset()
    missing_if_same: frozenset[str] = frozenset()
    error: str | None = None
    kept_sha: str | None = None


@dataclass
class Plan:
    """The jobs of a run, the paths gone from the folder, and the report so far."""

    jobs: list[Job]
    gone: list[str]
    report: IndexReport


def missing_stages(
    tools: dict[str, str], have: dict[str, tuple[str, str | None]], retry_failed: bool
) -> frozenset[str]:
    """The stages an image lacks: never run, run with another tool, or failed (when retrying).

    Captions quote the OCR text, so a new OCR result means a new caption too.
    """
    missing = {
        s for s, tool in tools.items() if s not in have or have[s][0] != tool or (retry_failed and have[s][1])
    }
    if "ocr" in missing and "caption" in tools:
        missing.add("caption")
    return frozenset(missing)


def job_for(
    info: FileInfo,
    row: ImageRecord | None,
    missing: frozenset[str],
    tools: dict[str, str],
    retry_failed: bool,
) -> Job | None:
    """The job for one scanned file given its stored row, or None when nothing is to do."""
    unchanged = row is not None and row.size == info.size and row.mtime_ns == info.mtime_ns
    if unchanged and row.status == "failed" and not retry_failed:
        return None
    if unchanged and row.status == "ok":
        return Job(info, row.sha256, embed=False, stages=missing) if missing else None
    stored = row.sha256 if row and row.status == "ok" else None
    kept = row.sha256 if row and row.status == "failed" else None
    return Job(info, stored, embed=True, stages=frozenset(tools), missing_if_same=missing, kept_sha=kept)


def skipped_jobs(
    problems: ScanProblems, existing: dict[str, ImageRecord], seen: set[str], report: IndexReport, retry: bool
) -> list[Job]:
    """Jobs recording each file the scan skipped as failed with its reason (the reason shows in
    the run's output and in ``info``), unless it is recorded so already.

    A file recorded otherwise before (a link to a disk now unmounted, a symlink that now
    leads out of the roots) gets the failed row but keeps what was read from it (OCR,
    captions: paid work) and its user data, so it comes back whole; only its vector goes,
    so that it is not searchable meanwhile. Each counts in ``report.skipped``.
    An escaped display name that is also a real file's path is only reported, never stored.
    """
    jobs = []
    for info, reason in problems.skipped:
        report.skipped += 1
        if info.path in seen:
            report.failures.append((info.path, reason))
            continue
        seen.add(info.path)
        row = existing.get(info.path)
        recorded = row is not None and row.status == "failed" and row.error == reason
        if recorded and (row.size, row.mtime_ns) == (info.size, info.mtime_ns) and not retry:
            report.unchanged += 1
        else:
            jobs.append(Job(info, embed=False, error=reason, kept_sha=row.sha256 if row else None))
    return jobs


def plan_run(store: Store, root: str | Path, tools: dict[str, str], retry_failed: bool = False) -> Plan:
    """Scan ``root`` and compare it with the store.

    :param tools: stage -> the tool id that produces it now.
    :raises SearchEngineError: ``root`` is not a folder, or cannot be listed.
    """
    root_path = Path(root).expanduser().resolve()
    if not root_path.is_dir():
        raise SearchEngineError(f"not a folder: {root}")
    report = IndexReport(root=str(root_path))
    existing = store.images.rows_under(str(root_path))
    done = store.images.stages_under(str(root_path))
    jobs: list[Job] = []
    seen: set[str] = set()
    problems = ScanProblems()
    for info in scan(root_path, problems, roots=store.images.roots()):
        seen.add(info.path)
        row = existing.get(info.path)
        missing = missing_stages(tools, done.get(info.path, {}), retry_failed)
        job = job_for(info, row, missing, tools, retry_failed)
        if row is not None and (row.size, row.mtime_ns) == (info.size, info.mtime_ns):
            report.unchanged += int(row.status == "ok" or not retry_failed)
        if job is not None:
            jobs.append(job)
    if str(root_path) in problems.unlisted:
        raise SearchEngineError(f"cannot list folder {root_path}: check its permissions")
    jobs.extend(skipped_jobs(problems, existing, seen, report, retry_failed))
    report.scanned = len(seen)
    gone = sorted(
        path
        for path in set(existing) - seen
        # keep what this scan could not see: unlisted folders, hidden ones indexed directly
        if visible(path[len(str(root_path)) + 1 :])
        and not any(path.startswith(d + "/") for d in problems.unlisted)
    )
    return Plan(jobs, gone, report)
