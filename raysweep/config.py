"""The one typed config tree of raysweep.

A YAML file holds any of the sections below; ``include:`` pulls in other files first (for example
``include: [data/civet_train.yaml, models/tiny-llava-next.yaml]``), and ``key=value`` arguments on
the command line override single keys (``data.distractors=3``). Unknown keys and bad values are
rejected at load time with the dotted path of the culprit.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from raysweep._configlib import (
    doc,
    from_dict,
    parse_override,
    read_yaml,
    set_dotted,
    to_dict,
)
from raysweep.errors import ConfigError, UserError
from raysweep.models.config import EvalConfig, LoraConfig, ModelConfig
from raysweep.sweep.config import SweepConfig
from raysweep.training.config import MlflowConfig, TrainConfig

DEFAULT_COLORS = {
    "red": [255, 0, 0],
    "green": [0, 255, 0],
    "blue": [0, 0, 255],
    "magenta": [255, 0, 255],
    "yellow": [255, 255, 0],
    "cyan": [0, 255, 255],
    "white": [255, 255, 255],
}
SHAPES = ["circle", "square", "triangle", "star", "plus"]


@dataclass
class Combo:
    """A block of attribute combinations: every listed shape in every listed colour."""

    shapes: list[str] = doc("Shapes of this block.", factory=list)
    colors: list[str] = doc("Colours of this block (names from data.colors).", factory=list)


@dataclass
class DataConfig:
    """Synthetic scenes (CIVET world) and where training data comes from."""

    source: str = doc(
        "Where training data comes from: 'synthetic' renders scenes from the keys below; any other "
        "name is looked up in data.parquet (for example coco-full, coco-balanced).",
        "synthetic",
    )
    parquet: dict[str, str] = doc(
        "Named Parquet datasets (folders written by `raysweep generate` or `raysweep coco`).",
        factory=dict,
    )
    task: str = doc(
        "The question type (see `raysweep tasks`): absolute_position (where is X: an area of the answer grid) "
        "or relative_position (where is X relative to Y: left, right, above, below).",
        "absolute_position",
    )
    canvas_size: int = doc("Width and height of the square canvas in pixels.", 336)
    grid_size: int = doc("Cells per side of the object grid (one object per cell).", 9)
    areas_per_side: int = doc(
        "absolute_position: answer areas per side (3 gives the 9 areas of the 3x3 grid, 2 the four corners); "
        "must divide grid_size.",
        3,
    )
    background: list[int] = doc("Background RGB colour.", factory=lambda: [0, 0, 0])
    shapes: list[str] = doc("Shapes that may appear (targets and distractors).", factory=lambda: list(SHAPES))
    colors: dict[str, list[int]] = doc("Colour names and their RGB values.", factory=lambda: dict(DEFAULT_COLORS))
    sizes: dict[str, float] = doc(
        "Object sizes as a fraction of the cell side.", factory=lambda: {"large": 0.86, "small": 0.5}
    )
    combos: list[Combo] = doc(
        "Target attribute blocks (shapes x colours) of this split; empty = all shapes x all colours.",
        factory=list,
    )
    split: Literal["all", "test", "train", "val"] = doc(
        "Which part to produce: 'all'/'test' take every scene; 'train'/'val' split the pool by "
        "data.val_fraction, stratified by area.",
        "all",
    )
    val_fraction: float = doc("Share of the pool that goes to validation for split train/val.", 0.2)
    fraction: float = doc(
        "Balanced subset size as a fraction of the split (1.0 = exhaustive). Counts per area stay "
        "exactly equal; per attribute value equal whenever the size allows.",
        1.0,
    )
    distractors: int = doc(
        "Extra objects per scene: absolute_position never puts one in the target's area; relative_position puts "
        "them on free cells, differing in shape or colour from both named objects.",
        0,
    )
    variants: int = doc("Scenes per target (different distractor layouts); needs distractors > 0 if > 1.", 1)
    seed: int = doc("Seed of every random choice (subset, split, distractors, option order).", 42)
    antialias: int = doc("Supersampling factor of the sprite rasteriser (1 = aliased).", 4)
    template: str = doc(
        "Question template; empty = the task's own (`raysweep tasks`). {ref} is the target's 'colour shape', "
        "{options} the shuffled answer names, {anchor} (relative_position) the reference object.",
        "",
    )
    prompt_prefix: str = doc("Text put before the question in the model prompt.", "Answer using as few words as possible. ")
    area_names: list[str] = doc(
        "absolute_position: names of the answer areas, row-major from top left; empty = the task's names for "
        "the grid (3x3: top left ... bottom right; 2x2: the corners; others: row R column C).",
        factory=list,
    )

    def validate(self) -> None:
        if self.canvas_size < 8:
            raise ConfigError("canvas_size", f"must be at least 8 pixels, got {self.canvas_size}")
        if self.grid_size < 1 or self.canvas_size // self.grid_size < 4:
            raise ConfigError("grid_size", f"{self.grid_size} cells leave less than 4 px per cell on a {self.canvas_size} px canvas")
        if self.areas_per_side < 1 or self.grid_size % self.areas_per_side:
            raise ConfigError("areas_per_side", f"must divide grid_size ({self.grid_size}), got {self.areas_per_side}")
        from raysweep.tasks import task_class

        try:
            task_class(self.task)
        except UserError as err:
            raise ConfigError("task", err.message) from None
        if self.area_names and len(self.area_names) != self.areas_per_side**2:
            raise ConfigError("area_names", f"needs {self.areas_per_side ** 2} names, got {len(self.area_names)}")
        _check_rgb("background", self.background)
        for name, rgb in self.colors.items():
            _check_rgb(f"colors.{name}", rgb)
        unknown = [s for s in self.shapes if s not in SHAPES]
        if unknown:
            raise ConfigError("shapes", f"unknown shape {unknown[0]!r}; known shapes: {', '.join(SHAPES)}")
        if not self.shapes or not self.colors or not self.sizes:
            raise ConfigError("shapes", "shapes, colors and sizes must each list at least one value")
        for name, frac in self.sizes.items():
            if not 0.05 <= frac <= 1.0:
                raise ConfigError(f"sizes.{name}", f"must lie in [0.05, 1.0] of the cell, got {frac}")
        for i, combo in enumerate(self.combos):
            for s in combo.shapes:
                if s not in self.shapes:
                    raise ConfigError(f"combos[{i}].shapes", f"{s!r} is not in data.shapes {self.shapes}")
            for c in combo.colors:
                if c not in self.colors:
                    raise ConfigError(f"combos[{i}].colors", f"{c!r} is not in data.colors {list(self.colors)}")
            if not combo.shapes or not combo.colors:
                raise ConfigError(f"combos[{i}]", "a block needs at least one shape and one colour")
        if not 0.0 < self.fraction <= 1.0:
            raise ConfigError("fraction", f"must lie in (0, 1], got {self.fraction}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError("val_fraction", f"must lie in (0, 1), got {self.val_fraction}")
        if self.distractors < 0:
            raise ConfigError("distractors", f"must be >= 0, got {self.distractors}")
        if self.variants < 1:
            raise ConfigError("variants", f"must be >= 1, got {self.variants}")
        if self.variants > 1 and self.distractors == 0:
            raise ConfigError("variants", "variants > 1 repeat identical scenes unless data.distractors > 0")
        if self.antialias < 1:
            raise ConfigError("antialias", f"must be >= 1, got {self.antialias}")
        from raysweep.tasks import task_for

        task = task_for(self)
        problem = task.check_data(self)
        if problem:
            raise ConfigError(*problem)
        if self.template and task.check_template(self.template):
            raise ConfigError("template", task.check_template(self.template))

    def target_combos(self) -> list[tuple[str, str]]:
        """(shape, colour) pairs of this split's targets, in a fixed order, without repeats."""
        blocks = self.combos or [Combo(list(self.shapes), list(self.colors))]
        seen: dict[tuple[str, str], None] = {}
        for block in blocks:
            for shape in block.shapes:
                for color in block.colors:
                    seen.setdefault((shape, color), None)
        return list(seen)


