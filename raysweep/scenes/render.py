"""Anti-aliased rendering of scenes: sprites drawn once by supersampling, pasted into cells.

Cells never overlap (one object per cell), so a scene is a canvas plus one slice assignment per
object: cheap enough for tens of thousands of scenes per second on one core. The result depends
only on the config and the scene's objects, never on global state.
"""

from __future__ import annotations

import io
import math
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from raysweep.scenes.layout import Layout


def _shape_polygon(shape: str, cx: float, cy: float, half: float) -> list[tuple[float, float]] | None:
    if shape == "triangle":
        return [(cx, cy - half), (cx + half, cy + half), (cx - half, cy + half)]
    if shape == "star":
        pts = []
        inner = half * 0.4
        for k in range(10):
            radius = half if k % 2 == 0 else inner
            angle = -math.pi / 2 + k * math.pi / 5
            pts.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
        return pts
    return None


@lru_cache(maxsize=None)
def shape_mask(shape: str, cell_px: int, size_frac: float, antialias: int = 4) -> np.ndarray:
    """Coverage (0..1 float32, cell_px x cell_px) of a centred shape of side ``size_frac`` x cell."""
    s = cell_px * antialias
    img = Image.new("L", (s, s), 0)
    draw = ImageDraw.Draw(img)
    c = s / 2.0
    half = size_frac * s / 2.0
    box = [c - half, c - half, c + half - 1, c + half - 1]
    if shape == "circle":
        draw.ellipse(box, fill=255)
    elif shape == "square":
        draw.rectangle(box, fill=255)
    elif shape == "plus":
        arm = half / 3.0
        draw.rectangle([c - half, c - arm, c + half - 1, c + arm - 1], fill=255)
        draw.rectangle([c - arm, c - half, c + arm - 1, c + half - 1], fill=255)
    else:
        poly = _shape_polygon(shape, c, c, half)
        if poly is None:
            raise ValueError(f"unknown shape {shape!r}")
        draw.polygon(poly, fill=255)
    if antialias > 1:
        img = img.reduce(antialias)
    mask = np.asarray(img, dtype=np.float32) / 255.0
    mask.setflags(write=False)
    return mask


@lru_cache(maxsize=None)
def sprite(shape: str, rgb: tuple[int, int, int], bg: tuple[int, int, int], cell_px: int, size_frac: float, antialias: int) -> np.ndarray:
    """A cell_px x cell_px x 3 uint8 tile: the shape in ``rgb`` blended over ``bg``."""
    a = shape_mask(shape, cell_px, size_frac, antialias)[..., None]
    tile = np.rint(a * np.asarray(rgb, np.float32) + (1.0 - a) * np.asarray(bg, np.float32))
    tile = tile.astype(np.uint8)
    tile.setflags(write=False)
    return tile


class Renderer:
    """Draws scenes of one :class:`~raysweep.config.DataConfig` into numpy arrays or PNG bytes."""

    def __init__(self, data_cfg):
        self.cfg = data_cfg
        self.layout = Layout(data_cfg.canvas_size, data_cfg.grid_size, data_cfg.areas_per_side)
        self.bg = tuple(int(v) for v in data_cfg.background)
        self._blank = np.empty((data_cfg.canvas_size, data_cfg.canvas_size, 3), np.uint8)
        self._blank[:] = self.bg
        self._black = not any(self.bg)

    def tile(self, shape: str, color: str, size: str) -> np.ndarray:
        cfg = self.cfg
        return sprite(shape, tuple(cfg.colors[color]), self.bg, self.layout.cell_px, float(cfg.sizes[size]), cfg.antialias)

    def render(self, objects) -> np.ndarray:
        """Canvas (H x W x 3 uint8) with ``objects``: iterables of (shape, colour, size, row, col)."""
        canvas = np.zeros_like(self._blank) if self._black else self._blank.copy()
        px = self.layout.cell_px
        for shape, color, size, row, col in objects:
            y, x = self.layout.cell_origin(row, col)
            canvas[y : y + px, x : x + px] = self.tile(shape, color, size)
        return canvas


def encode_png(array: np.ndarray) -> bytes:
    """PNG bytes of an RGB array (deterministic for a given Pillow/zlib)."""
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()
