"""Build a folder of files that break naive image readers."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from tests.conftest import make_image


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def huge_png(path: Path, side: int = 20000) -> None:
    """Write a valid 1-bit ``side`` x ``side`` PNG (a few dozen KB on disk)."""
    row = b"\x00" + b"\x00" * ((side + 7) // 8)
    comp = zlib.compressobj(9)
    data = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", data)
        + _png_chunk(b"IEND", b"")
    )


def make_hostile(folder: Path) -> dict[str, str | None]:
    """Fill ``folder``; returns file name -> expected reason fragment (None: must index)."""
    folder.mkdir(parents=True, exist_ok=True)
    make_image(seed=1, size=(200, 160)).save(folder / "good.jpg", quality=90)
    full = (folder / "good.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(full[: len(full) // 2])
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.jpg").write_text("this is not an image\n")
    huge_png(folder / "bomb.png")
    make_image(seed=2).save(folder / "really_a_png.jpg", format="PNG")
    frames = [make_image((i * 40, 0, 0)) for i in range(3)]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:])
    make_image(seed=3).convert("RGBA").save(folder / "alpha.webp")
    return {
        "good.jpg": None,
        "really_a_png.jpg": None,
        "anim.gif": None,
        "alpha.webp": None,
        "truncated.jpg": "truncated",
        "empty.jpg": "empty file",
        "notes.jpg": "not an image",
        "bomb.png": "too large",
    }
