"""Plain records passed between the store, the indexer and the edges."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class EncoderId:
    """What an index's vectors were made with; two ids must be equal to mix vectors.

    :param name: registry name, e.g. ``offline`` or ``clip``.
    :param tag: the exact model, e.g. ``ViT-B-32:laion2b_s34b_b79k``.
    :param dim: vector dimension.
    """

    name: str
    tag: str
    dim: int

    @property
    def spec(self) -> str:
        """The ``--model`` value that selects this encoder again."""
        return f"{self.name}:{self.tag}"


@dataclass(frozen=True, slots=True)
class ImageRecord:
    """One indexed file as stored in SQLite."""

    id: int
    path: str
    root: str
    sha256: str | None
    size: int
    mtime_ns: int
    width: int | None
    height: int | None
    format: str | None
    status: str
    error: str | None


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result, with what both edges show of it.

    :param score: the fused score, for ordering (its scale depends on the fusion).
    :param relevance: how relevant it is, 0 to 1, comparable across a page (None: a listing).
    :param legs: leg -> ``{"rank", "score"[, "coverage"]}``: why it matched (when asked).
    :param reasons: why it matched in plain words, at most three (:mod:`searchengine.search.reasons`).
    :param duplicates: how many near duplicates of it are indexed.
    :param product: the imported fields a result card shows besides the title (price,
        currency, brand, sku: those it has), or None.
    :param document: a receipt's or invoice's key fields read from its text (kind, issuer,
        date, number, total, currency: those found), or None when it is not a document.
    """

    id: int
    rank: int
    score: float
    path: str
    width: int | None = None
    height: int | None = None
    format: str | None = None
    caption: str | None = None
    title: str | None = None
    duplicates: int = 0
    legs: dict | None = None
    relevance: float | None = None
    reasons: tuple[str, ...] = ()
    product: dict[str, str] | None = None
    document: dict[str, str] | None = None

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def folder(self) -> str:
        return self.path.rsplit("/", 1)[0]

    def as_dict(self) -> dict:
        """The fields both edges print (the CLI's ``--json`` and the API's hits)."""
        return {
            "id": self.id,
            "rank": self.rank,
            "score": round(self.score, 6),
            "relevance": self.relevance,
            "reasons": list(self.reasons),
            "path": self.path,
            "name": self.name,
            "folder": self.folder,
            "width": self.width,
            "height": self.height,
            "format": self.format,
            "caption": self.caption,
            "title": self.title,
            "duplicates": self.duplicates,
            "legs": self.legs,
            "product": self.product,
            "document": self.document,
        }


@dataclass(frozen=True, slots=True)
class SearchPage:
    """One page of a search, hydrated, with what produced it.

    :param total: matches in the whole ranking (up to the search depth).
    :param cutoff: what the vector leg required: the evidence a text query's best hit had
        to reach (:mod:`searchengine.search.cutoff`), or the user's ``min_score`` cosine (-1: no
        figure: an image query's test is its neighbourhood, a picture with words is not cut).
    :param ids: every id of the ranking, in order (the result set facets count over).
    :param facets: field -> ``[(value, count)]`` among ``ids``, for the fields asked.
    :param generation: the store generation of the vector index searched.
    """

    hits: list[Hit]
    total: int
    offset: int
    limit: int
    cutoff: float
    mode: str
    fusion: str
    ids: tuple[int, ...] = ()
    facets: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    encoder: str | None = None
    generation: str | None = None


@dataclass(slots=True)
class IndexStats:
    """Counts reported by ``searchengine info``."""

    path: str
    encoder: EncoderId | None
    images: int
    ok: int
    failed: int
    vectors: int
    faiss_key: str | None
    roots: list[str] = field(default_factory=list)
    captions: int = 0
    ocr: int = 0
    with_text: int = 0
    stage_errors: int = 0


@dataclass(frozen=True, slots=True)
class OcrLine:
    """One line of text read in an image; ``box`` is 4 (x, y) corners in original pixels."""

    text: str
    confidence: float
    box: tuple[tuple[float, float], ...]


@dataclass(frozen=True, slots=True)
class OcrResult:
    """Everything an OCR engine read in one image, lines in reading order."""

    lines: tuple[OcrLine, ...] = ()

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)


@dataclass(frozen=True, slots=True)
class CaptionParts:
    """What a composed caption says, as data: labels with probabilities, colours, quoted text.

    :param labels: ``(label, probability)`` the description names, best first.
    :param colours: dominant colour names, largest share first.
    :param quoted: the image text the description quotes ("" when none).
    """

    labels: tuple[tuple[str, float | None], ...] = ()  # None: probability not recorded (schema 3)
    colours: tuple[str, ...] = ()
    quoted: str = ""

    def as_dict(self) -> dict:
        return {
            "labels": [[n, None if p is None else round(p, 4)] for n, p in self.labels],
            "colours": list(self.colours),
            "quoted": self.quoted,
        }

    @classmethod
    def from_dict(cls, data: dict | None) -> CaptionParts | None:
        if not data:
            return None
        labels = tuple((str(n), None if p is None else float(p)) for n, p in data.get("labels", ()))
        return cls(labels, tuple(data.get("colours", ())), str(data.get("quoted", "")))


@dataclass(frozen=True, slots=True)
class Caption:
    """A generated description and keyword tags for one image, with its parts when the
    captioner composed it from measured facts (exports use the parts, never the prose;
    None for a captioner that writes prose only)."""

    text: str
    tags: tuple[str, ...] = ()
    parts: CaptionParts | None = None


