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
class SearchHit:
    """One search result: an image and its cosine similarity to the query."""

    id: int
    path: str
    score: float
    rank: int
    width: int | None = None
    height: int | None = None
    format: str | None = None
    legs: dict | None = None  # leg -> {"rank", "score"}: why it matched (hybrid search)


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
class Caption:
    """A generated description and keyword tags for one image."""

    text: str
    tags: tuple[str, ...] = ()


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
