"""The ``searchengine`` command: a thin edge over the core and the indexer.

This module is the one place in the ``searchengine`` package allowed to import
the edges' packages (``indexer``, ``web``); the core never does.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import sys
from dataclasses import asdict, replace
from pathlib import Path

import click

from searchengine.config import Settings
from searchengine.errors import SearchEngineError
from searchengine.records import DEFAULT_RRF_K


def _settings(index: str | None, model: str | None = None, **over) -> Settings:
    try:
        s = Settings.from_env()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if index:
        s = replace(s, index_path=Path(index).expanduser())
    if model:
        s = replace(s, model=model)
    s = replace(s, **{k: v for k, v in over.items() if v is not None})
    ctx = click.get_current_context(silent=True)
    if ctx is not None:  # the index the command works on, for its error messages
        ctx.meta[_INDEX_KEY] = s.index_path
    return s


index_option = click.option(
    "--index",
    "index",
    metavar="PATH",
    default=None,
    help="Index folder [env SE_INDEX; default ~/.local/share/searchengine/index].",
)
model_option = click.option(
    "--model",
    "model",
    metavar="SPEC",
    default=None,
    help="Encoder: offline | clip | clip:ARCH:TAG | clip:ARCH:/path/ckpt [env SE_MODEL].",
)


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SearchEngineError as exc:
            raise click.ClickException(str(exc)) from None
        except sqlite3.DatabaseError as exc:
            from searchengine.store.db import database_problem

            raise click.ClickException(database_problem(exc, ctx.meta.get(_INDEX_KEY))) from None
        except OSError as exc:
            from searchengine.store.db import disk_full_message, is_disk_full

            if not is_disk_full(exc):
                raise
            raise click.ClickException(disk_full_message(ctx.meta.get(_INDEX_KEY))) from None


#: ``ctx.meta`` key of the index folder a command works on (for the error messages).
_INDEX_KEY = "searchengine.index"


@click.group(cls=_Group)
@click.version_option(package_name="searchengine")
@click.option("-v", "--verbose", is_flag=True, help="Log what happens (to stderr).")
def cli(verbose: bool) -> None:
    """Find images by what they show. Index a folder, then search it by text."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


class _ProgressBar:
    """Prints the plan of a run, then a tqdm bar (count, rate, ETA) on stderr."""

    def __init__(self, folder: str, quiet: bool) -> None:
        self.folder, self.quiet, self.bar = folder, quiet, None

    def start(self, report, todo: int) -> None:
        click.echo(
            f"{self.folder}: {_count(report.scanned, 'image')}, {report.unchanged} unchanged, "
            f"{todo} to process",
            err=True,
        )
        if todo and not self.quiet:
            from tqdm import tqdm

            self.bar = tqdm(total=todo, unit="img", desc="indexing", file=sys.stderr)

    def update(self, n: int) -> None:
        if self.bar:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar:
            self.bar.close()


