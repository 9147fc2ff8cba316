"""Product and asset metadata: catalogue import, field names, conditions on fields.

A catalogue is a CSV or JSONL file with one row per product image: a column naming
the image (a path, or just a file name) and any other columns (sku, title,
description, brand, category, colour, price...). Rows are matched to indexed images
and their values stored in the index, where they are searched by keyword,
filtered (``brand=Nike``, ``price<50``) and counted (facets).
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from searchengine import strict_json
from searchengine.errors import BadQuery, SearchEngineError
from searchengine.names import ImageNames

#: Columns that name the image, tried in this order when none is given.
IMAGE_COLUMNS = ("path", "file", "image", "image_path", "filename", "file_name", "image_file", "img")
#: Common spellings mapped to one field name.
ALIASES = {"color": "colour", "base_color": "base_colour", "name": "title", "product_name": "title"}
OPERATORS = ("<=", ">=", "!=", "=", "<", ">")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NUMBER = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$")


def normalise_key(key: str) -> str:
    """``baseColour`` / ``Base Colour`` / ``base-colour`` -> ``base_colour`` (aliases applied)."""
    snake = re.sub(r"[^0-9a-z]+", "_", _CAMEL.sub("_", key.strip()).lower()).strip("_")
    return ALIASES.get(snake, snake)


def as_number(value: str) -> float | None:
    """Read ``19.99``, ``$1,299.00``, ``€5`` or ``-3`` as a number; None for anything else."""
    text = value.strip().lstrip("$€£¥").replace(",", "").replace("_", "").strip()
    if not _NUMBER.match(text):
        return None
    number = float(text)
    return number if abs(number) < 1e300 else None


@dataclass(frozen=True, slots=True)
class Condition:
    """One test on a metadata field: ``key op value``; ``<``-style ops compare numbers."""

    key: str
    op: str
    value: str

    @property
    def number(self) -> float:
        n = as_number(self.value)
        if n is None:
            raise BadQuery(f"{self.key}{self.op}{self.value}: {self.value!r} is not a number")
        return n


def parse_condition(text: str) -> Condition:
    """Parse ``brand=Nike``, ``price<50``, ``price>=10``, ``colour!=black``.

    :raises SearchEngineError: no operator, no field name, or a non-number compared.
    """
    for op in OPERATORS:
        if op in text:
            key, value = text.split(op, 1)
            key, value = normalise_key(key), value.strip()
            if not key or not value:
                break
            cond = Condition(key, op, value)
            if op not in ("=", "!="):
                cond.number  # noqa: B018 - validates now, with the message
            return cond
    raise BadQuery(
        f"not a field condition: {text!r}; write FIELD=VALUE, FIELD!=VALUE or FIELD<NUMBER "
        "(also <=, >, >=), e.g. brand=Nike or price<50"
    )


def flatten(row: dict) -> dict[str, str]:
    """Flatten one catalogue row: nested objects give their own keys, lists are joined."""
    out: dict[str, str] = {}
    for key, value in row.items():
        if isinstance(value, dict):
            for k, v in flatten(value).items():
                out.setdefault(k, v)
            continue
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value if v not in (None, ""))
        if value is None:
            continue
        text = str(value).strip()
        if text:
            out[normalise_key(str(key))] = text
    return out


def read_rows(path: Path) -> Iterator[tuple[int, dict | None, str | None]]:
    """Yield ``(line number, row, error)`` from a ``.csv`` or ``.jsonl``/``.json`` file."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        with path.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    row = strict_json.loads(line)  # no NaN, 1e400, deep nesting or huge numbers
                except strict_json.InvalidJSON as exc:
                    yield n, None, str(exc)
                    continue
                if not isinstance(row, dict):
                    yield n, None, "not a JSON object"
                    continue
                yield n, row, None
    elif suffix in (".csv", ".tsv"):
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh, delimiter="\t" if suffix == ".tsv" else ",")
            for n, row in enumerate(reader, start=2):
                yield n, {k: v for k, v in row.items() if k is not None}, None
    else:
        raise SearchEngineError(f"{path}: a catalogue must be .csv, .tsv or .jsonl")


@dataclass
class ImportReport:
    """What an import did (or would do, with ``dry_run``)."""

    source: str
    rows: int = 0
    matched: int = 0
    values: int = 0
    unmatched: list[tuple[int, str]] = field(default_factory=list)  # (line, image value)
    ambiguous: list[tuple[int, str, int]] = field(default_factory=list)  # (line, name, candidates)
    bad: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)
    fields: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict:
        return {
            "source": self.source,
            "rows": self.rows,
            "matched": self.matched,
            "values": self.values,
            "fields": dict(self.fields),
            "unmatched": [{"line": n, "image": v} for n, v in self.unmatched],
            "ambiguous": [{"line": n, "image": v, "candidates": c} for n, v, c in self.ambiguous],
            "bad": [{"line": n, "reason": r} for n, r in self.bad],
        }


def import_catalogue(
    store,
    path: str | Path,
    image_column: str | None = None,
    dry_run: bool = False,
    columns: set[str] | None = None,
):
    """Attach each row's fields to the indexed image it names; returns an :class:`ImportReport`.

    The image column holds a path (absolute, or relative to the catalogue's folder)
    or a bare file name, matched against indexed images' names when no path matches.
    A name that several indexed images share is reported as ambiguous, not guessed.
    Values are upserted per field; provenance is ``import:<file name>``.

    :param columns: import only these (top-level) columns; None: all of them.

    :raises SearchEngineError: unreadable file, unknown format, or no image column.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise SearchEngineError(f"no such catalogue file: {path}")
    base = path.resolve().parent
    report = ImportReport(source=f"import:{path.name}")
    names = ImageNames.searchable(store)
    column = None
    writes: list[tuple[int, dict[str, str]]] = []
    try:
        rows = list(read_rows(path))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SearchEngineError(f"cannot read {path}: {exc}") from None
    for line, row, error in rows:
        report.rows += 1
        if error:
            report.bad.append((line, error))
            continue
        if column is None:
            column = _image_column(row, image_column, path)
        ref = str(row.get(column) or "").strip()
        if not ref:
            report.bad.append((line, f"no value in the image column {column!r}"))
            continue
        candidates = names.find(ref, bases=[base])
        if len(candidates) > 1:
            report.ambiguous.append((line, ref, len(candidates)))
            continue
        if not candidates:
            report.unmatched.append((line, ref))
            continue
        image_id = candidates[0]
        values = flatten({k: v for k, v in row.items() if k != column and (columns is None or k in columns)})
        report.matched += 1
        report.values += len(values)
        report.fields.update(values.keys())
        writes.append((image_id, values))
    if not dry_run and writes:
        store.library.set_metadata(writes, report.source)
    return report


def _image_column(row: dict, wanted: str | None, path: Path) -> str:
    if wanted:
        if wanted not in row:
            raise SearchEngineError(f"{path}: no column {wanted!r}; columns: {', '.join(row)}")
        return wanted
    lower = {k.lower(): k for k in row}
    for name in IMAGE_COLUMNS:
        if name in lower:
            return lower[name]
    raise SearchEngineError(
        f"{path}: which column names the image? none of {', '.join(IMAGE_COLUMNS)} is there "
        f"(columns: {', '.join(row)}); pass --image-column"
    )
