"""SEO and catalogue metadata export: alt text, title, caption, keywords, OCR text.

Every field carries its provenance: the model or import that produced it. Formats:

* ``csv``: ``path,alt_text,title,caption,keywords`` first (what shop and CMS
  importers map), then ``ocr_text`` and one ``*_source`` column per field;
* ``jsonl``: one object per image with everything, provenance included;
* ``jsonld``: a schema.org ``@graph`` of ``ImageObject`` records;
* ``xmp``: one sidecar per image (``dc:title``, ``dc:description``, ``dc:subject``,
  IPTC ``AltTextAccessibility``), written beside the images or into a folder.
  Originals are never opened for writing, and an existing sidecar is never
  overwritten unless asked.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import xml.etree.ElementTree as ET
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from searchengine import documents
from searchengine.imaging import MEDIA_TYPES
from searchengine.labels import mentions_never_stated, quote_snippet, sentence, stated_labels
from searchengine.records import CaptionParts
from searchengine.text import STOPWORDS, article, join_words

ALT_MAX = 125
FORMATS = ("csv", "jsonl", "jsonld", "xmp")
CSV_COLUMNS = ("path", "alt_text", "title", "caption", "keywords")
SOURCE_FIELDS = ("alt_text", "title", "caption", "keywords", "ocr_text")
#: Fields that describe a product in words (keywords); long or numeric ones are left out.
NOT_KEYWORDS = {"title", "description", "captions", "text", "sku", "id", "price", "year", "url"}
_PREFIX = re.compile(
    r"^\s*(an? )?(image|picture|photo|photograph|pic|illustration)( of| showing)?\b[\s:,;-]*", re.IGNORECASE
)
_HEDGE = re.compile(
    r"^\s*(looks like|looks to be|appears to be|seems to be|may be|might be|probably|possibly|likely|"
    r"shows|there is|there are|this is|it is)\s+",
    re.IGNORECASE,
)
#: OCR lines read with less confidence than this give no keywords and no quoted alt text.
OCR_WORD_CONFIDENCE = 0.8
#: A CJK word (no spaces to tell words apart) needs this confidence and two characters.
OCR_CJK_CONFIDENCE = 0.9
_TOKEN = re.compile(r"[^\W_](?:[\w'&./-]*[^\W_])?")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
#: Words of file names that say how a file was made, not what it shows.
CAMERA_WORDS = frozenset(
    """img image images imag cimg dsc dscn dscf dcim pxl sam sdc photo photos pic pics picture pictures
    screenshot screen shot scan scanned whatsapp untitled copy final edit edited export exported mvimg vid
    video gopro snapchat signal telegram download downloaded file new hdr pano burst cover thumb thumbnail
    large small medium original resized crop cropped web hires lowres version rev unsplash pexels pixabay
    stock shutterstock istock getty gettyimages depositphotos dreamstime frame still capture clip default
    placeholder temp tmp test jan feb mar apr may jun jul aug sep sept oct nov dec""".split()
)

NS = {
    "x": "adobe:ns:meta/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "dc": "http://purl.org/dc/elements/1.1/",
    "Iptc4xmpCore": "http://iptc.org/std/Iptc4xmpCore/1.0/xmlns/",
    "se": "https://searchengine.invalid/xmp/1.0/",
}
for _prefix, _uri in NS.items():
    ET.register_namespace(_prefix, _uri)


@dataclass
class SeoRecord:
    """What the export writes for one image."""

    path: str
    root: str
    alt_text: str
    title: str
    caption: str
    keywords: list[str]
    ocr_text: str
    width: int | None
    height: int | None
    format: str | None
    sha256: str | None
    sources: dict[str, str] = field(default_factory=dict)
    #: Details that tell this image apart when its alt text equals another's (not exported).
    hints: list[str] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict:
        return {
            "path": self.path,
            "alt_text": self.alt_text,
            "title": self.title,
            "caption": self.caption,
            "keywords": self.keywords,
            "ocr_text": self.ocr_text,
            "width": self.width,
            "height": self.height,
            "format": self.format,
            "sha256": self.sha256,
            "provenance": self.sources,
        }


def humanise(path: str) -> str:
    """``photos/chelsea_the_cat.jpg`` -> ``Chelsea the cat``."""
    stem = Path(path).stem
    words = re.sub(r"[_\-.]+", " ", re.sub(r"(?<=[a-z])(?=[A-Z])", " ", stem)).strip()
    return (words[:1].upper() + words[1:]) if words else stem


def descriptive_name(path: str) -> str:
    """The file name as words when a person chose them: ``chelsea_the_cat.jpg`` -> ``Chelsea the
    cat``; "" for names a camera, phone or site made (``IMG_1234``, ``DSC0001``, hashes, dates,
    plain numbers). A word: 3+ letters with a vowel, not a camera word, not hexadecimal."""
    words = humanise(path).split()
    kept = [w for w in words if re.fullmatch(r"[^\W\d_]+(?:'[^\W\d_]+)?", w)]
    meaningful = [
        w
        for w in kept
        if len(w) >= 3
        and re.search(r"[aeiouyà-ÿ]", w.lower())
        and w.lower() not in CAMERA_WORDS
        and not (len(w) >= 6 and re.fullmatch(r"[a-f]+", w.lower()))
        and w.lower() not in STOPWORDS
    ]
    if not meaningful:
        return ""
    phrase = " ".join(w for w in kept if w.lower() not in CAMERA_WORDS and (len(w) > 1 or w.lower() == "a"))
    return phrase[:1].upper() + phrase[1:]


def shorten(text: str, limit: int = ALT_MAX) -> str:
    """Cut ``text`` at a word boundary to at most ``limit`` characters (ending with "…")."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0].rstrip(" ,;:-")
    return cut + "…"


