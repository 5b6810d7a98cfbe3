"""raysweep.images: one decoding rule for every consumer, the frame rule, family limits, and eval rows
that fail alone. Inputs are built here with PIL (COCO builds with such images are in test_coco.py)."""

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from raysweep.images import (
    InputLimits,
    choose_frame,
    encode_png,
    family_input_limits,
    load_rgb,
    orientation,
    pixel_std,
    to_rgb,
)


def encoded(image: Image.Image, fmt: str = "PNG", **save) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save)
    return buffer.getvalue()


def ramp16(w: int = 64, h: int = 32, low: int = 20000, high: int = 60000) -> Image.Image:
    """A 16-bit grey ramp whose every value is over 255 (so a bare conversion clips it to white)."""
    values = np.linspace(low, high, w * h).reshape(h, w).astype(np.uint16)
    image = Image.fromarray(values)
    assert image.mode == "I;16"
    return image


def alpha_only(w: int = 64, h: int = 32) -> Image.Image:
    """RGBA whose colour channels are all 0: the content (a left half) is in alpha only."""
    pixels = np.zeros((h, w, 4), np.uint8)
    pixels[:, : w // 2, 3] = 255
    return Image.fromarray(pixels, "RGBA")


# --- modes ------------------------------------------------------------------------------------------


def test_16bit_grey_png_is_scaled_not_clipped_to_white():
    data = encoded(ramp16())
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    assert pixel_std(Image.open(io.BytesIO(data)).convert("RGB")) < 1  # the bug: all white
    rgb = load_rgb(data)
    assert rgb.mode == "RGB" and rgb.size == (64, 32)
    values = np.asarray(rgb)
    assert values.min() == round(20000 * 255 / 65535) and values.max() == round(60000 * 255 / 65535)
    assert pixel_std(rgb) > 10


def test_alpha_only_content_is_composited_on_white_not_lost_to_black():
    data = encoded(alpha_only())
    assert pixel_std(Image.open(io.BytesIO(data)).convert("RGB")) < 1  # the bug: all black
    values = np.asarray(load_rgb(data))
    assert (values[:, :32] == 0).all() and (values[:, 32:] == 255).all()


@pytest.mark.parametrize(
    "make, expect_left, expect_right",
    [
        (lambda: Image.fromarray(np.array([[0, 65535]] * 4, np.int32), "I"), 0, 255),  # 32-bit int holding 16-bit data
        (lambda: Image.fromarray(np.array([[0.0, 1.0]] * 4, np.float32), "F"), 0, 255),  # float 0-1
        (lambda: Image.fromarray(np.array([[0.0, 200.0]] * 4, np.float32), "F"), 0, 200),  # float 0-255
        (lambda: Image.fromarray(np.array([[0, 255]] * 4, np.uint8), "L").convert("LA"), 0, 255),
        (lambda: Image.fromarray(np.array([[0, 255]] * 4, np.uint8), "L").convert("1"), 0, 255),
    ],
)  # fmt: skip
def test_every_mode_becomes_8bit_rgb_with_its_content(make, expect_left, expect_right):
    rgb = to_rgb(make())
    assert rgb.mode == "RGB"
    values = np.asarray(rgb)
    assert int(values[0, 0, 0]) == expect_left and int(values[0, 1, 0]) == expect_right


def test_palette_transparency_is_composited():
    image = Image.new("P", (4, 2), 0)
    image.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    image.putpixel((3, 1), 1)
    image.info["transparency"] = 0  # index 0 (black) is transparent
    values = np.asarray(load_rgb(encoded(image)))
    assert tuple(values[0, 0]) == (255, 255, 255) and tuple(values[1, 3]) == (10, 20, 30)


def test_pixel_std_is_zero_for_any_flat_colour_and_sees_one_channel():
    assert pixel_std(Image.new("RGB", (20, 10), (90, 120, 200))) == 0
    pixels = np.zeros((10, 20, 3), np.uint8)
    pixels[:, 10:, 2] = 100
    assert pixel_std(Image.fromarray(pixels)) == pytest.approx(50)


# --- frames -----------------------------------------------------------------------------------------


def tagged_jpeg(stored: Image.Image, orient: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orient
    return encoded(stored, "JPEG", quality=95, exif=exif)


@pytest.mark.parametrize(
    "annotated, stored, orient, expected",
    [
        ((60, 40), (60, 40), 1, ("stored", False)),
        ((40, 60), (60, 40), 1, (None, False)),
        ((40, 60), (60, 40), 6, ("displayed", False)),  # annotated as displayed (rotated)
        ((60, 40), (60, 40), 6, ("stored", False)),  # annotated in the raw pixels' frame
        ((50, 50), (50, 50), 8, ("displayed", True)),  # square: both frames fit; the displayed one, counted
        ((60, 40), (60, 40), 3, ("displayed", True)),  # 180 degrees keeps the size: ambiguous too
        ((61, 40), (60, 40), 6, (None, False)),
    ],
)  # fmt: skip
def test_the_frame_is_chosen_from_the_annotated_size(annotated, stored, orient, expected):
    assert choose_frame(annotated, stored, orient) == expected


def test_load_rgb_applies_the_orientation_tag_or_keeps_the_raw_frame():
    stored = Image.new("RGB", (60, 40), (0, 0, 0))
    stored.paste((255, 255, 255), (0, 0, 10, 10))  # a white block at the raw top left
    data = tagged_jpeg(stored, 6)
    assert orientation(Image.open(io.BytesIO(data))) == 6
    displayed = load_rgb(data)
    assert displayed.size == (40, 60)
    assert np.asarray(displayed)[5, 35].min() > 200  # orientation 6 turns the raw top left to the top right
    raw = load_rgb(data, frame="stored")
    assert raw.size == (60, 40) and np.asarray(raw)[5, 5].min() > 200
    assert ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB").tobytes() == displayed.tobytes()


def test_reencoded_png_has_no_orientation_tag_and_the_same_pixels():
    displayed = load_rgb(tagged_jpeg(Image.effect_noise((30, 20), 60).convert("RGB"), 8))
    again = Image.open(io.BytesIO(encode_png(displayed)))
    assert orientation(again) == 1 and 0x0112 not in again.getexif()
    assert load_rgb(encode_png(displayed)).tobytes() == displayed.tobytes()


def test_models_decode_with_the_shared_rule():
    from raysweep.models.base import load_image

    data = tagged_jpeg(Image.effect_noise((30, 20), 60).convert("RGB"), 6)
    assert load_image(data).tobytes() == load_rgb(data).tobytes() and load_image(data).size == (20, 30)
    assert pixel_std(load_image(encoded(ramp16()))) > 10
    assert pixel_std(load_image(encoded(alpha_only()))) > 10


def test_a_truncated_jpeg_fails_when_decoded_not_when_opened():
    data = encoded(Image.effect_noise((90, 60), 60).convert("RGB"), "JPEG", quality=95)
    cut = data[: len(data) * 6 // 10]
    assert Image.open(io.BytesIO(cut)).size == (90, 60)  # the header alone looks fine
    with pytest.raises(OSError, match="truncated"):
        load_rgb(cut)


# --- family limits ----------------------------------------------------------------------------------


def test_every_family_states_its_limits_and_the_strictest_are_combined():
    from raysweep.models import get_family, list_families

    for name in list_families():
        family = get_family(name)
        assert "min_side" in type(family).__dict__ and "max_aspect_ratio" in type(family).__dict__, name
    limits = family_input_limits()
    assert limits.max_aspect_ratio == 200 and dict(limits.by)["max_aspect_ratio"] == "qwen2-vl"
    assert limits.problem(200, 1) is None
    assert "aspect ratio 300 is over 200" in limits.problem(1, 300) and "qwen2-vl" in limits.problem(1, 300)
    assert family_input_limits(["clip", "llava-next"]).problem(1, 300) is None
    assert InputLimits(min_side=28, by=(("min_side", "x"),)).problem(27, 100).startswith("a side is under 28 px")


def test_qwen2_vl_limit_matches_its_processor():
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

    from raysweep.models import get_family

    ratio = get_family("qwen2-vl").max_aspect_ratio
    smart_resize(1, int(ratio))  # at the limit: accepted
    with pytest.raises(ValueError, match="aspect ratio"):
        smart_resize(1, int(ratio) + 1)


# --- eval: a row a family cannot take fails alone ----------------------------------------------------


@pytest.fixture(scope="module")
def tiny_qwen():
    import torch

    from raysweep.models import get_family
    from raysweep.models.config import ModelConfig

    torch.manual_seed(0)
    return get_family("qwen2-vl").build(ModelConfig(family="qwen2-vl", checkpoint="tiny", device="cpu"))


def eval_row(i: int, size: tuple[int, int]) -> dict:
    image = Image.effect_noise(size, 60).convert("RGB")
    return {"scene_id": i, "image": encoded(image), "prompt": "Where is it? ", "answer": "center", "label": 4, "area": 4}


def test_one_row_the_family_refuses_fails_alone(tiny_qwen):
    from raysweep.evaluate import evaluate_rows, format_table

    rows = [eval_row(0, (84, 84)), eval_row(1, (300, 1)), eval_row(2, (90, 60)), eval_row(3, (60, 90))]
    result = evaluate_rows(tiny_qwen, rows, mode="choice", batch_size=4)
    assert result["n"] == 4 and result["failed_rows"] == 1
    bad = result["predictions"][1]
    assert bad["pred"] == -1 and "aspect ratio" in bad["error"]
    assert all(0 <= p["pred"] <= 8 and "error" not in p for i, p in enumerate(result["predictions"]) if i != 1)
    assert "FAILED rows 1" in format_table(result, tiny_qwen.task)


def test_when_every_row_fails_the_error_is_raised(tiny_qwen):
    from raysweep.evaluate import evaluate_rows

    with pytest.raises(ValueError, match="aspect ratio"):
        evaluate_rows(tiny_qwen, [eval_row(0, (300, 1)), eval_row(1, (1, 250))], mode="choice", batch_size=2)
