"""Name the colours of an image's subject with basic colour words.

Catalogue photos show a product on a plain backdrop (white, or a studio grey). The
colours of the whole frame are then mostly the backdrop's: black shoes on white
would be "mostly white". So, before counting, :func:`subject_mask` takes away a
near-uniform backdrop: the pixels connected to the image border whose colour is
close to the border's own colour. Photos of scenes have no such border and are
measured whole, as before.
"""

from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image

#: Colours covering at least this share of the (subject's) pixels are named.
COLOUR_FLOOR = 0.15
#: Working size: colours are counted on a SIZE x SIZE thumbnail.
SIZE = 48
#: A pixel is backdrop-coloured when no channel differs from the border's colour by more than this
#: (0-255). JPEG noise and soft studio gradients stay within it; a white shirt's shading does not.
BACKDROP_TOLERANCE = 12
#: The border is a uniform backdrop when at least this share of its pixels is backdrop-coloured
#: (a product may touch the frame; a scene's border is mixed).
UNIFORM_BORDER = 0.6
#: Backdrop found, but less than this share of the frame left: the subject has the backdrop's colour
#: (a white shirt on white) or is a speck. The whole image is measured instead.
MIN_SUBJECT = 0.1


def colour_name(rgb: tuple[int, int, int]) -> str:
    """Name an RGB colour with one of 13 basic colour words."""
    h, s, v = colorsys.rgb_to_hsv(*(c / 255 for c in rgb))
    hue = h * 360
    reddish = hue < 15 or hue >= 345
    if v < 0.18 or (s < 0.18 and v < 0.28):  # a near-neutral darker than L* 30 reads as black
        return "black"
    if s < 0.18:
        return "white" if v > 0.85 else "grey"
    if (hue < 45 or hue >= 345) and v < 0.55 and s > 0.25:
        return "red" if reddish and s > 0.6 else "brown"  # deep saturated red: maroon, burgundy
    if s < 0.35 and 20 <= hue < 60 and v > 0.7:
        return "beige"
    if reddish and s < 0.5 and v > 0.7:  # a light, pale red
        return "pink"
    if 45 <= hue < 70 and v < 0.55 and s > 0.25:  # a dark yellow: olive, khaki-green
        return "green"
    for limit, name in (
        (15, "red"),
        (45, "orange"),
        (70, "yellow"),
        (165, "green"),
        (200, "teal"),
        (255, "blue"),
        (290, "purple"),
        (345, "pink"),
    ):
        if hue < limit:
            return name
    return "red"


def _thumbnail(image: Image.Image) -> np.ndarray:
    """The SIZE x SIZE RGB working copy, as a (SIZE, SIZE, 3) int array."""
    small = image.convert("RGB").resize((SIZE, SIZE), Image.Resampling.BILINEAR)
    return np.asarray(small, dtype=np.int16)


def _border_connected(candidate: np.ndarray) -> np.ndarray:
    """The ``candidate`` pixels 4-connected to the image border through other candidates."""
    reached = np.zeros_like(candidate)
    for edge in (np.s_[0, :], np.s_[-1, :], np.s_[:, 0], np.s_[:, -1]):
        reached[edge] = candidate[edge]
    while True:
        grown = reached.copy()
        grown[1:] |= reached[:-1]
        grown[:-1] |= reached[1:]
        grown[:, 1:] |= reached[:, :-1]
        grown[:, :-1] |= reached[:, 1:]
        grown &= candidate
        if np.array_equal(grown, reached):
            return reached
        reached = grown


def _shrink(mask: np.ndarray) -> np.ndarray:
    """``mask`` less its pixels with a 4-neighbour outside it (the image's edge does not count)."""
    inner = mask.copy()
    inner[1:] &= mask[:-1]
    inner[:-1] &= mask[1:]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return inner


def subject_mask(pixels: np.ndarray, tolerance: int = BACKDROP_TOLERANCE) -> np.ndarray | None:
    """Where the subject is in an (H, W, 3) image, or None when there is no uniform backdrop.

    The backdrop is the region, connected to the border, of pixels within ``tolerance`` of the
    border's median colour. None (measure the whole image) when the border is not uniform or
    when the backdrop leaves less than :data:`MIN_SUBJECT` of the frame.

    The subject's outline is left out: its pixels blend subject and backdrop (a grey rim around
    black shoes on white), except those still near the backdrop's colour (within twice
    ``tolerance``), which are as likely the subject's own light edge (a white shirt on white).
    Without its outline the subject must keep half its pixels, else the outline stays.
    """
    border = np.concatenate([pixels[0], pixels[-1], pixels[1:-1, 0], pixels[1:-1, -1]])
    backdrop = np.median(border, axis=0)
    if np.mean(np.abs(border - backdrop).max(axis=1) <= tolerance) < UNIFORM_BORDER:
        return None
    distance = np.abs(pixels - backdrop).max(axis=2)
    subject = ~_border_connected(distance <= tolerance)
    if subject.mean() < MIN_SUBJECT:
        return None
    kept = _shrink(subject) | (subject & (distance <= 2 * tolerance))
    return kept if kept.sum() >= subject.sum() / 2 else subject


def dominant_colours(image: Image.Image, floor: float = COLOUR_FLOOR) -> list[str]:
    """The colour names covering at least ``floor`` of the subject's pixels, largest first (3 at most).

    The subject is the image less a uniform backdrop (:func:`subject_mask`), or the whole image.
    """
    pixels = _thumbnail(image)
    mask = subject_mask(pixels)
    chosen = pixels.reshape(-1, 3) if mask is None else pixels[mask]
    colours, counts = np.unique(chosen, axis=0, return_counts=True)
    shares: dict[str, float] = {}
    for rgb, count in zip(colours.tolist(), counts.tolist(), strict=True):
        name = colour_name(tuple(rgb))
        shares[name] = shares.get(name, 0.0) + count / len(chosen)
    return [n for n, share in sorted(shares.items(), key=lambda kv: -kv[1]) if share >= floor][:3]
