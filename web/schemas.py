"""Request and response models of the HTTP API (they make its OpenAPI schema)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from searchengine.records import DEFAULT_RRF_K

INT64_MAX = 2**63 - 1


def _no_nul(value):
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    if isinstance(value, list) and any("\x00" in v for v in value):
        raise ValueError("must not contain NUL characters")
    return value


class SearchParams(BaseModel):
    """A search: text, an indexed image to match (``like``), or both; then filters and tuning."""

    model_config = ConfigDict(extra="forbid")

    q: str | None = Field(
        None,
        max_length=1000,
        description='Query text. Operators: "a phrase" must match; -word pushes down; 2:word weighs.',
    )
    like: int | None = Field(None, ge=1, le=INT64_MAX, description="Find images similar to this id.")
    limit: int = Field(24, ge=1, le=200, description="Results per page.")
    offset: int = Field(0, ge=0, le=10_000, description="Results to skip (pagination).")
    mode: Literal["hybrid", "vector", "keyword"] = Field(
        "hybrid", description="hybrid: meaning and words fused; vector: meaning; keyword: words."
    )
    fusion: Literal["rrf", "weighted"] = "rrf"
    rrf_k: int = Field(DEFAULT_RRF_K, ge=1, le=10_000, description="Reciprocal Rank Fusion constant.")
    vector_weight: float = Field(1.0, ge=0, le=100, allow_inf_nan=False, description="Semantic leg weight.")
    keyword_weight: float = Field(1.0, ge=0, le=100, allow_inf_nan=False, description="Keyword leg weight.")
    min_score: float | None = Field(
        None,
        ge=-1,
        le=1,
        allow_inf_nan=False,
        description=(
            "Cosine a semantic hit must reach, instead of the default tests (text queries: evidence "
            "calibrated per index; image queries: among the hit's nearest neighbours); -1: no cutoff."
        ),
    )
    folder: str | None = Field(None, max_length=4096, description="Only images under this folder.")
    type: list[str] = Field(
        default_factory=list, max_length=10, description="Only these formats (jpeg, png...)."
    )
    tag: list[str] = Field(default_factory=list, max_length=10, description="Only images with every tag.")
    where: list[str] = Field(
        default_factory=list,
        max_length=20,
        description="Metadata conditions, all required: brand=Nike, colour!=black, price<50 (<=, >, >=).",
    )
    collection: str | None = Field(None, max_length=200, description="Only images in this collection.")
    facet: list[str] = Field(
        default_factory=list,
        max_length=10,
        description="Count these metadata fields' values among the matches.",
    )
    facet_limit: int = Field(
        20, ge=1, le=1000, description="Values counted per facet field, most frequent first."
    )
    after: date | None = Field(None, description="Modified on or after this day.")
    before: date | None = Field(None, description="Modified on or before this day.")
    min_size: int | None = Field(None, ge=0, le=INT64_MAX, description="Bytes.")
    max_size: int | None = Field(None, ge=0, le=INT64_MAX, description="Bytes.")
    explain: bool = Field(True, description="Include each hit's raw rank and score in every leg (legs).")

    _clean = field_validator("q", "folder", "type", "tag", "where", "collection", "facet")(_no_nul)


class Count(BaseModel):
    value: str
    count: int


class Leg(BaseModel):
    rank: int
    score: float
    coverage: float | None = Field(
        None,
        description="Share of query terms the image's text holds (keyword leg only).",
    )


class ProductFacts(BaseModel):
    """The imported fields a result card shows besides the title (null: not imported)."""

    price: str | None = Field(None, description="As imported, e.g. 12.00.")
    currency: str | None = Field(None, description="As imported, e.g. EUR.")
    brand: str | None = None
    sku: str | None = None


class DocumentFacts(BaseModel):
    """A receipt's, invoice's or form's key fields, read from its text (null: not found)."""

    kind: str = Field(description="Receipt, Invoice or Form.")
    issuer: str | None = None
    date: str | None = Field(None, description="As printed.")
    number: str | None = Field(None, description="The invoice or receipt number.")
    total: str | None = Field(None, description="The amount paid, e.g. 31.00.")
    currency: str | None = Field(None, description="As written: RM, $, EUR...")


