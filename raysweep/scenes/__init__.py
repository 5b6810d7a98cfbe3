"""Synthetic CIVET-style scenes: layout, balanced sampling and anti-aliased rendering (no Ray)."""

from raysweep.scenes.layout import Layout, area_of_point
from raysweep.scenes.render import Renderer, encode_png, shape_mask
from raysweep.scenes.sampling import Scene, SceneSet, balanced_subset

__all__ = ["Layout", "Renderer", "Scene", "SceneSet", "area_of_point", "balanced_subset", "encode_png", "shape_mask"]