def _check_rgb(key: str, rgb: list[int]) -> None:
    if len(rgb) != 3 or any(not 0 <= v <= 255 for v in rgb):
        raise ConfigError(key, f"expected 3 integers in 0..255, got {rgb}")


@dataclass
class RunConfig:
    """The whole config of a raysweep command."""

    data: DataConfig = doc("Data: synthetic scenes and named Parquet sets.", factory=DataConfig)
    model: ModelConfig = doc("The VLM family and checkpoint.", factory=ModelConfig)
    lora: LoraConfig = doc("The LoRA adapter.", factory=LoraConfig)
    eval: EvalConfig = doc("Evaluation.", factory=EvalConfig)
    train: TrainConfig = doc("Training.", factory=TrainConfig)
    mlflow: MlflowConfig = doc("MLflow tracking and registry.", factory=MlflowConfig)
    sweep: SweepConfig = doc("A sweep over config keys (raysweep sweep).", factory=SweepConfig)


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (), cls=RunConfig):
    """Load a config tree from YAML (with includes) and ``key=value`` overrides; validate it all."""
    raw = read_yaml(path) if path is not None else {}
    for text in overrides:
        key, value = parse_override(text)
        set_dotted(raw, key, value)
    return from_dict(cls, raw)


def config_help(cls=RunConfig, prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted key, default, help) for every field of the tree, for `raysweep config`."""
    rows = []
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            rows.append((key, "", f.metadata.get("help", "")))
            rows.extend(config_help(type(default), key + "."))
        else:
            rows.append((key, repr(to_dict(default)), f.metadata.get("help", "")))
    return rows
