"""Tuning: deterministic adapters, applied at index and query time, refused when mixed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from indexer.pipeline import Indexer
from searchengine.cli import cli
from searchengine.errors import IndexMismatch, ModelNotFound, SearchEngineError
from searchengine.models.adapter import AdaptedEmbedder, Adapter, split_spec
from searchengine.models.registry import create_embedder
from searchengine.search import SearchEngine, resolve_embedder
from searchengine.store.db import Store
from searchengine.tuning import extract, load_pairs, recall, train
from tests.conftest import REPO, make_image, write_images

SAMPLE = REPO / "data" / "sample"


def run(*args):
    r = CliRunner().invoke(cli, [str(a) for a in args])
    assert r.exit_code == 0, r.output + r.stderr
    return r


@pytest.fixture
def pairs_file(tmp_path) -> Path:
    """24 random-block images, each described by a word naming its seed, as JSONL pairs."""
    folder = tmp_path / "pairs"
    write_images(folder, 24, prefix="x")
    words = ["red", "green", "blue", "yellow", "black", "white"]
    lines = [
        json.dumps(
            {"file": f"x{i:03d}.png", "captions": [f"a {words[i % 6]} pattern number {i}", f"item {i}"]}
        )
        for i in range(24)
    ]
    path = folder / "pairs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_pairs_from_jsonl_and_csv(tmp_path, pairs_file):
    pairs = load_pairs(pairs_file)
    assert len(pairs.images) == 24 and pairs.count == 48
    write_images(tmp_path / "shop", 5, prefix="p")
    csv = tmp_path / "shop" / "catalog.csv"
    csv.write_text("image,title,price\n" + "".join(f"p{i:03d}.png,Product {i},{i}\n" for i in range(5)))
    shop = load_pairs(csv)
    assert shop.texts[0] == ["Product 0"] and shop.images[0].endswith("p000.png")
    with pytest.raises(SearchEngineError):
        load_pairs(csv, text_column="nope")  # no text in that column: no usable pair


def test_tuning_is_deterministic_for_a_seed(pairs_file, tiny_embedder):
    feats = extract(tiny_embedder, load_pairs(pairs_file))
    a = train(feats, "clip:se-tiny:random", seed=3, epochs=8)
    b = train(feats, "clip:se-tiny:random", seed=3, epochs=8)
    c = train(feats, "clip:se-tiny:random", seed=4, epochs=8)
    assert a.adapter.kind == "residual"
    assert np.array_equal(a.adapter.weight, b.adapter.weight) and a.adapter.id == b.adapter.id
    assert a.after == b.after and a.adapter.id != c.adapter.id
    assert a.val_images == 5 and a.train_images == 19  # 20% held back, never trained on


def test_adapter_round_trip_and_apply(tmp_path):
    rng = np.random.default_rng(0)
    w, bias = rng.normal(size=(16, 8)).astype(np.float32), np.zeros(8, np.float32)
    adapter = Adapter("projection", "offline:fast-v1", w, bias, alpha=0.25, info={"x": 1})
    adapter.save(tmp_path)
    again = Adapter.load(tmp_path, adapter.id)
    assert again.id == adapter.id and again.alpha == 0.25 and np.array_equal(again.weight, w)
    feats, base = rng.normal(size=(3, 16)).astype(np.float32), rng.normal(size=(3, 8)).astype(np.float32)
    out = adapter.apply(feats, base / np.linalg.norm(base, axis=1, keepdims=True))
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    with pytest.raises(ModelNotFound):
        Adapter.load(tmp_path, "adapter-00000000")
    assert split_spec("offline:fast-v1+adapter-1a2b3c4d") == ("offline:fast-v1", "adapter-1a2b3c4d")
    assert recall(np.eye(3), np.eye(3), np.arange(3))["R@1"] == 1.0


def test_tune_applies_the_adapter_everywhere_and_can_be_removed(tmp_path, pairs_file, tiny_spec, monkeypatch):
    index = tmp_path / "index"
    gallery = tmp_path / "gallery"
    write_images(gallery, 6, prefix="g")
    run("index", gallery, "--index", index, "--model", tiny_spec, "-q")
    r = run(
        "tune",
        pairs_file,
        "--index",
        index,
        "--seed",
        "1",
        "--epochs",
        "5",
        "--report",
        tmp_path / "r.json",
        "-q",
    )
    report = json.loads((tmp_path / "r.json").read_text())
    assert set(report["before"]) == set(report["after"]) == {"R@1", "R@5", "R@10", "MRR"}
    assert "| before |" in r.stdout and "| after |" in r.stdout
    store = Store(index)
    enc = store.encoder()
    assert enc.tag == f"se-tiny:random+{report['adapter']}"  # recorded in the index's metadata
    assert (index / "adapters" / f"{report['adapter']}.npz").is_file()
    assert json.loads(store.get_meta("adapter"))["adapter"] == report["adapter"]

    # every stored vector is the adapted one (never a mix)
    adapted = resolve_embedder(store, None)
    assert isinstance(adapted, AdaptedEmbedder)
    from PIL import Image

    rec = store.images.by_path(str(gallery / "g000.png"))
    expected = adapted.embed_images([Image.open(gallery / "g000.png").convert("RGB")])[0]
    assert np.allclose(store.embeddings.of(rec.id, enc.dim), expected, atol=1e-5)

    # unadapted queries are refused, in the API and the CLI
    with pytest.raises(IndexMismatch):
        SearchEngine(store, create_embedder(tiny_spec))
    r = CliRunner().invoke(cli, ["search", "x", "--index", str(index), "--model", tiny_spec])
    assert r.exit_code == 1 and "+adapter-" in r.stderr
    # new images are embedded with the adapter by later index runs
    make_image(seed=77).save(gallery / "new.png")
    run("index", gallery, "--index", index, "-q")
    new = store.images.by_path(str(gallery / "new.png"))
    fresh = adapted.embed_images([Image.open(gallery / "new.png").convert("RGB")])[0]
    assert np.allclose(store.embeddings.of(new.id, enc.dim), fresh, atol=1e-5)
    # the CLI and the HTTP API search with it
    assert (
        json.loads(run("search", "pattern", "--index", index, "--json", "--min-score", "-1").stdout)[
            "encoder"
        ]
        == enc.spec
    )
    from fastapi.testclient import TestClient

    from searchengine.config import Settings
    from web.app import create_app

    client = TestClient(create_app(Settings(index_path=index)), base_url="http://localhost")
    body = client.get("/api/search", params={"q": "pattern", "min_score": -1}).json()
    assert body["encoder"] == enc.spec and body["results"]

    run("tune", "--no-adapter", "--index", index, "-q")
    assert Store(index).encoder().tag == "se-tiny:random"
    base_vec = create_embedder(tiny_spec).embed_images([Image.open(gallery / "g000.png").convert("RGB")])[0]
    assert np.allclose(Store(index).embeddings.of(rec.id, enc.dim), base_vec, atol=1e-5)


def test_tune_refuses_an_empty_index_and_bad_pairs(tmp_path, pairs_file):
    r = CliRunner().invoke(cli, ["tune", str(pairs_file), "--index", str(tmp_path / "none")])
    assert r.exit_code == 1 and "no index" in r.stderr
    (tmp_path / "few.jsonl").write_text('{"file": "a.png", "captions": ["x"]}\n')
    with pytest.raises(SearchEngineError):
        load_pairs(tmp_path / "few.jsonl")


@pytest.mark.slow
def test_offline_projection_tunes_in_seconds(tmp_path):
    """The real offline encoder: a projection from Lite0's penultimate features, on the sample gallery."""
    index = tmp_path / "index"
    store = Store(index)
    Indexer(store, create_embedder("offline")).run(SAMPLE)
    lines = []
    for p in sorted(SAMPLE.rglob("*")):
        if p.suffix.lower() in (".png", ".jpg", ".gif", ".webp", ".bmp", ".tiff"):
            words = p.stem.replace("_", " ")
            lines.append(json.dumps({"file": str(p), "captions": [words, f"a picture of {words}"]}))
    (tmp_path / "pairs.jsonl").write_text("\n".join(lines))
    run("tune", tmp_path / "pairs.jsonl", "--index", index, "--epochs", "10", "-q")
    enc = Store(index).encoder()
    assert "+adapter-" in enc.tag
    adapter = Adapter.load(index, split_spec(enc.spec)[1])
    assert adapter.kind == "projection" and adapter.weight.shape == (1280, 384)
    assert SearchEngine(store, resolve_embedder(store, None)).query("a cat", limit=3).hits
