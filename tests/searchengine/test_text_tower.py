"""The numpy MiniLM text tower against sentence-transformers, and the torch-free query side."""

import json
import subprocess
import sys

import numpy as np
import pytest

from searchengine.models import conse
from searchengine.models.text_tower import MiniLMTextTower
from tests.conftest import REPO

pytestmark = pytest.mark.slow

QUERIES = [
    "red car",
    "a cat",
    "",
    "   ",
    ".",
    "a dog running on the beach at sunset",
    "Ünïcödé café naïve résumé",
    "東京タワーの夜景",
    "собака на пляже",
    "🚗🔥 emoji only 🐈",
    "QX-7781-B 25/12/2018 total RM 9.00",
    "invoice from THREE STOOGES BISTRO & CAFE",
    "UPPER CASE SHOUTING QUERY",
    "tab\tseparated\nnew line",
    "a photo of a tench.",
    "wooden chair -plastic 2:oak",
    "x" * 600,
    " ".join(["word"] * 400),  # longer than the 256 tokens both truncate to
    " ".join(f"token{i}" for i in range(300)),
    "the derivation of a quantum field theory propagator",
]


@pytest.fixture(scope="module")
def towers():
    folder = conse.minilm_path()
    return MiniLMTextTower(folder), conse._SentenceTransformerTower(folder, "cpu")


def test_numpy_tower_matches_sentence_transformers(towers):
    numpy_tower, torch_tower = towers
    ours, theirs = numpy_tower.encode(QUERIES), torch_tower.encode(QUERIES)
    assert ours.shape == theirs.shape == (len(QUERIES), 384) and ours.dtype == np.float32
    cos = (ours * theirs).sum(axis=1) / np.linalg.norm(theirs, axis=1)
    assert cos.min() > 0.9999, dict(zip(QUERIES, cos.round(6), strict=True))
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_batched_and_one_by_one_agree(towers):
    """Padding in a batch must not change a sentence's embedding."""
    numpy_tower, _ = towers
    batched = numpy_tower.encode(QUERIES, batch_size=7)
    alone = np.concatenate([numpy_tower.encode([q]) for q in QUERIES])
    np.testing.assert_allclose(batched, alone, atol=1e-5)
    assert numpy_tower.encode([]).shape == (0, 384)


def test_offline_encoder_queries_without_torch():
    """A query through the default offline encoder imports neither torch nor
    sentence-transformers (seconds of start-up for each CLI search)."""
    code = (
        "import sys, json\n"
        "from searchengine.models.registry import create_embedder\n"
        "v = create_embedder('offline').embed_texts(['a red kite'])\n"
        "heavy = [m for m in ('torch', 'sentence_transformers', 'transformers', 'timm')"
        " if m in sys.modules]\n"
        "print(json.dumps({'shape': list(v.shape), 'heavy': heavy}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out == {"shape": [1, 384], "heavy": []}


def test_a_folder_the_numpy_tower_refuses_falls_back_to_sentence_transformers(monkeypatch):
    from searchengine.models import text_tower

    def refuse(self, folder):
        raise ValueError(f"{folder} pools with ['pooling_mode_cls_token']")

    monkeypatch.setattr(text_tower.MiniLMTextTower, "__init__", refuse)
    conse._load_text_tower.cache_clear()
    try:
        vec = conse.ConSEEmbedder().embed_texts(["a red kite"])
        assert isinstance(conse._load_text_tower("cpu"), conse._SentenceTransformerTower)
    finally:
        conse._load_text_tower.cache_clear()
    assert vec.shape == (1, 384)


def test_the_numpy_tower_refuses_another_pooling(tmp_path):
    import shutil

    folder = tmp_path / "minilm"
    shutil.copytree(conse.minilm_path(), folder, ignore=shutil.ignore_patterns("model.safetensors"))
    pooling = folder / "1_Pooling" / "config.json"
    cfg = json.loads(pooling.read_text())
    pooling.write_text(json.dumps({**cfg, "pooling_mode_mean_tokens": False, "pooling_mode_cls_token": True}))
    with pytest.raises(ValueError, match="pools with"):
        MiniLMTextTower(folder)


def test_imagenet_lemmas_match_timm():
    from timm.data import ImageNetInfo

    expected = [[w.strip() for w in d.split(",") if w.strip()] for d in ImageNetInfo().label_descriptions()]
    assert conse.imagenet_lemmas() == expected


def test_search_results_unchanged_on_the_sample(tmp_path):
    """Hybrid search over data/sample ranks the same images with the same scores whichever
    tower embeds the query."""
    from indexer.pipeline import Indexer
    from searchengine.search import SearchEngine
    from searchengine.store.db import Store

    fast = conse.ConSEEmbedder()
    Indexer(Store(tmp_path), fast).run(REPO / "data" / "sample")
    reference = conse.ConSEEmbedder()
    reference._text_model = conse._SentenceTransformerTower(conse.minilm_path(), "cpu")
    assert type(fast._text()).__name__ == "MiniLMTextTower"

    def ranking(embedder, query: str) -> list[tuple[str, float]]:
        page = SearchEngine(Store(tmp_path), embedder).query(query, limit=10)
        return [(h.path, round(h.score, 4)) for h in page.hits]

    for query in ["a cat", "a cup of coffee", "a rocket", "red", "an invoice total", "zebra stripes"]:
        assert ranking(fast, query) == ranking(reference, query), query


def test_memory_mapped_weights_equal_safetensors_own_reader():
    from safetensors.numpy import load_file

    from searchengine.models.text_tower import read_safetensors

    path = conse.minilm_path() / "model.safetensors"
    ours, theirs = read_safetensors(path), load_file(path)
    assert ours.keys() == theirs.keys()
    for name, arr in theirs.items():
        np.testing.assert_array_equal(ours[name], arr)


def test_a_truncated_weights_file_is_refused(tmp_path):
    from searchengine.models.text_tower import read_safetensors

    data = (conse.minilm_path() / "model.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="does not fit"):
        read_safetensors(tmp_path / "cut.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(ValueError, match="not a safetensors file"):
        read_safetensors(tmp_path / "junk.safetensors")


def test_overlapping_queries_leave_blas_threads_as_they_were():
    """Two threads in the one-thread BLAS limit at once (a search during an index run): each
    limit restores what it found, so without serialising them the process would be left on
    one BLAS thread for good."""
    import threading

    from searchengine.models.text_tower import _blas_controller, _one_blas_thread

    controller = _blas_controller()
    if controller is None:
        pytest.skip("threadpoolctl is not installed")

    def blas_threads() -> int:
        return max((p["num_threads"] for p in controller.info() if p["user_api"] == "blas"), default=1)

    bump = controller.limit(limits=2, user_api="blas") if blas_threads() < 2 else None
    start = blas_threads()
    if start < 2:
        pytest.skip("BLAS runs on one thread here")
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()

    def first():
        with _one_blas_thread():
            a_in.set()
            b_in.wait(0.5)  # the second one would come in now, unless it has to wait
        a_out.set()

    def second():
        a_in.wait(10)
        with _one_blas_thread():
            b_in.set()
            a_out.wait(10)  # leaves after the first one did

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    after = blas_threads()
    if bump is not None:
        bump.restore_original_limits()
    assert after == start