class Hit(BaseModel):
    id: int
    rank: int
    score: float = Field(
        description="The fused score the ranking is ordered by (its scale depends on the fusion)."
    )
    relevance: float | None = Field(
        None,
        ge=0,
        le=1,
        description="How relevant the hit is, 0 to 1, comparable across a page (null: a filtered listing).",
    )
    reasons: list[str] = Field(
        default_factory=list,
        description="Why it matched, in plain words, at most three: \"matches 'laptop' in the title\", "
        '"looks like: a backpack" (empty for a filtered listing).',
    )
    path: str
    name: str
    folder: str
    width: int | None
    height: int | None
    format: str | None
    caption: str | None
    title: str | None = Field(None, description="Product title, from imported metadata.")
    duplicates: int = Field(0, description="How many near duplicates of it are indexed.")
    product: ProductFacts | None = Field(
        None, description="Price, currency, brand and SKU from imported metadata (those it has)."
    )
    document: DocumentFacts | None = Field(
        None, description="Issuer, date, number and total when its text reads as a receipt or invoice."
    )
    legs: dict[str, Leg] | None = Field(
        None, description="Details of why it matched: its raw rank and score in each leg (with explain)."
    )
    thumbnail: str
    file: str


class SearchResponse(BaseModel):
    query: str | None
    image_query: bool
    like: int | None
    mode: str
    fusion: str
    encoder: str | None
    total: int = Field(description="Matches in the fused ranking (up to the search depth).")
    offset: int
    limit: int
    cutoff: float | None = Field(
        description=(
            "What the semantic leg required: the evidence a text query's best hit had to reach "
            "(calibrated per index), or min_score's cosine when given; null: no figure (an image "
            "query's test is its neighbourhood, a picture with words is not cut)."
        )
    )
    took_ms: float
    facets: dict[str, list[Count]] = Field(
        default_factory=dict,
        description="Value counts among all matches, most frequent first (facet_limit per field).",
    )
    results: list[Hit]


class OcrLine(BaseModel):
    text: str
    confidence: float
    box: list[list[float]] = Field(description="Four (x, y) corners in original pixels.")


class Ref(BaseModel):
    id: int
    name: str
    path: str
    thumbnail: str
    file: str


class Stage(BaseModel):
    tool: str
    error: str | None


class ImageDetail(BaseModel):
    id: int
    path: str
    name: str
    folder: str
    root: str
    status: str
    error: str | None
    size: int
    modified: str
    width: int | None
    height: int | None
    format: str | None
    sha256: str | None
    caption: str | None
    caption_model: str | None
    tags: list[str]
    ocr_text: str | None
    ocr_engine: str | None
    ocr_lines: list[OcrLine]
    stages: dict[str, Stage]
    metadata: dict[str, str] = Field(description="Imported product fields.")
    metadata_sources: dict[str, str] = Field(description="Which import each field came from.")
    user_tags: list[str]
    collections: list[str]
    duplicates: list[Ref] = Field(description="Its near duplicates.")
    thumbnail: str
    file: str


class Field_(BaseModel):
    key: str
    images: int
    distinct: int
    numeric: bool = Field(description="Most values are numbers (filter with <, >).")
    min: float | None = None
    max: float | None = None


class FilterOptions(BaseModel):
    folders: list[Count]
    types: list[Count]
    tags: list[Count]
    fields: list[Field_]
    collections: list[Count]


class Failure(BaseModel):
    path: str
    error: str | None


class JobStatus(BaseModel):
    state: Literal["idle", "running", "done", "failed"]
    roots: list[str]
    current_root: str | None
    started_at: str | None
    finished_at: str | None
    scanned: int
    todo: int
    done: int
    rate: float | None = Field(description="Images per second.")
    eta_seconds: float | None
    reports: list[dict]
    error: str | None


