"""The ``sweep:`` config section: a search space over any config key, ASHA, summaries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from raysweep._configlib import doc
from raysweep.errors import ConfigError

SPACE_KINDS = ("grid", "choice", "uniform", "loguniform", "randint")
SEED_KEY = "train.seed"  # the key sweep.seeds varies: it seeds the LoRA init and the data order


@dataclass
class SweepConfig:
    """A Ray Tune search over config keys; every trial is a full `raysweep train` run."""

    name: str = doc("Sweep name (the MLflow parent run and the Tune experiment folder).", "sweep")
    space: dict[str, dict[str, Any]] = doc(
        "Search space: dotted config key -> {grid|choice: [values]} or {uniform|loguniform|randint: [low, high]}. "
        "The key `include` takes YAML files applied on top of the base config (e.g. one per model family).",
        factory=dict,
    )
    num_samples: int = doc("Samples of the space (each grid point is repeated this many times).", 1)
    seeds: list[int] = doc(
        "Replicates: every point of the space runs once per seed (train.seed, and with it the data order, takes each "
        "value); summaries, reports and the registration of group bests then use the mean over seeds with a 95% "
        "interval. Empty: one run per point with the config's train.seed.",
        factory=list,
    )
    metric: str = doc("Metric ASHA and the summary rank trials by.", "val/acc")
    mode: Literal["max", "min"] = doc("Whether the metric is better high or low.", "max")
    scheduler: Literal["asha", "fifo"] = doc("asha stops weak trials early; fifo runs every trial to the end.", "asha")
    grace_period: int = doc("ASHA: epochs every trial gets before it can be stopped.", 1)
    reduction_factor: float = doc("ASHA: keep 1/reduction_factor of the trials at each rung.", 3.0)
    max_concurrent: int = doc(
        "Trials at once (0 = as many as the cluster holds at its largest: its resources now or, on an autoscaling "
        "cluster, once every node its autoscaler may add is up; trials queue for nodes still to come).",
        0,
    )
    trial_cpus: float = doc(
        "CPUs reserved for each trial's own driver (the Tune function that starts its Ray Train workers and waits on "
        "them), on top of train.num_workers x train.cpus_per_worker.",
        0.5,
    )
    group_by: list[str] = doc("Config keys whose values group trials in the summary (best trial per group).", factory=list)
    register_best: bool = doc("Register the best adapter of each group in the MLflow registry.", True)
    storage_path: str = doc("Where the Tune experiment state and raysweep's trial ledger live (for --resume).", "runs/sweeps")
    callbacks: list[str] = doc(
        "Listeners of the trial ledger, as module:Class (built without arguments; on_event(trial_id, event, data) "
        "is called in the process that records each event: started, epoch, stopped_early, trained, completed, "
        "errored, interrupted, registered). For notifications; tests inject faults here.",
        factory=list,
    )

    def search_space(self) -> dict[str, dict[str, Any]]:
        """``space`` with the seeds as one more grid axis (``train.seed``) when ``seeds`` is set."""
        return {**self.space, SEED_KEY: {"grid": list(self.seeds)}} if self.seeds else dict(self.space)

    def validate(self) -> None:
        if self.seeds:
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in self.seeds):
                raise ConfigError("seeds", f"expected a list of integers, got {self.seeds!r}")
            if len(set(self.seeds)) != len(self.seeds):
                raise ConfigError("seeds", f"a seed is listed twice: {self.seeds}")
            if SEED_KEY in self.space:
                raise ConfigError("seeds", f"{SEED_KEY} is also in sweep.space; list the seeds in one place (sweep.seeds)")
        for key, spec in self.space.items():
            if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in SPACE_KINDS:
                raise ConfigError(f"space.{key}", f"expected one of {{{', '.join(SPACE_KINDS)}: ...}}, got {spec!r}")
            kind, values = next(iter(spec.items()))
            if not isinstance(values, list) or not values:
                raise ConfigError(f"space.{key}.{kind}", f"expected a non-empty list, got {values!r}")
            if kind in ("uniform", "loguniform", "randint"):
                if len(values) != 2 or not all(isinstance(v, (int, float)) for v in values) or values[0] >= values[1]:
                    raise ConfigError(f"space.{key}.{kind}", f"expected [low, high] with low < high, got {values}")
                if kind == "loguniform" and values[0] <= 0:
                    raise ConfigError(f"space.{key}.{kind}", f"bounds must be > 0, got {values}")
        if self.trial_cpus < 0:
            raise ConfigError("trial_cpus", f"must be >= 0, got {self.trial_cpus}")
        if self.max_concurrent < 0:
            raise ConfigError("max_concurrent", f"must be >= 0 (0 = as many as the cluster holds), got {self.max_concurrent}")
        if self.num_samples < 1:
            raise ConfigError("num_samples", f"must be >= 1, got {self.num_samples}")
        if self.grace_period < 1:
            raise ConfigError("grace_period", f"must be >= 1, got {self.grace_period}")
        if self.reduction_factor <= 1:
            raise ConfigError("reduction_factor", f"must be > 1, got {self.reduction_factor}")