def clean_phrase(text: str) -> str:
    """Drop "image of"-style and hedging openings; start with a capital; no final period."""
    text = text.strip()
    for _ in range(3):
        text = _HEDGE.sub("", _PREFIX.sub("", text))
    text = text.rstrip(". ")
    return text[:1].upper() + text[1:] if text else text


def confident_text(ocr_lines, ocr_text: str) -> str:
    """The OCR text read with at least :data:`OCR_WORD_CONFIDENCE`, one line; all of ``ocr_text``
    when no lines (with confidences) are stored."""
    if not ocr_lines:
        return " ".join(ocr_text.split())
    return " ".join(" ".join(d["text"].split()) for d in ocr_lines if d["confidence"] >= OCR_WORD_CONFIDENCE)


def alt_text(
    caption: str | None,
    parts: CaptionParts | None,
    ocr_text: str,
    meta: dict[str, str],
    path: str,
    ocr_lines: tuple = (),
    document: documents.Document | None = None,
) -> tuple[str, str]:
    """Return ``(alt text, which field it comes from)``: concise, at most 125 characters.

    In this order: a product title (with its colour when the title lacks it); a document's
    kind, issuer, date and total (``Receipt from X, 25/12/2018, total 9.00``); the words an
    image shows (confidently read); a prose captioner's sentence, without "image of" or
    hedging; a file name a person chose (``astronaut.jpg``: people name files for what they
    show, a label is right 84% of the time at best); the label a composed caption states
    (only above the measured floor); with nothing else, the file name. Colours follow.
    """
    if meta.get("title"):
        alt = meta["title"]
        colour = meta.get("colour") or meta.get("base_colour")
        if colour and colour.lower() not in alt.lower():
            alt = f"{alt}, {colour.lower()}"
        return shorten(clean_phrase(alt)), "title"
    if document is not None:
        return shorten(document.alt_text()), "ocr_text"
    quoted = parts.quoted if parts else ""  # what the captioner judged worth quoting
    words = confident_text(ocr_lines, ocr_text) if ocr_lines or not quoted else quoted
    colours = join_words(parts.colours) if parts and parts.colours else ""
    if len(words.split()) >= 2 and ocr_keywords((), words):  # two words, one of them a real word
        alt = f'Text reading "{words}"' + (f", mostly {colours}" if colours else "")
        if len(alt) > ALT_MAX:
            alt = f'Text reading "{shorten(words, ALT_MAX - 16)}"'
        return shorten(alt), "ocr_text"
    mostly = f", mostly {colours}" if colours else ""
    if parts is None:  # a captioner that writes prose only: its sentence, cleaned
        phrase = clean_phrase(caption or "")
        if phrase.lower() not in ("", "an image", "image", "a picture") and not mentions_never_stated(phrase):
            return shorten(phrase), "caption"
    named = descriptive_name(path)
    if named:
        return shorten(named + mostly), "file name"
    labels = stated_labels(parts.labels) if parts else []
    if labels:
        subject = join_words([f"{article(n)} {n}" for n, _ in labels], "or")
        return shorten(clean_phrase(subject) + mostly), "caption"
    if quoted and len(confident_text(ocr_lines, quoted).split()) >= 1:
        return shorten(f'The text "{quoted}"{mostly}'), "caption"
    return shorten(humanise(path) + mostly), "file name"