class Stats(BaseModel):
    path: str
    encoder: str | None
    dim: int | None
    images: int
    ok: int
    failed: int
    vectors: int
    faiss_key: str | None
    captions: int
    ocr: int
    with_text: int
    stage_errors: int
    roots: list[str]
    failures: list[Failure] = Field(description="The first 100 files that could not be indexed.")
    indexing: JobStatus


class Health(BaseModel):
    status: Literal["ok"]
    index: str
    images: int
    encoder: str | None
    indexing: bool


class ModelInfo(BaseModel):
    kind: Literal["encoder", "captioner", "ocr"]
    name: str
    default: bool = Field(description="Used when nothing else is asked for.")
    description: str
    licence: str
    weights: str
    default_tag: str
    size: str
    commercial_caution: str | None = Field(
        description="Why commercial use needs a check; null: licences allow it."
    )
    present: bool = Field(description="Whether its weights are on this machine (no network used).")
    in_use: bool = Field(description="The encoder this index was built with.")


class IndexRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    root: str | None = Field(None, max_length=4096, description="One allowed folder; default: all of them.")
    retry_failed: bool = False

    _clean = field_validator("root")(_no_nul)


class TagsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tags: list[Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]] = (
        Field(min_length=1, max_length=50)
    )

    _clean = field_validator("tags")(_no_nul)


class ImagesRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[Annotated[int, Field(ge=1, le=INT64_MAX)]] = Field(min_length=1, max_length=10_000)


class Collection(BaseModel):
    name: str
    images: int
    created_at: str


class DuplicateImage(Ref):
    """A member of a near-duplicate group, with what tells copies apart at a glance."""

    size: int
    width: int | None
    height: int | None
    format: str | None


class DuplicateGroup(BaseModel):
    images: list[DuplicateImage]


class ImportResult(BaseModel):
    source: str
    rows: int
    matched: int
    values: int
    fields: dict[str, int]
    unmatched: list[dict]
    ambiguous: list[dict]
    bad: list[dict]


class Error(BaseModel):
    detail: str


class SessionRequest(BaseModel):
    """The API key, as the page's user typed it."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1, max_length=1000, description="The key the server was started with.")


class Session(BaseModel):
    key_required: bool = Field(description="Whether reads need the key (a key is set, reads not public).")
    signed_in: bool = Field(description="Whether this request carries the key or a valid session cookie.")


# -- the page's selection and folders (bulk tags, forget plan) ---------------------------------
class BulkTagsRequest(BaseModel):
    """Tags and the images they go on (or come off)."""

    model_config = ConfigDict(extra="forbid")

    ids: list[Annotated[int, Field(ge=1, le=INT64_MAX)]] = Field(min_length=1, max_length=10_000)
    tags: list[Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]] = (
        Field(min_length=1, max_length=50)
    )

    _clean = field_validator("tags")(_no_nul)


class BulkTagsResult(BaseModel):
    images: int = Field(description="Images the tags were applied to.")
    tags: list[str] = Field(description="The tags, as stored (spaces collapsed).")
    changed: int = Field(description="Image-tag pairs added (or removed); one already so counts nothing.")


class FoldersRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    folders: list[Annotated[str, StringConstraints(min_length=1, max_length=4096)]] = Field(
        min_length=1, max_length=100, description="Indexed folders."
    )

    _clean = field_validator("folders")(_no_nul)


# -- duplicates review (the page's "Not duplicates") ------------------------------------------
class NotDuplicatesRequest(BaseModel):
    """Images that are not duplicates of each other; with ``image``: that image is not a
    duplicate of any of ``ids``."""

    model_config = ConfigDict(extra="forbid")

    ids: list[Annotated[int, Field(ge=1, le=INT64_MAX)]] = Field(min_length=1, max_length=1000)
    image: int | None = Field(None, ge=1, le=INT64_MAX)
