"""What an index holds, for ``searchengine info`` and ``GET /api/stats``."""

from __future__ import annotations

from searchengine.records import IndexStats
from searchengine.store.db import Store


def index_stats(store: Store, faiss_key: str | None = None) -> IndexStats:
    """Describe ``store``; ``faiss_key`` names the vector index type when one is loaded."""
    counts = store.images.counts()
    return IndexStats(
        path=str(store.dir),
        encoder=store.encoder(),
        images=counts.images,
        ok=counts.ok,
        failed=counts.failed,
        vectors=counts.vectors,
        faiss_key=faiss_key,
        roots=store.images.roots(),
        captions=counts.captions,
        ocr=counts.ocr,
        with_text=counts.with_text,
        stage_errors=counts.stage_errors,
    )
