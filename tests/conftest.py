"""Shared fixtures: tiny images, tiny random open_clip models, temporary indexes.

Nothing here downloads weights: open_clip models are built from a small config
registered on the fly, with the ``random`` tag (seeded random weights).
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "datasets"

TINY_CLIP = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 4, "layers": 2},
}


def register_tiny_clip(folder: Path, name: str = "se-tiny", embed_dim: int = 64) -> str:
    """Write a tiny open_clip config named ``name`` and register it; returns the spec."""
    import open_clip

    cfg = {**TINY_CLIP, "embed_dim": embed_dim}
    path = Path(folder) / f"{name}.json"
    path.write_text(json.dumps(cfg))
    open_clip.add_model_config(path)
    return f"clip:{name}:random"


@pytest.fixture(scope="session")
def tiny_spec(tmp_path_factory) -> str:
    return register_tiny_clip(tmp_path_factory.mktemp("clipcfg"))


@pytest.fixture(scope="session")
def tiny_spec_other(tmp_path_factory) -> str:
    return register_tiny_clip(tmp_path_factory.mktemp("clipcfg2"), "se-tiny-b", embed_dim=32)


@pytest.fixture(scope="session")
def tiny_embedder(tiny_spec):
    from searchengine.models.registry import create_embedder

    return create_embedder(tiny_spec)


def make_image(color=(200, 30, 30), size=(48, 40), seed: int | None = None) -> Image.Image:
    """Return a small RGB image: plain ``color``, or random blocks when ``seed`` is given."""
    im = Image.new("RGB", size, color)
    if seed is not None:
        rng = random.Random(seed)
        for _ in range(12):
            x, y = rng.randrange(size[0]), rng.randrange(size[1])
            block = Image.new(
                "RGB",
                (rng.randrange(4, 20), rng.randrange(4, 20)),
                tuple(rng.randrange(256) for _ in range(3)),
            )
            im.paste(block, (x, y))
    return im


def write_images(folder: Path, n: int, prefix: str = "img", start: int = 0) -> list[Path]:
    """Write ``n`` distinct PNGs into ``folder``; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(start, start + n):
        p = folder / f"{prefix}{i:03d}.png"
        make_image(seed=i).save(p)
        paths.append(p)
    return paths


@pytest.fixture
def image_dir(tmp_path) -> Path:
    folder = tmp_path / "photos"
    write_images(folder, 6)
    write_images(folder / "sub", 3, prefix="nested", start=50)
    return folder


@pytest.fixture
def index_dir(tmp_path) -> Path:
    return tmp_path / "index"


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Keep tests away from the user's real default index."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.delenv("SE_INDEX", raising=False)
    monkeypatch.delenv("SE_MODEL", raising=False)
    # stages are off unless a test asks for them: the plumbing tests stay fast
    monkeypatch.setenv("SE_CAPTIONER", "none")
    monkeypatch.setenv("SE_OCR", "none")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
