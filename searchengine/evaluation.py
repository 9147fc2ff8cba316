"""Evaluation protocols of ../shared/datasets/README.md, shared by bench/ and tests."""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from searchengine import strict_json
from searchengine.metrics import ranking_metrics

_KEYED = re.compile(
    r"\b(INV|INVOICE|DOC|DOCUMENT|BILL|RECEIPT|RCPT|CHECK|SLIP|TRANS|ORDER|TAX INVOICE)\b", re.I
)
_CODE = re.compile(r"\b(?=[A-Z0-9/-]*\d)(?=[A-Z0-9/-]*[A-Z])[A-Z0-9/-]{6,}\b|\b\d{6,}\b", re.I)
_AMOUNT = re.compile(r"^[\sRM$.,:\-*\d]+$")


def distinctive_line(text: str, counts: Counter) -> str | None:
    """Pick a line of a receipt's text that no other receipt has, for a one-answer query.

    Preference: a line naming an invoice/document/bill number, then a line with a
    code-like token (letters and digits, or 6+ digits), then the longest unique line.

    :param counts: how many receipts contain each (stripped) line.
    """
    cands = [
        line.strip()
        for line in text.splitlines()
        if counts[line.strip()] == 1
        and re.search(r"\d", line)
        and len(line.replace(" ", "")) >= 6
        and not _AMOUNT.match(line)
    ]
    for pattern in (_KEYED, _CODE):
        keyed = [c for c in cands if pattern.search(c)]
        if keyed:
            return keyed[0]
    return max(cands, key=len) if cands else None


def word_recall(truth: str, ocr: str) -> tuple[int, int]:
    """Return (ground-truth words found in the OCR text, ground-truth words), upper-cased."""
    want = Counter(truth.upper().split())
    have = Counter(ocr.upper().split())
    return sum(min(n, have[w]) for w, n in want.items()), sum(want.values())


# -- the evaluation harness: query sets from annotations, metrics per leg ------------------

#: What each query is run as: ``default`` exactly as ``search`` and ``/api/search`` run it
#: with default settings; the rest are diagnostics (a leg alone, no relevance cutoff).
VARIANTS: dict[str, dict] = {
    "default": {},
    "vector (default)": {"mode": "vector"},
    "fused (no cutoff)": {"min_score": -1.0},
    "vector (no cutoff)": {"mode": "vector", "min_score": -1.0},
    "keyword": {"mode": "keyword"},
}


@dataclass(frozen=True)
class EvalQuery:
    """One query: text and/or an image file, and the set of relevant image paths."""

    relevant: frozenset[str]
    text: str | None = None
    image: str | None = None


@dataclass
class QuerySet:
    """Queries of one protocol on one dataset (e.g. flickr8k captions, sroie companies)."""

    name: str
    queries: list[EvalQuery] = field(default_factory=list)


def load_annotations(path: str | Path) -> tuple[Path, list[dict]]:
    """Read an ``annotations.jsonl`` (``../shared/datasets/README.md`` format).

    :returns: the dataset folder and its records.
    """
    path = Path(path)
    records = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if line.strip():
                try:
                    records.append(strict_json.loads(line))
                except strict_json.InvalidJSON as exc:
                    raise strict_json.InvalidJSON(f"{path} line {n}: {exc}") from None
    return path.parent, records


def indexed_path(folder: Path, file: str) -> Path:
    """The path the indexer records for ``folder/file``: its folder resolved, the file itself
    not (a symlinked file, such as a subset linked in place, is indexed where the link is)."""
    path = Path(os.path.abspath(Path(folder) / file))
    return path.parent.resolve() / path.name


def image_root(folder: Path, records: list[dict]) -> Path:
    """Return the folder to index: the common parent of every record's ``file``."""
    parents = {str(indexed_path(folder, r["file"]).parent) for r in records}
    return Path(os.path.commonpath(sorted(parents)))


