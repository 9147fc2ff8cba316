"""What both edges show of a page of results: file facts, caption, title, duplicates, facets.

The one place a ranking becomes :class:`~searchengine.records.Hit` records, in a
handful of queries per page whatever its size.
"""

from __future__ import annotations

from collections.abc import Sequence

from searchengine.records import Hit
from searchengine.store.db import Store


def hydrate(store: Store, ranked: Sequence[tuple[int, float, dict | None]], first_rank: int) -> list[Hit]:
    """Turn ``(id, score, legs)`` of one page into hits, numbered from ``first_rank``.

    Images deleted since the ranking was made are left out.
    """
    ids = [i for i, _, _ in ranked]
    records = store.images.by_id(ids)
    captions = store.text.captions_of(ids)
    meta = store.library.metadata_of(ids)
    dups = store.duplicates.of(ids)
    hits = []
    for n, (image_id, score, legs) in enumerate(ranked, start=first_rank):
        rec = records.get(image_id)
        if rec is None:
            continue
        hits.append(
            Hit(
                id=rec.id,
                rank=n,
                score=score,
                path=rec.path,
                width=rec.width,
                height=rec.height,
                format=rec.format,
                caption=captions.get(image_id),
                title=meta.get(image_id, {}).get("title"),
                duplicates=len(dups.get(image_id, [])),
                legs=legs,
            )
        )
    return hits


def facets(store: Store, ids: Sequence[int], fields: Sequence[str]) -> dict[str, list[tuple[str, int]]]:
    """Count each metadata field's values over the whole result set ``ids``."""
    return store.library.facets(ids, fields) if fields else {}
