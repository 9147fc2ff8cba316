"""Search: a request in, a hydrated page out (see :mod:`.engine`).

:mod:`.request` builds requests from what people type, :mod:`.plan` decides how the
legs weigh (pure, table-tested), :mod:`.legs` runs them, :mod:`.fusion` fuses them,
:mod:`.cutoff` calibrates the relevance threshold and :mod:`.hydrate` adds what the
edges show.
"""

from searchengine.search.engine import SearchEngine, open_store, resolve_embedder, validate
from searchengine.search.plan import has_code
from searchengine.search.request import build_filters, build_request

__all__ = [
    "SearchEngine",
    "build_filters",
    "build_request",
    "has_code",
    "open_store",
    "resolve_embedder",
    "validate",
]