def ocr_keywords(ocr_lines, ocr_text: str, limit: int = 8) -> list[str]:
    """Words of the OCR text worth a keyword: from lines read with confidence >= 0.8; words of
    3+ letters (one with a vowel when 3 letters: not "QTY", "BHD") or codes of 4+ characters
    mixing letters and digits (``QX-7781-B``); CJK words of 2+ characters read with >= 0.9;
    never a lone character, a plain number or a stopword."""
    lines = [(d["text"], d["confidence"]) for d in ocr_lines] or [(t, 1.0) for t in ocr_text.splitlines()]
    out = []
    for text, conf in lines:
        if conf < OCR_WORD_CONFIDENCE:
            continue
        for token in _TOKEN.findall(text):
            token = token.strip("'&./-")
            letters = sum(ch.isalpha() for ch in token)
            digits = sum(ch.isdigit() for ch in token)
            if _CJK.search(token):
                ok = conf >= OCR_CJK_CONFIDENCE and len(token) >= 2 and not digits
            elif digits:
                ok = letters >= 1 and len(token) >= 4 and not re.search(r"[./]", token)
            else:
                ok = letters >= 3 and re.fullmatch(r"[^\W\d_]+(?:['-][^\W\d_]+)*", token) is not None
                ok = ok and (letters > 3 or re.search(r"[aeiouyà-ÿ]", token.lower()) is not None)
            if ok and token.lower() not in STOPWORDS:
                out.append(token)
    return list(dict.fromkeys(out))[:limit]


def keywords(
    tags: list[str],
    user_tags: list[str],
    meta: dict[str, str],
    ocr_text: str,
    ocr_lines: tuple = (),
    document: documents.Document | None = None,
) -> tuple[list, list]:
    """Return ``(keywords, their sources)``: user tags, then metadata, caption tags, the document
    kind and OCR words (see :func:`ocr_keywords`). Caption tags naming a never-stated class are
    dropped; a person's tags and the catalogue's values are theirs and kept."""
    out, seen, sources = [], set(), []

    def add(words, source):
        added = False
        for w in words:
            w = " ".join(str(w).split())
            if w and w.lower() not in seen and len(out) < 25:
                seen.add(w.lower())
                out.append(w)
                added = True
        if added:
            sources.append(source)

    add(user_tags, "user tags")
    add(
        [
            v
            for k, v in meta.items()
            if k not in NOT_KEYWORDS and len(v) <= 30 and not v.replace(".", "").isdigit()
        ],
        "metadata",
    )
    add([t for t in tags if t != "text" and not mentions_never_stated(t)], "caption tags")
    add([document.kind.lower()] if document else [], "ocr")
    add(ocr_keywords(ocr_lines, ocr_text), "ocr")
    return out, sources


