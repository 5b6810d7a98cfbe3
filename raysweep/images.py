"""Images as every consumer sees them: one decoding rule, the frame rule, and the families' input limits.

Models, the contact sheet and the COCO builder all decode through :func:`load_rgb`, so they see the
same pixels:

* **Frame.** An EXIF orientation tag is applied (the displayed frame, as viewers, labelling tools and
  transformers' ``load_image`` do). Rows written by ``raysweep coco`` never carry a rotating tag: an
  image whose annotated frame differs from its raw pixels, or that has one, is stored re-encoded in
  the annotated frame (:func:`choose_frame`, :func:`encode_png`).
* **Modes.** High bit depths (16-bit ``I;16``, 32-bit ``I``, float ``F``) are scaled to 8 bits, not
  clipped (a bare ``convert("RGB")`` turns a 16-bit grey PNG all white); transparency is composited
  on a white background (a bare conversion drops alpha, so content drawn only in alpha turns black).
* **Damage.** The whole file is decoded (a truncated JPEG fails here, not later in a model).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

ORIENTATION_TAG = 0x0112
SWAPS_SIDES = (5, 6, 7, 8)  # EXIF orientations that turn the image by 90 degrees
BACKGROUND = (255, 255, 255)  # what transparent pixels are composited on
MIN_STD = 1.0  # on the 0-255 scale; below this an image is blank for the task
# What Pillow raises for damaged data, besides OSError (truncated, unidentified): broken PNG chunks
# raise SyntaxError, bad headers ValueError/EOFError, oversized images DecompressionBombError.
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


def open_image(source) -> Image.Image:
    """A PIL image (lazily decoded) from bytes, a path or a PIL image."""
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, (bytes, bytearray, memoryview)):
        return Image.open(io.BytesIO(bytes(source)))
    return Image.open(Path(source))


def orientation(image: Image.Image) -> int:
    """The EXIF orientation (1-8); 1 when there is no tag or it holds no valid value."""
    value = image.getexif().get(ORIENTATION_TAG, 1)
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def displayed_size(size: tuple[int, int], orient: int) -> tuple[int, int]:
    """(width, height) after applying an EXIF orientation."""
    return (size[1], size[0]) if orient in SWAPS_SIDES else size


def choose_frame(annotated: tuple[int, int], stored: tuple[int, int], orient: int) -> tuple[str | None, bool]:
    """The frame an annotation's width/height refer to: ``("displayed" | "stored" | None, ambiguous)``.

    The displayed frame wins when both frames have the annotated size (a square image with a
    rotating tag, or a flip / 180-degree tag, which keep the size); that case is ``ambiguous``.
    ``None``: neither frame has the annotated size.
    """
    if orient == 1:
        return ("stored" if annotated == stored else None), False
    in_displayed, in_stored = annotated == displayed_size(stored, orient), annotated == stored
    if in_displayed:
        return "displayed", in_stored
    return ("stored" if in_stored else None), False


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB of any mode: high bit depths scaled, transparency composited on white."""
    if image.mode.startswith("I") or image.mode == "F":
        image = Image.fromarray(_to_8bit(np.asarray(image), image.mode), mode="L")
    if "transparency" in image.info and image.mode in ("P", "L", "RGB"):
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        background = Image.new("RGBA", image.size, BACKGROUND + (255,))
        return Image.alpha_composite(background, image.convert("RGBA")).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def _to_8bit(values: np.ndarray, mode: str) -> np.ndarray:
    """0-255 from high-bit-depth grey values.

    ``I;16*`` and ``I`` data within 0-65535 (a 16-bit PNG or TIFF) are scaled by the 16-bit range,
    ``F`` data within 0-1 by 255 and within 0-255 kept; anything else is stretched from its own
    minimum and maximum.
    """
    values = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    low, high = float(values.min()), float(values.max())
    if mode.startswith("I") and low >= 0 and high <= 65535:
        scaled = values * (255.0 / 65535.0)
    elif mode == "F" and low >= 0 and high <= 1:
        scaled = values * 255.0
    elif mode == "F" and low >= 0 and high <= 255:
        scaled = values
    else:
        scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def load_rgb(source, frame: str = "displayed") -> Image.Image:
    """Decode ``source`` fully and return 8-bit RGB in ``frame`` (``displayed``: EXIF tag applied).

    Raises one of :data:`DECODE_ERRORS` for a damaged file (truncated data included).
    """
    image = open_image(source)
    if frame not in ("displayed", "stored"):
        raise ValueError(f"frame must be 'displayed' or 'stored', got {frame!r}")
    image.load()
    if frame == "displayed" and orientation(image) != 1:
        image = ImageOps.exif_transpose(image)
    return to_rgb(image)


def pixel_std(rgb: Image.Image) -> float:
    """How much an image varies: the largest per-channel standard deviation over its pixels (0-255),
    from the histogram (no pixel array). A flat colour gives 0 whatever the colour."""
    counts = np.asarray(rgb.histogram(), dtype=np.float64).reshape(-1, 256)
    levels = np.arange(256, dtype=np.float64)
    totals = counts.sum(1)
    means = (counts * levels).sum(1) / totals
    variances = (counts * (levels[None] - means[:, None]) ** 2).sum(1) / totals
    return float(np.sqrt(np.maximum(variances, 0.0)).max())


def encode_png(rgb: Image.Image) -> bytes:
    """Lossless PNG bytes of an RGB image, with no EXIF (so no orientation tag)."""
    buffer = io.BytesIO()
    rgb.save(buffer, format="PNG")
    return buffer.getvalue()


# --- what the VLM families accept ---------------------------------------------------------------


@dataclass(frozen=True)
class InputLimits:
    """Image sizes every supported family accepts; ``by`` names the family that sets each limit."""

    min_side: int = 1
    max_aspect_ratio: float = math.inf
    by: tuple[tuple[str, str], ...] = ()  # ("min_side", family), ("max_aspect_ratio", family)

    def problem(self, width: int, height: int) -> str | None:
        """Why a ``width`` x ``height`` image is refused, or None."""
        who = dict(self.by)
        if min(width, height) < self.min_side:
            return f"a side is under {self.min_side} px (the minimum of {who.get('min_side', 'a family')})"
        ratio = max(width, height) / min(width, height)
        if ratio > self.max_aspect_ratio:
            return f"aspect ratio {ratio:.4g} is over {self.max_aspect_ratio:g} (the maximum of {who.get('max_aspect_ratio', 'a family')})"
        return None

    def as_dict(self) -> dict:
        return {
            "min_side": self.min_side,
            "max_aspect_ratio": None if math.isinf(self.max_aspect_ratio) else self.max_aspect_ratio,
            "set_by": dict(self.by),
        }


def family_input_limits(names=None) -> InputLimits:
    """The combined limits of the families ``names`` (default: every supported family).

    Each family class declares ``min_side`` and ``max_aspect_ratio`` (None = no limit); the result is
    the strictest of each, so a set screened with it gives every family the same rows.
    """
    from raysweep.models import get_family, list_families

    min_side, max_ratio, by = 1, math.inf, {}
    for name in names or list_families():
        family = get_family(name)
        if family.min_side > min_side:
            min_side, by["min_side"] = family.min_side, name
        if family.max_aspect_ratio is not None and family.max_aspect_ratio < max_ratio:
            max_ratio, by["max_aspect_ratio"] = family.max_aspect_ratio, name
    return InputLimits(min_side, max_ratio, tuple(sorted(by.items())))
