"""model.tiny_vision_position=sincos|monotonic: fixed 2D sine-cosine codes in the tiny towers' position embedding."""

import numpy as np
import pytest

from raysweep.config import load_config
from raysweep.errors import ConfigError
from raysweep.models._tiny import sincos_positions, vision_embeddings


def test_sincos_codes_are_unit_norm_and_rows_and_columns_are_linear_in_them():
    codes = sincos_positions(9, 64).double().numpy()
    assert codes.shape == (82, 64) and not codes[0].any()
    assert np.allclose(np.linalg.norm(codes[1:], axis=1), 1.0)
    rows, cols = np.divmod(np.arange(81), 9)
    design = np.c_[codes[1:], np.ones(81)]
    for target in (rows, cols):  # a linear read-out recovers the row and the column exactly
        fit = design @ np.linalg.lstsq(design, target, rcond=None)[0]
        assert np.abs(fit - target).max() < 1e-6
    assert len({c.tobytes() for c in codes[1:]}) == 81
    with pytest.raises(ValueError, match="divisible by 4"):
        sincos_positions(3, 30)


def test_monotonic_codes_rise_or_fall_along_every_row_and_column_where_mae_codes_wrap():
    """model.tiny_vision_position=monotonic: no channel turns back across the grid, so the order of two
    far-apart patches is the same in every channel; MAE's highest frequencies turn back within a row."""
    mono = sincos_positions(9, 64, monotonic=True).double().numpy()[1:].reshape(9, 9, 64)
    mae = sincos_positions(9, 64).double().numpy()[1:].reshape(9, 9, 64)
    assert np.allclose(np.linalg.norm(mono, axis=-1), 1.0) and len({c.tobytes() for c in mono.reshape(81, 64)}) == 81

    def turns(codes, channels, axis):  # channels whose steps along the axis change sign
        steps = np.diff(codes[..., channels], axis=axis)
        return int(((steps.max(axis=(0, 1)) > 1e-12) & (steps.min(axis=(0, 1)) < -1e-12)).sum())

    rows, cols = slice(0, 32), slice(32, 64)  # the row channels, then the column channels
    assert turns(mono, rows, 0) == 0 and turns(mono, cols, 1) == 0
    assert turns(mae, rows, 0) >= 4 and turns(mae, cols, 1) >= 4
    assert np.allclose(mono[:, 0, rows], mono[:, 8, rows]) and np.allclose(mono[0, :, cols], mono[8, :, cols])


@pytest.mark.parametrize("family", ["llava-next", "clip"])
def test_tiny_towers_take_sincos_positions_and_the_identity_tells_them_apart(family):
    from raysweep.models import get_family
    from raysweep.models._adapter_identity import differences
    from raysweep._configlib import to_dict
    from raysweep.tasks import default_task

    def table(position):
        cfg = load_config(None, [f"model.family={family}", "model.checkpoint=tiny", "model.image_size=108", "model.tiny_patch=12",
                                 f"model.tiny_vision_position={position}"]).model  # fmt: skip
        built = get_family(family).build(cfg, default_task())
        return cfg, vision_embeddings(built.model).position_embedding.weight.detach()

    learned_cfg, learned = table("learned")
    sincos_cfg, sincos = table("sincos")
    assert sincos.shape == (82, 64) and np.allclose(sincos.numpy(), sincos_positions(9, 64).numpy())
    assert not np.allclose(learned.numpy(), sincos.numpy())
    assert [d[0] for d in differences({"model": to_dict(learned_cfg)}, {"model": to_dict(sincos_cfg)})] == ["model.tiny_vision_position"]
    mono_cfg, mono = table("monotonic")
    assert np.allclose(mono.numpy(), sincos_positions(9, 64, monotonic=True).numpy()) and not np.allclose(mono.numpy(), sincos.numpy())
    assert [d[0] for d in differences({"model": to_dict(sincos_cfg)}, {"model": to_dict(mono_cfg)})] == ["model.tiny_vision_position"]


def test_position_norm_scales_the_fixed_codes_and_the_identity_tells_them_apart():
    from raysweep._configlib import to_dict
    from raysweep.models import get_family
    from raysweep.models._adapter_identity import differences
    from raysweep.tasks import default_task

    def table(norm):
        cfg = load_config(None, ["model.checkpoint=tiny", "model.image_size=108", "model.tiny_patch=12", "model.tiny_vision_position=monotonic",
                                 f"model.tiny_vision_position_norm={norm}"]).model  # fmt: skip
        return cfg, vision_embeddings(get_family("llava-next").build(cfg, default_task()).model).position_embedding.weight.detach()

    (unit_cfg, unit), (scaled_cfg, scaled) = table(1), table(3)
    assert np.allclose(scaled.numpy(), 3 * sincos_positions(9, 64, monotonic=True).numpy(), atol=1e-6)
    assert np.allclose(np.linalg.norm(scaled.numpy()[1:], axis=1), 3.0) and np.allclose(unit.numpy() * 3, scaled.numpy(), atol=1e-6)
    assert [d[0] for d in differences({"model": to_dict(unit_cfg)}, {"model": to_dict(scaled_cfg)})] == ["model.tiny_vision_position_norm"]


@pytest.mark.parametrize("overrides, message", [
    (["model.tiny_vision_position_norm=3"], "scales fixed codes; set model.tiny_vision_position=sincos or monotonic"),
    (["model.tiny_vision_position=sincos", "model.tiny_vision_position_norm=0"], r"must lie in \(0, 100\], got 0"),
    (["model.tiny_vision_position=sincos", "model.tiny_vision_position_norm=-1"], r"must lie in \(0, 100\], got -1"),
])  # fmt: skip
def test_a_position_norm_without_fixed_codes_or_out_of_range_is_refused_by_name(overrides, message):
    with pytest.raises(ConfigError, match=rf"model.tiny_vision_position_norm: {message}"):
        load_config(None, ["model.checkpoint=tiny", *overrides])


