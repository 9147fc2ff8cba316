"""Text-to-image search over one index: the core the CLI and the web app share."""

from __future__ import annotations

import re
from pathlib import Path

from searchengine.config import Settings
from searchengine.errors import IndexNotBuilt, SearchEngineError
from searchengine.models.base import Embedder
from searchengine.models.registry import create_embedder
from searchengine.records import EncoderId, IndexStats, SearchHit
from searchengine.store.db import DB_NAME, Store, mismatch_error
from searchengine.store.vectors import VectorIndex
from searchengine.text import split_letters_digits


def open_store(index_dir: Path, create: bool = False) -> Store:
    """Open the index in ``index_dir``.

    :raises IndexNotBuilt: there is none and ``create`` is false.
    """
    if not create and not (Path(index_dir) / DB_NAME).is_file():
        raise IndexNotBuilt(
            f"no index at {index_dir}: build one with 'searchengine index FOLDER' "
            "(or point --index / SE_INDEX at an existing one)"
        )
    return Store(index_dir)


def resolve_embedder(store: Store, spec: str | None) -> Embedder:
    """Return the encoder for querying ``store``: its own, or ``spec`` if it matches.

    :raises IndexNotBuilt: the index has no encoder yet (nothing indexed).
    :raises IndexMismatch: ``spec`` names another encoder than the index's.
    """
    recorded = store.encoder()
    if recorded is None:
        raise IndexNotBuilt(f"the index at {store.dir} is empty: run 'searchengine index FOLDER'")
    embedder = create_embedder(spec or recorded.spec)
    if embedder.id != recorded:
        raise mismatch_error(store.dir, recorded, embedder.id)
    return embedder


_PHRASE = re.compile(r'"([^"]*)"')
_TOKEN = re.compile(r"[^\W_]+")


def fts_query(text: str) -> str:
    """Turn free text into a safe FTS5 expression: any word may match (OR), BM25 ranks.

    Quoted phrases stay phrases. A word that the tokenizer splits in several tokens
    (``QX-7781-B``, ``25/12/2018``, ``CS00082662``: letters and digits are split as in
    the index) becomes a phrase of them, so codes and dates match exactly; FTS5
    operators in the input have no effect.

    :raises SearchEngineError: the text has no searchable word.
    """
    terms = []
    for phrase in _PHRASE.findall(text):
        tokens = _TOKEN.findall(split_letters_digits(phrase))
        if tokens:
            terms.append('"' + " ".join(tokens) + '"')
    for word in _PHRASE.sub(" ", text).split():
        tokens = _TOKEN.findall(split_letters_digits(word))
        if tokens:
            terms.append('"' + " ".join(tokens) + '"')
    if not terms:
        raise SearchEngineError("the query has no searchable word")
    return " OR ".join(dict.fromkeys(terms))


def keyword_search(store: Store, query: str, k: int = 10) -> list[SearchHit]:
    """Match ``query``'s words in names, folders, captions, tags and OCR text (BM25).

    Needs no encoder, so an index can be searched by keyword even where its
    encoder's weights are not available.

    :raises SearchEngineError: no searchable word in the query, or bad ``k``.
    """
    if k <= 0:
        raise SearchEngineError(f"k must be positive, got {k}")
    found = store.keyword_search(fts_query(query), k)
    records = store.images_by_id(i for i, _ in found)
    hits: list[SearchHit] = []
    for image_id, score in found:
        rec = records[image_id]
        hits.append(SearchHit(rec.id, rec.path, score, len(hits) + 1, rec.width, rec.height, rec.format))
    return hits


class SearchEngine:
    """Answers text queries from a store, its FAISS index and its encoder."""

    def __init__(self, store: Store, embedder: Embedder, vectors: VectorIndex | None = None) -> None:
        recorded = store.encoder()
        if recorded is not None and recorded != embedder.id:
            raise mismatch_error(store.dir, recorded, embedder.id)
        self.store, self.embedder = store, embedder
        self.vectors = vectors or VectorIndex.open(store, embedder.id.dim)

    @classmethod
    def open(cls, settings: Settings, model: str | None = None) -> SearchEngine:
        """Open the index at ``settings.index_path`` with its recorded (or the given) encoder."""
        store = open_store(settings.index_path)
        return cls(store, resolve_embedder(store, model))

    @property
    def encoder(self) -> EncoderId:
        return self.embedder.id

    def refresh(self) -> None:
        """Reload the vector index if the store changed since it was loaded."""
        if self.vectors.generation != self.store.generation():
            self.vectors = VectorIndex.open(self.store, self.embedder.id.dim)

    def search(self, query: str, k: int = 10, mode: str = "vector") -> list[SearchHit]:
        """Return the ``k`` best images for ``query``, best first.

        :param mode: ``vector`` (cosine of text and image embeddings) or ``keyword``
            (BM25 over file name, folder, caption, tags and OCR text).
        :raises SearchEngineError: empty query, non-positive ``k`` or unknown mode.
        """
        if mode == "keyword":
            return self.keyword_search(query, k)
        if mode != "vector":
            raise SearchEngineError(f"unknown search mode {mode!r}; choose vector or keyword")
        return self.search_many([query], k)[0]

    def keyword_search(self, query: str, k: int = 10) -> list[SearchHit]:
        """Match ``query``'s words in names, folders, captions, tags and OCR text (BM25)."""
        return keyword_search(self.store, query, k)

    def search_many(self, queries: list[str], k: int = 10) -> list[list[SearchHit]]:
        """Answer several queries with one batched text encoding (evaluation, bulk use)."""
        cleaned = [q.strip() if isinstance(q, str) else "" for q in queries]
        if not cleaned or not all(cleaned):
            raise SearchEngineError("the query is empty: describe what to find")
        if k <= 0:
            raise SearchEngineError(f"k must be positive, got {k}")
        self.refresh()
        scores, ids = self.vectors.search(self.embedder.embed_texts(cleaned), k)
        records = self.store.images_by_id({int(i) for i in ids.ravel() if i >= 0})
        out = []
        for row_ids, row_scores in zip(ids, scores, strict=True):
            hits: list[SearchHit] = []
            for image_id, score in zip(row_ids, row_scores, strict=True):
                rec = records.get(int(image_id))
                if rec is None:  # empty slot, or deleted since the vectors were loaded
                    continue
                hits.append(
                    SearchHit(
                        rec.id,
                        rec.path,
                        float(score),
                        len(hits) + 1,
                        rec.width,
                        rec.height,
                        rec.format,
                    )
                )
            out.append(hits)
        return out

    def stats(self) -> IndexStats:
        """Return counts, encoder and index type."""
        return index_stats(self.store, self.vectors)


def index_stats(store: Store, vectors: VectorIndex | None = None) -> IndexStats:
    """Describe ``store`` (and its vector index, if loaded) for ``searchengine info``."""
    counts = store.counts()
    return IndexStats(
        path=str(store.dir),
        encoder=store.encoder(),
        images=counts["images"],
        ok=counts["ok"],
        failed=counts["failed"],
        vectors=counts["vectors"],
        faiss_key=vectors.key if vectors else None,
        roots=store.roots(),
        captions=counts["captions"],
        ocr=counts["ocr"],
        with_text=counts["with_text"],
        stage_errors=counts["stage_errors"],
    )