@dataclass(frozen=True, slots=True)
class Filters:
    """Restrictions on stored fields; every one given must hold.

    :param folder: absolute folder; only images under it.
    :param formats: file formats as Pillow names them (``JPEG``, ``PNG``...), any of.
    :param modified_after: file mtime lower bound, nanoseconds since the epoch.
    :param modified_before: file mtime upper bound, nanoseconds since the epoch.
    :param min_bytes: file size lower bound.
    :param max_bytes: file size upper bound.
    :param tags: tags (from captions or added by users), all required.
    :param where: conditions on metadata fields (:class:`searchengine.metadata.Condition`), all required.
    :param collection: only images in this named collection.
    """

    folder: str | None = None
    formats: tuple[str, ...] = ()
    modified_after: int | None = None
    modified_before: int | None = None
    min_bytes: int | None = None
    max_bytes: int | None = None
    tags: tuple[str, ...] = ()
    where: tuple = ()
    collection: str | None = None

    @property
    def active(self) -> bool:
        return any(getattr(self, f) not in (None, ()) for f in self.__slots__)


@dataclass(frozen=True, slots=True)
class StageRecord:
    """One stage's last run on an image: the tool, and its error (None: it worked)."""

    tool: str
    error: str | None


@dataclass(frozen=True, slots=True)
class ImageText:
    """What the text stages stored for one image: caption, tags, OCR lines, stage records.

    ``ocr_lines`` holds dicts ``{"text", "confidence", "box"}`` (box: four [x, y]
    corners in original pixels), ready for JSON.
    """

    caption: str | None = None
    tags: tuple[str, ...] = ()
    caption_model: str | None = None
    caption_parts: CaptionParts | None = None
    ocr_text: str | None = None
    ocr_engine: str | None = None
    ocr_lines: tuple[dict, ...] = ()
    stages: dict[str, StageRecord] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "caption": self.caption,
            "tags": list(self.tags),
            "caption_model": self.caption_model,
            "ocr_text": self.ocr_text,
            "ocr_engine": self.ocr_engine,
            "ocr_lines": list(self.ocr_lines),
            "stages": {k: {"tool": v.tool, "error": v.error} for k, v in self.stages.items()},
        }


@dataclass(frozen=True, slots=True)
class Library:
    """What users and imports added to one image, and its near duplicates (ids)."""

    metadata: dict[str, str] = field(default_factory=dict)
    metadata_sources: dict[str, str] = field(default_factory=dict)
    user_tags: tuple[str, ...] = ()
    collections: tuple[str, ...] = ()
    duplicates: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class IndexCounts:
    """Row counts of an index: images by status, vectors, captions, OCR results."""

    ok: int = 0
    failed: int = 0
    vectors: int = 0
    captions: int = 0
    ocr: int = 0
    with_text: int = 0
    stage_errors: int = 0

    @property
    def images(self) -> int:
        return self.ok + self.failed


MODES = ("hybrid", "vector", "keyword")
FUSIONS = ("rrf", "weighted")
#: Reciprocal Rank Fusion's k by default (Cormack et al. use 60; chosen leave-one-set-out on
#: the dev sets with the rules of :mod:`searchengine.search.plan`: a leg's first places count
#: for more against the other leg's long tail).
DEFAULT_RRF_K = 20


@dataclass(frozen=True, slots=True)
class SearchRequest:
    """Everything a search asks for; both edges build one and hand it to the engine.

    :param text: the query, with operators (:mod:`searchengine.query`).
    :param image: a PIL image to find similar ones to (alone or with ``text``).
    :param like: the id of an indexed image to find similar ones to (it is left out).
    :param mode: ``hybrid`` (both legs fused), ``vector`` or ``keyword``.
    :param fusion: ``rrf`` (Reciprocal Rank Fusion with ``rrf_k``) or ``weighted``.
    :param vector_weight: the user's weight of the vector leg (the plan scales it).
    :param keyword_weight: the user's weight of the keyword leg.
    :param filters: restrictions applied inside each leg.
    :param min_score: cosine a vector hit must reach, instead of the calibrated evidence
        test that applies by default (:mod:`searchengine.search.cutoff`); negative: no cutoff.
    :param facets: metadata fields whose values to count over the whole result set.
    :param facet_top: how many values of each to count, most frequent first.
    :param explain: keep each hit's place in every leg.
    """

    text: str | None = None
    image: object | None = None
    like: int | None = None
    limit: int = 10
    offset: int = 0
    mode: str = "hybrid"
    fusion: str = "rrf"
    rrf_k: int = DEFAULT_RRF_K
    vector_weight: float = 1.0
    keyword_weight: float = 1.0
    filters: Filters | None = None
    min_score: float | None = None
    facets: tuple[str, ...] = ()
    facet_top: int = 20
    explain: bool = False

    @property
    def has_text(self) -> bool:
        return bool(self.text and self.text.strip())

    @property
    def by_image(self) -> bool:
        return self.image is not None or self.like is not None

    @property
    def browse(self) -> bool:
        """No query at all: a filtered listing."""
        return not self.has_text and not self.by_image

    @property
    def needs_encoder(self) -> bool:
        """Whether answering needs the index's encoder (keyword searches and listings do not)."""
        return not self.browse and self.mode != "keyword"
