"""open_clip encoders: any architecture and pretrained tag, or a local checkpoint.

Weights come from the Hugging Face hub cache (downloaded on first use when the
network allows) or from a checkpoint file given in place of the tag. The tag
``random`` builds the architecture with seeded random weights: for tests and
speed benchmarks only, its vectors carry no meaning.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from searchengine.errors import ModelNotFound
from searchengine.models.base import hub_offline, l2_normalize
from searchengine.records import EncoderId

log = logging.getLogger(__name__)

DEFAULT_ARCH = "ViT-B-32"
DEFAULT_PRETRAINED = "laion2b_s34b_b79k"
RANDOM = "random"
#: Where open_clip 3.x keeps the default weights (``open_clip.get_pretrained_cfg``; a test checks
#: they agree): ``models`` and picking the default encoder then need no open_clip import (seconds).
KNOWN_PRETRAINED: dict[tuple[str, str], dict[str, str]] = {
    (DEFAULT_ARCH, DEFAULT_PRETRAINED): {"hf_hub": "laion/CLIP-ViT-B-32-laion2B-s34B-b79K/", "url": ""},
}


def cached_weights(arch: str, pretrained: str) -> Path | None:
    """Return the local file of ``arch``/``pretrained`` if present without network access.

    A path to an existing file is its own answer; a hub tag is looked up in the
    Hugging Face cache (or open_clip's URL cache for URL-hosted weights).
    """
    if pretrained == RANDOM:
        return None
    if Path(pretrained).expanduser().is_file():
        return Path(pretrained).expanduser()
    cfg = KNOWN_PRETRAINED.get((arch, pretrained))
    if cfg is None:
        import open_clip

        cfg = open_clip.get_pretrained_cfg(arch, pretrained)
    if not cfg:
        return None
    if cfg.get("hf_hub"):
        from huggingface_hub import try_to_load_from_cache

        model_id, filename = os.path.split(cfg["hf_hub"])
        names = [filename or "open_clip_pytorch_model.bin"]
        if names[0] == "open_clip_pytorch_model.bin":
            names.insert(0, "open_clip_model.safetensors")  # what open_clip prefers
        for name in names:
            found = try_to_load_from_cache(model_id, name)
            if isinstance(found, str) and Path(found).is_file():
                return Path(found)
    if cfg.get("url"):
        path = Path("~/.cache/clip").expanduser() / os.path.basename(cfg["url"])
        if path.is_file():
            return path
    return None


@contextlib.contextmanager
def _quiet_random_warning(active: bool):
    """Hide open_clip's "initialized randomly" warning when random weights were asked for."""

    class _Drop(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return "initialized randomly" not in record.getMessage()

    flt = _Drop()
    root = logging.getLogger()
    if active:
        root.addFilter(flt)
    try:
        yield
    finally:
        root.removeFilter(flt)


def _preprocess_kwargs(arch: str, pretrained: str) -> dict:
    """Return the tag's own image preprocessing (we may load its weights by file path)."""
    import open_clip

    cfg = open_clip.get_pretrained_cfg(arch, pretrained) if pretrained != RANDOM else {}
    keys = {
        "mean": "image_mean",
        "std": "image_std",
        "interpolation": "image_interpolation",
        "resize_mode": "image_resize_mode",
    }
    return {arg: cfg[k] for k, arg in keys.items() if cfg and cfg.get(k)}


class OpenClipEmbedder:
    """An open_clip model as an :class:`~searchengine.models.base.Embedder`."""

    name = "clip"

    def __init__(
        self, arch: str = DEFAULT_ARCH, pretrained: str = DEFAULT_PRETRAINED, device: str = "cpu"
    ) -> None:
        """Load the model now (weights from cache, file or hub).

        :raises ModelNotFound: unknown architecture/tag, or weights unobtainable.
        """
        import open_clip
        import torch

        if arch not in open_clip.list_models():
            raise ModelNotFound(
                f"unknown open_clip architecture {arch!r}; available: {', '.join(open_clip.list_models())}"
            )
        self.arch, self.pretrained, self.device = arch, pretrained, device
        if pretrained != RANDOM and not Path(pretrained).expanduser().is_file():
            tags = [t for a, t in open_clip.list_pretrained() if a == arch]
            if pretrained not in tags:
                raise ModelNotFound(
                    f"unknown pretrained tag {pretrained!r} for {arch}; "
                    f"available: {', '.join(tags) or 'none'}"
                    " (or pass a local checkpoint file, or 'random' for tests)"
                )
        source = cached_weights(arch, pretrained)
        if source is None and pretrained != RANDOM and hub_offline():
            raise ModelNotFound(
                f"open_clip weights {arch}:{pretrained} are not in the cache and HF_HUB_OFFLINE is "
                "set. Download them where the hub is reachable, or pass a local checkpoint: "
                "--model clip:ARCH:/path/to/checkpoint.bin. Or use --model offline."
            )
        weights = None if pretrained == RANDOM else str(source or pretrained)
        seed_ctx = torch.random.fork_rng() if pretrained == RANDOM else contextlib.nullcontext()
        try:
            with seed_ctx, _quiet_random_warning(pretrained == RANDOM):
                if pretrained == RANDOM:
                    torch.manual_seed(0)
                model, _, preprocess = open_clip.create_model_and_transforms(
                    arch, pretrained=weights, device=device, **_preprocess_kwargs(arch, pretrained)
                )
        except Exception as exc:  # network, missing file, bad checkpoint: all mean "no weights"
            raise ModelNotFound(
                f"could not load open_clip weights {arch}:{pretrained} ({exc}). Without network "
                "access, download them elsewhere into the Hugging Face cache or pass a local "
                "checkpoint: --model clip:ARCH:/path/to/checkpoint.bin. Or use --model offline."
            ) from exc
        model.eval()
        self.model, self.preprocess = model, preprocess
        self.tokenizer = open_clip.get_tokenizer(arch)
        self._torch = torch
        self._lock = threading.Lock()
        with torch.inference_mode():
            dim = model.encode_text(self.tokenizer(["x"]).to(device)).shape[-1]
        self._id = EncoderId(self.name, f"{arch}:{pretrained}", int(dim))

    @property
    def id(self) -> EncoderId:
        return self._id

    def load(self) -> None:
        """Nothing to do: the model loads in the constructor."""

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Embed RGB images; returns ``(N, dim)`` float32, unit rows."""
        if not images:
            return np.zeros((0, self._id.dim), dtype=np.float32)
        torch = self._torch
        batch = torch.stack([self.preprocess(im.convert("RGB")) for im in images]).to(self.device)
        with self._lock, torch.inference_mode():
            feats = self.model.encode_image(batch).float().cpu().numpy()
        return l2_normalize(feats)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Embed queries; returns ``(N, dim)`` float32, unit rows."""
        torch = self._torch
        tokens = self.tokenizer(list(texts)).to(self.device)
        with self._lock, torch.inference_mode():
            feats = self.model.encode_text(tokens).float().cpu().numpy()
        return l2_normalize(feats)
