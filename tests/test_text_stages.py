"""OCR, captions and keyword search: real engines on the sample gallery, fakes for failures."""

import json

import pytest
from click.testing import CliRunner

from indexer.pipeline import Indexer
from searchengine.cli import cli
from searchengine.errors import SearchEngineError
from searchengine.models.captioner import describe, dominant_colours
from searchengine.models.registry import create_captioner, create_embedder, create_ocr
from searchengine.query import parse_query
from searchengine.records import Caption, OcrLine, OcrResult
from searchengine.search import SearchEngine
from searchengine.store.db import Store
from tests.conftest import REPO, make_image, write_images
from tests.indexer.test_pipeline import CountingEmbedder

SAMPLE = REPO / "data" / "sample"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("QX-7781-B", '("QX 7781 B")'),
        ("25/12/2018", '("25 12 2018")'),
        ('"summer sale" poster', '("summer sale") AND ("summer sale" OR "poster")'),
        ("café NOT x*", '("café" OR "x")'),
        ("CS00082662 receipt", '("CS 00082662" OR "receipt")'),
        ("the photo of a cat", '("cat")'),
        ("the", '("the")'),
        ("red dress -winter", '("red" OR "dress") NOT ("winter")'),
        ("2:red dress", '("red" OR "red" OR "dress")'),
        ("10:30 meeting", '("10 30" OR "meeting")'),
    ],
)
def test_fts_query_keeps_codes_as_phrases_and_defuses_operators(text, expected):
    assert parse_query(text).fts_match() == expected


def test_fts_query_without_words_is_an_error():
    with pytest.raises(SearchEngineError, match="no searchable word"):
        parse_query(' "" -- ** ')


def test_describe_states_only_what_was_measured():
    cap = describe([("tabby", 0.8)], ["orange"], "")  # stated plainly: only precise labels get here
    assert cap.text == "A tabby; mostly orange." and cap.tags == ("tabby", "orange")
    assert describe([], [], "O").text == "An image."  # one stray character is not text
    cap = describe([], ["red"], "SUMMER SALE 50% OFF")
    assert cap.text == 'The text "SUMMER SALE 50% OFF"; mostly red.' and "text" in cap.tags


def test_dominant_colours_from_pixels():
    im = make_image((200, 20, 20), size=(40, 40))
    im.paste(make_image((250, 250, 250), size=(40, 16)), (0, 0))
    assert dominant_colours(im) == ["red", "white"]


class FakeOcr:
    """Reads a fixed line, fails on images whose top-left pixel is pure blue."""

    id = "fake-ocr:1"

    def __init__(self):
        self.calls = 0
        self._lock = __import__("threading").Lock()

    def read(self, image, scale=1.0):
        with self._lock:  # called from the pipeline's worker threads
            self.calls += 1
        if image.getpixel((0, 0)) == (0, 0, 255):
            raise RuntimeError("detector crashed")
        return OcrResult((OcrLine("HELLO QX-7781-B", 0.9, ((0, 0), (9, 0), (9, 9), (0, 9))),))


class FakeCaptioner:
    id = "fake-cap:1"

    def __init__(self):
        self.calls = 0

    def caption(self, images, texts=None):
        self.calls += len(images)
        return [Caption(f"a picture saying {t}", ("picture",)) for t in texts]


def test_adding_stages_later_recomputes_no_embedding(index_dir, image_dir, tiny_embedder):
    counting = CountingEmbedder(tiny_embedder)
    store = Store(index_dir)
    Indexer(store, counting).run(image_dir)
    ocr, cap = FakeOcr(), FakeCaptioner()
    report = Indexer(store, counting, ocr=ocr, captioner=cap).run(image_dir)
    assert counting.calls == 9 and (report.ocr, report.captioned, report.embedded) == (9, 9, 0)
    assert cap.calls == 9
    report = Indexer(store, counting, ocr=ocr, captioner=cap).run(image_dir)
    assert ocr.calls == 9 and cap.calls == 9 and report.processed == 0
    engine = SearchEngine(store, tiny_embedder)
    assert len(engine.query("qx-7781-b", limit=20, mode="keyword").hits) == 9

    # a new caption model re-captions, without re-reading text or re-embedding
    class OtherCaptioner(FakeCaptioner):
        id = "fake-cap:2"

    Indexer(store, counting, ocr=ocr, captioner=OtherCaptioner()).run(image_dir)
    assert counting.calls == 9 and ocr.calls == 9


