"""What both edges show of a page of results: file facts, caption, title, duplicates, facets.

The one place a ranking becomes :class:`~searchengine.records.Hit` records, in a
handful of queries per page whatever its size.
"""

from __future__ import annotations

from collections.abc import Sequence

from searchengine.labels import stated_labels
from searchengine.records import Hit, ImageRecord
from searchengine.search.reasons import Asked, HitText, reasons
from searchengine.store.db import Store
from searchengine.text import name_and_folder


def hydrate(
    store: Store,
    ranked: Sequence[tuple[int, float, dict | None]],
    first_rank: int,
    relevance: dict[int, float] | None = None,
    asked: Asked | None = None,
) -> list[Hit]:
    """Turn ``(id, score, legs)`` of one page into hits, numbered from ``first_rank``, with
    each hit's ``relevance`` (0 to 1) when given, and its reasons in plain words when
    ``asked`` says what the search was.

    Images deleted since the ranking was made are left out.
    """
    ids = [i for i, _, _ in ranked]
    records = store.images.by_id(ids)
    meta = store.library.metadata_of(ids)
    dups = store.duplicates.of(ids)
    texts = hit_texts(store, records, meta) if asked is not None else {}
    captions = {i: t.caption for i, t in texts.items()} if texts else store.text.captions_of(ids)
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
                relevance=(relevance or {}).get(image_id),
                reasons=reasons(asked, image_id, texts[image_id]) if asked is not None else (),
            )
        )
    return hits


def hit_texts(
    store: Store, records: dict[int, ImageRecord], meta: dict[int, dict[str, str]]
) -> dict[int, HitText]:
    """The text fields of each of ``records`` that the keyword index holds, and the labels its
    caption states, for :func:`~searchengine.search.reasons.reasons` (three more queries a page)."""
    ids = list(records)
    stored = store.text.of_many(ids, details=False)
    tags = store.library.user_tags_of(ids)
    out = {}
    for image_id, rec in records.items():
        text, fields = stored[image_id], dict(meta.get(image_id, {}))
        parts = text.caption_parts
        name, folder = name_and_folder(rec.path, rec.root)
        out[image_id] = HitText(
            name=name,
            folder=folder,
            title=fields.pop("title", None),
            metadata=fields,
            user_tags=tuple(tags.get(image_id, ())),
            caption=text.caption,
            caption_tags=text.tags,
            ocr=text.ocr_text,
            labels=tuple(n for n, _ in stated_labels(parts.labels)) if parts is not None else (),
        )
    return out


def facets(store: Store, ids: Sequence[int], fields: Sequence[str]) -> dict[str, list[tuple[str, int]]]:
    """Count each metadata field's values over the whole result set ``ids``."""
    return store.library.facets(ids, fields) if fields else {}
