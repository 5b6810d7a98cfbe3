"""Which scenes make up a dataset: exhaustive enumeration, held-out splits, balanced subsets.

A dataset is the Cartesian product of the target attribute combinations, the sizes, the grid cells
and the variants (the *pool*). Every pool member has a stable ``scene_id``; splits and subsets pick
ids, so scene ``i`` is the same scene wherever and whenever it is produced. All choices come from
``numpy.random.default_rng`` seeded with the config's seed and a purpose tag: no global RNG.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from raysweep.scenes.layout import Layout

_TAG_VAL, _TAG_FRACTION, _TAG_SCENE = 1, 2, 3


@dataclass(frozen=True)
class Scene:
    """One question: a target object, its distractors and the shuffled answer options."""

    scene_id: int
    shape: str
    color: str
    size: str
    row: int
    col: int
    area: int
    distractors: tuple[tuple[str, str, str, int, int], ...]
    options: tuple[str, ...]

    @property
    def objects(self):
        """(shape, colour, size, row, col) of every object, target first."""
        return ((self.shape, self.color, self.size, self.row, self.col),) + self.distractors

    @property
    def ref(self) -> str:
        return f"{self.color} {self.shape}"

    def distractors_json(self) -> str:
        return json.dumps(
            [{"shape": s, "color": c, "size": z, "cell_row": r, "cell_col": k} for s, c, z, r, k in self.distractors]
        )


def _rng(seed: int, tag: int, *more: int) -> np.random.Generator:
    return np.random.default_rng([seed, tag, *more])


def combination_pool(cfg) -> list[tuple[str, str]]:
    """(shape, colour) pairs that distractors (and relative_position's reference) come from: the split's
    own combinations, so a test scene shows only test values, or every shape x colour when the split
    has a single combination."""
    combos = cfg.target_combos()
    return combos if len(combos) > 1 else [(s, c) for s in cfg.shapes for c in cfg.colors]


class SceneSet:
    """The scenes of one :class:`~raysweep.config.DataConfig`, addressable by position or id."""

    def __init__(self, cfg, task=None):
        from raysweep.tasks import task_for

        self.cfg = cfg
        self.task = task or task_for(cfg)  # the answer names: the task's, never a module constant
        self.layout = Layout(cfg.canvas_size, cfg.grid_size, cfg.areas_per_side)
        self.combos = cfg.target_combos()
        self.size_names = list(cfg.sizes)
        self.n_areas = cfg.areas_per_side**2
        self.n_classes = self.task.n_classes  # what splits and subsets balance: the labels
        self.n_cells = cfg.grid_size**2
        cell_area = [self.layout.area_of_cell(*divmod(c, cfg.grid_size)) for c in range(self.n_cells)]
        self._cell_area = np.asarray(cell_area, np.int64)
        self._distractor_pool = combination_pool(cfg)
        self._outside = [np.flatnonzero(self._cell_area != a) for a in range(self.n_areas)]

    # ---- the pool ----------------------------------------------------------------------------
    @property
    def pool_size(self) -> int:
        return len(self.combos) * len(self.size_names) * self.n_cells * self.cfg.variants

    def decode(self, scene_id: int) -> tuple[int, int, int, int]:
        """scene_id -> (combo index, size index, cell index, variant)."""
        rest, variant = divmod(int(scene_id), self.cfg.variants)
        rest, cell = divmod(rest, self.n_cells)
        combo, size = divmod(rest, len(self.size_names))
        return combo, size, cell, variant

    def _pool_arrays(self):
        """(ids, stratum, label) of every pool member; the stratum is combo x size."""
        ids = np.arange(self.pool_size, dtype=np.int64)
        rest = ids // self.cfg.variants
        cell = rest % self.n_cells
        rest //= self.n_cells
        size = rest % len(self.size_names)
        combo = rest // len(self.size_names)
        return ids, combo * len(self.size_names) + size, self._cell_area[cell]

    def area_of(self, scene_id: int) -> int:
        """Answer area of a scene, without building the scene."""
        return int(self._cell_area[self.decode(scene_id)[2]])

    def label_of(self, scene_id: int) -> int:
        """The label of a scene (absolute position: its area), without building the scene."""
        return self.area_of(scene_id)

    def stratum_values(self, stratum: int) -> tuple[str, str, str]:
        """(shape, colour, size) of a stratum index (combo x size)."""
        combo, size = divmod(int(stratum), len(self.size_names))
        return (*self.combos[combo], self.size_names[size])

    # ---- selection ---------------------------------------------------------------------------
    @cached_property
    def ids(self) -> np.ndarray:
        """Sorted scene ids of this split and subset (balanced per label, then per stratum)."""
        cfg = self.cfg
        ids, stratum, label = self._pool_arrays()
        k = self.n_classes
        if cfg.split in ("train", "val"):
            n_val = _round_to(cfg.val_fraction * len(ids), k)
            val = balanced_subset(stratum, label, n_val, _rng(cfg.seed, _TAG_VAL), k, self.stratum_values)
            keep = val if cfg.split == "val" else np.setdiff1d(np.arange(len(ids)), val)
            ids, stratum, label = ids[keep], stratum[keep], label[keep]
        if cfg.fraction < 1.0:
            n = _round_to(cfg.fraction * len(ids), k)
            keep = balanced_subset(stratum, label, n, _rng(cfg.seed, _TAG_FRACTION), k, self.stratum_values)
            ids = ids[keep]
        ids = np.sort(ids)
        ids.setflags(write=False)
        return ids

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, position: int) -> Scene:
        return self.scene(int(self.ids[position]))

    # ---- one scene ---------------------------------------------------------------------------
    def scene(self, scene_id: int) -> Scene:
        """The scene with pool id ``scene_id``: a pure function of (config, id)."""
        cfg = self.cfg
        combo, size_idx, cell, _ = self.decode(scene_id)
        shape, color = self.combos[combo]
        row, col = divmod(cell, cfg.grid_size)
        area = int(self._cell_area[cell])
        rng = _rng(cfg.seed, _TAG_SCENE, scene_id)
        distractors = ()
        if cfg.distractors:
            cells = rng.choice(self._outside[area], size=cfg.distractors, replace=False)
            choices = [p for p in self._distractor_pool if p != (shape, color)]
            picks = rng.integers(len(choices), size=cfg.distractors)
            sizes = rng.integers(len(self.size_names), size=cfg.distractors)
            distractors = tuple(
                (*choices[p], self.size_names[z], *divmod(int(c), cfg.grid_size))
                for c, p, z in zip(cells, picks, sizes)
            )
        order = rng.permutation(self.n_areas)
        options = tuple(self.task.answer_names[i] for i in order)
        return Scene(int(scene_id), shape, color, self.size_names[size_idx], row, col, area, distractors, options)

    def fields(self, scene: Scene) -> dict[str, str]:
        """The template's placeholder values of ``scene``."""
        return {"ref": scene.ref, "options": ", ".join(scene.options)}

    def named_cells(self, scene: Scene) -> dict[str, tuple[int, int]]:
        """(row, col) of the object each name placeholder of the template names."""
        return {"ref": (scene.row, scene.col)}

    def question(self, scene: Scene) -> str:
        return (self.cfg.template or self.task.template).format(**self.fields(scene))

    def grounding(self, scene: Scene) -> list[list[int]]:
        """``[end, row, col]`` per object the prompt names: ``end`` is the character index just past its
        name in :meth:`prompt`, (row, col) its cell; in template order (``train.grounding_weight`` reads them).

        For "Where is the red star relative to the blue circle? ..." that is the end of "red star" with
        the target's cell, then the end of "blue circle" with the reference's.
        """
        import string

        values, cells = self.fields(scene), self.named_cells(scene)
        out, pos = [], len(self.cfg.prompt_prefix)
        for literal, name, spec, conversion in string.Formatter().parse(self.cfg.template or self.task.template):
            pos += len(literal)
            if name is None:
                continue
            value = values[name]
            value = {"r": repr, "s": str, "a": ascii}[conversion](value) if conversion else value
            pos += len(format(value, spec or ""))
            if name in cells:
                out.append([pos, *cells[name]])
        return out

    def prompt(self, scene: Scene) -> str:
        return self.cfg.prompt_prefix + self.question(scene)

    def label(self, scene: Scene) -> int:
        """Index of the answer in the task's vocabulary (absolute position: the area)."""
        return scene.area

    def answer(self, scene: Scene) -> str:
        return self.task.answer_names[self.label(scene)]

    def labels(self) -> "np.ndarray":
        """Labels of every scene of the selection, in position order, without building the scenes."""
        return np.asarray([self.label_of(int(i)) for i in self.ids], np.int64)


def _round_to(x: float, k: int) -> int:
    """Nearest positive multiple of k."""
    return max(k, int(round(x / k)) * k)


def balanced_order(values: list[tuple], rng: np.random.Generator) -> list[int]:
    """An order of strata whose every prefix is as balanced as it can be in each attribute.

    ``values[k]`` holds stratum k's attribute values (for example shape, colour, size). Greedy:
    the next stratum is the one whose values have been used least so far; ties break by the seed.
    """
    priority = rng.permutation(len(values))
    counts: list[dict] = [dict() for _ in (values[0] if values else ())]
    remaining = list(range(len(values)))
    order = []
    while remaining:
        def load(k):
            return sum(c.get(v, 0) for c, v in zip(counts, values[k]))

        best = min(remaining, key=lambda k: (load(k), priority[k]))
        remaining.remove(best)
        order.append(best)
        for c, v in zip(counts, values[best]):
            c[v] = c.get(v, 0) + 1
    return order


def balanced_subset(
    stratum: np.ndarray, area: np.ndarray, n: int, rng: np.random.Generator, n_areas: int, stratum_values=None
) -> np.ndarray:
    """Positions of ``n`` items (a multiple of ``n_areas``) with exactly equal counts per area.

    Items fall into groups (stratum x area), a stratum being an attribute combination x size.
    Every group gives the same number of items; the remainder, J more per area, goes to J strata
    per area taken consecutively from a :func:`balanced_order` of the strata, so each stratum gets
    the remainder within one of the others and every attribute value stays as balanced as the size
    allows (exactly equal when ``n`` is a multiple of the strata count x ``n_areas``).
    """
    if n % n_areas:
        raise ValueError(f"subset size {n} is not a multiple of {n_areas}")
    strata = [int(s) for s in np.unique(stratum)]
    n_strata = len(strata)
    groups = {}
    for s in strata:
        for a in range(n_areas):
            groups[(s, a)] = rng.permutation(np.flatnonzero((stratum == s) & (area == a)))
    per_group, remainder = divmod(n, n_strata * n_areas)
    taken = {key: per_group for key in groups}
    values = [stratum_values(s) if stratum_values else (s,) for s in strata]
    order = [strata[k] for k in balanced_order(values, rng)]
    per_area = remainder // n_areas
    for a in range(n_areas):
        for j in range(per_area):
            taken[(order[(a * per_area + j) % n_strata], a)] += 1
    picks = []
    for key, count in taken.items():
        members = groups[key]
        if count > len(members):
            raise ValueError(f"asked for {count} scenes of stratum {key}, which has {len(members)}")
        picks.append(members[:count])
    return np.sort(np.concatenate(picks)) if picks else np.empty(0, np.int64)
