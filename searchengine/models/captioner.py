"""Captioners: a short description plus keyword tags for each image.

* ``offline`` (default, no downloads): states only what the bundled models measured:
  the ImageNet label the classifier is confident about (at or above a floor measured to
  be precise, never one of :data:`searchengine.labels.NEVER_STATE`), the dominant colours
  of the pixels, and the text OCR read. It never claims what it did not detect, and says
  what it states plainly ("A sandal; mostly white.").
* ``blip``: transformers BLIP (default ``Salesforce/blip-image-captioning-base``,
  BSD-3-Clause) from the Hugging Face cache or a local directory.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from searchengine.errors import ModelNotFound
from searchengine.labels import (
    LABEL_FLOOR,
    caption_tags,
    mentions_never_stated,
    quote_snippet,
    sentence,
    top_labels,
)
from searchengine.models.base import hub_offline
from searchengine.models.colours import COLOUR_FLOOR, colour_name, dominant_colours  # noqa: F401 (re-exported)
from searchengine.records import Caption, CaptionParts

_STOPWORDS = frozenset(
    "a an the of on in at with and or to is are there it its this that for from by as some two three".split()
)


def describe(labels: Sequence[tuple[str, float]], colours: Sequence[str], text: str) -> Caption:
    """Compose an honest caption from measured facts only, stated plainly.

    :param labels: (label, probability) pairs already above the floor and stateable, best first.
    :param colours: dominant colour names.
    :param text: OCR text ("" when none).
    """
    snippet = quote_snippet(text)
    return Caption(
        sentence(labels, colours, snippet),
        caption_tags(labels, colours, snippet),
        parts=CaptionParts(tuple((n, float(p)) for n, p in labels), tuple(colours), snippet)
        if labels or colours or snippet
        else None,
    )


class OfflineCaptioner:
    """Describes images from ImageNet labels, pixel colours and OCR text (no downloads).

    v2: labels only at or above :data:`LABEL_FLOOR` (measured precise), never a class of
    :data:`searchengine.labels.NEVER_STATE`, no "looks like"; colours measured anew.
    """

    name = "offline"
    tag = "labels-colours-ocr-v2"

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
            top = [(int(i), self._lemmas[i][0], float(row[i])) for i in row.argsort()[::-1][:3]]
            labels = top_labels(top, self.floor)  # ImageNet has two "crane" classes: named once
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
            words = [w for w in words if not mentions_never_stated(w)]
            out.append(Caption(text[0].upper() + text[1:], tuple(dict.fromkeys(words))))
        return out