def test_stage_failure_is_recorded_and_the_run_goes_on(index_dir, image_dir, tiny_embedder):
    make_image((0, 0, 255)).save(image_dir / "blue.png")
    store = Store(index_dir)
    report = Indexer(store, tiny_embedder, ocr=FakeOcr(), captioner=FakeCaptioner()).run(image_dir)
    assert report.embedded == 10 and report.ocr == 9 and report.stage_failures == 1
    rec = store.images.by_path(str((image_dir / "blue.png").resolve()))
    text = store.text.of(rec.id)
    assert rec.status == "ok" and "detector crashed" in text.stages["ocr"].error
    assert text.caption == "a picture saying "  # captioned all the same, without text
    # a changed file drops its old text and stage records
    make_image((0, 255, 0)).save(image_dir / "blue.png")
    Indexer(store, tiny_embedder, ocr=FakeOcr(), captioner=FakeCaptioner()).run(image_dir)
    text = store.text.of(rec.id)
    assert text.stages["ocr"].error is None and text.ocr_text == "HELLO QX-7781-B"


def test_file_names_and_folders_are_keywords(index_dir, tmp_path, tiny_embedder):
    write_images(tmp_path / "holiday" / "beach", 2, prefix="sunset_")
    write_images(tmp_path / "holiday" / "city", 1, prefix="tower_", start=5)
    store = Store(index_dir)
    Indexer(store, tiny_embedder).run(tmp_path / "holiday")
    engine = SearchEngine(store, tiny_embedder)
    assert [h.path.rsplit("/", 1)[1] for h in engine.query("tower", mode="keyword").hits] == ["tower_005.png"]
    assert len(engine.query("beach", mode="keyword").hits) == 2


def test_tiny_blip_captions_end_to_end(tmp_path, index_dir, image_dir, tiny_embedder):
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", "a", "cat", "dog", "sofa", "red"]
    (tmp_path / "vocab.txt").write_text("\n".join(words) + "\n")
    tokenizer = BertTokenizer(str(tmp_path / "vocab.txt"), bos_token="[DEC]")
    processor = BlipProcessor(BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer)
    config = BlipConfig(
        text_config={
            "vocab_size": len(words),
            "hidden_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 37,
            "max_position_embeddings": 64,
            "bos_token_id": 5,
            "pad_token_id": 0,
            "sep_token_id": 3,
        },
        vision_config={
            "hidden_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 37,
            "image_size": 32,
            "patch_size": 8,
        },
        projection_dim=16,
    )
    folder = tmp_path / "tiny-blip"
    BlipForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)

    captioner = create_captioner(f"blip:{folder}")
    assert captioner.id == f"blip:{folder}"
    store = Store(index_dir)
    report = Indexer(store, tiny_embedder, captioner=captioner).run(image_dir)
    assert report.captioned == 9
    text = store.text.of(store.images.by_id([1])[1].id)
    assert text.caption and text.caption_model == f"blip:{folder}"


def test_blip_without_weights_offline_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SearchEngineError, match="--captioner offline"):
        create_captioner("blip")


def test_unknown_stage_backends_list_choices():
    with pytest.raises(SearchEngineError, match="available: rapidocr, tesseract, none"):
        create_ocr("easyocr")
    assert create_ocr("none") is None and create_captioner("off") is None


# -- real engines on the sample gallery ---------------------------------------------


@pytest.fixture(scope="module")
def sample_index(tmp_path_factory):
    index = tmp_path_factory.mktemp("sample-text-index")
    store = Store(index)
    offline = create_embedder("offline")
    Indexer(store, offline, ocr=create_ocr("rapidocr"), captioner=create_captioner("offline")).run(SAMPLE)
    return index, SearchEngine(store, offline)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("QX-7781-B", "products/green_tea.png"),
        ("SUMMER SALE", "signs/summer_sale.png"),
        ("INV-2018-0457", "documents/receipt_corner_bakery.png"),
        ("25/12/2018", "documents/receipt_corner_bakery.png"),
        ("cafe creme", "signs/cafe_creme.png"),
        ("EMERGENCY EXIT", "signs/emergency_exit.png"),
        ("wildflower honey", "products/wildflower_honey.jpg"),
        ("TR-4420-K", "products/trail_runner.png"),
        ("tow away zone", "signs/no_parking.png"),
    ],
)
def test_rendered_labels_found_by_their_exact_text(sample_index, query, expected):
    hits = sample_index[1].query(query, limit=3, mode="keyword").hits
    assert hits and hits[0].path.endswith(expected), [h.path for h in hits]