def records(store, ids: list[int] | None = None, chunk: int = 500) -> Iterator[SeoRecord]:
    """Build the export record of every searchable image (or of ``ids``), by path.

    Reads the store a chunk of images at a time (a handful of queries per chunk).
    """
    wanted = set(ids) if ids is not None else None
    order = [
        i
        for i, _ in sorted(store.images.searchable_paths(), key=lambda r: r[1])
        if wanted is None or i in wanted
    ]
    for start in range(0, len(order), chunk):
        part = order[start : start + chunk]
        recs, texts = store.images.by_id(part), store.text.of_many(part)
        metas, sources = store.library.metadata_of(part), store.library.sources_of(part)
        users = store.library.user_tags_of(part)
        for image_id in (i for i in part if i in recs):  # skip rows deleted meanwhile
            yield _record(
                recs[image_id],
                texts[image_id],
                metas.get(image_id, {}),
                sources.get(image_id, {}),
                users.get(image_id, []),
            )


def _record(rec, text, meta: dict[str, str], meta_sources: dict[str, str], user: list[str]) -> SeoRecord:
    """One image's export record, every field with where it came from."""
    ocr = text.ocr_text or ""
    doc = documents.parse(text.ocr_lines or [ocr]) if ocr else None
    alt, alt_from = alt_text(text.caption, text.caption_parts, ocr, meta, rec.path, text.ocr_lines, doc)
    labels = {n.lower() for n, _ in text.caption_parts.labels} if doc and text.caption_parts else set()
    tags = [t for t in text.tags if t not in labels]  # a receipt is not the "menu" ImageNet saw
    kws, kw_sources = keywords(tags, user, meta, ocr, text.ocr_lines, doc)
    origin = {
        "title": meta_sources.get("title", "import"),
        "ocr_text": text.ocr_engine or "none",
        "caption": text.caption_model or "none",
        "file name": "file name",
        "metadata": sorted(set(meta_sources.values()))[0] if meta_sources else "none",
    }
    kw_origin = {
        "user tags": "user",
        "metadata": origin["metadata"],
        "caption tags": origin["caption"],
        "ocr": origin["ocr_text"],
    }
    return SeoRecord(
        path=rec.path,
        root=rec.root,
        alt_text=alt,
        title=meta.get("title") or humanise(rec.path),
        caption=export_caption(text.caption, text.caption_parts, text, doc),
        keywords=kws,
        ocr_text=ocr,
        width=rec.width,
        height=rec.height,
        format=rec.format,
        sha256=rec.sha256,
        sources={
            "alt_text": origin[alt_from],
            "title": meta_sources.get("title", "file name"),
            "caption": origin["caption"],
            "keywords": ", ".join(dict.fromkeys(kw_origin[s] for s in kw_sources)) or "none",
            "ocr_text": origin["ocr_text"],
        },
        hints=[
            *(doc.details() if doc else []),
            meta.get("sku", "") or meta.get("id", ""),
            descriptive_name(rec.path),
        ],
    )


def export_caption(caption: str | None, parts: CaptionParts | None, text, doc) -> str:
    """The caption as exported: a document's summary sentence; a composed caption rebuilt from
    its parts (labels above today's floor, the text read with confidence; "" when it would
    name nothing but colours); a prose caption without "image of" or hedging."""
    if doc is not None:
        return doc.alt_text() + "."
    if not caption:
        return ""
    if parts is not None:
        labels = stated_labels(parts.labels)
        quoted = (
            quote_snippet(confident_text(text.ocr_lines, text.ocr_text or ""))
            if text.ocr_lines
            else parts.quoted
        )
        return sentence(labels, parts.colours, quoted) if labels or quoted else ""
    phrase = clean_phrase(caption)
    return phrase + "." if phrase and phrase.lower() not in ("an image", "image") else ""


