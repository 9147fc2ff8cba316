import os

import pytest

from searchengine.errors import ImageTooLarge, UnsupportedImage
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


def _png_header_only(path, width, height):
    """A PNG whose header says ``width`` x ``height`` (no pixel data): the size checks, cheaply."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


def test_max_pixels_not_pillows_guard_decides(tmp_path):
    from PIL import Image

    p = tmp_path / "big.png"
    Image.new("L", (9999, 9999), 200).save(p)  # 99.98 MP: over Pillow's 89.48 MP, under the 100 MP default
    im, facts = load_image(p, max_side=64)
    assert (facts["width"], facts["height"]) == (9999, 9999) and im.size == (64, 64)
    assert im.getpixel((10, 10)) == (200, 200, 200)
    with pytest.raises(ImageTooLarge, match="exceeds the limit of 50,000,000"):
        load_image(p, max_pixels=50_000_000)


def test_max_pixels_above_twice_pillows_limit_is_honoured(tmp_path):
    p = tmp_path / "huge.png"
    _png_header_only(p, 15000, 15000)  # 225 MP: Pillow's guard alone would refuse it as a bomb
    with pytest.raises(UnsupportedImage) as err:
        load_image(p, max_pixels=300_000_000)
    assert not isinstance(err.value, ImageTooLarge) and "too large" not in str(err.value)
    with pytest.raises(ImageTooLarge, match="exceeds the limit of 100,000,000"):
        load_image(p)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P", "1", "L", "LA"])
def test_large_images_are_reduced_in_every_mode(tmp_path, mode):
    from PIL import Image

    im = Image.new("RGB", (3000, 2000), (255, 255, 255))
    im.paste((200, 30, 30), (0, 0, 1500, 2000))
    p = tmp_path / f"big-{mode}.png"
    im.convert(mode).save(p)
    out, facts = load_image(p, max_side=300)
    assert out.mode == "RGB" and out.size == (300, 200)
    assert (facts["width"], facts["height"]) == (3000, 2000)
    if mode in ("RGB", "RGBA", "P"):
        assert out.getpixel((20, 100)) == pytest.approx((200, 30, 30), abs=8)
    assert out.getpixel((280, 100)) == (255, 255, 255)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_after_reducing(tmp_path, orientation):
    from PIL import Image, ImageOps

    im = Image.new("RGB", (4000, 2000), (255, 255, 255))
    im.paste((0, 0, 0), (0, 0, 400, 400))  # a black corner at the top left, as stored
    exif = Image.Exif()
    exif[0x0112] = orientation
    im.save(tmp_path / "o.png", exif=exif)
    out, facts = load_image(tmp_path / "o.png", max_side=400)
    expected = ImageOps.exif_transpose(Image.open(tmp_path / "o.png")).resize(out.size)
    assert (facts["width"], facts["height"]) == ((2000, 4000) if orientation >= 5 else (4000, 2000))
    for xy in ((5, 5), (out.width - 5, 5), (5, out.height - 5), (out.width - 5, out.height - 5)):
        assert out.getpixel(xy) == pytest.approx(expected.getpixel(xy), abs=30)
