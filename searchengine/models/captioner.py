"""Captioners: a short description plus keyword tags for each image.

* ``offline`` (default, no downloads): states only what the bundled models measured:
  the ImageNet labels the classifier is confident about, the dominant colours of the
  pixels, and the text OCR read. It never claims what it did not detect.
* ``blip``: transformers BLIP (default ``Salesforce/blip-image-captioning-base``,
  BSD-3-Clause) from the Hugging Face cache or a local directory.
"""

from __future__ import annotations

import colorsys
import re
import threading
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from searchengine.errors import ModelNotFound
from searchengine.models.base import hub_offline
from searchengine.records import Caption, CaptionParts
from searchengine.text import article, join_words

#: Labels at or above this probability become tags (and words of the caption).
LABEL_FLOOR = 0.15
#: Colours covering at least this share of the pixels are named.
COLOUR_FLOOR = 0.15

_STOPWORDS = frozenset(
    "a an the of on in at with and or to is are there it its this that for from by as some two three".split()
)


def colour_name(rgb: tuple[int, int, int]) -> str:
    """Name an RGB colour with one of 13 basic colour words."""
    h, s, v = colorsys.rgb_to_hsv(*(c / 255 for c in rgb))
    hue = h * 360
    if v < 0.18:
        return "black"
    if s < 0.18:
        return "white" if v > 0.85 else "grey"
    if (hue < 45 or hue >= 345) and v < 0.55 and s > 0.25:
        return "brown"
    if s < 0.35 and 20 <= hue < 60 and v > 0.7:
        return "beige"
    for limit, name in (
        (15, "red"),
        (45, "orange"),
        (70, "yellow"),
        (165, "green"),
        (200, "teal"),
        (255, "blue"),
        (290, "purple"),
        (345, "pink"),
    ):
        if hue < limit:
            return name
    return "red"


def dominant_colours(image: Image.Image, floor: float = COLOUR_FLOOR) -> list[str]:
    """Return the colour names covering at least ``floor`` of the pixels, largest first."""
    small = image.convert("RGB").resize((48, 48), Image.Resampling.BILINEAR)
    shares: dict[str, float] = {}
    for count, rgb in small.getcolors(48 * 48) or []:
        name = colour_name(rgb)
        shares[name] = shares.get(name, 0.0) + count / (48 * 48)
    return [n for n, share in sorted(shares.items(), key=lambda kv: -kv[1]) if share >= floor][:3]


def describe(labels: Sequence[tuple[str, float]], colours: Sequence[str], text: str) -> Caption:
    """Compose an honest caption from measured facts only.

    :param labels: (label, probability) pairs already above the floor, best first.
    :param colours: dominant colour names.
    :param text: OCR text ("" when none).
    """
    parts = []
    if labels:
        names = [f"{article(n)} {n}" for n, _ in labels]
        parts.append(f"Looks like {join_words(names, 'or')}")
    snippet = " ".join(text.split())
    if sum(ch.isalnum() for ch in snippet) < 3:  # a stray "O" or "8" is not text worth quoting
        snippet = ""
    if snippet:
        if len(snippet) > 80:
            snippet = snippet[:77].rsplit(" ", 1)[0] + "..."
        parts.append(f'{"with" if parts else "Shows"} the text "{snippet}"')
    sentence = " ".join(parts) if parts else "An image"
    if colours:
        sentence += f"; mostly {join_words(colours)}"
    tags = [n.lower() for n, _ in labels] + list(colours)
    if snippet:
        tags.append("text")
    return Caption(
        sentence + ".",
        tuple(dict.fromkeys(tags)),
        parts=CaptionParts(tuple((n, float(p)) for n, p in labels), tuple(colours), snippet)
        if labels or colours or snippet
        else None,
    )


class OfflineCaptioner:
    """Describes images from ImageNet labels, pixel colours and OCR text (no downloads)."""

    name = "offline"
    tag = "labels-colours-ocr-v1"

    def __init__(self, backbone: str = "lite0", floor: float = LABEL_FLOOR) -> None:
        from searchengine.models.conse import imagenet_lemmas, weights_path

        weights_path(backbone)  # fail fast with the install hint
        self.backbone, self.floor = backbone, floor
        self._lemmas = imagenet_lemmas()

    @property
    def id(self) -> str:
        return f"{self.name}:{self.tag}"

    def caption(self, images: Sequence[Image.Image], texts: Sequence[str] | None = None) -> list[Caption]:
        """Caption ``images``; ``texts`` are their OCR texts (same order) when known."""
        from searchengine.models.conse import class_probabilities

        if not images:
            return []
        texts = list(texts) if texts is not None else [""] * len(images)
        probs = class_probabilities(images, (self.backbone,))
        out = []
        for im, row, text in zip(images, probs, texts, strict=True):
            top = row.argsort()[::-1][:3]
            labels: dict[str, float] = {}  # ImageNet has two "crane" classes: name each once
            for i in top:
                if row[i] >= self.floor:
                    name = self._lemmas[i][0]
                    labels[name] = labels.get(name, 0.0) + float(row[i])
            labels = sorted(labels.items(), key=lambda kv: -kv[1])
            out.append(describe(labels, dominant_colours(im), text))
        return out


class BlipCaptioner:
    """transformers BLIP image captioning, from the hub cache or a local directory."""

    name = "blip"
    DEFAULT = "Salesforce/blip-image-captioning-base"

    def __init__(self, source: str | None = None, max_new_tokens: int = 30) -> None:
        from transformers import BlipForConditionalGeneration, BlipProcessor
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()

        self.source = source or self.DEFAULT
        local = Path(self.source).expanduser()
        try:
            kwargs = {"local_files_only": hub_offline() or local.is_dir()}
            where = str(local) if local.is_dir() else self.source
            self.processor = BlipProcessor.from_pretrained(where, **kwargs)
            self.model = BlipForConditionalGeneration.from_pretrained(where, **kwargs).eval()
        except OSError as exc:
            raise ModelNotFound(
                f"could not load BLIP weights {self.source!r} ({exc}). Download them where the "
                "hub is reachable, or pass a local directory: --captioner blip:/path/to/blip. "
                "Or use --captioner offline."
            ) from exc
        self.max_new_tokens = max_new_tokens
        self._lock = threading.Lock()

    @property
    def id(self) -> str:
        return f"{self.name}:{self.source}"

    def caption(self, images: Sequence[Image.Image], texts: Sequence[str] | None = None) -> list[Caption]:
        """Caption ``images`` with BLIP; tags are the caption's content words."""
        import torch

        if not images:
            return []
        inputs = self.processor(images=[im.convert("RGB") for im in images], return_tensors="pt")
        with self._lock, torch.inference_mode():
            ids = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens)
        out = []
        for text in self.processor.batch_decode(ids, skip_special_tokens=True):
            text = " ".join(text.split()).strip() or "an image"
            words = [w for w in re.findall(r"[a-z]+", text.lower()) if w not in _STOPWORDS]
            out.append(Caption(text[0].upper() + text[1:], tuple(dict.fromkeys(words))))
        return out
