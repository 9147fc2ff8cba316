"""Build a :class:`~searchengine.records.SearchRequest` from what a person typed.

Both edges pass their raw values here (the CLI's options, the API's query
parameters), so a folder, a date, a format or a field condition means the same in
both.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time
from pathlib import Path

from searchengine.errors import BadQuery
from searchengine.imaging import normalise_format
from searchengine.metadata import normalise_key, parse_condition
from searchengine.records import DEFAULT_RRF_K, Filters, SearchRequest

INT64 = (-(2**63), 2**63 - 1)


def instant_ns(value: str | date | None, end: bool = False) -> int | None:
    """An ISO date or date-time (or a ``date``) -> nanoseconds since the epoch, local time.

    A bare date stands for its first instant, or with ``end`` its last, so
    ``--before 2024-05-31`` keeps files from that day. Days beyond what the OS can
    represent are clamped to the int64 range.

    :raises BadQuery: not an ISO date.
    """
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise BadQuery(f"not an ISO date: {value!r} (e.g. 2024-05-31)") from None
        bare = len(value) <= 10
    else:
        moment, bare = value, not isinstance(value, datetime)
    try:
        if bare:
            moment = datetime.combine(moment, time.max if end else time.min)
        ns = int(moment.timestamp() * 1e9)
    except (OverflowError, ValueError, OSError):
        ns = INT64[1] if moment.year > 1970 else INT64[0]
    return max(INT64[0], min(INT64[1], ns))


def folder_path(folder: str | None) -> str | None:
    """The absolute, resolved form of a folder filter (as the indexer records paths)."""
    if not folder or not folder.strip():
        return None
    try:
        return str(Path(folder).expanduser().resolve())
    except (RuntimeError, OSError, ValueError) as exc:  # ~nosuchuser, a symlink loop, a NUL
        raise BadQuery(f"not a usable folder: {folder!r} ({exc})") from None


def build_filters(
    folder: str | None = None,
    types: Sequence[str] = (),
    after: str | date | None = None,
    before: str | date | None = None,
    min_size: int | None = None,
    max_size: int | None = None,
    tags: Sequence[str] = (),
    where: Sequence[str] = (),
    collection: str | None = None,
) -> Filters | None:
    """Filters from raw values (None when nothing restricts).

    :raises BadQuery: a date or a field condition that cannot be read.
    """
    filters = Filters(
        folder=folder_path(folder),
        formats=tuple(normalise_format(t) for t in types if t.strip()),
        modified_after=instant_ns(after),
        modified_before=instant_ns(before, end=True),
        min_bytes=min_size,
        max_bytes=max_size,
        tags=tuple(" ".join(t.split()) for t in tags if t.strip()),
        where=tuple(parse_condition(c) for c in where if c.strip()),
        collection=collection,
    )
    return filters if filters.active else None


def build_request(
    text: str | None = None,
    *,
    image=None,
    like: int | None = None,
    limit: int = 10,
    offset: int = 0,
    mode: str = "hybrid",
    fusion: str = "rrf",
    rrf_k: int = DEFAULT_RRF_K,
    vector_weight: float = 1.0,
    keyword_weight: float = 1.0,
    min_score: float | None = None,
    facets: Sequence[str] = (),
    explain: bool = False,
    **filters,
) -> SearchRequest:
    """A request from raw values; ``filters`` are the keyword arguments of :func:`build_filters`."""
    return SearchRequest(
        text=text if text and text.strip() else None,
        image=image,
        like=like,
        limit=limit,
        offset=offset,
        mode=mode,
        fusion=fusion,
        rrf_k=rrf_k,
        vector_weight=vector_weight,
        keyword_weight=keyword_weight,
        filters=build_filters(**filters),
        min_score=min_score,
        facets=tuple(dict.fromkeys(normalise_key(f) for f in facets if f.strip())),
        explain=explain,
    )
