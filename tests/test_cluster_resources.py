"""Concurrency and the GPU check decide from the cluster's resources now and its autoscaler's node types.

Pure functions over a resources dict and node types: no cluster is started.
"""

import math
import subprocess
import sys

import pytest
from raysweep.config import load_config
from raysweep.errors import ConfigError, UserError
from raysweep.launch.resources import Capacity, NodeType, _bootstrap_node_types, check_gpus, concurrent_trials, trial_resources

HEAD = NodeType("head", {"CPU": 0.0}, 1)
GPU8 = NodeType("gpu-8x", {"CPU": 88.0, "GPU": 8.0}, 8)
AUTOSCALING_FROM_ZERO = Capacity({"CPU": 0.0, "memory": 1e10}, [HEAD, GPU8], "test")


def _cfg(*overrides):
    return load_config("configs/train-tiny.yaml", list(overrides))


def test_trial_resources_count_the_trial_driver_and_its_workers():
    cfg = _cfg("train.num_workers=4", "train.cpus_per_worker=8", "train.use_gpu=true", "sweep.trial_cpus=1")
    assert trial_resources(cfg) == {"CPU": 33.0, "GPU": 4.0}
    assert trial_resources(_cfg("train.num_workers=2", "train.cpus_per_worker=1")) == {"CPU": 2.5}


def test_autoscaling_cluster_with_no_gpu_yet_queues_trials_for_the_nodes_to_come():
    need = {"CPU": 33.0, "GPU": 4.0}
    # 8 nodes x 8 GPUs = 64 GPUs -> 16 trials of 4 GPUs; CPUs (704 / 33 = 21) are not the limit.
    assert concurrent_trials(need, AUTOSCALING_FROM_ZERO) == 16
    assert concurrent_trials(need, AUTOSCALING_FROM_ZERO, configured=3) == 3
    check_gpus(True, 4, AUTOSCALING_FROM_ZERO)  # zero GPUs now is not an error


def test_fixed_cluster_uses_its_resources_now():
    local = Capacity({"CPU": 2.0})
    assert concurrent_trials({"CPU": 2.5}, local) == 1  # at least one, as before
    assert concurrent_trials({"CPU": 1.0}, Capacity({"CPU": 6.0, "GPU": 2.0})) == 6
    assert concurrent_trials({"CPU": 1.0, "GPU": 1.0}, Capacity({"CPU": 6.0, "GPU": 2.0})) == 2
    check_gpus(False, 4, local)


def test_nodes_already_up_count_when_above_the_autoscaler_maximum():
    cap = Capacity({"CPU": 200.0, "GPU": 16.0}, [HEAD, NodeType("gpu", {"CPU": 88.0, "GPU": 8.0}, 1)])
    assert cap.most("GPU") == 16.0 and concurrent_trials({"CPU": 1.0, "GPU": 4.0}, cap) == 4


def test_unbounded_node_group_lets_tune_queue_freely():
    cap = Capacity({"CPU": 0.0}, [HEAD, NodeType("gpu", {"CPU": 8.0, "GPU": 1.0}, -1)])
    assert cap.most("GPU") == math.inf
    assert concurrent_trials({"CPU": 1.5, "GPU": 1.0}, cap) is None
    check_gpus(True, 64, cap)


def test_gpu_run_refused_when_the_cluster_can_never_provide_the_gpus():
    with pytest.raises(UserError, match=r"at most 0 GPUs .*no autoscaler.*set train.use_gpu=false") as err:
        check_gpus(True, 2, Capacity({"CPU": 16.0}))
    assert "\n" not in str(err.value)
    cpu_only = Capacity({"CPU": 0.0}, [HEAD, NodeType("cpu", {"CPU": 32.0}, 10)], "the autoscaler's cluster config")
    with pytest.raises(UserError, match=r"train.num_workers=1 .*at most 0 GPUs .*autoscaler can add no more"):
        check_gpus(True, 1, cpu_only)
    with pytest.raises(UserError, match=r"train.num_workers=16.*at most 8 GPUs"):
        check_gpus(True, 16, Capacity({}, [HEAD, NodeType("gpu", {"GPU": 8.0}, 1)]))


def test_bootstrap_config_of_the_cluster_launcher(tmp_path, repo_root):
    """The AWS cluster file's node types as `ray up` leaves them on the head: 8 workers of 8 GPUs."""
    path = tmp_path / "ray_bootstrap_config.yaml"
    path.write_text((repo_root / "cluster" / "aws-cluster.yaml").read_text())
    types = {t.name: t for t in _bootstrap_node_types(path)}
    assert types["head-cpu"].max_count == 1 and types["head-cpu"].resources == {"CPU": 0.0}
    assert types["worker-gpu-8x"].max_count == 8 and types["worker-gpu-8x"].resources["GPU"] == 8.0
    cap = Capacity({"CPU": 0.0}, list(types.values()))
    assert cap.most("GPU") == 64.0 and concurrent_trials({"CPU": 9.0, "GPU": 4.0}, cap) == 16
    assert _bootstrap_node_types(tmp_path / "absent.yaml") == []


