"""Read image files safely: one function, one clear reason per failure."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

from PIL import ExifTags, Image, UnidentifiedImageError

from searchengine.errors import ImageTooLarge, UnsupportedImage

#: File suffixes the indexer picks up (lower case).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})

#: Media type of each format Pillow reports (serving files, export records).
MEDIA_TYPES = {
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
}


def normalise_format(name: str) -> str:
    """A user's format name (``jpg``, ``.tif``, ``PNG``) -> Pillow's (``JPEG``, ``TIFF``, ``PNG``)."""
    upper = name.strip().upper().lstrip(".")
    return {"JPG": "JPEG", "TIF": "TIFF"}.get(upper, upper)


#: Decoded images are shrunk to this longest side; every encoder works at <= 518 px.
WORKING_SIDE = 640


def load_image(
    path: str | Path | BinaryIO, max_pixels: int = 100_000_000, max_side: int = WORKING_SIDE
) -> tuple[Image.Image, dict]:
    """Decode ``path`` (a file, or a binary stream such as an upload) into a small RGB image.

    GIFs and other animations give their first frame; EXIF orientation is applied;
    transparency is flattened on white. The returned image is at most
    ``max_side`` pixels on its longest side; ``facts`` holds the original
    ``width``, ``height`` and ``format``.

    Memory is bounded by the pixel count: the size is checked from the header before
    anything is decoded; JPEGs decode at a reduced scale (``draft``); other formats
    decode once at full size and are shrunk (``thumbnail``) before any other copy is made,
    so a decode holds about one full-size buffer (3-4 bytes a pixel), not three.

    :param max_pixels: images with more pixels are refused (decompression bombs). This
        is the only pixel limit: Pillow's own guard (``Image.MAX_IMAGE_PIXELS``, 89 MP by
        default) is switched off, as it is global to the process and would refuse
        images below a higher limit set here (``SE_MAX_PIXELS``).
    :raises UnsupportedImage: with the reason to record (empty, not an image,
        truncated, too large, unreadable).
    """
    if not hasattr(path, "read"):
        path = Path(path)
    Image.MAX_IMAGE_PIXELS = None  # idempotent: every caller writes the same value
    try:
        if _size(path) == 0:
            raise UnsupportedImage("empty file (0 bytes)")
        with Image.open(path) as im:
            width, height = im.size
            fmt = im.format
            if width * height > max_pixels:
                raise ImageTooLarge(
                    f"image too large: {width}x{height} = {width * height:,} pixels "
                    f"exceeds the limit of {max_pixels:,} (possible decompression bomb)"
                )
            im.seek(0)
            if fmt == "JPEG":
                im.draft("RGB", (max_side, max_side))
            im.load()
            turn = _orientation(im)
            out = _to_rgb(_shrink(im, max_side))
            if turn is not None:
                out = out.transpose(turn)
                if turn in _QUARTER_TURNS:  # report the upright size
                    width, height = height, width
    except UnsupportedImage:
        raise
    except UnidentifiedImageError:
        raise UnsupportedImage("not an image (format not recognised)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(f"image too large (possible decompression bomb): {exc}") from None
    except OSError as exc:
        msg = str(exc) or exc.__class__.__name__
        if "truncated" in msg:
            raise UnsupportedImage(f"truncated or corrupt image data: {msg}") from None
        raise UnsupportedImage(f"unreadable: {msg}") from None
    except (ValueError, SyntaxError, EOFError, MemoryError) as exc:
        raise UnsupportedImage(f"corrupt image: {exc}") from None
    out.thumbnail((max_side, max_side), Image.Resampling.BICUBIC)
    return out, {"width": width, "height": height, "format": fmt}


#: EXIF orientation -> the transpose that shows the image upright.
_ORIENTATIONS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_QUARTER_TURNS = {_ORIENTATIONS[k] for k in (5, 6, 7, 8)}
#: Modes resized as they are; others are converted to RGB(A) first.
_RESIZABLE = frozenset({"L", "LA", "RGB", "RGBA", "RGBX", "CMYK", "I", "F"})


def _orientation(im: Image.Image) -> Image.Transpose | None:
    """The transpose EXIF asks for (read from the file's own metadata, before any resize)."""
    try:
        return _ORIENTATIONS.get(im.getexif().get(ExifTags.Base.Orientation, 1))
    except (TypeError, ValueError, SyntaxError, struct.error):  # unparseable EXIF: show as stored
        return None


def _shrink(im: Image.Image, max_side: int) -> Image.Image:
    """``im`` at most ``max_side`` on its longest side, made from the decoded image in its own mode,
    so the full-size buffer is the only large one this decode holds (``thumbnail`` reduces by a
    whole factor first, then resamples). Bilevel and paletted images are converted first, as
    Pillow resizes them with nearest-neighbour sampling."""
    if max(im.size) <= max_side:
        return im
    if im.mode == "1":
        im = im.convert("L")  # 1 byte a pixel, as the bilevel image itself
    elif im.mode == "P" and "transparency" not in im.info:
        im = im.convert("RGB")
    elif im.mode not in _RESIZABLE:
        im = _to_rgb(im)
    im.thumbnail((max_side, max_side), Image.Resampling.BICUBIC)
    return im


def _size(source: Path | BinaryIO) -> int:
    if isinstance(source, Path):
        return source.stat().st_size
    end = source.seek(0, 2)
    source.seek(0)
    return end


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode == "RGB":
        return im.copy()
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        return im.point(lambda v: v / 256).convert("L").convert("RGB")
    return im.convert("RGB")
