"""Kill the sweep's driver at each distinct moment, then --resume: nothing lost, nothing done twice.

Moments, each triggered exactly through a hook rather than a timer: mid-epoch (the training loop's
``on_step_end``, tests/loop_faults.py), right after the scheduler stopped a trial, when training has
ended and the final evaluation begins, and during registration (the ledger's events,
tests/sweep_faults.py). After ``raysweep sweep --resume``: every trial finished or stayed stopped
exactly once (one MLflow run each, a stopped trial not trained again), MLflow holds each epoch once,
the summary's counts match, each group's adapter registered once.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[1]

_DRIVER = r"""
import functools, os, sys
os.environ["RAYSWEEP_TEST_KILL_PID"] = str(os.getpid())
import raysweep.launch.sweep as launch
if os.environ.get("RAYSWEEP_TEST_LOOP_MARKER"):
    fault = ("tests.loop_faults:FailOnce", {"marker": os.environ["RAYSWEEP_TEST_LOOP_MARKER"], "moment": "on_step_end",
                                           "epoch": 2, "step": 3, "pid": os.getpid(),
                                           "signal_name": os.environ.get("RAYSWEEP_TEST_LOOP_SIGNAL", "SIGKILL")})
    launch.run_sweep = functools.partial(launch.run_sweep, loop_callbacks=[fault])
