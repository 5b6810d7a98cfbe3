"""absolute_position: "Where is the red star?" answered with one area of an n x n grid (the paper's task).

The answers are the areas of the image, row-major from top left; the 3x3 grid has the paper's nine
names, 2x2 the four corners, other sides ``row R column C``. A scene's answer is the area of its
target's cell (:class:`raysweep.scenes.SceneSet`); a COCO annotation's is the area of its box centre
by n-ths of the image width and height (:mod:`raysweep.datasets.coco`). The bias index is the
centre bias: the share of central answers among questions whose target lies elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from raysweep.parsing import is_direction_grid, parse_area
from raysweep.tasks.base import Task

NAMES_3X3 = (
    "top left", "top center", "top right",
    "center left", "center", "center right",
    "bottom left", "bottom center", "bottom right",
)  # fmt: skip
NAMES_2X2 = ("top left", "top right", "bottom left", "bottom right")


def default_area_names(side: int) -> tuple[str, ...]:
    """The answer names of an n x n grid, row-major from top left."""
    if side == 3:
        return NAMES_3X3
    if side == 2:
        return NAMES_2X2
    return tuple(f"row {r + 1} column {c + 1}" for r in range(side) for c in range(side))


def central_areas(side: int) -> list[int]:
    """The middle area (odd sides) or the middle 2x2 block (even sides from 4); none for 2x2."""
    if side % 2:
        mid = [side // 2]
    elif side >= 4:
        mid = [side // 2 - 1, side // 2]
    else:
        return []
    return [r * side + c for r in mid for c in mid]


@dataclass(frozen=True)
class AbsolutePosition(Task):
    """The target's area on an ``areas_per_side`` x ``areas_per_side`` answer grid."""

    name = "absolute_position"
    description = "Where is the {ref}? -> one area of an n x n grid (data.areas_per_side; 3 = the paper's nine)"
    template = "Where is the {ref}? Choose from [{options}]."
    placeholders = ("ref", "options")
    areas_per_side: int = 3

    @classmethod
    def from_config(cls, cfg: dict) -> AbsolutePosition:
        """From a data section as a dict (a config, a dataset manifest's ``config``, flattened params)."""
        names = cfg.get("area_names")
        side = int(cfg.get("areas_per_side") or (round(len(names) ** 0.5) if names else 3))
        names = names or default_area_names(side)
        return cls(answer_names=tuple(names), areas_per_side=side)

    def scenes(self, data_cfg):
        from raysweep.scenes import SceneSet

        return SceneSet(data_cfg, self)

    def check_data(self, data_cfg) -> tuple[str, str] | None:
        if data_cfg.reference_within != -1:
            return "reference_within", "only relative_position has a reference object; leave it at -1 (anywhere)"
        if data_cfg.reference_shares != "any":
            return "reference_shares", "only relative_position has a reference object; leave it at any"
        if data_cfg.reference_balance != "target":
            return "reference_balance", "only relative_position has a reference object; leave it at target"
        if data_cfg.variants > 1 and data_cfg.distractors == 0:
            return "variants", "variants > 1 repeat identical scenes unless data.distractors > 0"
        cells_outside = data_cfg.grid_size**2 - (data_cfg.grid_size // self.areas_per_side) ** 2
        if data_cfg.distractors > cells_outside:
            return "distractors", f"{data_cfg.distractors} distractors cannot fit in the {cells_outside} cells outside the target's area"
        if data_cfg.distractors and len(data_cfg.shapes) * len(data_cfg.colors) < 2:
            return "distractors", "a distractor must differ from the target in shape or colour: list more shapes or colours"
        return None

    def build_coco(self, annotations, images_dir, out_dir, opts, overwrite: bool = False, progress: bool = True) -> dict:
        from raysweep.datasets.coco import build_coco

        return build_coco(annotations, images_dir, out_dir, opts, overwrite, progress)

    def grid_side(self) -> int:
        return self.areas_per_side

    phrases = ("it is in the {name} part of the image", "I think it is {name}", "the object is located at the {name}")

    def neighbours(self, label: int) -> list[int]:
        """The areas sharing a side with ``label`` on the answer grid."""
        side = self.areas_per_side
        row, col = divmod(label, side)
        steps = ((-1, 0), (1, 0), (0, -1), (0, 1))
        return sorted(r * side + c for r, c in ((row + dr, col + dc) for dr, dc in steps) if 0 <= r < side and 0 <= c < side)

    def free_phrase(self, label: int, variant: int) -> str:
        """A free phrase for an area; on the 3x3 grid also corners with synonyms ('the upper left corner')."""
        name = self.answer_names[label]
        if is_direction_grid(list(self.answer_names)) and variant % 4 == 3:
            words = name.replace("top", "upper").replace("bottom", "lower").replace("center", "middle").split()
            kind = "corner" if len(words) == 2 and "middle" not in words else ("of the image" if len(words) == 1 else "side")
            return f"it is in the {' '.join(words)} {kind}"
        return super().free_phrase(label, variant)

    def parse(self, text: str, leniency: str = "lenient") -> int:
        names = list(self.answer_names)
        if is_direction_grid(names):
            return parse_area(text, names, leniency)
        return super().parse(text, leniency)

    def bias(self, targets: list[int], preds: list[int]) -> dict[str, float]:
        centre = central_areas(self.areas_per_side)
        if not centre:
            return {}
        return {"center_bias": center_bias(targets, preds, centre)}

    def bias_classes(self) -> list[str]:
        return [self.slugs[a] for a in central_areas(self.areas_per_side)]

    def bias_note(self) -> str:
        chance = len(central_areas(self.areas_per_side)) / max(1, self.n_classes)
        return (f"center_bias: share of central answers among questions whose target lies elsewhere "
                f"(0 for a perfect model, {chance:.1%} for uniform guessing)")  # fmt: skip


def center_bias(targets: list[int], preds: list[int], centre: list[int]) -> float:
    """Share of predictions naming a ``centre`` area among rows whose target is not one."""
    off = [p for t, p in zip(targets, preds) if t not in centre]
    return sum(p in centre for p in off) / len(off) if off else 0.0