def test_trial_cpus_and_max_concurrent_are_validated():
    with pytest.raises(ConfigError, match="sweep.trial_cpus"):
        _cfg("sweep.trial_cpus=-1")
    with pytest.raises(ConfigError, match="sweep.max_concurrent"):
        _cfg("sweep.max_concurrent=-2")
    assert _cfg("sweep.trial_cpus=0.25").sweep.trial_cpus == 0.25


@pytest.mark.parametrize("command", ["sweep configs/quickstart.yaml", "train configs/train-tiny.yaml"])
def test_use_gpu_on_a_gpu_less_local_ray_is_one_line_and_exit_2(command, tmp_path, tmp_path_factory):
    """A local Ray (no autoscaler) with no GPU: refused after connecting, before any run is written."""
    ray_dir = tmp_path_factory.mktemp("ray")  # short: Ray's socket paths must stay under 108 bytes
    argv = [*command.split(), "train.use_gpu=true", "train.eval_sets=[{name: civet_test, config: configs/data/civet_test.yaml}]",
            f"sweep.storage_path={tmp_path}/sweeps", f"train.storage_path={tmp_path}/runs", f"mlflow.tracking_uri=sqlite:///{tmp_path}/m.db"]  # fmt: skip
    code = ("import ray, sys; from raysweep.cli import main; "
            f"ray.init(num_cpus=1, num_gpus=0, include_dashboard=False, _temp_dir={str(ray_dir)!r}); sys.exit(main({argv!r}))")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    (line,) = [ln for ln in result.stderr.splitlines() if "train.use_gpu" in ln]
    assert "at most 0 GPUs (ray.cluster_resources(); no autoscaler" in line
    assert not (tmp_path / "sweeps").exists() and not (tmp_path / "runs").exists()


def test_node_groups_read_from_the_autoscaler_cluster_config(monkeypatch):
    """The proto KubeRay's autoscaler reports to the GCS (what Ray Train's own resource check reads)."""
    from ray._private.state import state
    from ray.core.generated import autoscaler_pb2

    from raysweep.launch.resources import _gcs_node_types

    config = autoscaler_pb2.ClusterConfig()
    config.node_group_configs.add(name="headgroup", resources={"CPU": 0}, max_count=1)
    config.node_group_configs.add(name="gpu-8x", resources={"CPU": 88, "GPU": 8}, min_count=0, max_count=8)
    monkeypatch.setattr(state, "get_cluster_config", lambda: config)
    types = _gcs_node_types()
    assert [(t.name, t.max_count) for t in types] == [("headgroup", 1), ("gpu-8x", 8)]
    assert Capacity({"CPU": 0.0}, types).most("GPU") == 64.0
    monkeypatch.setattr(state, "get_cluster_config", lambda: None)
    assert _gcs_node_types() == []


def test_ray_data_pipeline_needs_a_cpu_beside_the_workers():
    """Two CPUs, one worker of 1 CPU: room for the pipeline; 2 workers of 1 CPU: refused, one line;
    train.data_cpus is what the pipeline needs and what a sweep counts."""
    from raysweep.launch.resources import check_data_cpus

    two = Capacity({"CPU": 2.0})
    check_data_cpus(load_config(None, ["train.num_workers=1", "train.cpus_per_worker=1"]), two)
    full = load_config(None, ["train.num_workers=2", "train.cpus_per_worker=1"])
    with pytest.raises(UserError, match=r"^train.data_loader=ray_data needs train.data_cpus=1 CPU beside the Train workers .* set train.data_loader=worker"):
        check_data_cpus(full, two)
    tight = load_config(None, ["train.num_workers=1", "train.cpus_per_worker=1.5"])
    with pytest.raises(UserError, match=r"needs train.data_cpus=1 CPU .* reserve 1.5"):
        check_data_cpus(tight, two)
    check_data_cpus(load_config(None, ["train.num_workers=1", "train.cpus_per_worker=1.5", "train.data_cpus=0.5"]), two)
    check_data_cpus(load_config(None, ["train.num_workers=2", "train.cpus_per_worker=1", "train.data_loader=worker"]), two)
    # a sweep counts each trial's driver and leaves the pipeline's share out of the concurrency
    sweep = load_config(None, ["train.num_workers=1", "train.cpus_per_worker=0.5", "sweep.trial_cpus=0.5"])
    assert trial_resources(sweep, data=True)["CPU"] == 1.0 + 1.0
    quarter = load_config(None, ["train.data_cpus=0.25"])
    assert trial_resources(quarter, data=True)["CPU"] == trial_resources(quarter)["CPU"] + 0.25
    assert concurrent_trials(trial_resources(sweep, data=True), two) == 1
    check_data_cpus(sweep, two, trials=1, sweep=True)
    with pytest.raises(UserError, match="sweep.max_concurrent"):
        check_data_cpus(sweep, two, trials=2, sweep=True)