from raysweep.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _sweep_args(tmp_path: Path) -> list[str]:
    return ["sweep", "configs/quickstart.yaml",
            "data.combos=[{shapes: [circle, star], colors: [white]}, {shapes: [plus], colors: [red, blue]}]",
            "model.tiny_layers=2", "train.batch_size=8", "train.steps_per_epoch=6", "train.val_limit=18", "train.epochs=2",
            "train.eval_sets=[{name: civet, config: configs/data/civet_test.yaml, limit: 18}]",
            "sweep.space={train.lr: {grid: [1.0e-3, 1.0e-7]}}", "sweep.group_by=[train.lr]", "sweep.grace_period=1",
            "sweep.reduction_factor=2", "sweep.max_concurrent=1", "sweep.name=faults", f"sweep.storage_path={tmp_path}/sweeps",
            "sweep.callbacks=[tests.sweep_faults:KillOnEvent]", "mlflow.experiment=faults", "mlflow.registered_model=faults-model",
            f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow.db"]  # fmt: skip


# The kills in the order the sweep reaches them: trial 0 (lr 1e-3) trains 2 epochs and completes,
# trial 1 (lr 1e-7) is stopped by ASHA after epoch 1 (one trial at a time), then registration.
MOMENTS = ["mid_epoch", "trained", "stopped_early", "registered"]


def test_driver_killed_at_each_moment_then_resumed(tmp_path):
    """One sweep, killed at each moment in turn and resumed each time; the last resume finishes it."""
    from mlflow import MlflowClient

    from raysweep.sweep.ledger import Ledger

    base_env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    base_env.pop("RAY_ADDRESS", None)
    ledger = Ledger(str(tmp_path / "sweeps" / "faults" / "ledger"))
    for i, moment in enumerate(MOMENTS):
        marker = tmp_path / f"killed-{moment}"
        env = {**base_env, "RAYSWEEP_TEST_KILL_MARKER": str(marker)}
        if moment == "mid_epoch":
            env["RAYSWEEP_TEST_LOOP_MARKER"] = str(marker)
        else:
            env["RAYSWEEP_TEST_KILL_EVENT"] = moment
        args = _sweep_args(tmp_path) + (["--resume"] if i else [])
        run = subprocess.run([sys.executable, "-c", _DRIVER, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
        tail = "\n".join(line[:300] for line in (run.stdout + run.stderr).splitlines()[-40:])
        assert run.returncode == -9 and marker.exists(), f"the driver was not killed at {moment} ({run.returncode}):\n{tail}"
        states = ledger.states()
        if moment == "trained":  # killed as the final evaluation began: trained, not completed
            assert any(e["event"] == "trained" for e in ledger.events()[min(states)]) and states[min(states)].status == "running"
        if moment == "stopped_early":
            assert sorted(s.status for s in states.values()) == ["completed", "stopped_early"]

    resumed = subprocess.run([sys.executable, "-m", "raysweep.cli", *_sweep_args(tmp_path), "--resume"], cwd=REPO, env=base_env,
                             capture_output=True, text=True, timeout=900)  # fmt: skip
    out = resumed.stdout + resumed.stderr
    (tmp_path / "resumed.log").write_text(out)
    assert resumed.returncode == 0, "\n".join(line[:300] for line in out.splitlines()[-60:])
    assert "before the resume" in out  # the group registered before the last kill was not registered again

    states = ledger.states()
    assert sorted(s.status for s in states.values()) == ["completed", "stopped_early"], states
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    exp = client.get_experiment_by_name("faults")
    runs = client.search_runs([exp.experiment_id])
    trials = [r for r in runs if r.data.tags.get("raysweep.role") == "trial"]
    assert sorted(r.data.tags["raysweep.trial_id"] for r in trials) == sorted(states), "a trial got a second MLflow run"
    for run in trials:
        state = states[run.data.tags["raysweep.trial_id"]]
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
        assert len(steps) == len(set(steps)), f"an epoch was logged twice: {steps}"
        assert sorted(steps) == sorted(state.epochs)
        want = {"completed": "FINISHED", "stopped_early": "KILLED"}[state.status]
        assert run.info.status == want and run.data.tags["raysweep.status"] == state.status
        if state.status == "stopped_early":  # nothing after the scheduler's decision
            events = ledger.events()[run.data.tags["raysweep.trial_id"]]
            stop = next(i for i, e in enumerate(events) if e["event"] == "stopped_early")
            assert not [e for e in events[stop:] if e["event"] in ("started", "trained", "completed")], "the stopped trial ran again"
            assert max(steps) == events[stop]["data"]["epoch"], "an epoch after the stop reached MLflow"
        else:
            assert steps == [1, 2] and "test/civet/acc" in run.data.metrics
    parent = next(r for r in runs if r.data.tags.get("raysweep.role") == "sweep")
    m = parent.data.metrics
    assert (m["trials"], m["completed"], m["stopped_early"], m["errored"]) == (2, 1, 1, 0)
    assert m["trial_epochs"] == sum(len(s.epochs) for s in states.values())
    versions = client.search_model_versions("name = 'faults-model'")
    assert len(versions) == 1, "the group's adapter was registered twice (or not at all)"


def test_ctrl_c_mid_epoch_exits_130_and_resume_finishes(tmp_path):
    """SIGINT while a trial trains (fifo): Ray reports the trial TERMINATED, the ledger knows better."""
    from raysweep.sweep.ledger import Ledger

    env = {**os.environ, "PYTHONUNBUFFERED": "1", "RAYSWEEP_TEST_LOOP_MARKER": str(tmp_path / "interrupted"),
           "RAYSWEEP_TEST_LOOP_SIGNAL": "SIGINT"}  # fmt: skip
    env.pop("RAY_ADDRESS", None)
    args = [a for a in _sweep_args(tmp_path) if not a.startswith("sweep.callbacks")] + ["sweep.scheduler=fifo"]
    first = subprocess.run([sys.executable, "-c", _DRIVER, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    out = first.stdout + first.stderr
    assert first.returncode == 130, "\n".join(line[:300] for line in out.splitlines()[-40:])
    assert "interrupted" in out and "--resume" in out and "### Sweep" not in out  # no half summary
    states = Ledger(str(tmp_path / "sweeps" / "faults" / "ledger")).states()
    assert "completed" not in {s.status for s in states.values()}
    resumed = subprocess.run([sys.executable, "-m", "raysweep.cli", *args, "--resume"], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=900)  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-2000:]
    states = Ledger(str(tmp_path / "sweeps" / "faults" / "ledger")).states()
    assert sorted(s.status for s in states.values()) == ["completed", "completed"]


def test_resume_from_another_working_directory(tmp_path):
    """The driver dies mid-epoch in one folder; --resume runs in another, the first one gone.

    Trial configs hold the paths inside the working directory relative to it (raysweep.sweep.paths):
    the resumed trial reads its eval set's config from the second folder. Absolute paths into the
    first would fail the trial there.
    """
    import shutil

    from mlflow import MlflowClient

    from raysweep.sweep.ledger import Ledger

    first = tmp_path / "first"
    shutil.copytree(REPO / "configs", first / "configs")
    (first / "tests").symlink_to(REPO / "tests")  # the loop fault's module, for the workers
    args = [a for a in _sweep_args(tmp_path) if not a.startswith(("sweep.callbacks", "sweep.space"))]
    args += ["sweep.space={train.lr: {grid: [1.0e-3]}}", "sweep.scheduler=fifo"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "RAYSWEEP_TEST_LOOP_MARKER": str(tmp_path / "killed")}
    env.pop("RAY_ADDRESS", None)
    run = subprocess.run([sys.executable, "-c", _DRIVER, *args], cwd=first, env=env, capture_output=True, text=True, timeout=900)
    tail = "\n".join(line[:300] for line in (run.stdout + run.stderr).splitlines()[-40:])
    assert run.returncode == -9 and (tmp_path / "killed").exists(), f"the driver was not killed mid-epoch ({run.returncode}):\n{tail}"

    second = tmp_path / "second"
    first.rename(second)
    resumed = subprocess.run([sys.executable, "-m", "raysweep.cli", *args, "--resume"], cwd=second, env=env,
                             capture_output=True, text=True, timeout=900)  # fmt: skip
    out = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, "\n".join(line[:300] for line in out.splitlines()[-60:])
    states = Ledger(str(tmp_path / "sweeps" / "faults" / "ledger")).states()
    assert [s.status for s in states.values()] == ["completed"], states
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    (trial,) = [r for r in client.search_runs([client.get_experiment_by_name("faults").experiment_id])
                if r.data.tags.get("raysweep.role") == "trial"]  # fmt: skip
    assert sorted(m.step for m in client.get_metric_history(trial.info.run_id, "train/loss")) == [1, 2]
    assert "test/civet/acc" in trial.data.metrics
