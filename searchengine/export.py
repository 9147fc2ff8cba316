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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from searchengine.imaging import MEDIA_TYPES
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
_HEDGE = re.compile(r"^\s*(looks like|shows|there is|there are|this is)\s+", re.IGNORECASE)
_WORD = re.compile(r"[^\W\d_][\w'-]{2,}")

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


def alt_text(
    caption: str | None, parts: CaptionParts | None, ocr_text: str, meta: dict[str, str], path: str
) -> tuple[str, str]:
    """Return ``(alt text, which field it comes from)``: concise, at most 125 characters.

    A product title wins (with its colour when the title lacks it); then the words an
    image shows; then what the caption's parts name (labels, colours); a caption from
    a captioner that writes prose only is used as written, without "image of" or
    hedging; with nothing to say, the file name.
    """
    if meta.get("title"):
        alt = meta["title"]
        colour = meta.get("colour") or meta.get("base_colour")
        if colour and colour.lower() not in alt.lower():
            alt = f"{alt}, {colour.lower()}"
        return shorten(clean_phrase(alt)), "title"
    quoted = parts.quoted if parts else ""  # what the captioner judged worth quoting
    words = quoted or " ".join(ocr_text.split())
    colours = join_words(parts.colours) if parts and parts.colours else ""
    if len(words.split()) >= 2:
        alt = f'Text reading "{words}"' + (f", mostly {colours}" if colours else "")
        if len(alt) > ALT_MAX:
            alt = f'Text reading "{shorten(words, ALT_MAX - 16)}"'
        return shorten(alt), "ocr_text"
    mostly = f"; mostly {colours}" if colours else ""
    if parts is None:  # a captioner that writes prose only: its sentence, cleaned
        phrase = clean_phrase(caption or "")
        if phrase.lower() not in ("", "an image", "image", "a picture"):
            return shorten(phrase), "caption"
        return shorten(humanise(path)), "file name"
    if parts.labels:
        subject = join_words([f"{article(n)} {n}" for n, _ in parts.labels], "or")
        subject += f' with the text "{quoted}"' if quoted else ""
        return shorten(clean_phrase(subject) + mostly), "caption"
    if quoted:
        return shorten(f'The text "{quoted}"{mostly}'), "caption"
    return shorten(humanise(path) + (f", mostly {colours}" if colours else "")), "file name"


def keywords(tags: list[str], user_tags: list[str], meta: dict[str, str], ocr_text: str) -> tuple[list, list]:
    """Return ``(keywords, their sources)``: user tags, then metadata, caption tags and OCR words."""
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
    add([t for t in tags if t != "text"], "caption tags")
    ocr_words = [w for w in _WORD.findall(ocr_text) if w.lower() not in STOPWORDS]
    add(ocr_words[:8], "ocr")
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
    alt, alt_from = alt_text(text.caption, text.caption_parts, ocr, meta, rec.path)
    kws, kw_sources = keywords(list(text.tags), user, meta, ocr)
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
        caption=text.caption or "",
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
    )


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


def sidecar_path(r: SeoRecord, out_dir: Path | None, full_name: bool = False) -> Path:
    """Where the sidecar of ``r`` goes: ``photo.xmp`` beside the image, or mirrored under
    ``out_dir``; ``photo.jpg.xmp`` (``full_name``) when another image shares the stem."""
    image = Path(r.path)
    folder = (
        image.parent
        if out_dir is None
        else out_dir / Path(r.root).name / os.path.relpath(image.parent, r.root)
    )
    return Path(os.path.normpath(folder / ((image.name if full_name else image.stem) + ".xmp")))


def write_xmp(items: list[SeoRecord], out_dir: Path | None, overwrite: bool = False) -> tuple[int, list[str]]:
    """Write one sidecar per image; returns ``(written, skipped existing sidecars)``.

    :param out_dir: None writes beside the images.
    """
    stems: dict[tuple[Path, str], int] = {}
    for r in items:
        key = (Path(r.path).parent, Path(r.path).stem)
        stems[key] = stems.get(key, 0) + 1
    written, skipped = 0, []
    for r in items:
        target = sidecar_path(r, out_dir, full_name=stems[(Path(r.path).parent, Path(r.path).stem)] > 1)
        if target.exists() and not overwrite:
            skipped.append(str(target))
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(xmp_packet(r))
        os.replace(tmp, target)
        written += 1
    return written, skipped
