"""What the Ray cluster can hold: its resources now and what its autoscaler can add.

A cluster whose GPU workers autoscale from zero has no GPU when a job is submitted, so neither the
driver's machine nor ``ray.cluster_resources()`` alone says whether a GPU run can ever be placed or
how many trials can run at once. The autoscaler's node types (their resources and maximum counts)
do: :func:`read_capacity` reads them from where Ray keeps them (the cluster config the autoscaler
reports to the GCS, as KubeRay's does, or the cluster launcher's ``~/ray_bootstrap_config.yaml``
on the head), and the pure functions below decide from a :class:`Capacity`, so they are tested
without a cluster.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from raysweep.errors import UserError

BOOTSTRAP_CONFIG = "~/ray_bootstrap_config.yaml"  # written on the head by `ray up` (the cluster launcher)


@dataclass
class NodeType:
    """One kind of node the autoscaler can start: its resources and how many at most (-1: no limit)."""

    name: str
    resources: dict[str, float]
    max_count: int


@dataclass
class Capacity:
    """The cluster's resources now, and the node types its autoscaler can add (empty: a fixed cluster)."""

    now: dict[str, float]
    node_types: list[NodeType] = field(default_factory=list)
    source: str = "ray.cluster_resources()"

    @property
    def autoscaling(self) -> bool:
        return any(t.max_count != 0 and t.resources for t in self.node_types)

    def most(self, resource: str) -> float:
        """The most of ``resource`` the cluster can ever have at once (``math.inf`` when unbounded)."""
        scaled = 0.0
        for t in self.node_types:
            amount = t.resources.get(resource, 0)
            if amount and t.max_count < 0:
                return math.inf
            scaled += amount * max(t.max_count, 0)
        return max(self.now.get(resource, 0.0), scaled)


def trial_resources(cfg, data: bool = False) -> dict[str, float]:
    """Resources of one trial: its driver (``sweep.trial_cpus``) plus its Ray Train workers; with
    ``data``, plus ``train.data_cpus`` for its ray_data pipeline (one task at a time; Ray Data tasks run
    outside the trial's placement group, so this share is only counted, never reserved)."""
    need = {"CPU": cfg.sweep.trial_cpus + cfg.train.num_workers * cfg.train.cpus_per_worker}
    if data and cfg.train.data_loader == "ray_data":
        need["CPU"] += cfg.train.data_cpus
    if cfg.train.use_gpu:
        need["GPU"] = float(cfg.train.num_workers)
    return need


def check_data_cpus(cfg, capacity: Capacity, trials: int = 1, sweep: bool = False) -> None:
    """Refuse ``train.data_loader=ray_data`` when no CPU is left for its pipeline beside ``trials`` runs' workers.

    The pipeline's stages are Ray tasks that need free CPUs; without them the workers wait on a
    pipeline that never starts (Ray Data's hang on a full cluster).

    Raises:
        UserError: the cluster's CPUs (at its largest) minus the runs' reservations are below ``train.data_cpus``.
    """
    if cfg.train.data_loader != "ray_data":
        return
    taken = trials * (trial_resources(cfg)["CPU"] if sweep else cfg.train.num_workers * cfg.train.cpus_per_worker)
    spare = capacity.most("CPU") - taken
    if spare >= cfg.train.data_cpus:
        return
    raise UserError(f"train.data_loader=ray_data needs train.data_cpus={cfg.train.data_cpus:g} CPU beside the Train workers for its "
                    f"pipeline, but the Ray cluster has {capacity.most('CPU'):g} CPUs and {trials} run(s) reserve {taken:g}; "
                    "set train.data_loader=worker, lower train.data_cpus, train.cpus_per_worker or train.num_workers"
                    + (", or set sweep.max_concurrent" if sweep else ""))  # fmt: skip


def concurrent_trials(need: dict[str, float], capacity: Capacity, configured: int = 0) -> int | None:
    """How many trials Tune may run at once; ``None`` lets Tune queue as many as it likes.

    ``configured`` (``sweep.max_concurrent``) wins when set. Otherwise the count is what the cluster
    holds at its largest (now, or once the autoscaler has added every node it may), so trials queue
    for nodes that do not exist yet instead of the sweep running one trial for its whole life.
    """
    if configured:
        return configured
    fits = [capacity.most(key) / amount for key, amount in need.items() if amount > 0]
    bounded = [f for f in fits if f != math.inf]
    if not bounded:
        return None
    return max(1, int(min(bounded)))


def check_gpus(use_gpu: bool, num_workers: int, capacity: Capacity) -> None:
    """Refuse ``train.use_gpu=true`` only when the cluster can never provide one GPU per worker.

    Zero GPUs now is fine when the autoscaler can add GPU nodes.

    Raises:
        UserError: too few GPUs now and none (or too few) that the autoscaler can add.
    """
    if not use_gpu:
        return
    most = capacity.most("GPU")
    if most >= num_workers:
        return
    where = "its autoscaler can add no more" if capacity.autoscaling else "no autoscaler to add GPU nodes"
    raise UserError(f"train.use_gpu is true with train.num_workers={num_workers} (one GPU each), but the Ray cluster can have "
                    f"at most {most:g} GPUs ({capacity.source}; {where}); set train.use_gpu=false, lower train.num_workers, "
                    f"or give the cluster GPU nodes")  # fmt: skip


def read_capacity() -> Capacity:
    """The connected cluster's :class:`Capacity` (call after ``ray.init``)."""
    import ray

    now = {k: float(v) for k, v in ray.cluster_resources().items()}
    node_types = _gcs_node_types()
    if node_types:
        return Capacity(now, node_types, "the autoscaler's cluster config")
    node_types = _bootstrap_node_types(Path(BOOTSTRAP_CONFIG).expanduser())
    if node_types:
        return Capacity(now, node_types, BOOTSTRAP_CONFIG)
    return Capacity(now)


def _gcs_node_types() -> list[NodeType]:
    """Node groups of the cluster config the autoscaler reports to the GCS (what Ray Train checks too)."""
    try:
        from ray._private.state import state

        config = state.get_cluster_config()
    except Exception:  # a private API: absent or changed, the cluster is taken as fixed
        return []
    if config is None:
        return []
    return [NodeType(g.name, {k: float(v) for k, v in g.resources.items()}, int(g.max_count)) for g in config.node_group_configs]


def _bootstrap_node_types(path: Path) -> list[NodeType]:
    """``available_node_types`` of a cluster-launcher config: resources and ``max_workers`` per type."""
    if not path.is_file():
        return []
    import yaml

    config = yaml.safe_load(path.read_text()) or {}
    head = config.get("head_node_type")
    types = []
    for name, spec in (config.get("available_node_types") or {}).items():
        count = 1 if name == head else int(spec.get("max_workers", config.get("max_workers", 0)))
        types.append(NodeType(name, {k: float(v) for k, v in (spec.get("resources") or {}).items()}, count))
    return types


def cluster_gpu_check(cfg, sweep: bool = False) -> Capacity:
    """Read the connected cluster's capacity and check ``train.use_gpu`` and, for one run (a sweep
    checks its concurrency itself), the ray_data pipeline's CPUs against it; returns the capacity."""
    capacity = read_capacity()
    check_gpus(cfg.train.use_gpu, cfg.train.num_workers, capacity)
    if not sweep:
        check_data_cpus(cfg, capacity)
    return capacity
