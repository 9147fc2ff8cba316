"""What both edges show of a page of results: file facts, caption, title, product and
document facts, duplicates, facets.

The one place a ranking becomes :class:`~searchengine.records.Hit` records, in a
handful of queries per page whatever its size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from searchengine import documents
from searchengine.labels import stated_labels
from searchengine.records import Hit, ImageRecord, ImageText
from searchengine.search.reasons import Asked, HitText, reasons
from searchengine.store.db import Store
from searchengine.text import name_and_folder

#: The imported fields a result card shows besides the title, in the order it shows them.
CARD_FIELDS = ("price", "currency", "brand", "sku")
#: The facts of a document a card shows (:class:`~searchengine.documents.Document` fields).
DOCUMENT_FIELDS = ("kind", "issuer", "date", "number", "total", "currency")


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
    stored = store.text.of_many(ids, details=False)
    texts = hit_texts(store, records, meta, stored) if asked is not None else {}
    docs = document_facts(store, {i: t.ocr_text for i, t in stored.items()})
    hits = []
    for n, (image_id, score, legs) in enumerate(ranked, start=first_rank):
        rec = records.get(image_id)
        if rec is None:
            continue
        fields = meta.get(image_id, {})
        hits.append(
            Hit(
                id=rec.id,
                rank=n,
                score=score,
                path=rec.path,
                width=rec.width,
                height=rec.height,
                format=rec.format,
                caption=stored[image_id].caption if image_id in stored else None,
                title=fields.get("title"),
                duplicates=len(dups.get(image_id, [])),
                legs=legs,
                relevance=(relevance or {}).get(image_id),
                reasons=reasons(asked, image_id, texts[image_id]) if asked is not None else (),
                product=card_facts(fields),
                document=docs.get(image_id),
            )
        )
    return hits


def card_facts(fields: Mapping[str, str]) -> dict[str, str] | None:
    """The :data:`CARD_FIELDS` an image's imported metadata has (None: none of them)."""
    facts = {k: fields[k] for k in CARD_FIELDS if str(fields.get(k) or "").strip()}
    return facts or None


def document_facts(store: Store, ocr: Mapping[int, str | None]) -> dict[int, dict[str, str]]:
    """The key fields (:data:`DOCUMENT_FIELDS`, those found) of each image whose OCR text
    ``ocr`` reads as a receipt, invoice or form, as the exports read them
    (:func:`searchengine.documents.parse`).

    Nothing stores these facts, so they are read here: the plain text first rules out most
    images (too few lines, no receipt words), then the lines of the rest, with their boxes
    (a two-column total), are parsed (one more query when any is a document; about a
    millisecond each). What was read is remembered per image and text, for the next page.
    """
    out, todo = {}, []
    for image_id, text in ocr.items():
        if not text:
            continue
        known = _READ.get((image_id, hash(text)), False)
        if known is False:
            todo.append(image_id)
        elif known:
            out[image_id] = known
    maybe = [i for i in todo if documents.kind_of(documents.lines_of([ocr[i]]))]
    read = dict.fromkeys(todo)
    for image_id, text in store.text.of_many(maybe).items() if maybe else ():
        doc = documents.parse(text.ocr_lines or [text.ocr_text or ""])
        if doc is not None:
            read[image_id] = {k: v for k in DOCUMENT_FIELDS if (v := getattr(doc, k))}
    if len(_READ) + len(read) > _READ_MAX:
        _READ.clear()
    for image_id, facts in read.items():
        _READ[(image_id, hash(ocr[image_id]))] = facts
        if facts:
            out[image_id] = facts
    return out


#: Documents' facts read lately: ``(image id, hash of its OCR text) -> facts`` (None: no document).
_READ: dict[tuple[int, int], dict[str, str] | None] = {}
_READ_MAX = 20_000


def hit_texts(
    store: Store,
    records: dict[int, ImageRecord],
    meta: dict[int, dict[str, str]],
    stored: Mapping[int, ImageText] | None = None,
) -> dict[int, HitText]:
    """The text fields of each of ``records`` that the keyword index holds, and the labels its
    caption states, for :func:`~searchengine.search.reasons.reasons` (three more queries a page;
    one fewer with the ``stored`` texts of :meth:`~searchengine.store.text.Texts.of_many`)."""
    ids = list(records)
    stored = stored if stored is not None else store.text.of_many(ids, details=False)
    tags = store.library.user_tags_of(ids)
    out = {}
    for image_id, rec in records.items():
        text, fields = stored.get(image_id, ImageText()), dict(meta.get(image_id, {}))
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


def facets(
    store: Store, ids: Sequence[int], fields: Sequence[str], top: int
) -> dict[str, list[tuple[str, int]]]:
    """Count each metadata field's values over the whole result set ``ids``, the ``top`` most
    frequent of each field."""
    return store.library.facets(ids, fields, top) if fields else {}
