"""A contact sheet: a grid of dataset images with their question target and answer beneath."""

from __future__ import annotations

import math

from PIL import Image, ImageDraw

from raysweep.datasets.store import read_dataset
from raysweep.images import DECODE_ERRORS, load_rgb


def contact_sheet(path, n: int = 16, tile: int = 224, columns: int | None = None, seed: int = 0) -> Image.Image:
    """The first ``n`` rows of a dataset (or a seeded sample of them) laid out in a grid."""
    import numpy as np

    table = read_dataset(path, columns=["image", "question", "answer", "shape", "color", "category"])
    n = min(n, table.num_rows)
    if seed:
        picks = np.sort(np.random.default_rng(seed).choice(table.num_rows, size=n, replace=False))
    else:
        picks = np.arange(n)
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    caption = 30
    sheet = Image.new("RGB", (columns * tile, rows * (tile + caption)), (40, 40, 40))
    draw = ImageDraw.Draw(sheet)
    data = table.take(picks).to_pylist()
    for k, row in enumerate(data):
        x, y = (k % columns) * tile, (k // columns) * (tile + caption)
        try:
            img = load_rgb(row["image"])  # the pixels the models see
        except DECODE_ERRORS as err:  # one damaged image is drawn as a note, not the end of the sheet
            draw.text((x + 4, y + tile // 2), f"unreadable: {type(err).__name__}", fill=(255, 120, 120))
        else:
            img.thumbnail((tile, tile))
            sheet.paste(img, (x + (tile - img.width) // 2, y + (tile - img.height) // 2))
        target = row["category"] or f"{row['color']} {row['shape']}"
        draw.text((x + 4, y + tile + 2), target, fill=(230, 230, 230))
        draw.text((x + 4, y + tile + 15), f"-> {row['answer']}", fill=(120, 255, 120))
    return sheet
