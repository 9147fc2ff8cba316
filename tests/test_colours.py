"""Colour words name the subject, not the backdrop (issue #12): synthetic images, then a catalogue."""

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageDraw

from searchengine.cli import cli
from searchengine.models.colours import _thumbnail, colour_name, dominant_colours, subject_mask
from tests.conftest import SHARED


def whole_image_colours(im: Image.Image) -> list[str]:
    """Colour names over every pixel of the thumbnail (what the captioner did before #12)."""
    names, counts = np.unique(
        [colour_name(tuple(p)) for p in _thumbnail(im).reshape(-1, 3)], return_counts=True
    )
    order = np.argsort(-counts, kind="stable")
    return [str(names[i]) for i in order if counts[i] / counts.sum() >= 0.15][:3]


def shoe_on(backdrop, colour=(25, 25, 28), size=(60, 80)) -> Image.Image:
    """A catalogue-like photo: a shoe-shaped blob with a light sole on a plain backdrop."""
    im = Image.new("RGB", size, backdrop)
    draw = ImageDraw.Draw(im)
    draw.ellipse((6, 28, 54, 58), fill=colour)
    draw.rectangle((8, 50, 52, 54), fill=(235, 235, 235))
    return im


def test_black_shoe_on_white_is_black_not_white():
    im = shoe_on((255, 255, 255))
    assert whole_image_colours(im)[0] == "white"  # what the whole frame says
    assert subject_mask(_thumbnail(im)) is not None
    assert dominant_colours(im)[0] == "black" and "white" not in dominant_colours(im)


def test_backdrop_may_be_any_plain_colour_and_jpeg_noisy():
    im = shoe_on((190, 188, 182), colour=(30, 60, 160))  # a studio grey, a blue shoe
    noisy = np.asarray(im, dtype=np.int16) + np.random.default_rng(0).integers(-5, 6, (80, 60, 3))
    im = Image.fromarray(noisy.clip(0, 255).astype(np.uint8))
    assert dominant_colours(im)[0] == "blue" and "grey" not in dominant_colours(im)


def test_white_shirt_on_a_whiteish_grey_backdrop_is_white():
    im = Image.new("RGB", (60, 80), (214, 214, 210))
    draw = ImageDraw.Draw(im)
    draw.polygon(
        [(10, 15), (50, 15), (56, 35), (46, 35), (46, 79), (14, 79), (14, 35), (4, 35)], fill=(250, 250, 250)
    )
    draw.line((30, 20, 30, 75), fill=(222, 222, 222), width=2)  # a fold's shadow
    assert "grey" in whole_image_colours(im)  # the backdrop
    assert dominant_colours(im) == ["white"]


def test_white_shirt_on_pure_white_still_says_white():
    """The backdrop swallows a shirt of its own colour: what is left must not drop 'white'."""
    im = Image.new("RGB", (60, 80), (255, 255, 255))
    draw = ImageDraw.Draw(im)
    draw.rectangle((12, 12, 48, 79), fill=(241, 241, 243))
    draw.rectangle((22, 30, 38, 45), fill=(200, 30, 40))  # a red print
    assert "white" in dominant_colours(im)


def test_scene_without_a_uniform_border_is_measured_whole():
    im = Image.new("RGB", (80, 60), (40, 140, 50))  # grass left, sky right, a red kite across both
    draw = ImageDraw.Draw(im)
    draw.rectangle((48, 0, 79, 59), fill=(70, 120, 220))
    draw.rectangle((30, 10, 60, 30), fill=(210, 30, 30))
    assert subject_mask(_thumbnail(im)) is None
    assert dominant_colours(im) == whole_image_colours(im) == ["green", "blue"]


def test_a_speck_on_white_or_a_blank_frame_falls_back_to_the_whole_image():
    speck = Image.new("RGB", (64, 64), (255, 255, 255))
    ImageDraw.Draw(speck).rectangle((30, 30, 33, 33), fill=(0, 0, 0))
    for im in (speck, Image.new("RGB", (64, 64), (20, 90, 200))):
        assert subject_mask(_thumbnail(im)) is None
        assert dominant_colours(im) == whole_image_colours(im)


@pytest.mark.parametrize(
    ("rgb", "name"),
    [
        ((20, 30, 80), "blue"),  # navy stays blue
        ((0, 0, 128), "blue"),
        ((50, 50, 52), "black"),  # a dark neutral (black cloth under studio light)
        ((120, 120, 120), "grey"),
        ((128, 0, 32), "red"),  # maroon, burgundy
        ((110, 65, 40), "brown"),
        ((255, 182, 193), "pink"),  # light pink is not red
        ((220, 20, 30), "red"),
        ((128, 128, 0), "green"),  # olive
        ((240, 220, 40), "yellow"),
        ((225, 200, 165), "beige"),
        ((250, 140, 20), "orange"),
        ((250, 250, 250), "white"),
    ],
)
def test_colour_names(rgb, name):
    assert colour_name(rgb) == name


# -- end to end: "white t-shirt" on a catalogue without metadata ----------------------------------

FASHION = SHARED / "fashion_products_3k"
#: T-shirts per base colour in the subset: several white ones among many colours.
TEE_COLOURS = {"White": 8, "Black": 6, "Blue": 5, "Navy Blue": 3, "Grey": 3, "Red": 4, "Pink": 4, "Green": 3}


@pytest.mark.slow
@pytest.mark.skipif(
    not FASHION.is_dir(), reason="../shared/datasets/fashion_products_3k is absent (a user's clone)"
)
def test_white_tshirt_query_finds_white_tshirts_first(tmp_path, monkeypatch):
    """36 T-shirts of 8 colours indexed with the offline models and no catalogue metadata: the
    captions are all there is about colour, and "white t-shirt" must rank white ones first."""
    for var in ("SE_MODEL", "SE_CAPTIONER", "SE_OCR", "SE_INDEX"):
        monkeypatch.delenv(var, raising=False)
    records = [json.loads(line) for line in (FASHION / "annotations.jsonl").open()]
    wanted, colour_of = dict(TEE_COLOURS), {}
    folder = tmp_path / "tees"
    folder.mkdir()
    for r in records:  # the first T-shirts of each colour, in file order
        base = r["attributes"]["baseColour"]
        if r["category"] == "Tshirts" and wanted.get(base, 0) > 0:
            wanted[base] -= 1
            name = r["file"].rsplit("/", 1)[1]
            shutil.copy(FASHION / r["file"], folder / name)
            colour_of[name] = base
    assert len(colour_of) == sum(TEE_COLOURS.values())
    index = str(tmp_path / "index")
    runner = CliRunner()
    r = runner.invoke(cli, ["index", str(folder), "--index", index, "--model", "offline", "-q"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["search", "white t-shirt", "--index", index, "--json", "-k", "10"])
    assert r.exit_code == 0, r.output
    top = [colour_of[hit["path"].rsplit("/", 1)[1]] for hit in json.loads(r.stdout)["results"]]
    # at most one coloured tee in the top 5 ("Grey" here is light heather, near white; the one
    # allowed is a navy and white striped polo, half white); most of the 8 white ones in the top 10
    # (2.2 by chance; with whole-image colours every caption said "white"). Measured 2026-12-01:
    # fast-v1: Grey, White, Grey, White, Grey, Navy Blue, Pink, White, White, White; fast-v2: White,
    # White, Navy Blue (the striped polo), White, White, White, Grey, Blue, Green, White
    assert sum(c in {"White", "Grey"} for c in top[:5]) >= 4 and top.count("White") >= 5, top
