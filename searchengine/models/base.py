"""The small interface every encoder backend implements."""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image

from searchengine.records import EncoderId


@runtime_checkable
class Embedder(Protocol):
    """Maps images and texts into one vector space.

    Both methods return ``(N, dim)`` float32 arrays whose rows have L2 norm 1, so
    that inner product is cosine similarity.
    """

    @property
    def id(self) -> EncoderId:
        """Name, tag and dimension: what an index records and checks."""
        ...

    def load(self) -> None:
        """Load everything image embedding needs now (backends may load lazily)."""
        ...

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Embed RGB images; returns ``(len(images), dim)`` float32."""
        ...

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Embed queries; returns ``(len(texts), dim)`` float32."""
        ...


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Return ``x`` (N, D) as float32 with unit-norm rows (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def hub_offline() -> bool:
    """Tell whether ``HF_HUB_OFFLINE`` asks for no download attempts at all."""
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


class TextCache:
    """An encoder that remembers its last ``size`` text embeddings (least recently used out).

    Repeated queries ("Show more", filter changes, the variants of one evaluation query)
    do not encode the same text again; images pass through. Not thread-safe: share it
    under a lock.
    """

    def __init__(self, inner: Embedder, size: int) -> None:
        self.inner, self.id, self.size = inner, inner.id, size
        self._texts: OrderedDict[str, np.ndarray] = OrderedDict()

    def load(self) -> None:
        self.inner.load()

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.inner.embed_images(images)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """``(N, dim)`` float32 unit rows, a fresh array the caller may change."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._texts))
        if missing:
            for text, vec in zip(missing, self.inner.embed_texts(missing), strict=True):
                self._texts[text] = vec
        out = np.stack([self._texts[t] for t in texts]) if texts else self.inner.embed_texts(texts)
        for t in texts:
            self._texts.move_to_end(t)
        while len(self._texts) > self.size:
            self._texts.popitem(last=False)
        return out.copy()