def disambiguate(items: list[SeoRecord]) -> list[SeoRecord]:
    """Make the alt texts of different images differ (in place; returns ``items``).

    Each image of a group sharing one alt text gets the first of its hints (document number,
    date, SKU, descriptive file name) that no other image of the group has and that the alt
    text does not already say; else its file name; else its path below the indexed folder.
    """
    groups: dict[str, list[SeoRecord]] = {}
    for r in items:
        groups.setdefault(r.alt_text.casefold(), []).append(r)
    for group in (g for g in groups.values() if len(g) > 1):
        counts: dict[str, int] = {}
        for r in group:
            for h in {h.casefold() for h in _choices(r)}:
                counts[h] = counts.get(h, 0) + 1
        for r in group:
            unique = [h for h in _choices(r) if counts[h.casefold()] == 1]
            extra = unique[0] if unique else os.path.relpath(r.path, r.root)
            extra = shorten(extra, ALT_MAX // 2)
            r.alt_text = shorten(r.alt_text, ALT_MAX - len(extra) - 2) + f", {extra}"
    return items


def _choices(r: SeoRecord) -> list[str]:
    said = r.alt_text.casefold()
    hints = [h for h in dict.fromkeys(r.hints) if h and h.casefold() not in said]
    return [*hints, Path(r.path).name]


def content_url(rec: SeoRecord, base_url: str | None) -> str:
    """The image's URL: ``base_url`` + its path below the indexed folder, else a file URI."""
    if base_url:
        rel = os.path.relpath(rec.path, rec.root)
        return base_url.rstrip("/") + "/" + quote(rel)
    return Path(rec.path).as_uri()


def write_csv(items: list[SeoRecord], out) -> None:
    writer = csv.writer(out)
    writer.writerow([*CSV_COLUMNS, "ocr_text", *(f"{f}_source" for f in SOURCE_FIELDS)])
    for r in items:
        writer.writerow(
            [r.path, r.alt_text, r.title, r.caption, ", ".join(r.keywords), r.ocr_text]
            + [r.sources[f] for f in SOURCE_FIELDS]
        )


def write_jsonl(items: list[SeoRecord], out) -> None:
    for r in items:
        out.write(json.dumps(r.as_dict(), ensure_ascii=False) + "\n")


def jsonld(items: list[SeoRecord], base_url: str | None = None) -> dict:
    """A schema.org document: one ``ImageObject`` per image."""
    graph = []
    for r in items:
        obj = {
            "@type": "ImageObject",
            "contentUrl": content_url(r, base_url),
            "name": r.title,
            "description": r.alt_text,
            "caption": r.caption or r.alt_text,
            "keywords": ", ".join(r.keywords),
            "encodingFormat": MEDIA_TYPES.get(r.format or "", "application/octet-stream"),
            "additionalProperty": [
                {"@type": "PropertyValue", "name": f"{f}_source", "value": r.sources[f]}
                for f in SOURCE_FIELDS
            ],
        }
        if r.ocr_text:
            obj["embeddedTextCaption"] = r.ocr_text
        if r.width:
            obj["width"] = {"@type": "QuantitativeValue", "value": r.width, "unitCode": "E37"}
            obj["height"] = {"@type": "QuantitativeValue", "value": r.height, "unitCode": "E37"}
        if r.sha256:
            obj["sha256"] = r.sha256
        graph.append(obj)
    return {"@context": "https://schema.org", "@graph": graph}


def render(items: list[SeoRecord], fmt: str, base_url: str | None = None) -> str:
    """The whole export as text, for ``csv``, ``jsonl`` or ``jsonld`` (xmp writes files)."""
    sink = io.StringIO(newline="")
    disambiguate(items)
    if fmt == "csv":
        write_csv(items, sink)
    elif fmt == "jsonl":
        write_jsonl(items, sink)
    elif fmt == "jsonld":
        sink.write(json.dumps(jsonld(items, base_url), ensure_ascii=False, indent=1) + "\n")
    else:
        raise ValueError(f"not a text export format: {fmt}")
    return sink.getvalue()


def xmp_packet(r: SeoRecord) -> bytes:
    """One XMP sidecar's bytes for ``r``."""
    q = lambda prefix, name: f"{{{NS[prefix]}}}{name}"  # noqa: E731
    root = ET.Element(q("x", "xmpmeta"))
    rdf = ET.SubElement(root, q("rdf", "RDF"))
    desc = ET.SubElement(rdf, q("rdf", "Description"), {q("rdf", "about"): ""})

    def lang_alt(prefix: str, name: str, value: str) -> None:
        alt = ET.SubElement(ET.SubElement(desc, q(prefix, name)), q("rdf", "Alt"))
        li = ET.SubElement(alt, q("rdf", "li"), {"{http://www.w3.org/XML/1998/namespace}lang": "x-default"})
        li.text = value

    lang_alt("dc", "title", r.title)
    lang_alt("dc", "description", r.caption or r.alt_text)
    lang_alt("Iptc4xmpCore", "AltTextAccessibility", r.alt_text)
    bag = ET.SubElement(ET.SubElement(desc, q("dc", "subject")), q("rdf", "Bag"))
    for kw in r.keywords:
        ET.SubElement(bag, q("rdf", "li")).text = kw
    if r.ocr_text:
        ET.SubElement(desc, q("se", "OcrText")).text = r.ocr_text
    for f in SOURCE_FIELDS:
        name = "".join(p.title() for p in f.split("_")) + "Source"
        ET.SubElement(desc, q("se", name)).text = r.sources[f]
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n' + body + '\n<?xpacket end="w"?>\n'
    ).encode("utf-8")


