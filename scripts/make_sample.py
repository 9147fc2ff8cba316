"""Regenerate data/sample: scikit-image's public-domain photos plus rendered labels.

    pip install -e '.[sample]' && python scripts/make_sample.py

Photos are copied from the scikit-image wheel (several re-encoded to other formats
so the gallery exercises every reader); labels, signs and a receipt are drawn here
with DejaVu fonts (falling back to Pillow's bundled font), so their text is known.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import skimage
from PIL import Image, ImageDraw, ImageFont

OUT = Path(__file__).resolve().parent.parent / "data" / "sample"
SK = Path(skimage.__file__).parent / "data"

# (file in skimage/data, output name) - output suffix picks the format
PHOTOS = [
    ("astronaut.png", "photos/astronaut.png"),
    ("camera.png", "photos/cameraman.png"),
    ("chelsea.png", "photos/chelsea_the_cat.jpg"),
    ("coffee.png", "photos/coffee.png"),
    ("rocket.jpg", "photos/rocket.jpg"),
    ("hubble_deep_field.jpg", "photos/space/hubble_deep_field.jpg"),
    ("coins.png", "photos/coins.png"),
    ("retina.jpg", "photos/retina.jpg"),
    ("clock_motion.png", "photos/clock.png"),
    ("brick.png", "textures/brick.bmp"),
    ("grass.png", "textures/grass.webp"),
    ("gravel.png", "textures/gravel.tiff"),
    ("horse.png", "photos/horse_silhouette.gif"),
    ("text.png", "documents/corner_text.png"),
    ("ihc.png", "photos/microscopy_ihc.png"),
]

LABELS = [
    (
        "products/green_tea.png",
        (236, 244, 226),
        (31, 94, 47),
        ["ORGANIC GREEN TEA", "Sencha - loose leaf", "250 g", "SKU QX-7781-B"],
    ),
    (
        "products/coffee_beans.png",
        (60, 38, 26),
        (242, 222, 190),
        ["DARK ROAST", "COFFEE BEANS", "1 kg", "SKU CB-2041-D"],
    ),
    (
        "products/lavender_shampoo.png",
        (226, 214, 240),
        (74, 44, 110),
        ["LAVENDER SHAMPOO", "for dry hair", "500 ml", "SKU LS-3310-A"],
    ),
    (
        "products/trail_runner.png",
        (250, 250, 250),
        (200, 40, 30),
        ["TRAIL RUNNER X2", "running shoe", "Size 42", "SKU TR-4420-K"],
    ),
    (
        "products/olive_oil.jpg",
        (250, 240, 200),
        (70, 90, 20),
        ["EXTRA VIRGIN", "OLIVE OIL", "750 ml", "SKU OO-0750-E"],
    ),
    (
        "products/wildflower_honey.jpg",
        (255, 214, 90),
        (90, 50, 0),
        ["WILDFLOWER HONEY", "raw and unfiltered", "350 g", "SKU WH-0350-H"],
    ),
    (
        "signs/summer_sale.png",
        (220, 20, 60),
        (255, 255, 255),
        ["SUMMER SALE", "50% OFF", "everything must go"],
    ),
    ("signs/emergency_exit.png", (0, 128, 70), (255, 255, 255), ["EMERGENCY EXIT", "keep clear"]),
    ("signs/no_parking.png", (255, 255, 255), (200, 0, 0), ["NO PARKING", "tow away zone"]),
    ("signs/open_24_hours.jpg", (20, 20, 40), (255, 220, 0), ["OPEN 24 HOURS", "pharmacy"]),
    (
        "signs/cafe_creme.png",
        (245, 235, 220),
        (110, 60, 20),
        ["CAFÉ CRÈME", "pâtisserie française"],
    ),
]

RECEIPT = [
    "CORNER BAKERY SDN BHD",
    "12 Jalan Mawar, Kuala Lumpur",
    "INVOICE No: INV-2018-0457",
    "DATE: 25/12/2018  10:42",
    "------------------------------",
    "SOURDOUGH LOAF      1   8.50",
    "CROISSANT           3   9.00",
    "FLAT WHITE          1   5.90",
    "------------------------------",
    "TOTAL RM               23.40",
    "THANK YOU, COME AGAIN",
]


def font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    for folder in ("/usr/share/fonts/truetype/dejavu",):
        path = Path(folder) / name
        if path.is_file():
            return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size)


def draw_label(path: str, bg, fg, lines: list[str]) -> None:
    im = Image.new("RGB", (640, 400), bg)
    d = ImageDraw.Draw(im)
    d.rectangle([12, 12, 627, 387], outline=fg, width=6)
    y = 50
    for i, line in enumerate(lines):
        f = font(54 if i == 0 else 34, bold=i == 0)
        w = d.textlength(line, font=f)
        d.text(((640 - w) / 2, y), line, fill=fg, font=f)
        y += 90 if i == 0 else 70
    save(im, path)


def draw_receipt(path: str) -> None:
    im = Image.new("RGB", (520, 60 + 40 * len(RECEIPT)), (252, 252, 248))
    d = ImageDraw.Draw(im)
    f = (
        ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf", 24)
        if Path("/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf").is_file()
        else font(24)
    )
    for i, line in enumerate(RECEIPT):
        d.text((30, 30 + 40 * i), line, fill=(20, 20, 20), font=f)
    save(im, path)


def save(im: Image.Image, rel: str) -> None:
    dest = OUT / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.suffix == ".jpg":
        im.convert("RGB").save(dest, quality=90)
    else:
        im.save(dest)


def main() -> None:
    for src, rel in PHOTOS:
        dest = OUT / rel
        if dest.suffix == Path(src).suffix:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(SK / src, dest)
        else:
            im = Image.open(SK / src)
            save(im.convert("RGB") if dest.suffix in (".jpg", ".bmp") else im, rel)
    for rel, bg, fg, lines in LABELS:
        draw_label(rel, bg, fg, lines)
    draw_receipt("documents/receipt_corner_bakery.png")


if __name__ == "__main__":
    main()
