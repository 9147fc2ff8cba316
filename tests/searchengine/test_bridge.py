"""The caption bridge shipped in the package (offline:fast-v2): present, intact, the right shape."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from searchengine.errors import ModelNotFound
from searchengine.models import conse

SHIPPED = Path(conse.__file__).parent / "data" / "bridge-flickr8k-v2.npz"


def test_the_shipped_bridge_matches_its_hash_and_the_spaces_it_joins():
    assert hashlib.sha256(SHIPPED.read_bytes()).hexdigest() == conse.BRIDGES["flickr8k-v2"]
    bridge = conse.shipped_bridge("flickr8k-v2")
    assert bridge.kind == "projection" and bridge.base == "offline:fast-v1"
    assert bridge.weight.shape == (1280, 384) and bridge.bias.shape == (384,)  # Lite0 features -> MiniLM
    assert 0.0 <= bridge.alpha < 1.0 and np.isfinite(bridge.weight).all()
    assert SHIPPED.with_suffix(".md").is_file()  # its model card


def test_fast_v2_is_the_default_preset_and_fast_v1_keeps_its_meaning():
    assert conse.DEFAULT_PRESET == "fast-v2" and conse.PRESETS["fast-v2"].bridge == "flickr8k-v2"
    assert conse.PRESETS["fast-v1"].bridge is None
    assert conse.PRESETS["fast-v2"].tag() == "fast-v2" and conse.PRESETS["fast-v1"].tag() == "fast-v1"


def test_a_damaged_or_unknown_bridge_is_refused(monkeypatch):
    conse._load_bridge.cache_clear()
    monkeypatch.setitem(conse.BRIDGES, "flickr8k-v2", "0" * 64)
    with pytest.raises(ModelNotFound, match="damaged"):
        conse.shipped_bridge("flickr8k-v2")
    conse._load_bridge.cache_clear()
    with pytest.raises(ModelNotFound, match="not in this installation"):
        conse.shipped_bridge("nosuch")


def test_the_encoder_share_of_the_cutoff_follows_its_base():
    from searchengine.search.cutoff import EVIDENCE_SHARE, evidence_share

    assert evidence_share("offline:fast-v2") == 0.95
    assert evidence_share("offline:fast-v2+adapter-1a2b3c4d") == 0.95  # tuned: its base's
    assert evidence_share("offline:fast-v1") == 0.7
    assert evidence_share("clip:ViT-B-32:laion2b_s34b_b79k") == EVIDENCE_SHARE


def test_held_out_rows_are_never_trained_on():
    import random

    from searchengine.tuning import Features, _split, held_out

    def feats(n):
        rng = np.random.default_rng(n)
        return Features(
            rng.normal(size=(n, 4)),
            rng.normal(size=(n, 6)),
            rng.normal(size=(2 * n, 4)),
            np.repeat(np.arange(n), 2),
        )

    both, held = held_out(feats(10), feats(3))
    assert held.tolist() == [10, 11, 12] and len(both.vectors) == 13 and both.owner.max() == 12
    split = _split(both, random.Random(0), 0.5, held)
    assert split.val_rows.tolist() == [10, 11, 12] and set(split.train_rows.tolist()) == set(range(10))
    assert split.val_text_count == 6 and split.train_text_count == 20


@pytest.mark.slow
def test_fast_v2_images_go_through_the_bridge():
    from PIL import Image

    v1, v2 = conse.ConSEEmbedder(conse.PRESETS["fast-v1"]), conse.ConSEEmbedder(conse.PRESETS["fast-v2"])
    images = [Image.new("RGB", (64, 64), c) for c in ((200, 30, 30), (30, 30, 200))]
    a, b = v1.embed_images(images), v2.embed_images(images)
    assert a.shape == b.shape == (2, 384) and np.abs(a - b).max() > 0.05  # the bridge changes them
    assert np.allclose(b, v2.image_features(images)[1], atol=1e-5)
    assert np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
