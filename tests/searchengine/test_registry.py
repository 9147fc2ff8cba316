import pytest

from searchengine.errors import ModelNotFound
from searchengine.models import registry
from searchengine.models.registry import create_embedder, default_spec, list_models, parse_spec


def test_unknown_name_lists_choices():
    with pytest.raises(ModelNotFound, match="available: clip, offline"):
        create_embedder("blip2")


def test_parse_spec():
    entry, tag = parse_spec("clip:ViT-B-32:laion2b_s34b_b79k")
    assert entry.name == "clip" and tag == "ViT-B-32:laion2b_s34b_b79k"
    assert parse_spec("offline")[1] is None
    assert set(list_models()) == {"clip", "offline"}


def test_every_entry_states_licence_and_weights():
    for spec in registry.ENCODERS.values():
        assert spec.licence and spec.weights and spec.default_tag


def test_default_is_offline_without_cached_clip_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    assert registry.ENCODERS["clip"].available(None) is False
    assert default_spec() == "offline"


def test_default_prefers_clip_when_its_weights_are_cached(monkeypatch, tmp_path):
    import searchengine.models.clip as clip

    fake = tmp_path / "open_clip_model.safetensors"
    fake.write_bytes(b"x")
    monkeypatch.setattr(clip, "cached_weights", lambda arch, pretrained: fake)
    assert default_spec() == "clip"


def test_unknown_clip_tag_and_arch_are_clear(tiny_spec):
    with pytest.raises(ModelNotFound, match="unknown pretrained tag"):
        create_embedder("clip:ViT-B-32:no-such-tag")
    with pytest.raises(ModelNotFound, match="unknown open_clip architecture"):
        create_embedder("clip:ViT-Nope:openai")


def test_clip_weights_unobtainable_offline_is_clear(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFound, match="--model offline"):
        create_embedder("clip:RN50:openai")


def test_clip_loads_a_local_checkpoint(tmp_path, tiny_embedder):
    import numpy as np
    import torch

    ckpt = tmp_path / "tiny.pt"
    torch.save(tiny_embedder.model.state_dict(), ckpt)
    loaded = create_embedder(f"clip:se-tiny:{ckpt}")
    assert loaded.id.tag == f"se-tiny:{ckpt}"
    a = loaded.embed_texts(["a dog"])
    b = tiny_embedder.embed_texts(["a dog"])
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_offline_unknown_tag():
    with pytest.raises(ModelNotFound, match="this version knows"):
        create_embedder("offline:lite9-old")


@pytest.mark.slow
def test_offline_text_tower_loads_without_touching_the_process_environment(monkeypatch):
    """Loading MiniLM from its package folder must not switch the whole process offline
    (a later CLIP or BLIP load in the same server may need to download)."""
    import os

    from searchengine.models.conse import ConSEEmbedder

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    vec = ConSEEmbedder().embed_texts(["a red kite"])
    assert vec.shape == (1, 384) and "HF_HUB_OFFLINE" not in os.environ
