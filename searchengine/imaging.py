"""Read image files safely: one function, one clear reason per failure."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import BinaryIO

from PIL import Image, ImageOps, UnidentifiedImageError

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

    :param max_pixels: images with more pixels are refused (decompression bombs).
    :raises UnsupportedImage: with the reason to record (empty, not an image,
        truncated, too large, unreadable).
    """
    if not hasattr(path, "read"):
        path = Path(path)
    try:
        if _size(path) == 0:
            raise UnsupportedImage("empty file (0 bytes)")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
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
                out = _to_rgb(ImageOps.exif_transpose(im))
                if out.size != im.size:  # rotated by EXIF: report the upright size
                    width, height = (height, width) if out.size[0] != im.size[0] else (width, height)
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
