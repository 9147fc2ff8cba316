"""The small interface every encoder backend implements."""

from __future__ import annotations

import os
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
