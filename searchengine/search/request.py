"""Build a :class:`~searchengine.records.SearchRequest` from what a person typed.

Both edges pass their raw values here (the CLI's options, the API's query
parameters), so a folder, a date, a format or a field condition means the same in
both.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time
from difflib import get_close_matches
from pathlib import Path
from typing import TYPE_CHECKING

from searchengine.errors import BadQuery, NotFound
from searchengine.imaging import normalise_format
from searchengine.metadata import normalise_key, parse_condition
from searchengine.records import DEFAULT_RRF_K, Filters, SearchRequest

if TYPE_CHECKING:
    from searchengine.store.db import Store

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


def check_filters(store: Store, filters: Filters | None) -> None:
    """Refuse filters that name what the index does not hold, listing what it does.

    A mistyped field, collection or folder would otherwise give an empty page that
    reads as "nothing matches" (``price`` typed ``prise``).

    :raises BadQuery: a field condition on a field no image has, or a number compared
        with a field none of whose values is a number.
    :raises NotFound: an unknown collection, a tag no searchable image carries, or a
        folder no searchable image is under.
    """
    if filters is None:
        return
    if filters.where:
        _check_fields(store, filters.where)
    if filters.collection is not None:
        names = [name for name, _, _ in store.library.collections()]
        if filters.collection not in names:
            listing = _listing(filters.collection, names, "collections")
            raise NotFound(f"no collection {filters.collection!r}{listing}")
    for tag in filters.tags:
        if not store.images.any_passing(Filters(tags=(tag,))):
            listing = _listing(tag.lower(), [t for t, _ in store.text.tags(1000)], "tags")
            raise NotFound(f"no image is tagged {tag!r}{listing}")
    if filters.folder and not store.images.any_passing(Filters(folder=filters.folder)):
        listing = _listing(filters.folder, store.images.roots(), "indexed folders", hint=False)
        raise NotFound(f"no indexed image under {filters.folder}{listing}")


def _check_fields(store: Store, conditions: Sequence) -> None:
    kinds = store.library.field_kinds([c.key for c in conditions])
    for cond in conditions:
        said = f"{cond.key}{cond.op}{cond.value}"
        if cond.key not in kinds:
            fields = [row[0] for row in store.library.metadata_fields()]
            if not fields:
                raise BadQuery(
                    f"unknown field {cond.key!r} in {said}: no image has metadata fields yet "
                    "(import a catalogue: 'searchengine import CATALOGUE')"
                )
            raise BadQuery(f"unknown field {cond.key!r} in {said}{_listing(cond.key, fields, 'fields')}")
        if cond.op not in ("=", "!=") and not kinds[cond.key]:
            raise BadQuery(f"{said}: no value of {cond.key!r} is a number; compare it with = or !=")


def _listing(wanted: str, names: Sequence[str], what: str, hint: bool = True) -> str:
    """``" (did you mean X?); WHAT: a, b, c"``, or ``": there are no WHAT yet"``."""
    if not names:
        return f": there are no {what} yet"
    close = get_close_matches(wanted, names, n=1, cutoff=0.6) if hint else []
    mean = f" (did you mean {close[0]}?)" if close else ""
    shown = ", ".join(names[:50]) + (f" and {len(names) - 50} more" if len(names) > 50 else "")
    return f"{mean}; {what}: {shown}"


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
    facet_top: int = 20,
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
        facet_top=facet_top,
        explain=explain,
    )