def sidecar_path(r: SeoRecord, out_dir: Path | None, full_name: bool = False, top: str | None = None) -> Path:
    """Where the sidecar of ``r`` goes: ``photo.xmp`` beside the image, or mirrored under
    ``out_dir`` in a folder named ``top`` (default: its indexed folder's name); ``photo.jpg.xmp``
    (``full_name``) when another image shares the stem."""
    image = Path(r.path)
    folder = (
        image.parent
        if out_dir is None
        else out_dir / (top or Path(r.root).name) / os.path.relpath(image.parent, r.root)
    )
    return Path(os.path.normpath(folder / ((image.name if full_name else image.stem) + ".xmp")))


def sidecars(items: list[SeoRecord], out_dir: Path | None) -> list[tuple[SeoRecord, Path]]:
    """Each image with where its sidecar goes (:func:`sidecar_path`; the full file name where
    two images of a folder share a stem; under ``out_dir``, indexed folders of one name go to
    ``photos``, ``photos (2)``...), alt texts made to differ first."""
    disambiguate(items)
    stems = Counter((Path(r.path).parent, Path(r.path).stem) for r in items)
    tops: dict[str, str] = {}
    taken: Counter[str] = Counter()
    for root in sorted({r.root for r in items}):
        name = Path(root).name
        taken[name] += 1
        tops[root] = name if taken[name] == 1 else f"{name} ({taken[name]})"
    return [
        (
            r,
            sidecar_path(
                r,
                out_dir,
                full_name=stems[(Path(r.path).parent, Path(r.path).stem)] > 1,
                top=tops[r.root],
            ),
        )
        for r in items
    ]


def xmp_zip(items: list[SeoRecord]) -> bytes:
    """One XMP sidecar per image in a zip, each at the path ``write_xmp`` gives it below its
    ``out_dir`` (``photos/sub/shoe.xmp``)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for r, path in sidecars(items, Path(".")):
            zf.writestr(path.as_posix(), xmp_packet(r))
    return buf.getvalue()


def write_xmp(items: list[SeoRecord], out_dir: Path | None, overwrite: bool = False) -> tuple[int, list[str]]:
    """Write one sidecar per image; returns ``(written, skipped existing sidecars)``.

    :param out_dir: None writes beside the images.
    """
    written, skipped = 0, []
    for r, target in sidecars(items, out_dir):
        if target.exists() and not overwrite:
            skipped.append(str(target))
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(xmp_packet(r))
        os.replace(tmp, target)
        written += 1
    return written, skipped
