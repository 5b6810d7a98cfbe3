"""Search spaces and trial configs, without Ray: what a trial's config is, given its sampled values."""

from __future__ import annotations

import copy
import itertools
from pathlib import Path

from raysweep._configlib import deep_merge, from_dict, read_yaml, set_dotted
from raysweep.errors import UserError

INCLUDE_KEY = "include"


def trial_config(base: dict, values: dict, configs_root: Path):
    """The RunConfig of a trial: ``base`` (a resolved config dict), then included files, then keys."""
    from raysweep.config import RunConfig

    raw = copy.deepcopy(base)
    raw.pop("sweep", None)
    includes = values.get(INCLUDE_KEY) or []
    for inc in [includes] if isinstance(includes, str) else includes:
        raw = deep_merge(raw, read_yaml(resolve_include(inc, configs_root)))
    for key, value in values.items():
        if key != INCLUDE_KEY:
            set_dotted(raw, key, value)
    return from_dict(RunConfig, raw)


def resolve_include(name: str, configs_root: Path) -> Path:
    for candidate in (Path(name), configs_root / name):
        if candidate.is_file():
            return candidate
    raise UserError(f"sweep.space.include: {name} not found (paths are relative to {configs_root} or the working directory)")


def grid_points(space: dict) -> list[dict]:
    """Every combination of the grid/choice axes (sampled axes stay out; for checks and counts)."""
    axes = [(k, next(iter(v.values()))) for k, v in space.items() if next(iter(v)) in ("grid", "choice")]
    return [dict(zip([k for k, _ in axes], combo)) for combo in itertools.product(*[vals for _, vals in axes])]


def check_space(base: dict, space: dict, configs_root: Path) -> int:
    """Build every grid point's config now, so a bad value fails before any trial starts."""
    points = grid_points(space) or [{}]
    for values in points:
        sampled = {k: next(iter(v.values()))[0] for k, v in space.items() if next(iter(v)) not in ("grid", "choice")}
        try:
            trial_config(base, {**values, **sampled}, configs_root)
        except UserError as err:
            raise UserError(f"sweep point {values}: {err}") from None
    return len(points)


def group_key(params: dict, group_by: list[str]) -> str:
    """``data.distractors=3,lora.rank=8`` for the summary (``all`` without group keys)."""
    if not group_by:
        return "all"
    return ",".join(f"{k}={params.get(k, '-')}" for k in group_by)
