"""Building FAISS indexes: which kind for how many vectors, built chunk by chunk.

The kind is a pure function of the collection's size (:func:`choose_index_key`); the build
streams ``(ids, vectors)`` pieces into it, so the peak memory is the index plus one piece.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import faiss
import numpy as np

__all__ = [
    "EXACT_MAX",
    "HNSW_MAX",
    "VECTOR_MEMORY",
    "build_from_chunks",
    "build_index",
    "bytes_per_vector",
    "choose_index_key",
    "tune",
]

EXACT_MAX = 20_000
HNSW_MAX = 100_000
"""Beyond this many vectors: IVF lists over 8-bit codes, re-ranked exactly. Measured on the
scale benchmark's clustered vectors (recall@10 against exact, docs/benchmarks.md): HNSW32
0.998 at 100k, 0.968 at 300k, 0.82 at 1M; IVF with 8-bit codes and the re-rank 1.000,
0.998 and 0.988 at those sizes, in a quarter of the memory and half the build time."""
ID_BYTES = 24
"""Memory per vector for its id: the id map (8 bytes) and the sorted copy with rows a reader
keeps while changes are searched beside the index (16)."""
HNSW_LINK_BYTES = 272
"""Memory per vector of an HNSW32 graph beyond its codes: 64 level-0 links of 4 bytes and the
upper levels."""
IVF_ENTRY_BYTES = 8
"""Memory per vector of IVF lists beyond its codes: its id in the list."""
VECTOR_MEMORY = 1 << 30
"""The default memory budget of the main index: 1 GiB (``SE_VECTOR_MEMORY_MB``, see
:func:`searchengine.config.vector_memory_bytes`)."""


def bytes_per_vector(key: str, dim: int) -> int:
    """Memory one vector takes in an index of kind ``key`` (codes, links, ids), in bytes
    (``key`` as :func:`choose_index_key` writes them)."""
    code = dim * 4 if key.endswith("Flat") else dim if key.endswith("SQ8") else int(key.rsplit("PQ", 1)[1])
    if key == "Flat":
        return code + ID_BYTES
    return code + ID_BYTES + (HNSW_LINK_BYTES if key.startswith("HNSW") else IVF_ENTRY_BYTES)


def choose_index_key(n: int, dim: int, budget: int = VECTOR_MEMORY) -> str:
    """Pick the FAISS factory string for ``n`` vectors of dimension ``dim`` whose main index
    should take at most ``budget`` bytes of memory.

    Exact inner product up to :data:`EXACT_MAX` (every score is the true cosine); then an
    HNSW graph up to :data:`HNSW_MAX`, over float vectors when they fit the budget, else over
    8-bit scalar codes (a quarter of the memory); beyond (or past the budget even so), IVF
    lists (an HNSW quantiser picks them) over 8-bit codes, or over product-quantised codes of
    the most bytes that fit (``dim / 4`` to ``dim / 16``). Compressed codes are re-ranked
    exactly from SQLite's float vectors (see :data:`~searchengine.store.vectors.RERANK`), so
    they lose little recall.
    """
    if n < 0 or dim <= 0 or budget <= 0:
        raise ValueError(f"bad index size n={n} dim={dim} budget={budget}")
    if n <= EXACT_MAX:
        return "Flat"
    for key in ("HNSW32,Flat", "HNSW32,SQ8"):
        if n <= HNSW_MAX and n * bytes_per_vector(key, dim) <= budget:
            return key
    nlist = 2 ** round(math.log2(4 * math.sqrt(n)))
    ivf = f"IVF{nlist}_HNSW32"
    if n * bytes_per_vector(f"{ivf},SQ8", dim) <= budget:
        return f"{ivf},SQ8"
    sizes = [m for m in (dim // 4, dim // 8, dim // 16) if m >= 1 and dim % m == 0] or [1]
    fitting = [m for m in sizes if n * bytes_per_vector(f"{ivf},PQ{m}", dim) <= budget]
    return f"{ivf},PQ{max(fitting) if fitting else min(sizes)}"


def build_index(key: str, ids: np.ndarray, vectors: np.ndarray) -> faiss.Index:
    """Build an ID-mapped inner-product index of type ``key`` over ``vectors``."""
    return build_from_chunks(key, vectors.shape[1], len(ids), lambda: iter([(ids, vectors)]))


def build_from_chunks(
    key: str, dim: int, n: int, chunks: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]]
) -> faiss.Index:
    """Build an ID-mapped inner-product index of type ``key`` over ``n`` vectors that
    ``chunks()`` yields as ``(ids, vectors)`` pieces, added piece by piece: the peak memory is
    the index plus one piece, never a second copy of every vector.

    An index that must be trained (IVF) is trained first on an even sample, read in a first
    pass of ``chunks()``: no more rows than FAISS's k-means would keep anyway
    (``max_points_per_centroid`` per centroid), so the sample costs no quality.
    """
    index = faiss.index_factory(dim, f"IDMap,{key}", faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:
        index.train(_training_sample(index, dim, n, chunks()))
    _reserve(index, n)
    for ids, vecs in chunks():
        if len(ids):
            index.add_with_ids(np.ascontiguousarray(vecs, dtype=np.float32), ids)
    tune(index)
    return index


def _reserve(index: faiss.Index, n: int) -> None:
    """Make room for ``n`` vectors in a flat store (flat, HNSW) before adding them, so that
    adding chunk by chunk never grows it by copying (a copy of all the vectors, at the end)."""
    inner = faiss.downcast_index(index.index)
    if isinstance(inner, faiss.IndexHNSW):
        inner = faiss.downcast_index(inner.storage)
    if isinstance(inner, faiss.IndexFlatCodes) and inner.ntotal == 0:
        try:
            inner.codes.resize(n * inner.code_size)
            inner.codes.resize(0)  # the room stays: a vector keeps its capacity when it shrinks
        except AttributeError:  # another FAISS's storage type: it grows as it must
            pass


TRAIN_PER_CENTROID = 64
"""Training rows per k-means centroid: FAISS warns below 39; its default cap, 256, makes the
k-means of 4,096 lists over a million rows take many minutes on two cores, for little."""


def _training_sample(index: faiss.Index, dim: int, n: int, chunks) -> np.ndarray:
    """Rows spread evenly over the ``n`` that ``chunks`` yields, :data:`TRAIN_PER_CENTROID`
    per centroid of the index's k-means: its lists (IVF), or the 256 centroids of a product
    quantiser's code books."""
    inner = faiss.downcast_index(index.index)
    centroids = inner.nlist if isinstance(inner, faiss.IndexIVF) else 256
    size = min(n, TRAIN_PER_CENTROID * centroids)
    picks = np.unique(np.linspace(0, n - 1, size).astype(np.int64)) if size else np.zeros(0, np.int64)
    sample = np.empty((len(picks), dim), dtype=np.float32)
    at = got = 0
    for _, vecs in chunks:
        mine = picks[(picks >= at) & (picks < at + len(vecs))]
        sample[got : got + len(mine)] = vecs[mine - at]
        at, got = at + len(vecs), got + len(mine)
    return sample[:got]


def tune(index: faiss.Index) -> None:
    inner = faiss.downcast_index(index.index) if hasattr(index, "index") else index
    if isinstance(inner, faiss.IndexHNSW):
        inner.hnsw.efSearch = 128
    elif isinstance(inner, faiss.IndexIVF):
        inner.nprobe = 32
