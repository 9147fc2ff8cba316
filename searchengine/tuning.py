"""Tune an index's encoder to its own images: learn an adapter from (image, text) pairs.

The encoder's two towers stay frozen. Image and text vectors are computed once;
then a small adapter on the image side (:mod:`searchengine.models.adapter`) is
trained with a symmetric contrastive loss (InfoNCE, as in CLIP and LiT) to pull
each image towards its own texts and away from the other texts of the batch. A
held-back share of the images is never trained on: its text-to-image recall
picks the best epoch (early stopping) and, for a projection, its blend with the
label bridge. Deterministic for a seed on a given machine.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from searchengine.errors import SearchEngineError, UnsupportedImage
from searchengine.imaging import load_image
from searchengine.metrics import rank_metrics
from searchengine.models.adapter import Adapter
from searchengine.models.base import l2_normalize
from searchengine.names import AmbiguousName, ImageNames

if TYPE_CHECKING:
    from searchengine.store.db import Store

TEXT_COLUMNS = ("captions", "caption", "title", "text", "description", "alt_text")
BLENDS = (0.0, 0.25, 0.5, 0.75)
BLEND_TOLERANCE = 0.98


@dataclass
class Pairs:
    """Images and the texts that describe each (``texts[i]`` belong to ``images[i]``)."""

    images: list[str]
    texts: list[list[str]]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (what, why)

    @property
    def count(self) -> int:
        return sum(len(t) for t in self.texts)


def load_pairs(
    path: str | Path,
    image_column: str | None = None,
    text_column: str | None = None,
    store: Store | None = None,
) -> Pairs:
    """Read pairs from JSONL (``{"file", "captions"}`` records, files relative to it) or a
    catalogue CSV (an image column and a text column, e.g. ``title``).

    :param store: the index: an image value that is no file relative to the pairs file is
        matched against its images as catalogue import matches it (a bare file name...).

    :raises SearchEngineError: unreadable file, unknown format, no usable pair.
    """
    from searchengine.metadata import IMAGE_COLUMNS, read_rows

    path = Path(path).expanduser()
    if not path.is_file():
        raise SearchEngineError(f"no such pairs file: {path}")
    base = path.resolve().parent
    pairs = Pairs([], [])
    names = ImageNames.searchable(store) if store is not None else None
    seen: dict[str, int] = {}
    try:
        rows = list(read_rows(path))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SearchEngineError(f"cannot read {path}: {exc}") from None
    for line, row, error in rows:
        if error:
            pairs.skipped.append((f"line {line}", error))
            continue
        icol = image_column or next((c for c in IMAGE_COLUMNS if c in row), None)
        tcol = text_column or next((c for c in TEXT_COLUMNS if row.get(c)), None)
        value = row.get(tcol) if tcol else None
        if icol is None or not row.get(icol) or not value:
            pairs.skipped.append((f"line {line}", "no image or no text"))
            continue
        texts = [str(t).strip() for t in (value if isinstance(value, list) else [value]) if str(t).strip()]
        if not texts:
            pairs.skipped.append((f"line {line}", "empty text"))
            continue
        image, why = _locate(str(row[icol]), base, names)
        if image is None:
            pairs.skipped.append((f"line {line}", why))
            continue
        if image in seen:
            pairs.texts[seen[image]].extend(texts)
        else:
            seen[image] = len(pairs.images)
            pairs.images.append(image)
            pairs.texts.append(texts)
    if len(pairs.images) < 4:
        skipped = pairs.skipped
        first = f" ({len(skipped)} lines skipped; {': '.join(skipped[0])})" if skipped else ""
        raise SearchEngineError(
            f"{path}: need at least 4 images with texts to tune, found {len(pairs.images)}{first}"
        )
    return pairs


def _locate(ref: str, base: Path, names: ImageNames | None) -> tuple[str | None, str]:
    """The file an image value names (relative to ``base``, else by the index's ``names``),
    or None and why not."""
    try:
        image = (base / ref.strip()).resolve()
    except (OSError, RuntimeError, ValueError) as exc:
        return None, f"not a usable path: {ref!r} ({exc})"
    if names is None or image.is_file():
        return str(image), ""
    try:
        image_id = names.one(ref, bases=[base])
    except AmbiguousName as exc:
        return None, str(exc)
    if image_id is None:
        return None, f"no file and no indexed image matches {ref!r}"
    return names.paths[image_id], ""


@dataclass
class Features:
    """Frozen-encoder outputs for a set of pairs."""

    vectors: np.ndarray  # (N, D) base image vectors
    features: np.ndarray | None  # (N, F) penultimate features (projection adapters)
    texts: np.ndarray  # (T, D) text vectors
    owner: np.ndarray  # (T,) image row of each text


def extract(
    embedder, pairs: Pairs, batch: int = 32, progress: Callable[[int], None] | None = None
) -> Features:
    """Run the frozen towers once over every pair; unreadable images are skipped (and noted)."""
    keep, vecs, feats = [], [], []
    projection = hasattr(embedder, "image_features")
    for start in range(0, len(pairs.images), batch):
        images, rows = [], []
        for i in range(start, min(start + batch, len(pairs.images))):
            try:
                images.append(load_image(pairs.images[i])[0])
                rows.append(i)
            except UnsupportedImage as exc:
                pairs.skipped.append((pairs.images[i], str(exc)))
            except OSError as exc:
                pairs.skipped.append((pairs.images[i], f"unreadable: {exc.strerror or exc}"))
        if images:
            if projection:
                f, v = embedder.image_features(images)
                feats.append(f)
            else:
                v = embedder.embed_images(images)
            vecs.append(v)
            keep.extend(rows)
        if progress:
            progress(min(batch, len(pairs.images) - start))
    if len(keep) < 4:
        why = f" (e.g. {pairs.skipped[0][0]}: {pairs.skipped[0][1]})" if pairs.skipped else ""
        raise SearchEngineError(f"fewer than 4 readable images: nothing to tune on{why}")
    texts, owner = [], []
    for row, i in enumerate(keep):
        texts.extend(pairs.texts[i])
        owner.extend([row] * len(pairs.texts[i]))
    return Features(
        np.concatenate(vecs).astype(np.float32),
        np.concatenate(feats).astype(np.float32) if projection else None,
        embedder.embed_texts(texts).astype(np.float32),
        np.asarray(owner, dtype=np.int64),
    )


def recall(image_vecs: np.ndarray, text_vecs: np.ndarray, owner: np.ndarray) -> dict[str, float]:
    """Text-to-image Recall@1/5/10 and MRR (each text's own image is the one relevant)."""
    scores = text_vecs @ image_vecs.T
    own = scores[np.arange(len(owner)), owner]
    rank = (scores > own[:, None]).sum(axis=1) + 1
    return {k: round(v, 4) for k, v in rank_metrics(rank.tolist()).items()}


@dataclass
class TuneResult:
    adapter: Adapter
    before: dict[str, float]
    after: dict[str, float]
    epochs: int
    best_epoch: int
    train_images: int
    val_images: int
    train_texts: int
    val_texts: int


@dataclass
class _Split:
    """Images held back for validation, and the texts of each side."""

    train_rows: np.ndarray
    val_rows: np.ndarray
    val_texts: np.ndarray
    val_owner: np.ndarray
    train_texts_by_image: dict[int, list[int]]
    train_text_count: int
    val_text_count: int


def held_out(train: Features, held: Features) -> tuple[Features, np.ndarray]:
    """Both sets as one :class:`Features` and the rows of ``held`` in it: pairs kept for
    validation only (e.g. a dev split), never trained on."""
    n = len(train.vectors)
    both = Features(
        np.concatenate([train.vectors, held.vectors]),
        None if train.features is None else np.concatenate([train.features, held.features]),
        np.concatenate([train.texts, held.texts]),
        np.concatenate([train.owner, held.owner + n]),
    )
    return both, np.arange(n, n + len(held.vectors))


def _split(
    feats: Features, rng: random.Random, val_fraction: float, held: np.ndarray | None = None
) -> _Split:
    n = len(feats.vectors)
    if held is None:
        order = list(range(n))
        rng.shuffle(order)
        val_set = set(order[: max(2, min(n - 2, round(n * val_fraction)))])
    else:
        val_set = {int(r) for r in held}
    train_rows = np.array(sorted(set(range(n)) - val_set))
    val_rows = np.array(sorted(val_set))
    remap = {int(r): i for i, r in enumerate(val_rows)}
    val_mask = np.isin(feats.owner, val_rows)
    val_owner = np.array([remap[int(o)] for o in feats.owner[val_mask]])
    by_image: dict[int, list[int]] = {}
    for t, o in zip(np.flatnonzero(~val_mask), feats.owner[~val_mask], strict=True):
        by_image.setdefault(int(o), []).append(int(t))
    return _Split(
        train_rows,
        val_rows,
        feats.texts[val_mask],
        val_owner,
        by_image,
        int((~val_mask).sum()),
        int(val_mask.sum()),
    )


class _AdapterModel:
    """The trainable image side: a projection of frozen features, or a residual on the vectors."""

    def __init__(self, feats: Features, train_rows: np.ndarray, lr: float, weight_decay: float) -> None:
        import torch

        self.torch, self.feats = torch, feats
        self.projection = feats.features is not None
        dim = feats.vectors.shape[1]
        self.x_all = torch.from_numpy(feats.features if self.projection else feats.vectors)
        width = self.x_all.shape[1]
        if self.projection:
            self.mean = self.x_all[torch.from_numpy(train_rows)].mean(0, keepdim=True)
            self.std = self.x_all[torch.from_numpy(train_rows)].std(0, keepdim=True) + 1e-6
            self.weight = torch.nn.Parameter(torch.randn(width, dim) * (1.0 / width**0.5))
        else:
            self.mean, self.std = torch.zeros(1, width), torch.ones(1, width)
            self.weight = torch.nn.Parameter(torch.zeros(dim, dim))
        self.bias = torch.nn.Parameter(torch.zeros(dim))
        self.scale = torch.nn.Parameter(torch.tensor(float(np.log(1 / 0.05))))
        params = [self.weight, self.bias, self.scale]
        self.opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)

    def image_side(self, rows):
        x = (self.x_all[rows] - self.mean) / self.std
        out = x @ self.weight + self.bias if self.projection else x + x @ self.weight + self.bias
        return self.torch.nn.functional.normalize(out, dim=1)

    def step(self, chunk: np.ndarray, texts) -> None:
        """One contrastive (symmetric InfoNCE) step on a batch of images and one text each."""
        f = self.torch.nn.functional
        logits = self.scale.exp().clamp(max=100) * self.image_side(self.torch.from_numpy(chunk)) @ texts.T
        labels = self.torch.arange(len(chunk))
        loss = (f.cross_entropy(logits, labels) + f.cross_entropy(logits.T, labels)) / 2
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()

    def validate(self, split: _Split) -> tuple[float, dict]:
        """Score the held-back images; the blend with the base vectors is chosen here too."""
        with self.torch.no_grad():
            adapted = self.image_side(self.torch.from_numpy(split.val_rows)).numpy()
        base = self.feats.vectors[split.val_rows]
        scored = []
        for alpha in BLENDS if self.projection else (0.0,):
            vecs = l2_normalize(alpha * base + (1 - alpha) * adapted) if self.projection else adapted
            r = recall(vecs, split.val_texts, split.val_owner)
            scored.append((r["R@1"] + r["R@5"] + r["R@10"] + r["MRR"], alpha, r))
        # the most conservative blend (most label bridge) within 2% of the best: it
        # generalises beyond the pairs' own kind of image (docs/evaluation.md)
        top = max(key for key, _, _ in scored)
        key, alpha, r = max((s for s in scored if s[0] >= BLEND_TOLERANCE * top), key=lambda s: s[1])
        return key, {**r, "alpha": alpha}

    def state(self) -> tuple:
        return self.weight.detach().clone(), self.bias.detach().clone()

    def export(self, state: tuple, alpha: float, base_spec: str) -> Adapter:
        w, b = state
        if self.projection:  # fold the standardisation into the weights: ((x - m) / s) W + b
            w, b = w / self.std.T, b - ((self.mean / self.std) @ w).reshape(-1)
        kind = "projection" if self.projection else "residual"
        return Adapter(kind, base_spec, w.numpy().astype(np.float32), b.numpy().astype(np.float32), alpha)


def train(
    feats: Features,
    base_spec: str,
    *,
    seed: int = 0,
    val_fraction: float = 0.2,
    epochs: int = 60,
    patience: int = 6,
    batch: int = 256,
    lr: float = 2e-3,
    weight_decay: float = 0.05,
    progress: Callable[[int, dict], None] | None = None,
    held: np.ndarray | None = None,
) -> TuneResult:
    """Learn an adapter on ``feats``; returns it with before/after validation recall.

    Early stopping: the epoch with the best held-back score wins; training stops after
    ``patience`` epochs without gain.

    :param val_fraction: share of the images held back (never trained on).
    :param held: the rows held back instead of a random share (see :func:`held_out`).
    :param progress: called after each epoch with (epoch, validation recall).
    """
    import torch

    torch.manual_seed(seed)
    rng = random.Random(seed)
    split = _split(feats, rng, val_fraction, held)
    model = _AdapterModel(feats, split.train_rows, lr, weight_decay)
    text_all = torch.from_numpy(feats.texts)
    before = recall(feats.vectors[split.val_rows], split.val_texts, split.val_owner)
    best_key, best_metrics, best_state, best_epoch, stale, epoch = -1.0, before, None, 0, 0, 0
    for epoch in range(1, epochs + 1):
        rows = split.train_rows.copy()
        rng.shuffle(rows)
        for start in range(0, len(rows), batch):
            chunk = rows[start : start + batch]
            if len(chunk) >= 2:
                texts = torch.stack([text_all[rng.choice(split.train_texts_by_image[int(r)])] for r in chunk])
                model.step(chunk, texts)
        key, metrics = model.validate(split)
        if progress:
            progress(epoch, metrics)
        if key > best_key + 1e-6:
            best_key, best_metrics, best_epoch, stale = key, metrics, epoch, 0
            best_state = (model.state(), metrics["alpha"])
        else:
            stale += 1
            if stale >= patience:
                break
    return TuneResult(
        model.export(best_state[0], best_state[1], base_spec),
        before,
        {k: v for k, v in best_metrics.items() if k != "alpha"},
        epoch,
        best_epoch,
        len(split.train_rows),
        len(split.val_rows),
        split.train_text_count,
        split.val_text_count,
    )


def reembed(store, embedder, progress: Callable[[int], None] | None = None, batch: int = 16) -> int:
    """Embed every searchable image again with ``embedder`` and swap all vectors at once.

    The new vectors are computed first, then written with the new encoder id in one
    transaction: an interrupted run leaves the index as it was, never half adapted.
    Images that cannot be read any more are marked failed.
    """
    rows = store.images.searchable_paths()
    new: list[tuple[int, bytes]] = []
    failed: list[tuple[int, str]] = []
    for start in range(0, len(rows), batch):
        images, ids = [], []
        for image_id, path in rows[start : start + batch]:
            try:
                images.append(load_image(path)[0])
                ids.append(image_id)
            except (UnsupportedImage, OSError) as exc:
                failed.append((image_id, str(exc)))
        if images:
            vecs = embedder.embed_images(images)
            new.extend((i, np.asarray(v, dtype=np.float32).tobytes()) for i, v in zip(ids, vecs, strict=True))
        if progress:
            progress(len(rows[start : start + batch]))
    store.embeddings.replace(embedder.id, new, failed)
    return len(new)


def report(result: TuneResult, pairs_path: str, seed: int) -> dict:
    """The JSON ``tune`` writes: before/after validation recall and how it was trained."""
    return {
        "pairs": pairs_path,
        "adapter": result.adapter.id,
        "kind": result.adapter.kind,
        "base": result.adapter.base,
        "alpha": result.adapter.alpha,
        "seed": seed,
        "epochs": result.epochs,
        "best_epoch": result.best_epoch,
        "train": {"images": result.train_images, "texts": result.train_texts},
        "validation": {"images": result.val_images, "texts": result.val_texts},
        "before": result.before,
        "after": result.after,
    }


def write_json(data: dict, path: str | Path) -> None:
    Path(path).write_text(json.dumps(data, indent=2) + "\n")
