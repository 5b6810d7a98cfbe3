"""Search spaces and trial configs, without Ray: what a trial's config is, given its sampled values."""

from __future__ import annotations

import copy
import itertools
from pathlib import Path

from raysweep._configlib import deep_merge, from_dict, read_yaml, set_dotted
from raysweep.errors import UserError

INCLUDE_KEY = "include"


def trial_config(base: dict, values: dict, configs_root: Path):
    """The RunConfig of a trial: ``base`` (a resolved config dict), then included files, then keys.

    Relative paths (``configs_root``, data and eval-set files) are relative to the working directory;
    in a Tune trial, which runs in its trial folder, they are resolved against the folder its worker
    started in (:mod:`raysweep.sweep.paths`), so a resumed sweep finds them in its own working directory.
    """
    from raysweep.config import RunConfig
    from raysweep.sweep.paths import resolve_path, resolve_paths, trial_workdir

    workdir = trial_workdir()
    configs_root = Path(resolve_path(str(configs_root), workdir))
    raw = copy.deepcopy(base)
    raw.pop("sweep", None)
    includes = values.get(INCLUDE_KEY) or []
    for inc in [includes] if isinstance(includes, str) else includes:
        raw = deep_merge(raw, read_yaml(resolve_include(inc, configs_root)))
    for key, value in values.items():
        if key != INCLUDE_KEY:
            set_dotted(raw, key, value)
    return resolve_paths(from_dict(RunConfig, raw), workdir)


def resolve_include(name: str, configs_root: Path) -> Path:
    for candidate in (Path(name), configs_root / name):
        if candidate.is_file():
            return candidate
    raise UserError(f"sweep.space.include: {name} not found (paths are relative to {configs_root} or the working directory)")


GRID_KINDS = ("grid",)  # expanded into one trial per value; every other kind is sampled per trial


def grid_points(space: dict) -> list[dict]:
    """Every combination of the ``grid`` axes: Tune runs each once per sample (``num_samples``).

    ``choice`` and the other sampled kinds are drawn anew for each trial, so they are not points.
    """
    axes = [(k, spec["grid"]) for k, spec in space.items() if next(iter(spec)) in GRID_KINDS]
    return [dict(zip([k for k, _ in axes], combo)) for combo in itertools.product(*[vals for _, vals in axes])]


def trial_count(space: dict, num_samples: int) -> int:
    """Trials Tune runs for ``space``: grid points x ``num_samples``."""
    return max(1, len(grid_points(space))) * num_samples


def _probe_values(kind: str, values: list) -> list:
    """The values of an axis that pre-flight builds configs for: all of a list, the ends and inside of a range."""
    if kind in ("grid", "choice"):
        return list(values)
    low, high = values
    if kind == "randint":  # Tune's randint excludes the upper bound
        return [low, high - 1]
    inside = low * (high / low) ** 0.371 if kind == "loguniform" else low + (high - low) * 0.371
    return [low, high, float(inside)]


def check_points(space: dict) -> list[dict]:
    """Value sets that cover the space for checking: every grid x choice combination (sampled axes at
    their low end), then each other value of a sampled axis (high end, an inner non-integer value)."""
    probes = {key: _probe_values(*next(iter(spec.items()))) for key, spec in space.items()}
    listed = [k for k, spec in space.items() if next(iter(spec)) in ("grid", "choice")]
    ranges = [k for k in space if k not in listed]
    first = {k: probes[k][0] for k in ranges}
    points = [{**dict(zip(listed, combo)), **first} for combo in itertools.product(*[probes[k] for k in listed])]
    for key in ranges:
        points += [{**points[0], key: value} for value in probes[key][1:]]
    return points


def check_space(base: dict, space: dict, configs_root: Path, configs: list | None = None) -> int:
    """Build the config of every point of :func:`check_points`, so a bad value fails before any trial.

    Sampled axes are checked over their whole range and type (``uniform`` on an integer key fails
    here, not in a trial). Appends the built configs to ``configs`` when given.

    Returns:
        The number of grid points (see :func:`grid_points`).
    Raises:
        UserError: naming the failing point, e.g. ``sweep point {'lora.rank': 17.69}: lora.rank: ...``.
    """
    for values in check_points(space) or [{}]:
        try:
            built = trial_config(base, values, configs_root)
        except UserError as err:
            sampled = [f"{k} from {kind} {v}" for k in values for kind, v in space[k].items() if kind not in ("grid", "choice")]
            where = f" ({'; '.join(sampled)})" if sampled else ""
            raise UserError(f"sweep point {values}{where}: {err}") from None
        if configs is not None:
            configs.append(built)
    return len(grid_points(space))


def group_key(params: dict, group_by: list[str]) -> str:
    """``data.distractors=3,lora.rank=8`` for the summary (``all`` without group keys)."""
    if not group_by:
        return "all"
    return ",".join(f"{k}={params.get(k, '-')}" for k in group_by)
