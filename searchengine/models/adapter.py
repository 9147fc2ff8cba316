"""Tuned adapters: a small learned map on top of a frozen encoder's image tower.

Two kinds, both trained by :mod:`searchengine.tuning` with a contrastive (LiT-style)
loss against the frozen text tower:

* ``projection`` (the offline ConSE encoder): a linear map from the image network's
  penultimate features into the text space, blended with the label bridge:
  ``normalize(alpha * bridge + (1 - alpha) * normalize(W f + b))``;
* ``residual`` (open_clip and any other encoder): ``normalize(v + v W)`` on the image
  embedding ``v``, starting from ``W = 0`` (the identity).

An adapter lives in the index folder (``adapters/<id>.npz``) and its id is part of
the encoder tag the index records (``fast-v1+adapter-1a2b3c4d``), so an index never
mixes adapted and unadapted vectors, and a query with the wrong encoder is refused.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from searchengine.errors import ModelNotFound
from searchengine.models.base import Embedder, l2_normalize
from searchengine.records import EncoderId

ADAPTER_VERSION = 1
ADAPTERS_DIR = "adapters"
SEPARATOR = "+adapter-"


@dataclass
class Adapter:
    """Learned weights plus what they were learned on."""

    kind: str  # projection | residual
    base: str  # spec of the frozen encoder
    weight: np.ndarray  # (F, D) projection, or (D, D) residual
    bias: np.ndarray  # (D,)
    alpha: float = 0.0  # projection only: share of the label bridge in the blend
    info: dict = field(default_factory=dict)  # training data, seed, metrics

    @property
    def id(self) -> str:
        """``adapter-`` + 8 hex digits of a hash of the weights and settings."""
        h = hashlib.sha256()
        for part in (self.kind, self.base, f"{self.alpha:.6f}", str(ADAPTER_VERSION)):
            h.update(part.encode())
        h.update(np.ascontiguousarray(self.weight, dtype=np.float32).tobytes())
        h.update(np.ascontiguousarray(self.bias, dtype=np.float32).tobytes())
        return "adapter-" + h.hexdigest()[:8]

    def save(self, index_dir: Path) -> Path:
        path = Path(index_dir) / ADAPTERS_DIR / f"{self.id}.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.tmp.npz")
        self.write(tmp)
        tmp.replace(path)
        return path

    def write(self, path: Path) -> None:
        """Write the weights and what they were learned on to ``path`` (``.npz``)."""
        meta = {"version": ADAPTER_VERSION, "kind": self.kind, "base": self.base, "alpha": self.alpha}
        np.savez(path, weight=self.weight, bias=self.bias, meta=json.dumps(meta), info=json.dumps(self.info))

    @classmethod
    def read(cls, path: Path) -> Adapter:
        """Read an adapter written by :meth:`write`.

        :raises OSError, KeyError, ValueError: missing or unreadable.
        """
        with np.load(path) as data:
            meta = json.loads(str(data["meta"]))
            return cls(
                meta["kind"],
                meta["base"],
                data["weight"].astype(np.float32),
                data["bias"].astype(np.float32),
                float(meta["alpha"]),
                json.loads(str(data["info"])),
            )

    @classmethod
    def load(cls, index_dir: Path, adapter_id: str) -> Adapter:
        """:raises ModelNotFound: the adapter file is missing or unreadable."""
        path = Path(index_dir) / ADAPTERS_DIR / f"{adapter_id}.npz"
        try:
            adapter = cls.read(path)
        except (OSError, KeyError, ValueError) as exc:
            raise ModelNotFound(
                f"the index's tuned adapter {adapter_id} is missing or unreadable ({path}): "
                "tune again, or return to the plain encoder with 'searchengine tune --no-adapter'"
            ) from exc
        if adapter.id != adapter_id:
            raise ModelNotFound(f"{path} does not hold adapter {adapter_id} (it holds {adapter.id})")
        return adapter

    def apply(self, features: np.ndarray | None, vectors: np.ndarray) -> np.ndarray:
        """Adapted unit image vectors from the base ``vectors`` (and, for a projection,
        the penultimate ``features``)."""
        if self.kind == "residual":
            return l2_normalize(vectors + vectors @ self.weight + self.bias)
        projected = l2_normalize(features @ self.weight + self.bias)
        return l2_normalize(self.alpha * vectors + (1.0 - self.alpha) * projected)


def split_spec(spec: str) -> tuple[str, str | None]:
    """``offline:fast-v1+adapter-1a2b3c4d`` -> (``offline:fast-v1``, ``adapter-1a2b3c4d``)."""
    if SEPARATOR in spec:
        base, tail = spec.split(SEPARATOR, 1)
        return base, "adapter-" + tail
    return spec, None


class AdaptedEmbedder:
    """A frozen encoder whose image vectors go through an :class:`Adapter`; texts are unchanged."""

    def __init__(self, base: Embedder, adapter: Adapter) -> None:
        if adapter.kind == "projection" and not hasattr(base, "image_features"):
            raise ModelNotFound(f"a projection adapter needs the offline encoder, not {base.id.spec}")
        self.base, self.adapter = base, adapter
        self.name = base.id.name

    @property
    def id(self) -> EncoderId:
        return EncoderId(self.base.id.name, f"{self.base.id.tag}+{self.adapter.id}", self.base.id.dim)

    def load(self) -> None:
        self.base.load()

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self.base.embed_texts(texts)

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.base.id.dim), dtype=np.float32)
        if self.adapter.kind == "projection":
            features, vectors = self.base.image_features(images)
            return self.adapter.apply(features, vectors).astype(np.float32)
        return self.adapter.apply(None, self.base.embed_images(images)).astype(np.float32)
