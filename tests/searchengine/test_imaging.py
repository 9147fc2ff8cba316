import os

import pytest

from searchengine.errors import UnsupportedImage
from searchengine.imaging import WORKING_SIDE, load_image
from tests.hostile import make_hostile


def test_load_image_reasons(tmp_path):
    expected = make_hostile(tmp_path)
    for name, reason in expected.items():
        if reason is None:
            im, facts = load_image(tmp_path / name)
            assert im.mode == "RGB" and max(im.size) <= WORKING_SIDE
            assert facts["width"] > 0 and facts["format"]
        else:
            with pytest.raises(UnsupportedImage, match=reason):
                load_image(tmp_path / name)


def test_png_named_jpg_reports_true_format(tmp_path):
    make_hostile(tmp_path)
    assert load_image(tmp_path / "really_a_png.jpg")[1]["format"] == "PNG"


def test_large_image_is_downscaled_and_facts_keep_original(tmp_path):
    from PIL import Image

    Image.new("RGB", (3000, 1000), "white").save(tmp_path / "wide.png")
    im, facts = load_image(tmp_path / "wide.png")
    assert (facts["width"], facts["height"]) == (3000, 1000)
    assert im.size == (WORKING_SIDE, WORKING_SIDE // 3)


def test_pixel_limit_is_configurable(tmp_path):
    from PIL import Image

    Image.new("RGB", (100, 100)).save(tmp_path / "a.png")
    with pytest.raises(UnsupportedImage, match="too large"):
        load_image(tmp_path / "a.png", max_pixels=5000)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file(tmp_path):
    from PIL import Image

    p = tmp_path / "locked.png"
    Image.new("RGB", (8, 8)).save(p)
    p.chmod(0)
    with pytest.raises(UnsupportedImage, match="unreadable"):
        load_image(p)