@cli.command()
@click.argument("folders", nargs=-1, required=True, type=click.Path(file_okay=False))
@index_option
@model_option
@click.option(
    "--rebuild",
    is_flag=True,
    help="Embed every indexed image again (with --model: switch the index to that encoder), "
    "then index FOLDERS, trying failed files again. Tags, collections, metadata, captions "
    "and OCR text are kept.",
)
@click.option("--retry-failed", is_flag=True, help="Try files that failed before again.")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=None,
    help="Images per batch and commit [env SE_BATCH_SIZE; default 16].",
)
@click.option(
    "--captioner",
    metavar="SPEC",
    default=None,
    help="offline | blip | blip:/path | none [env SE_CAPTIONER; default offline].",
)
@click.option(
    "--ocr",
    metavar="SPEC",
    default=None,
    help="rapidocr | tesseract[:LANGS] | none [env SE_OCR; default rapidocr].",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option("--wait", is_flag=True, help="If another run is updating the index, wait for it to end.")
def index(folders, index, model, rebuild, retry_failed, batch_size, captioner, ocr, quiet, wait) -> None:
    """Build or update the index from FOLDERS: vectors, captions, tags and OCR text.

    Recursive and incremental: only new or changed files, or stages an image
    lacks, are processed. One run at a time per index: a second one stops at once
    with who is running (or waits, with --wait).
    """
    from indexer.pipeline import Indexer
    from searchengine.search import open_store

    s = _settings(index, None, batch_size=batch_size, captioner=captioner, ocr=ocr)
    for folder in folders:
        if not Path(folder).expanduser().is_dir():
            raise click.ClickException(_not_a_folder(folder, s.index_path, index))
    store = open_store(s.index_path, create=True)
    _lock_index(store, wait=wait)  # held across --rebuild and every folder
    if rebuild:
        store.ensure_sound()  # before --rebuild writes (every index run checks for itself)
    # --model names the encoder; SE_MODEL only picks the encoder of a new index
    indexer = Indexer.from_settings(store, s, model)  # every backend fails before any change
    embedder, cap, reader = indexer.embedder, indexer.captioner, indexer.ocr
    if not rebuild:
        store.bind_encoder(embedder.id)  # refuses another encoder before any work
    click.echo(f"encoder: {embedder.id.spec} (dim {embedder.id.dim})", err=True)
    click.echo(
        f"stages:  ocr {reader.id if reader else 'off'}, caption {cap.id if cap else 'off'}",
        err=True,
    )
    click.echo(f"index:   {store.dir}", err=True)
    if rebuild:
        _reembed(store, embedder, quiet)  # one swap: an interrupted rebuild leaves the index as it was
    for folder in folders:
        bar = _ProgressBar(folder, quiet)
        try:
            report = indexer.run(
                folder, retry_failed=retry_failed or rebuild, on_plan=bar.start, progress=bar.update
            )
        finally:
            bar.close()
        click.echo(
            f"{folder}: {report.embedded} embedded, {report.reused} reused, "
            f"{report.touched} touched, {report.failed} failed, {report.deleted} removed, "
            f"{report.ocr} read, {report.captioned} captioned"
            + (f" ({report.stage_failures} stage failures)" if report.stage_failures else "")
            + (f", {report.skipped} skipped (not indexable, see 'info')" if report.skipped else "")
            + " "
            f"in {report.seconds:.1f}s",
            err=True,
        )
        for path, reason in report.failures:
            click.echo(f"  failed: {path}: {reason}", err=True)


def _lock_index(store, wait: bool | None = None) -> None:
    """Take the index's writer lock until the command ends, or stop with who holds it.

    :param wait: wait for it (False: refuse at once, naming --wait; None: no --wait option).
    """
    from searchengine.store.lock import IndexBusy, IndexLock

    lock = IndexLock(store.dir)
    try:
        lock.acquire(wait=bool(wait), on_wait=lambda why: click.echo(f"waiting: {why}", err=True))
    except IndexBusy as exc:
        hint = " (or pass --wait to wait for it)" if wait is False else ""
        raise click.ClickException(f"{exc}{hint}") from None
    click.get_current_context().call_on_close(lock.release)


def _not_a_folder(folder: str, index_path: Path, index: str | None) -> str:
    """The error for an index FOLDER that is none: when the index still holds images under
    it (a folder deleted from disk), it says how to take them out."""
    import shlex

    from searchengine.forget import plan_forget
    from searchengine.search import open_store

    plain = f"not a folder: {folder}"
    try:
        plan = plan_forget(open_store(index_path), [folder])
    except (SearchEngineError, sqlite3.DatabaseError):  # nothing indexed there, or no index
        return plain
    where = f" --index {shlex.quote(index)}" if index else ""
    kept = plan.with_user_data
    return (
        f"{plain}; the index still holds {plan.images:,} image{'' if plan.images == 1 else 's'} under it: "
        f"remove them with 'searchengine forget {shlex.quote(folder)}{where}'"
        + (
            f" ({kept} carry tags, collections or metadata: if the folder moved, index its new place "
            "first, and forget hands them over)"
            if kept  # else the work done on them (OCR, captions, vectors) still deserves the hint
            else " (if the folder moved, index its new place first: it reuses their OCR text and vectors)"
        )
    )


@cli.command("forget")
@click.argument("folders", nargs=-1, required=True)
@index_option
@click.option(
    "-y", "--yes", is_flag=True, help="Do not ask before tags, collections or metadata (or every image) go."
)
@click.option("--dry-run", is_flag=True, help="Say what would be forgotten; change nothing.")
@click.option("--wait", is_flag=True, help="If an index run is updating the index, wait for it to end.")
def forget_(folders, index, yes, dry_run, wait) -> None:
    """Remove every image under FOLDERS from the index, whether or not they are still on disk.

    The files are not touched; other images, tags, collections and metadata stay. The
    forgotten images' own tags, collection memberships and imported metadata go with
    them (kept on their copy when the same image is indexed at one other path): forget
    asks first when any would go, or when no image would be left (--yes: do not ask).
    """
    from searchengine.forget import forget, plan_forget

    store = _store(index)
    if not dry_run:
        _lock_index(store, wait=wait)  # no index run meanwhile, and what is shown is what goes
    plan = plan_forget(store, folders)
    if dry_run:
        click.echo(plan.summary(done=False))
        return
    confirmed = yes
    if plan.needs_confirmation and not yes:
        what = f"{plan.summary(done=False)}: {plan.what_goes()}"
        if not all(Path(f).is_dir() for f, _ in plan.folders):  # gone: perhaps moved, and then...
            what += " (if the folder moved, index its new place first: forget then hands them over)"
        if not _can_ask():
            raise click.ClickException(f"{what}; nothing was changed: run again with --yes to go ahead")
        click.echo(what, err=True)
        if not click.confirm("Forget them?", err=True):
            raise click.ClickException("nothing was forgotten")
        confirmed = True
    done = forget(store, folders, confirmed=confirmed)
    click.echo(done.summary())
    for folder, root in done.comes_back:
        click.echo(
            f"note: {folder} is still on disk inside the indexed folder {root}: "
            f"the next 'searchengine index {root}' adds it back",
            err=True,
        )


def _can_ask() -> bool:
    """Whether a person can answer a question (stdin is a terminal)."""
    return sys.stdin is not None and sys.stdin.isatty()


def _open_query_image(path: str, max_pixels: int):
    from searchengine.errors import UnsupportedImage
    from searchengine.imaging import load_image

    try:
        return load_image(path, max_pixels=max_pixels)[0]
    except (UnsupportedImage, OSError) as exc:
        raise click.ClickException(f"cannot use {path} as a query image: {exc}") from None


def _store(index: str | None):
    """The index named by --index (or SE_INDEX, or the default); it must exist."""
    from searchengine.search import open_store

    return open_store(_settings(index).index_path)


def _resolve_image(store, ref: str):
    """An indexed image as ``import`` matches it (path, path relative to an indexed folder, unique
    bare file name, id); a clear error when it is not indexed or the name is shared."""
    return _resolver(store)(ref)


def _resolver(store):
    """The command's :class:`~searchengine.names.ImageResolver` (names read once per command)."""
    from searchengine.names import ImageResolver

    ctx = click.get_current_context(silent=True)
    resolver = ctx.meta.get(_RESOLVER_KEY) if ctx is not None else None
    if resolver is None or resolver.store is not store:
        resolver = ImageResolver(store)
        if ctx is not None:
            ctx.meta[_RESOLVER_KEY] = resolver
    return resolver


#: ``ctx.meta`` key of the command's image resolver.
_RESOLVER_KEY = "searchengine.resolver"


def _searchable(store, ref: str, what: str):
    """Like :func:`_resolve_image`, for an image that must be searchable (it has a vector)."""
    rec = _resolver(store).find(ref)
    if rec is None or rec.status != "ok":
        raise click.ClickException(f"{what}: not a searchable indexed image: {ref}")
    return rec


@cli.command()
@click.argument("query", required=False)
@index_option
@model_option
@click.option(
    "--image",
    "image_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Find images similar to this file (alone, or with QUERY: 'like this, but red').",
)
@click.option(
    "--like",
    default=None,
    metavar="PATH|ID",
    help="Find images similar to this indexed image (left out of the results).",
)
@click.option(
    "-k",
    "--limit",
    "limit",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="How many results (one page).",
)
@click.option(
    "--offset",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Skip this many results (pagination).",
)
@click.option(
    "--mode",
    type=click.Choice(["hybrid", "vector", "keyword"]),
    default="hybrid",
    show_default=True,
    help="hybrid: meaning and words fused; vector: meaning; keyword: words in names, "
    "folders, captions, tags and OCR text.",
)
@click.option(
    "--fusion",
    type=click.Choice(["rrf", "weighted"]),
    default="rrf",
    show_default=True,
    help="rrf: Reciprocal Rank Fusion; weighted: weighted sum of normalised scores.",
)
@click.option(
    "--rrf-k", type=click.IntRange(min=1), default=DEFAULT_RRF_K, show_default=True, help="RRF constant."
)
@click.option("--vector-weight", type=click.FloatRange(min=0), default=1.0, show_default=True)
@click.option("--keyword-weight", type=click.FloatRange(min=0), default=1.0, show_default=True)
@click.option(
    "--min-score",
    type=float,
    default=None,
    help="Cosine a vector hit must reach [default: calibrated per index; -1 disables].",
)
@click.option("--folder", type=click.Path(file_okay=False), default=None, help="Only images under it.")
@click.option(
    "--type",
    "types",
    multiple=True,
    metavar="FORMAT",
    help="Only these formats (jpeg, png, webp, gif, bmp, tiff); repeatable.",
)
@click.option("--after", default=None, metavar="DATE", help="Modified on or after (ISO date).")
@click.option("--before", default=None, metavar="DATE", help="Modified on or before (ISO date).")
@click.option("--min-size", type=click.IntRange(min=0), default=None, help="Bytes.")
@click.option("--max-size", type=click.IntRange(min=0), default=None, help="Bytes.")
@click.option("--tag", "tags", multiple=True, help="Only images with this tag (caption or user); repeatable.")
@click.option(
    "--where",
    "where",
    multiple=True,
    metavar="FIELD<OP>VALUE",
    help="Only images whose metadata passes: brand=Nike, colour!=black, price<50 (<=, >, >=); repeatable.",
)
@click.option("--collection", default=None, metavar="NAME", help="Only images in this collection.")
@click.option(
    "--facet",
    "facets",
    multiple=True,
    metavar="FIELD",
    help="Count this metadata field's values among the matches (brand, category...); repeatable.",
)
@click.option(
    "--explain",
    is_flag=True,
    help="Also show each hit's raw rank and score in every leg, and its fused score.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option(
    "--paths", "paths_only", is_flag=True, help="Print only the paths, one a line (e.g. for 'tag add TAG -')."
)
def search(query, index, model, image_file, like, as_json, paths_only, **options) -> None:
    """Find the images that best match QUERY, best first: by meaning and by words.

    Operators: "a phrase" must match exactly; -word pushes matches down; 2:word
    counts double. Codes (QX-7781-B, 25/12/2018) favour exact keyword matches.
    With no QUERY and only filters, lists every image that passes them.

    Each hit shows its relevance (0 to 1, comparable across the page) and why it
    matched in plain words; --explain adds the raw rank and score in every leg.
    """
    from searchengine.search import SearchEngine, build_request, open_store, resolve_embedder
    from searchengine.search.request import check_filters

    settings = _settings(index)
    store = open_store(settings.index_path)
    image = _open_query_image(image_file, settings.max_pixels) if image_file else None
    like_id = _searchable(store, like, "--like").id if like else None
    request = build_request(query, image=image, like=like_id, **options)
    check_filters(store, request.filters)  # a typo fails at once, before the encoder loads
    embedder = resolve_embedder(store, model) if request.needs_encoder or model else None
    page = SearchEngine(store, embedder).run(request)
    if paths_only and not as_json:
        click.echo("".join(f"{h.path}\n" for h in page.hits), nl=False)
        return
    _print_page(page, query, str(store.dir), as_json, request)


def _count(n: int, one: str, many: str | None = None) -> str:
    """``1 match``, ``2 matches``, ``0 images``: a count with its noun in the right number."""
    return f"{n} {one if n == 1 else many or one + 's'}"


def _print_page(page, query: str | None, index: str, as_json: bool, request) -> None:
    """Print a search page: one JSON object, or a header on stderr and a line per hit."""
    explain = request.explain
    if as_json:
        click.echo(
            json.dumps(
                {
                    "query": query,
                    "mode": page.mode,
                    "fusion": page.fusion,
                    "encoder": page.encoder,
                    "index": index,
                    "total": page.total,
                    "offset": page.offset,
                    "limit": page.limit,
                    "cutoff": round(page.cutoff, 6) if page.cutoff > -1 else None,
                    "facets": {k: [{"value": v, "count": n} for v, n in c] for k, c in page.facets.items()},
                    "results": [h.as_dict() for h in page.hits],
                }
            )
        )
        return
    # an image query alone (--image/--like), no filter: its neighbourhood test said no
    unfiltered = not (request.filters and request.filters.active)
    nothing_near = request.by_image and not request.has_text and request.min_score is None
    nothing_near = nothing_near and unfiltered and page.total == 0
    click.echo(
        f"encoder: {page.encoder}, mode: {page.mode}, {_count(page.total, 'match', 'matches')}"
        + (f" (cutoff {page.cutoff:.3f})" if page.cutoff > -1 else ""),
        err=True,
    )
    if nothing_near:
        click.echo(
            "no results: no indexed image has the query image among its nearest neighbours"
            " (--min-score -1 lists the closest anyway)",
            err=True,
        )
    elif not page.hits and page.total:  # paged past the end
        last = (page.total - 1) // page.limit * page.limit
        click.echo(f"nothing at offset {page.offset} (the last page starts at {last})", err=True)
    elif not page.hits:
        click.echo("no results", err=True)
    for key, values in page.facets.items():
        click.echo(f"{key}: " + (", ".join(f"{v} ({n})" for v, n in values) or "none"), err=True)
    for h in page.hits:
        figure = f"{h.relevance:.2f}" if h.relevance is not None else "  - "
        line = f"{h.rank:3d}  {figure}  {h.path}" + (f"  [{h.title}]" if h.title else "")
        if h.reasons:
            line += "  -- " + "; ".join(h.reasons)
        if explain and h.legs:
            why = ", ".join(f"{leg} #{v['rank']} ({v['score']:.3g})" for leg, v in h.legs.items())
            line += f"    [details: {why}, fused {h.score:.4f}]"
        click.echo(line)


@cli.command()
@index_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def info(index, as_json) -> None:
    """Show what an index holds: counts, encoder, roots and failures."""
    from searchengine.stats import index_stats
    from searchengine.store.vectors import VectorIndex

    store = _store(index)
    enc = store.encoder()
    vectors = VectorIndex.open(store, enc.dim) if enc else None  # rebuilt in memory when it must be
    stats = index_stats(store, vectors.key if vectors else None)
    failures = store.images.failures()
    if as_json:
        data = asdict(stats)
        data["failures"] = [{"path": f.path, "error": f.error} for f in failures]
        data["vector_index"] = vectors.condition() if vectors else None
        click.echo(json.dumps(data))
        return
    click.echo(f"index:    {stats.path}")
    click.echo(f"encoder:  {enc.spec + f' (dim {enc.dim})' if enc else 'none yet'}")
    tuned = json.loads(store.get_meta("adapter") or "{}")
    if tuned and enc and tuned.get("adapter", "") in enc.tag:
        b, a = tuned["before"], tuned["after"]
        click.echo(
            f"adapter:  {tuned['adapter']} ({tuned['kind']}) tuned on {tuned['pairs']}: "
            f"held-back R@1 {b['R@1']:.3f} -> {a['R@1']:.3f}, R@10 {b['R@10']:.3f} -> {a['R@10']:.3f}"
        )
    click.echo(f"images:   {stats.images} ({stats.ok} ok, {stats.failed} failed)")
    click.echo(f"vectors:  {stats.vectors} in FAISS '{stats.faiss_key}'")
    if vectors:
        click.echo(f"faiss:    {vectors.condition()['message']}")
    click.echo(f"captions: {stats.captions}")
    click.echo(f"ocr:      {stats.ocr} read, {stats.with_text} with text")
    if stats.stage_errors:
        click.echo(f"stage failures: {stats.stage_errors} (see 'searchengine show IMAGE')")
    for root in stats.roots:
        click.echo(f"root:     {root}")
    for f in failures:
        click.echo(f"failed:   {f.path}: {f.error}")


@cli.command()
@index_option
@click.option("--repair", is_flag=True, help="Repair what can be repaired, keeping all user data.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def doctor(index, repair, as_json) -> None:
    """Check an index for damage and say what --repair would do about it.

    Checks the database (SQLite's integrity and foreign-key checks, the keyword index), the
    FAISS file against it, and leftover temporary files. --repair salvages a damaged database
    row by row into a fresh one (keeping the damaged file as index.db.damaged-<time>), derives
    the keyword index and FAISS again, and removes dead temporaries. Tags, collections,
    metadata, captions and OCR text are kept. Stop 'searchengine serve' on the index first.
    Exit status: 0 when the index is sound (after --repair), 1 when problems remain.
    """
    from searchengine import doctor as checkup

    path = _settings(index).index_path
    report = checkup.examine(path)
    done: list[str] = []
    after = report
    if repair and not report.healthy:
        say = (lambda _: None) if as_json else (lambda line: click.echo(f"  {line}", err=True))
        if not as_json:
            _print_checkup(report, repair=True)
        done = checkup.repair(path, report, progress=say)
        after = checkup.examine(path)
    if as_json:
        data = report.as_dict()
        if repair:
            data["repaired"], data["after"] = done, after.as_dict()
        click.echo(json.dumps(data))
    elif repair and done:
        for line in done:
            click.echo(f"repaired: {line}")
        _print_checkup(after, repair=False, after=True)
    else:
        _print_checkup(report, repair=False)
    if not after.healthy:
        sys.exit(1)


def _print_checkup(report, repair: bool, after: bool = False) -> None:
    click.echo(f"index: {report.index}")
    for note in report.notes:
        click.echo(f"note: {note}")
    for f in report.findings:
        click.echo(f"problem ({f.area}): {f.problem}")
        click.echo(f"  {'repairing' if repair else 'still wrong' if after else '--repair would'}: {f.repair}")
    if repair:
        return
    counts = ", ".join(f"{n if n is not None else 'unreadable'} {k}" for k, n in report.counts.items())
    click.echo(f"user data: {counts}")
    if report.healthy:
        click.echo("no problems found" + (" after the repair" if after else ""))
    elif not after:
        click.echo(f"repair it with: searchengine doctor --index {report.index} --repair")


@cli.command("eval")
@click.argument("annotations", type=click.Path(exists=True, dir_okay=False))
@index_option
@model_option
@click.option("--captioner", metavar="SPEC", default=None, help="As for index [default offline].")
@click.option("--ocr", metavar="SPEC", default=None, help="As for index [default rapidocr].")
@click.option(
    "--max-queries",
    type=click.IntRange(min=1),
    default=None,
    help="Use at most this many queries per query set (quick runs).",
)
@click.option(
    "--with-metadata",
    is_flag=True,
    help="Import each record's title, category and attributes as product metadata first.",
)
@click.option(
    "--absent",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Queries (one a line) about things the set does not hold: report how many return nothing.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def evaluate(annotations, index, model, captioner, ocr, max_queries, with_metadata, absent, as_json) -> None:
    """Measure search quality on labelled queries: Recall@1/5/10, MRR, nDCG@10, no-result share.

    ANNOTATIONS is an annotations.jsonl in the format of ../shared/datasets/README.md.
    Its images are indexed (into --index, reused and updated if it exists, else a
    temporary index), then every query set the records support is run first as
    `search` runs it with default settings (hybrid, calibrated cutoff), then as
    diagnostics: the vector leg with its cutoff, both legs fused and the vector leg
    without a cutoff, and the keyword leg.
    """
    import tempfile

    from tqdm import tqdm

    from searchengine.evaluation import image_root, load_annotations, query_sets, run_eval
    from searchengine.search import SearchEngine, open_store

    folder, records = load_annotations(annotations)
    sets = query_sets(folder, records)
    if not sets:
        raise click.ClickException(f"{annotations}: no record has captions, title, fields or query_file")
    if max_queries:
        for qs in sets:
            qs.queries = qs.queries[:max_queries]
    absent_queries = (
        [q.strip() for q in Path(absent).read_text().splitlines() if q.strip()] if absent else None
    )
    s = _settings(index, None, captioner=captioner, ocr=ocr)
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(Path(index).expanduser() if index else Path(tmp) / "index", create=True)
        embedder = _index_for_eval(store, s, model, image_root(folder, records), as_json)
        if with_metadata:
            from searchengine.metadata import import_catalogue

            imported = import_catalogue(
                store, annotations, image_column="file", columns={"title", "category", "attributes"}
            )
            click.echo(f"metadata: {imported.matched} records, {imported.values} values imported", err=True)
        total = sum(len(q.queries) for q in sets) + len(absent_queries or ())
        with tqdm(total=total, unit="query", desc="querying", file=sys.stderr, disable=as_json) as qbar:
            results = run_eval(
                SearchEngine(store, embedder), sets, progress=qbar.update, absent=absent_queries
            )
    if as_json:
        data = {"annotations": str(annotations), "encoder": embedder.id.spec, "metadata": with_metadata}
        click.echo(json.dumps({**data, "results": results}))
        return
    _print_eval(results)


def _index_for_eval(store, settings, model: str | None, root: Path, quiet: bool):
    """Bring ``store`` in step with the dataset's images; returns the encoder."""
    from indexer.pipeline import Indexer

    indexer = Indexer.from_settings(store, settings, model)
    click.echo(f"encoder: {indexer.embedder.id.spec}; indexing {root}", err=True)
    bar = _ProgressBar(str(root), quiet=quiet)
    indexer.run(root, on_plan=bar.start, progress=bar.update)
    bar.close()
    return indexer.embedder


def _print_eval(results: dict) -> None:
    from searchengine.evaluation import VARIANTS

    click.echo("| query set | run | queries | no results | R@1 | R@5 | R@10 | MRR | nDCG@10 |")
    click.echo("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, runs in results.items():
        for run in VARIANTS:
            m = runs.get(run)
            if m is None or name == "absent":
                continue
            click.echo(
                f"| {name} | {run} | {m['queries']} | {m['no_results']:.1%} | {m['R@1']:.3f} | "
                f"{m['R@5']:.3f} | {m['R@10']:.3f} | {m['MRR']:.3f} | {m['nDCG@10']:.3f} |"
            )
    if "absent" in results:
        click.echo("\n| absent-thing queries | run | queries | returned nothing |")
        click.echo("|---|---|---:|---:|")
        for run, m in results["absent"].items():
            click.echo(f"| absent | {run} | {m['queries']} | {m['rejected']:.1%} |")


@cli.command()
@click.argument("image")
@index_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def show(image, index, as_json) -> None:
    """Show what the index knows of IMAGE: facts, caption, tags, OCR.

    IMAGE is a path, a path relative to an indexed folder, a file name only one indexed
    image has (as in a catalogue), or an id.
    """
    store = _store(index)
    rec = _resolve_image(store, image)
    library = store.library.of(rec.id)
    data = {
        **asdict(rec),
        **store.text.of(rec.id).as_dict(),
        "metadata": library.metadata,
        "user_tags": list(library.user_tags),
        "collections": list(library.collections),
        "duplicates": [r.path for r in store.images.by_id(library.duplicates).values()],
    }
    if as_json:
        click.echo(json.dumps(data))
        return
    click.echo(f"path:     {rec.path}")
    click.echo(f"id:       {rec.id}")
    click.echo(f"status:   {rec.status}" + (f" ({rec.error})" if rec.error else ""))
    click.echo(f"file:     {rec.format} {rec.width}x{rec.height}, {rec.size:,} bytes, sha256 {rec.sha256}")
    if data["caption"] is not None:
        click.echo(f"caption:  {data['caption']}  [{data['caption_model']}]")
        click.echo(f"tags:     {', '.join(data['tags'])}")
    for key, value in data["metadata"].items():
        click.echo(f"{key + ':':<9} {value}")
    if data["user_tags"]:
        click.echo(f"user tags: {', '.join(data['user_tags'])}")
    if data["collections"]:
        click.echo(f"collections: {', '.join(data['collections'])}")
    for dup in data["duplicates"]:
        click.echo(f"duplicate: {dup}")
    for stage, info in data["stages"].items():
        if info["error"]:
            click.echo(f"{stage}:      failed: {info['error']}")
    if data["ocr_text"] is not None:
        click.echo(f"ocr:      {len(data['ocr_lines'])} lines [{data['ocr_engine']}]")
        for line in data["ocr_lines"]:
            (x0, y0), (x1, y1) = line["box"][0], line["box"][2]
            click.echo(f"  {line['confidence']:.2f}  ({x0:.0f},{y0:.0f})-({x1:.0f},{y1:.0f})  {line['text']}")


@cli.command()
@index_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option(
    "--root",
    "roots",
    multiple=True,
    type=click.Path(file_okay=False),
    help="A folder the service may index (repeatable) [default: the folders the index holds].",
)
@click.option("--reindex", is_flag=True, help="Start updating the index from the roots at once.")
@click.option(
    "--api-key",
    default=None,
    help="Key (X-API-Key header) the API requires, for reads too unless --public-reads "
    "[env SE_API_KEY; default none].",
)
@click.option(
    "--cors-origin",
    "cors_origins",
    multiple=True,
    metavar="ORIGIN",
    help="Let pages from ORIGIN call the API (repeatable) [env SE_CORS_ORIGINS, comma-separated; "
    "default: CORS off].",
)
@click.option(
    "--allow-host",
    "allow_hosts",
    multiple=True,
    metavar="NAME",
    help="Also answer to the host name NAME (repeatable; *.lan: a domain's hosts), a guard against DNS "
    "rebinding [env SE_ALLOWED_HOSTS; default: localhost, IP addresses and --host].",
)
@click.option(
    "--public-reads",
    is_flag=True,
    help="With an API key: searches and images need no key, only changes do [env SE_PUBLIC_READS].",
)
@click.option(
    "--max-upload-mb",
    type=click.FloatRange(min=0.1),
    default=None,
    help="Largest request body (image uploads) [env SE_MAX_UPLOAD_MB; default 20].",
)
@click.option("--captioner", metavar="SPEC", default=None, help="For index runs, as for index.")
@click.option("--ocr", metavar="SPEC", default=None, help="For index runs, as for index.")
def serve(
    index,
    host,
    port,
    roots,
    reindex,
    api_key,
    cors_origins,
    allow_hosts,
    public_reads,
    max_upload_mb,
    **stages,
) -> None:
    """Run the web page and the HTTP API (docs at /docs) over one index.

    It answers only to localhost, IP addresses and the names given with --allow-host;
    with an API key, reads need the key too (the page asks for it) unless --public-reads.
    """
    import uvicorn

    from indexer.pipeline import Indexer
    from searchengine.store.db import DB_NAME
    from web.app import create_app
    from web.service import Service

    s = _serve_settings(
        index,
        roots,
        api_key,
        cors_origins,
        max_upload_mb,
        host=host,
        allow_hosts=allow_hosts,
        public_reads=public_reads or None,
        **stages,
    )
    if not roots and not (s.index_path / DB_NAME).is_file():
        raise click.ClickException(
            f"no index at {s.index_path}: build one with 'searchengine index FOLDER', "
            "or serve with --root FOLDER --reindex"
        )
    if reindex and not roots:
        raise click.ClickException("--reindex needs the folders to index: --root FOLDER")
    service = Service(s, indexer_factory=Indexer.from_settings)  # the composition root: it may index
    if host not in ("127.0.0.1", "localhost", "::1") and not s.api_key:
        click.echo(
            f"warning: listening on {host} without an API key (--api-key or SE_API_KEY): anyone who can"
            " reach it may search it, start index runs and change the library",
            err=True,
        )
    if host.strip("[]") in ("0.0.0.0", "::") and not s.allowed_hosts:
        click.echo(
            "note: open it by IP address (http://192.168.x.y:PORT/); to open it by a name, such as"
            " this machine's, allow that name with --allow-host NAME",
            err=True,
        )
    click.echo(f"index:   {service.index_dir}", err=True)
    service.warm_up()
    if reindex:
        service.start_index()
    click.echo(f"serving: http://{host}:{port}/  (API docs at /docs)", err=True)
    try:
        uvicorn.run(create_app(service=service), host=host, port=port, log_level="warning")
    finally:
        service.close()


def _serve_settings(
    index, roots, api_key, cors_origins, max_upload_mb, *, host=None, allow_hosts=(), **over
) -> Settings:
    """The service's settings: flags over ``SE_*`` variables over defaults (see :func:`_settings`).

    The host served on (``--host``) is always an allowed host name, unless it is a
    wildcard address (0.0.0.0, ::), which names no host.
    """
    from searchengine.config import check_host, check_origin

    for root in roots:
        if not Path(root).expanduser().is_dir():
            raise click.ClickException(f"not a folder: {root}")
    try:
        origins = tuple(check_origin(o, "--cors-origin") for o in cors_origins)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--cors-origin") from None
    try:
        hosts = tuple(check_host(h, "--allow-host") for h in allow_hosts)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--allow-host") from None
    s = _settings(
        index,
        None,
        roots=tuple(str(Path(r).expanduser().resolve()) for r in roots) or None,
        api_key=api_key or None,
        cors_origins=origins or None,
        allowed_hosts=hosts or None,
        max_upload_bytes=int(max_upload_mb * 1024 * 1024) if max_upload_mb else None,
        **over,
    )
    if host and host.strip("[]") not in ("0.0.0.0", "::", "") and host.lower() not in s.allowed_hosts:
        s = replace(s, allowed_hosts=(*s.allowed_hosts, host.lower()))
    return s


@cli.command("import")
@click.argument("catalogue", type=click.Path(dir_okay=False))
@index_option
@click.option(
    "--image-column",
    default=None,
    metavar="COLUMN",
    help="Column naming the image [default: path, file, image...].",
)
@click.option("--dry-run", is_flag=True, help="Report what would match; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def import_(catalogue, index, image_column, dry_run, as_json) -> None:
    """Attach product metadata from CATALOGUE (.csv or .jsonl) to indexed images.

    Each row names its image by path (absolute, or relative to the catalogue) or by
    file name; every other column (sku, title, brand, category, colour, price...)
    becomes a field that is searched by keyword, filtered (--where) and counted
    (--facet). Rows that match no image, or several, are reported.
    """
    from searchengine.metadata import import_catalogue

    store = _store(index)
    report = import_catalogue(store, catalogue, image_column=image_column, dry_run=dry_run)
    if as_json:
        click.echo(json.dumps({**report.as_dict(), "dry_run": dry_run}))
        return
    verb = "would attach" if dry_run else "attached"
    click.echo(
        f"{catalogue}: {report.rows} rows, {report.matched} matched: {verb} {report.values} values "
        f"({len(report.fields)} fields: {', '.join(sorted(report.fields))})"
    )
    for line, ref in report.unmatched[:50]:
        click.echo(f"  line {line}: no indexed image matches {ref!r}", err=True)
    for line, ref, n in report.ambiguous[:50]:
        click.echo(f"  line {line}: {n} indexed images are named {ref!r}; give its path", err=True)
    for line, reason in report.bad[:50]:
        click.echo(f"  line {line}: {reason}", err=True)
    hidden = len(report.unmatched) + len(report.ambiguous) + len(report.bad) - 150
    if hidden > 0:
        click.echo(f"  ... and {hidden} more (see --json)", err=True)
    if report.unmatched or report.ambiguous:
        click.echo(f"{len(report.unmatched)} unmatched, {len(report.ambiguous)} ambiguous", err=True)


@cli.command()
@index_option
@click.option(
    "--hamming", type=click.IntRange(0, 64), default=None, help="Hash bits that may differ alone [default 2]."
)
@click.option(
    "--hamming-loose",
    type=click.IntRange(0, 64),
    default=None,
    help="Hash bits that may differ when embeddings agree [default 4].",
)
@click.option(
    "--cosine", type=click.FloatRange(-1, 1), default=None, help="Embedding agreement [default 0.9]."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option(
    "--not-duplicates",
    "apart",
    is_flag=True,
    help="Mark IMAGES as not duplicates of each other (remembered: they never group again).",
)
@click.option("--undo", is_flag=True, help="With --not-duplicates: take that mark off IMAGES.")
@click.argument("images", nargs=-1)
def duplicates(index, hamming, hamming_loose, cosine, as_json, apart, undo, images) -> None:
    """List near-duplicate groups, found at index time.

    Thresholds given are kept in the index: the groups are found again now, and by
    every later index run, with them. With --not-duplicates, IMAGES (paths, bare names
    or ids) are marked as not duplicates first; the mark is kept by content, so it
    outlives moves and re-indexing.
    """
    from dataclasses import replace as dc_replace

    from searchengine.duplicates import DuplicateRule, regroup_if_due

    store = _store(index)
    if apart or undo or images:
        _not_duplicates(store, images, apart, undo)
    rule = dc_replace(
        DuplicateRule.of_index(store),
        **{
            k: v
            for k, v in {"hamming": hamming, "hamming_loose": hamming_loose, "cosine": cosine}.items()
            if v is not None
        },
    )
    regroup_if_due(store, rule)  # new thresholds, or a run that died before regrouping
    groups = store.duplicates.groups()
    paths = store.images.by_id([i for g in groups for i in g])
    if as_json:
        click.echo(
            json.dumps(
                {
                    "rule": rule.as_dict(),
                    "groups": [[{"id": i, "path": paths[i].path} for i in g] for g in groups],
                }
            )
        )
        return
    click.echo(
        f"{_count(len(groups), 'group')} of near duplicates ({_count(sum(map(len, groups)), 'image')})",
        err=True,
    )
    for n, g in enumerate(groups, start=1):
        click.echo(f"group {n}:")
        for i in g:
            click.echo(f"  {paths[i].path}")


def _not_duplicates(store, images: tuple[str, ...], apart: bool, undo: bool) -> None:
    """``duplicates --not-duplicates [--undo] IMAGE...``: mark (or unmark) the images."""
    from searchengine.duplicates import mark_not_duplicates, unmark_not_duplicates

    if not apart:
        raise click.UsageError("name images only with --not-duplicates (and --undo to take the mark off)")
    ids = list(dict.fromkeys(_resolve_image(store, ref).id for ref in images))
    if len(ids) < 2:
        raise click.UsageError("--not-duplicates: name two or more different images")
    pairs = len(ids) * (len(ids) - 1) // 2
    if undo:
        gone = unmark_not_duplicates(store, ids)
        if not gone:
            raise click.ClickException("these images were not marked as not duplicates")
        click.echo(f"took the mark off {_count(gone, 'pair')}; they group again where alike", err=True)
        return
    new = mark_not_duplicates(store, ids)
    click.echo(f"marked {_count(pairs, 'pair')} as not duplicates ({new} new)", err=True)


@cli.group()
def tag() -> None:
    """Add or remove your own tags on images (searched by keyword, filtered with --tag)."""


_TAG_OPTION = click.option(
    "-t",
    "--tag",
    "named",
    multiple=True,
    metavar="TAG",
    help="A tag, taken as given (repeatable); then every argument is an image.",
)


@tag.command("add")
@click.argument("args", nargs=-1, required=True, metavar="TAG IMAGE...")
@_TAG_OPTION
@index_option
def tag_add(args, named, index) -> None:
    """Add TAG to each IMAGE, as 'collection add NAME IMAGE...' adds to a collection.

    An IMAGE is a path, a path relative to an indexed folder, a file name only one
    indexed image has, or an id; - reads them from stdin, one a line. Several tags:
    --tag A --tag B IMAGE... The older form IMAGE TAG... still works for one image.
    A tag that looks like an image (B.jpg) is refused, unless given with --tag.
    """
    store = _store(index)
    recs, tags = _tag_arguments(store, args, named, "add")
    for rec in recs:
        store.library.add_tags(rec.id, tags)
        click.echo(f"{rec.path}: {', '.join(store.library.user_tags(rec.id))}")


@tag.command("remove")
@click.argument("args", nargs=-1, required=True, metavar="TAG IMAGE...")
@_TAG_OPTION
@index_option
def tag_remove(args, named, index) -> None:
    """Remove TAG from each IMAGE (as for 'tag add'; the older IMAGE TAG... works too)."""
    store = _store(index)
    recs, tags = _tag_arguments(store, args, named, "remove")
    for rec in recs:
        gone = store.library.remove_tags(rec.id, tags)
        now = ", ".join(store.library.user_tags(rec.id)) or "none"
        click.echo(f"{rec.path}: {gone} removed; tags now: {now}")


def _tag_arguments(store, args: tuple[str, ...], named: tuple[str, ...], verb: str):
    """Split ``tag add/remove`` arguments into the images (records) and the tags.

    With --tag every argument is an image. Else the first argument is the tag (TAG
    IMAGE...), unless it names an indexed image: then it is the older IMAGE TAG...
    form. A positional tag that looks like an image is refused with the command
    that does what was likely meant (``tag add A.jpg B.jpg sale`` once tagged A "B.jpg").
    """
    from searchengine.names import looks_like_image

    resolve = _resolver(store)
    args = _with_stdin(args)

    def image_like(ref: str) -> bool:
        try:
            return looks_like_image(ref) or ("/" in ref and resolve.find(ref) is not None)
        except SearchEngineError:  # a name several images share
            return True

    if named:
        images, tags = list(args), list(named)
    elif len(args) < 2:
        raise click.UsageError(f"give a tag and the images: searchengine tag {verb} TAG IMAGE...")
    elif resolve.find(args[0]) is None and not image_like(args[0]):
        images, tags = list(args[1:]), [args[0]]  # TAG IMAGE...
    else:
        images, tags = [args[0]], list(args[1:])  # IMAGE TAG... (one image)
        for t in tags:
            if image_like(t):
                raise click.UsageError(_tag_hint(t, args, image_like, verb))
    tags = [" ".join(t.split()) for t in tags if t.strip()]
    if not tags or not images:
        raise click.UsageError(f"give a tag and the images: searchengine tag {verb} TAG IMAGE...")
    return [resolve(i) for i in images], tags


def _tag_hint(tag: str, args, image_like, verb: str) -> str:
    """Why ``tag`` is refused, and the command that tags every image named."""
    import shlex

    tags = [shlex.quote(a) for a in args if not image_like(a)]
    images = " ".join(shlex.quote(a) for a in args if image_like(a))
    # a first argument that names an image (an id: tag add 5 A.jpg) stays a tag only with --tag
    bare = len(tags) == 1 and tags[0] != shlex.quote(args[0])
    named = tags[0] if bare else " ".join(f"--tag {t}" for t in tags) or "--tag TAG"
    also = f"; to remove a tag named {tag!r}, give it with --tag" if verb == "remove" else ""
    return (
        f"{tag!r} looks like an image, not a tag; for several images give the tag first: "
        f"searchengine tag {verb} {named} {images}{also}"
    )


def _with_stdin(args: tuple[str, ...]) -> tuple[str, ...]:
    """``args`` with ``-`` replaced by the lines of stdin (e.g. piped ``search`` output paths)."""
    if "-" not in args:
        return args
    lines = [line.strip() for line in sys.stdin if line.strip()]
    out: list[str] = []
    for a in args:
        out.extend(lines if a == "-" else [a])
    return tuple(out)


@cli.group()
def collection() -> None:
    """Named collections of images (search inside one with search --collection NAME)."""


@collection.command("add")
@click.argument("name")
@click.argument("images", nargs=-1, required=True)
@index_option
def collection_add(name, images, index) -> None:
    """Add IMAGES to collection NAME, creating it if new.

    An IMAGE is a path, a path relative to an indexed folder, a file name only one indexed
    image has, or an id; - reads them from stdin, one a line (piped search --paths output).
    """
    store = _store(index)
    ids = [_resolve_image(store, i).id for i in _with_stdin(images)]
    added = store.library.add_to_collection(name.strip(), ids)
    click.echo(f"{name}: {added} added")


@collection.command("remove")
@click.argument("name")
@click.argument("images", nargs=-1, required=True)
@index_option
def collection_remove(name, images, index) -> None:
    """Remove IMAGES (as for 'collection add'; - reads them from stdin) from collection NAME."""
    store = _store(index)
    ids = [_resolve_image(store, i).id for i in _with_stdin(images)]
    gone = store.library.remove_from_collection(name, ids)
    click.echo(f"{name}: {gone} removed")


@collection.command("list")
@click.argument("name", required=False)
@index_option
def collection_list(name, index) -> None:
    """List collections, or the images in collection NAME."""
    from searchengine.records import Filters

    store = _store(index)
    if name is None:
        for cname, n, created in store.library.collections():
            click.echo(f"{cname}\t{_count(n, 'image')}\tcreated {created}")
        return
    if name not in {c[0] for c in store.library.collections()}:
        raise click.ClickException(f"no collection named {name!r}")
    ids = store.images.filtered_ids(Filters(collection=name)).tolist()
    for rec in sorted(store.images.by_id(ids).values(), key=lambda r: r.path):
        click.echo(rec.path)


@collection.command("delete")
@click.argument("name")
@index_option
def collection_delete(name, index) -> None:
    """Delete collection NAME (its images stay indexed)."""
    if not _store(index).library.delete_collection(name):
        raise click.ClickException(f"no collection named {name!r}")
    click.echo(f"deleted {name}")


@cli.command()
@index_option
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl", "jsonld", "xmp"]), required=True)
@click.option(
    "--out",
    type=click.Path(),
    default=None,
    help="File to write (csv, jsonl, jsonld; default stdout) or folder for xmp sidecars.",
)
@click.option("--beside", is_flag=True, help="xmp: write each sidecar beside its image.")
@click.option("--overwrite", is_flag=True, help="xmp: replace sidecars that already exist.")
@click.option("--folder", type=click.Path(file_okay=False), default=None, help="Only images under it.")
@click.option("--collection", default=None, metavar="NAME", help="Only images in this collection.")
@click.option("--base-url", default=None, help="jsonld: public URL of the indexed folders (contentUrl).")
def export(index, fmt, out, beside, overwrite, folder, collection, base_url) -> None:
    """Export SEO metadata of every image: alt text, title, caption, keywords, OCR text.

    Each field records where it came from (which model or import). Originals are
    never modified; existing sidecars are kept unless --overwrite.
    """
    from searchengine.export import records, render, write_xmp
    from searchengine.search.request import build_filters, check_filters

    store = _store(index)
    filters = build_filters(folder=folder, collection=collection)
    check_filters(store, filters)  # an unknown folder or collection: an error, not an empty file
    ids = store.images.filtered_ids(filters).tolist() if filters else None
    if filters and not ids:
        what = " and ".join(
            ([f"under {filters.folder}"] if filters.folder else [])
            + ([f"in collection {collection!r}"] if collection is not None else [])
        )
        raise click.ClickException(f"nothing to export: no indexed image is {what}")
    items = list(records(store, ids))
    if fmt == "xmp":
        if bool(out) == beside:
            raise click.ClickException("xmp: choose where sidecars go: --out FOLDER or --beside")
        written, skipped = write_xmp(items, Path(out).expanduser() if out else None, overwrite=overwrite)
        click.echo(
            f"{_count(written, 'sidecar')} written"
            + (f", {len(skipped)} existing kept (--overwrite)" if skipped else "")
        )
        return
    text = render(items, fmt, base_url)
    if out:
        Path(out).expanduser().write_text(text, encoding="utf-8", newline="")
        click.echo(f"{_count(len(items), 'image')} written to {out}", err=True)
    else:
        click.echo(text, nl=False)


@cli.command()
@click.argument("pairs", required=False, type=click.Path(dir_okay=False))
@index_option
@click.option(
    "--image-column", default=None, metavar="COLUMN", help="CSV: the image column [default: path, file...]."
)
@click.option(
    "--text-column", default=None, metavar="COLUMN", help="The text column [default: captions, title...]."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same adapter.")
@click.option(
    "--val-fraction",
    type=click.FloatRange(0.05, 0.5),
    default=0.2,
    show_default=True,
    help="Share of the images held back to validate on.",
)
@click.option("--epochs", type=click.IntRange(1, 1000), default=60, show_default=True, help="At most.")
@click.option(
    "--patience", type=click.IntRange(1, 100), default=6, show_default=True, help="Epochs without gain."
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the report JSON here too.",
)
@click.option("--no-apply", is_flag=True, help="Train and report only; leave the index as it is.")
@click.option(
    "--no-adapter", is_flag=True, help="Drop the index's adapter: embed again with the plain encoder."
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
def tune(
    pairs,
    index,
    image_column,
    text_column,
    seed,
    val_fraction,
    epochs,
    patience,
    report_path,
    no_apply,
    no_adapter,
    quiet,
) -> None:
    """Tune the index's encoder to your images with PAIRS of images and texts.

    PAIRS is a JSONL file of {"file", "captions"} records (files relative to it) or a
    catalogue CSV with an image column and a text column (a product title). The
    encoder stays frozen. A small adapter on its image side is trained (contrastive,
    as in LiT): held-back images pick the best epoch, and before/after recall on them
    is printed and written to JSON. The adapter is saved with the index, and the
    index's images are embedded again with it (in one swap: never half adapted).
    Later index runs and queries use it. --no-adapter goes back to the plain encoder.
    """
    from tqdm import tqdm

    from searchengine.models.adapter import AdaptedEmbedder, split_spec
    from searchengine.models.registry import create_embedder
    from searchengine.tuning import extract, load_pairs, report, train, write_json

    store = _store(index)
    recorded = store.encoder()
    if recorded is None:
        raise click.ClickException("the index is empty: index your images first, then tune")
    if not no_apply:
        _lock_index(store)  # it embeds the index again: no index run meanwhile
    base_spec, current = split_spec(recorded.spec)
    base = create_embedder(base_spec)

    if no_adapter:
        if current is None:
            click.echo(f"the index has no adapter (encoder {recorded.spec})", err=True)
            return
        _reembed(store, base, quiet)
        store.set_meta("adapter", "")
        return
    if not pairs:
        raise click.ClickException("give the PAIRS file to tune on (or --no-adapter)")
    data = load_pairs(pairs, image_column=image_column, text_column=text_column, store=store)
    pairs_read = f"{_count(data.count, 'text')} for {_count(len(data.images), 'image')}"
    click.echo(f"pairs: {pairs_read}; encoder {base_spec} (frozen)", err=True)
    bar = tqdm(total=len(data.images), unit="img", desc="encoding", file=sys.stderr, disable=quiet)
    feats = extract(base, data, progress=bar.update)
    bar.close()
    for what, why in data.skipped[:20]:
        click.echo(f"  skipped {what}: {why}", err=True)
    bar = tqdm(total=epochs, unit="epoch", desc="training", file=sys.stderr, disable=quiet)

    def epoch_done(epoch: int, metrics: dict) -> None:
        bar.update(1)
        bar.set_postfix({k: metrics[k] for k in ("R@1", "R@5", "R@10")})

    result = train(
        feats, base_spec, seed=seed, val_fraction=val_fraction, epochs=epochs, patience=patience,
        progress=epoch_done,
    )  # fmt: skip
    bar.close()
    data_report = report(result, str(pairs), seed)
    _print_tuning(result, data_report)
    if report_path:
        write_json(data_report, report_path)
    if no_apply:
        return
    path = result.adapter.save(store.dir)
    write_json(data_report, path.with_suffix(".json"))
    _reembed(store, AdaptedEmbedder(base, result.adapter), quiet)
    store.set_meta("adapter", json.dumps(data_report))
    click.echo(f"adapter: {result.adapter.id} ({result.adapter.kind}) saved in {path.parent}")


def _reembed(store, embedder, quiet: bool) -> None:
    """Embed every image again with ``embedder`` (one swap), then refresh FAISS and duplicates."""
    from tqdm import tqdm

    from searchengine import derived
    from searchengine.duplicates import DuplicateRule
    from searchengine.tuning import reembed

    bar = tqdm(
        total=store.images.counts().ok, unit="img", desc="re-embedding", file=sys.stderr, disable=quiet
    )
    n = reembed(store, embedder, progress=bar.update)
    bar.close()
    derived.refresh(store, embedder.id.dim, DuplicateRule.of_index(store))
    click.echo(f"index: {_count(n, 'image')} embedded again with {embedder.id.spec}", err=True)


def _print_tuning(result, data_report: dict) -> None:
    click.echo(
        f"validation: {result.val_images} held-back images, {result.val_texts} texts; "
        f"best epoch {result.best_epoch} of {result.epochs}"
    )
    click.echo("| | R@1 | R@5 | R@10 | MRR |")
    click.echo("|---|---:|---:|---:|---:|")
    for name in ("before", "after"):
        m = data_report[name]
        click.echo(f"| {name} | {m['R@1']:.3f} | {m['R@5']:.3f} | {m['R@10']:.3f} | {m['MRR']:.3f} |")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def models(as_json) -> None:
    """List every encoder, captioner and OCR engine: licence, size, weights, how to get them.

    Backends whose licences or training data make commercial use doubtful are flagged.
    """
    from searchengine.models.registry import describe

    entries = describe()
    if as_json:
        click.echo(json.dumps(entries))
        return
    for m in entries:
        here = "present" if m["present"] else "not present"
        mark = " (default)" if m["default"] else ""
        flag = "  [!] commercial use: check" if m["commercial_caution"] else ""
        click.echo(f"{m['kind']} {m['name']}{mark}: {m['description']}{flag}")
        click.echo(f"    licence: {m['licence']}")
        click.echo(f"    size: {m['size']}; weights [{here}]: {m['weights']}")
        click.echo(f"    default tag: {m['default_tag']}")
        if m["commercial_caution"]:
            click.echo(f"    [!] {m['commercial_caution']}")


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    cli.main(args=argv, prog_name="searchengine")


if __name__ == "__main__":
    main()
