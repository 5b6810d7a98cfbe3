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
class MixConfig:
    """A second training source interleaved with data.source (synthetic-real mixing)."""

    source: str = doc(
        "The second source: a name in data.parquet, or 'synthetic' (the scenes of this data section, when "
        "data.source is a Parquet set); empty = no mixing.",
        "",
    )
    ratio: float = doc(
        "Share of the training rows taken from mix.source, in [0, 1]; the total stays data.size (or the "
        "primary source's training rows).",
        0.0,
    )


@dataclass
class CurriculumPhase:
    """One phase of data.curriculum: a number of epochs at one mixing ratio."""

    epochs: int = doc("Epochs of this phase (the last phase also runs every epoch after it).", 1)
    mix_ratio: float = doc("data.mix.ratio during this phase (0 = data.source only).", 0.0)


CORRUPTION_KEYS = ("label_noise", "area_distribution", "size", "answer_format_noise")


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
    reference_within: int = doc(
        "relative_position: the reference object's cell lies at most this many cells (row and column) from the "
        "grid's centre cell; -1 = anywhere. 0 puts it on the centre, so the relation follows from the target's "
        "cell alone: an easy set, e.g. for the first phase of a data.curriculum.",
        -1,
    )
    reference_shares: Literal["any", "colour_or_shape"] = doc(
        "relative_position: which combinations the reference object is drawn from. any = every other combination "
        "of the split; colour_or_shape = only those with the target's colour or its shape, so one attribute alone "
        "tells the two apart (in civet_train's combinations no pair is then told apart by 'is it white?').",
        "any",
    )
    reference_balance: Literal["target", "target_and_reference"] = doc(
        "relative_position: which object's cell the relations are balanced over. target = every target cell holds "
        "each relation it allows once and the reference is drawn uniformly among the cells that give it - which "
        "leaves the reference's cell telling the answer 67.5% of the time (reference_cell_baseline); "
        "target_and_reference draws the reference with weights fitted (Sinkhorn) so that every (reference cell, "
        "relation) the grid allows is drawn as often as every (target cell, relation): the reference-cell guess "
        "falls to 31.0% on relative_test.yaml, the target cell's being 32.1% - but exact balance on a bounded grid "
        "leaves only pairs 2 cells apart on the asked axis (99.8% of them; README, Tasks).",
        "target",
    )
    variants: int = doc(
        "Scenes per target: absolute_position draws a different distractor layout per variant (so needs "
        "data.distractors > 0 if > 1); relative_position a different reference object (cell, combination, size).",
        1,
    )
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

    label_noise: float = doc(
        "Training rows only: this fraction of the n training rows (exactly round(n * p), chosen by data.seed, "
        "fixed per row) is trained on another class; the row keeps its true geometry in area.",
        0.0,
    )
    label_noise_to: Literal["uniform", "neighbor"] = doc(
        "Which other class a noisy label gets: uniform over the other classes, or a neighbouring one "
        "(absolute_position: an adjacent area of the grid; relative_position: a perpendicular relation).",
        "uniform",
    )
    area_distribution: str | list[float] = doc(
        "Training rows only: resample to this class distribution: 'uniform', 'coco' (the area_counts_before_caps "
        "of the COCO set named by data.area_distribution_from), or one weight per class of the task; "
        "empty = as the source comes.",
        "",
    )
    area_distribution_from: str = doc(
        "For data.area_distribution=coco: the COCO set whose manifest gives the distribution (a name in "
        "data.parquet or a dataset folder).",
        "",
    )
    size: int = doc(
        "Training rows only: exactly this many training questions (0 = all); seeded, drawn with repeats only "
        "where data.area_distribution asks for more of a class than the source holds. Not with data.fraction.",
        0,
    )
    answer_format_noise: float = doc(
        "Training rows only: this fraction of training answers (exactly round(n * p)) is rewritten as a free "
        "phrase naming the same class ('it is in the upper left corner').",
        0.0,
    )
    mix: MixConfig = doc("A second training source interleaved at a ratio (synthetic-real mixing).", factory=MixConfig)
    curriculum: list[CurriculumPhase] = doc(
        "Training in phases of epochs, each at its own data.mix ratio (synthetic first, then mixed); "
        "empty = one phase at data.mix.ratio. Needs data.mix.source.",
        factory=list,
    )

    def corrupted(self) -> bool:
        """Whether the training rows differ from the source's (corruptions, resampling, size, mixing)."""
        return bool(self.label_noise or self.area_distribution or self.size or self.answer_format_noise
                    or self.mix.ratio or self.curriculum)  # fmt: skip

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
        if self.antialias < 1:
            raise ConfigError("antialias", f"must be >= 1, got {self.antialias}")
        from raysweep.tasks import task_for

        task = task_for(self)
        problem = task.check_data(self)
        if problem:
            raise ConfigError(*problem)
        if self.template and task.check_template(self.template):
            raise ConfigError("template", task.check_template(self.template))
        self._validate_training_rows(task)

    def _validate_training_rows(self, task) -> None:
        """The corruption, size and mixing keys (issue 16)."""
        for key in ("label_noise", "answer_format_noise"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ConfigError(key, f"is a fraction of the training rows and must lie in [0, 1], got {getattr(self, key)}")
        if self.size < 0:
            raise ConfigError("size", f"must be >= 0 (0 = every training row), got {self.size}")
        if self.size and self.fraction < 1.0:
            raise ConfigError("size", f"give data.size ({self.size} questions) or data.fraction ({self.fraction}), not both; "
                                      "set data.fraction=1.0")  # fmt: skip
        dist = self.area_distribution
        if isinstance(dist, str):
            if dist not in ("", "uniform", "coco"):
                raise ConfigError("area_distribution", f"{dist!r} is not allowed; use uniform, coco, or one weight per class "
                                                       f"({task.n_classes}: {', '.join(task.answer_names)})")  # fmt: skip
            if dist == "coco" and not self.area_distribution_from:
                raise ConfigError("area_distribution_from", "data.area_distribution=coco needs the COCO set whose "
                                                            "area_counts_before_caps to use (a name in data.parquet or a folder)")  # fmt: skip
        else:
            if len(dist) != task.n_classes:
                raise ConfigError("area_distribution", f"needs one weight per class of task {task.name} ({task.n_classes}: "
                                                       f"{', '.join(task.answer_names)}), got {len(dist)}")  # fmt: skip
            if any(w < 0 for w in dist) or sum(dist) <= 0:
                raise ConfigError("area_distribution", f"weights must be >= 0 with a positive sum, got {dist}")
        if not 0.0 <= self.mix.ratio <= 1.0:
            raise ConfigError("mix.ratio", f"must lie in [0, 1], got {self.mix.ratio}")
        if (self.mix.ratio or self.curriculum) and not self.mix.source:
            raise ConfigError("mix.source", "data.mix.ratio and data.curriculum need the second source: a name in "
                                            "data.parquet, or synthetic")  # fmt: skip
        if self.mix.source and self.mix.source == self.source:
            raise ConfigError("mix.source", f"is data.source itself ({self.source!r}); name another source")
        if self.mix.source and self.mix.source != "synthetic" and self.mix.source not in self.parquet:
            known = ", ".join(["synthetic", *self.parquet])
            raise ConfigError("mix.source", f"unknown source {self.mix.source!r}; known: {known} (add it under data.parquet)")
        for i, phase in enumerate(self.curriculum):
            if phase.epochs < 1:
                raise ConfigError(f"curriculum[{i}].epochs", f"must be >= 1, got {phase.epochs}")
            if not 0.0 <= phase.mix_ratio <= 1.0:
                raise ConfigError(f"curriculum[{i}].mix_ratio", f"must lie in [0, 1], got {phase.mix_ratio}")

    def phase_ratio(self, epoch: int) -> float:
        """The mixing ratio of ``epoch`` (from 0): its curriculum phase's, or data.mix.ratio."""
        done = 0
        for phase in self.curriculum:
            done += phase.epochs
            if epoch < done:
                return phase.mix_ratio
        return self.curriculum[-1].mix_ratio if self.curriculum else self.mix.ratio

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