@pytest.mark.slow
def test_show_prints_caption_tags_and_ocr_lines(sample_index, monkeypatch):
    index, _ = sample_index
    path = SAMPLE / "products" / "green_tea.png"
    r = CliRunner().invoke(cli, ["show", str(path), "--index", str(index), "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["ocr_engine"] == "rapidocr:pp-ocr-det960"
    assert [line["text"] for line in data["ocr_lines"]][-1] == "SKU QX-7781-B"
    assert all(0.5 <= line["confidence"] <= 1 and len(line["box"]) == 4 for line in data["ocr_lines"])
    assert "ORGANIC GREEN TEA" in data["caption"] and data["caption_model"].startswith("offline:")
    r = CliRunner().invoke(cli, ["show", str(path), "--index", str(index)])
    assert "SKU QX-7781-B" in r.stdout and "caption:" in r.stdout
    r = CliRunner().invoke(cli, ["show", "/nope.png", "--index", str(index)])
    assert r.exit_code == 1 and "not in the index" in r.stderr


@pytest.mark.slow
def test_photos_get_honest_captions(sample_index):
    store = sample_index[1].store
    rec = store.images.by_path(str((SAMPLE / "photos" / "chelsea_the_cat.jpg").resolve()))
    text = store.text.of(rec.id)
    # three cat breeds (0.36, 0.34, 0.18): no breed is precise enough, their kind is; no hedge
    assert text.caption.startswith("A cat;") and "text" not in text.tags
    assert text.caption_model == "offline:labels-colours-ocr-v2" and text.ocr_text == ""


DEJAVU = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


@pytest.mark.skipif(
    not (__import__("shutil").which("tesseract") and __import__("os").path.exists(DEJAVU)),
    reason="tesseract or DejaVu fonts not installed (scripts/install-tesseract; .ci/run installs both)",
)
def test_tesseract_reads_cyrillic_and_greek(tmp_path, index_dir, tiny_embedder):
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(DEJAVU, 56)
    folder = tmp_path / "scripts"
    folder.mkdir()
    for lang, text in (("rus", "ДОБРО ПОЖАЛОВАТЬ"), ("ell", "ΚΑΛΗΜΕΡΑ ΑΘΗΝΑ")):
        img = Image.new("RGB", (900, 120), "white")
        ImageDraw.Draw(img).text((30, 20), text, fill="black", font=font)
        img.save(folder / f"{lang}.png")
        engine = create_ocr(f"tesseract:{lang}")
        assert engine.id == f"tesseract:{lang}"
        result = engine.read(img, scale=2.0)
        assert result.text == text
        assert result.lines[0].box[0][0] >= 40  # boxes scaled to original pixels
    store = Store(index_dir)
    Indexer(store, tiny_embedder, ocr=create_ocr("tesseract:rus")).run(folder)
    hits = SearchEngine(store, tiny_embedder).query("пожаловать", mode="keyword").hits
    assert [h.path.rsplit("/", 1)[1] for h in hits] == ["rus.png"]  # case folded in Cyrillic


def test_moved_file_copies_its_text_instead_of_reading_again(index_dir, image_dir, tiny_embedder):
    import shutil

    store = Store(index_dir)
    ocr, cap = FakeOcr(), FakeCaptioner()
    Indexer(store, tiny_embedder, ocr=ocr, captioner=cap).run(image_dir)
    shutil.move(image_dir / "img004.png", image_dir / "sub" / "moved.png")
    report = Indexer(store, tiny_embedder, ocr=ocr, captioner=cap).run(image_dir)
    assert (report.reused, report.deleted, ocr.calls, cap.calls) == (1, 1, 9, 9)
    rec = store.images.by_path(str((image_dir / "sub" / "moved.png").resolve()))
    text = store.text.of(rec.id)
    assert text.ocr_text == "HELLO QX-7781-B" and text.caption.startswith("a picture saying")
    assert set(text.stages) == {"ocr", "caption", "phash"}
    engine = SearchEngine(store, tiny_embedder)
    assert len(engine.query("moved", mode="keyword").hits) == 1
    assert len(engine.query("img004", mode="keyword").hits) == 0  # the old path's document is gone
    assert store.db.execute("SELECT count(*) FROM search_fts").fetchone()[0] == 9


def test_captions_are_redone_when_ocr_arrives(index_dir, image_dir, tiny_embedder):
    store = Store(index_dir)
    Indexer(store, tiny_embedder, captioner=FakeCaptioner()).run(image_dir)
    cap = FakeCaptioner()
    Indexer(store, tiny_embedder, ocr=FakeOcr(), captioner=cap).run(image_dir)
    assert cap.calls == 9
    rec = store.images.by_path(str((image_dir / "img001.png").resolve()))
    assert store.text.of(rec.id).caption == "a picture saying HELLO QX-7781-B"


def test_changed_file_never_quotes_its_old_text(index_dir, image_dir, tiny_embedder):
    store = Store(index_dir)
    Indexer(store, tiny_embedder, ocr=FakeOcr(), captioner=FakeCaptioner()).run(image_dir)
    make_image((9, 9, 9), size=(30, 30)).save(image_dir / "img001.png")
    Indexer(store, tiny_embedder, captioner=FakeCaptioner()).run(image_dir)  # OCR off now
    rec = store.images.by_path(str((image_dir / "img001.png").resolve()))
    text = store.text.of(rec.id)
    assert text.ocr_text is None and text.caption == "a picture saying "


def test_folder_words_start_at_the_indexed_folder(index_dir, tmp_path, tiny_embedder):
    write_images(tmp_path / "deep" / "prefix" / "photos" / "beach", 2)
    store = Store(index_dir)
    Indexer(store, tiny_embedder).run(tmp_path / "deep" / "prefix" / "photos")
    engine = SearchEngine(store, tiny_embedder)
    assert len(engine.query("photos beach", mode="keyword").hits) == 2
    assert engine.query("prefix", mode="keyword").hits == []


def test_rebuild_with_an_unavailable_stage_keeps_the_index(index_dir, image_dir, tiny_spec):
    runner = CliRunner()
    base = ["--index", str(index_dir)]
    assert runner.invoke(cli, ["index", str(image_dir), "--model", tiny_spec, "-q", *base]).exit_code == 0
    r = runner.invoke(cli, ["index", str(image_dir), "--rebuild", "--captioner", "nosuch", *base])
    assert r.exit_code == 1 and "unknown captioner 'nosuch'" in r.stderr
    r = runner.invoke(cli, ["info", "--json", *base])
    assert json.loads(r.stdout)["ok"] == 9


def test_keyword_search_needs_no_encoder_weights(index_dir, image_dir, tiny_spec, monkeypatch):
    import searchengine.models.registry as registry

    runner = CliRunner()
    base = ["--index", str(index_dir)]
    runner.invoke(cli, ["index", str(image_dir), "--model", tiny_spec, "-q", *base])

    def unavailable(spec, index_dir=None):
        raise SearchEngineError(f"weights for {spec} are not here")

    monkeypatch.setattr(registry, "create_embedder", unavailable)
    monkeypatch.setattr("searchengine.search.engine.create_embedder", unavailable)
    r = runner.invoke(cli, ["search", "nested051", "--mode", "keyword", "--json", *base])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert [x["path"].rsplit("/", 1)[1] for x in data["results"]] == ["nested051.png"]
    assert data["encoder"] == "clip:se-tiny:random" and data["mode"] == "keyword"
    r = runner.invoke(cli, ["search", "x", *base])
    assert r.exit_code == 1 and "are not here" in r.stderr


def test_exif_rotated_photo_reports_upright_size(tmp_path):
    from PIL import Image

    from searchengine.imaging import load_image

    im = Image.new("RGB", (400, 300), "white")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    im.save(tmp_path / "rot.jpg", exif=exif)
    out, facts = load_image(tmp_path / "rot.jpg")
    assert (facts["width"], facts["height"]) == (300, 400) and out.size == (300, 400)