def query_sets(folder: Path, records: list[dict]) -> list[QuerySet]:
    """Build the query sets the records support, following the datasets' protocols.

    * ``captions`` (no query image): every caption is a query for its image.
    * ``title``: the title finds its product; ``attributes``: "{baseColour}
      {articleType} for {gender}" finds every product with those attributes.
    * ``fields.company``: the company finds all its receipts; a distinctive line
      (:func:`distinctive_line`) finds its receipt.
    * ``query_file``: query by image; the relevant image is ``file``.
    """
    path = {id(r): str(indexed_path(folder, r["file"])) for r in records}
    sets: dict[str, QuerySet] = {}

    def add(name: str, q: EvalQuery) -> None:
        sets.setdefault(name, QuerySet(name)).queries.append(q)

    by_attrs: dict[str, set[str]] = {}
    by_company: dict[str, set[str]] = {}
    for r in records:
        attrs = r.get("attributes") or {}
        if {"baseColour", "articleType", "gender"} <= set(attrs):
            phrase = f"{attrs['baseColour']} {attrs['articleType']} for {attrs['gender']}"
            by_attrs.setdefault(phrase, set()).add(path[id(r)])
        company = (r.get("fields") or {}).get("company")
        if company:
            by_company.setdefault(company, set()).add(path[id(r)])
    counts = Counter(line.strip() for r in records for line in set((r.get("text") or "").splitlines()))
    for r in records:
        mine = frozenset({path[id(r)]})
        if r.get("query_file"):
            add("image query", EvalQuery(mine, image=str((folder / r["query_file"]).resolve())))
        elif r.get("title"):
            add("title", EvalQuery(mine, text=r["title"]))
        elif r.get("fields") and r.get("text"):
            line = distinctive_line(r["text"], counts)
            if line:
                add("distinctive line", EvalQuery(mine, text=line))
        elif r.get("captions"):
            for caption in r["captions"]:
                add("caption", EvalQuery(mine, text=caption))
    for phrase, rel in sorted(by_attrs.items()):
        add("attributes", EvalQuery(frozenset(rel), text=phrase))
    for company, rel in sorted(by_company.items()):
        add("company", EvalQuery(frozenset(rel), text=company))
    return list(sets.values())


def run_eval(
    engine,
    sets: list[QuerySet],
    depth: int = 100,
    progress: Callable[[int], None] | None = None,
    absent: list[str] | None = None,
) -> dict[str, dict[str, dict[str, float]]]:
    """Run every query set through each variant of :data:`VARIANTS`.

    Returns set -> variant -> metrics, plus ``queries`` and ``no_results`` (the share of
    queries that returned nothing). ``default`` is what a user gets from ``search`` and
    ``/api/search`` with default settings (hybrid, calibrated cutoff); the others are
    diagnostics. A variant that cannot answer a set (keyword search for image queries)
    is left out.

    :param absent: queries about things the set does not hold; reported as the set
        ``absent`` with, per variant, ``rejected``: the share that returned nothing.
    """
    from searchengine.imaging import load_image
    from searchengine.models.base import TextCache
    from searchengine.records import SearchRequest
    from searchengine.search import SearchEngine

    if engine.embedder is not None:  # the variants of one query encode its text once
        engine = SearchEngine(engine.store, TextCache(engine.embedder, 16))
    results: dict[str, dict[str, dict[str, float]]] = {}
    for qs in sets:
        ranked: dict[str, list[list[str]]] = {name: [] for name in VARIANTS}
        for q in qs.queries:
            image = load_image(q.image)[0] if q.image else None  # as `search --image` reads it
            for name, fields in VARIANTS.items():
                if fields.get("mode") == "keyword" and not q.text:
                    continue
                page = engine.run(SearchRequest(q.text, image=image, limit=depth, **fields))
                ranked[name].append([h.path for h in page.hits])
            if progress:
                progress(1)
        rel = [q.relevant for q in qs.queries]
        results[qs.name] = {
            name: {
                **ranking_metrics(r, rel),
                "queries": len(r),
                "no_results": sum(1 for got in r if not got) / len(r),
            }
            for name, r in ranked.items()
            if r
        }
    if absent:
        results["absent"] = _rejections(engine, absent, progress)
    return results


def _rejections(engine, queries: list[str], progress) -> dict[str, dict[str, float]]:
    """Per variant, the share of ``queries`` that returned nothing (the cutoff said no)."""
    from searchengine.records import SearchRequest

    empty = dict.fromkeys(VARIANTS, 0)
    for text in queries:
        for name, fields in VARIANTS.items():
            empty[name] += not engine.run(SearchRequest(text, limit=10, **fields)).hits
        if progress:
            progress(1)
    return {name: {"queries": len(queries), "rejected": n / len(queries)} for name, n in empty.items()}