@pytest.mark.parametrize("position", ["sincos", "monotonic"])
def test_sincos_needs_a_vision_width_divisible_by_4(position):
    with pytest.raises(ConfigError, match="model.tiny_vision_hidden: sincos positions need a multiple of 4, got 30"):
        load_config(None, [f"model.tiny_vision_position={position}", "model.tiny_vision_hidden=30", "model.checkpoint=tiny"])


def test_colour_split_filters_see_shape_without_colour_and_colour_without_shape():
    """model.tiny_vision_filters=colour_split: the achromatic filters answer a shape the same way in
    any colour (up to its brightness), the chromatic ones answer a colour the same way in any shape."""
    import torch

    from raysweep.models._tiny import colour_split_filters

    weight = torch.randn(64, 3, 12, 12) * 0.02
    filters = colour_split_filters(weight, seed=0)
    assert filters.shape == weight.shape and torch.equal(filters, colour_split_filters(weight, seed=0))
    assert torch.allclose(filters.flatten(1).norm(dim=1), weight.flatten(1).norm(dim=1).mean().expand(64), rtol=1e-5)
    achromatic, chromatic = filters[:48], filters[48:]
    assert torch.equal(achromatic[:, 0], achromatic[:, 1]) and torch.equal(achromatic[:, 1], achromatic[:, 2])
    assert torch.allclose(chromatic, chromatic[:, :, :1, :1].expand_as(chromatic))
    star, square = torch.zeros(12, 12), torch.zeros(12, 12)
    star[3:9, 5:7], star[5:7, 3:9] = 1, 1
    square[3:9, 3:9] = 1

    def respond(mask, rgb):
        return torch.nn.functional.conv2d((torch.tensor(rgb).reshape(3, 1, 1) * mask)[None], filters, stride=12).flatten()

    white, red = respond(star, [1.0, 1.0, 1.0]), respond(star, [1.0, 0.0, 0.0])
    assert torch.allclose(white[:48], 3 * red[:48], atol=1e-6)  # the same shape feature, 3x brighter
    assert not torch.allclose(white[48:] / white[48:].norm(), red[48:] / red[48:].norm(), atol=1e-2)
    red_square = respond(square, [1.0, 0.0, 0.0])
    assert torch.allclose(red_square[48:] / red_square[48:].norm(), red[48:] / red[48:].norm(), atol=1e-6)  # colour alone


@pytest.mark.parametrize("family", ["llava-next", "qwen2-vl"])
def test_tiny_init_range_sets_the_language_models_random_weights_and_the_identity_tells_them_apart(family):
    from raysweep._configlib import to_dict
    from raysweep.models import get_family
    from raysweep.models._adapter_identity import differences
    from raysweep.tasks import default_task

    def q_std(init):
        cfg = load_config(None, [f"model.family={family}", "model.checkpoint=tiny", f"model.tiny_init_range={init}"]).model
        built = get_family(family).build(cfg, default_task())
        q = [m.weight for n, m in built.model.named_modules() if n.endswith("language_model.layers.0.self_attn.q_proj")][0]
        return cfg, float(q.detach().std())

    default_cfg, default = q_std(0.02)
    peaked_cfg, peaked = q_std(0.1)
    assert abs(default - 0.02) < 0.002 and abs(peaked - 0.1) < 0.01
    assert [d[0] for d in differences({"model": to_dict(default_cfg)}, {"model": to_dict(peaked_cfg)})] == ["model.tiny_init_range"]


@pytest.mark.parametrize("value", ["0", "-0.1", "2"])
def test_tiny_init_range_outside_0_1_is_refused_by_name(value):
    with pytest.raises(ConfigError, match=r"model.tiny_init_range: must lie in \(0, 1\]"):
        load_config(None, ["model.checkpoint=tiny", f"model.tiny_init_range={value}"])


@pytest.mark.parametrize("key", ["tiny_hidden", "tiny_layers", "tiny_heads", "tiny_vision_hidden", "tiny_vision_layers"])
def test_tiny_sizes_below_one_are_refused_by_name_not_by_a_crash_at_build(key):
    # tiny_vision_layers=0 used to build and then fail with an IndexError in the first forward pass;
    # tiny_heads=0 with a ZeroDivisionError inside the config check itself.
    with pytest.raises(ConfigError, match=rf"model.{key}: must be >= 1, got 0"):
        load_config(None, ["model.checkpoint=tiny", f"model.{key}=0"])


@pytest.mark.parametrize("family, key, value", [
    ("qwen2-vl", "tiny_vision_position", "sincos"),  # Qwen2-VL's tower has no CLIP-style position table
    ("qwen2-vl", "tiny_vision_filters", "colour_split"),
    ("clip", "tiny_init_range", "0.1"),  # CLIP has no language model
    ("qwen2-vl", "tiny_vision_position_norm", "3"),
])  # fmt: skip
def test_a_tiny_key_the_family_does_not_read_is_refused_by_name(family, key, value):
    with pytest.raises(ConfigError, match=rf"model.{key}: the tiny {family} has no use for it"):
        load_config(None, [f"model.family={family}", "model.checkpoint=tiny", f"model.{key}={value}"])
    load_config(None, [f"model.family={family}", "model.checkpoint=tiny"])  # at its default it is fine
