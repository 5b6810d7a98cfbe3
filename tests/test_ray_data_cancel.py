"""A Ray Data task that Ray cancels mid-import must not leave its worker process to the next task.

Found in CI: Ray Data shuts an execution down by interrupting its running tasks (``ray.cancel``,
``KeyboardInterrupt``); one landed inside a first ``import torch``, the worker was reused, and every
later task there failed (``cannot initialize type "RpcBackendOptions"``), so a run restarted after a
Train worker fault died. :func:`raysweep.launch.data.retire_on_cancel` ends such a process.
"""

import time

import pytest

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def one_cpu_ray(tmp_path_factory):
    # One CPU: one task at a time, and the worker of the cancelled task is the one Ray reuses.
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, _temp_dir=str(tmp_path_factory.mktemp("ray")))
    yield
    ray.shutdown()


@ray.remote(num_cpus=1, max_retries=0)
def _run_stage(folder: str, batch_id: int) -> dict:
    """The training input's task function on one batch of :class:`tests.data_faults.HalfImportStage`."""
    import numpy as np

    from raysweep.launch.data import _batch_fn
    from tests.data_faults import HalfImportStage

    return _batch_fn({"id": np.array([batch_id])}, HalfImportStage(folder))


def test_a_task_cancelled_inside_an_import_retires_its_worker(tmp_path, one_cpu_ray):
    """Ray Data's shutdown cancels a running map task with ``ray.cancel(force=False)`` (Ray's
    PhysicalOperator._cancel); here the same cancel lands inside the stage's first import."""
    from ray.exceptions import TaskCancelledError, WorkerCrashedError

    (tmp_path / "slow").touch()
    ref = _run_stage.remote(str(tmp_path), 1)
    deadline = time.monotonic() + 60
    while not (tmp_path / "importing").exists():
        assert time.monotonic() < deadline, "the task never started its import"
        time.sleep(0.05)
    interrupted = int((tmp_path / "importing").read_text())
    ray.cancel(ref, force=False)
    with pytest.raises((TaskCancelledError, WorkerCrashedError)):
        ray.get(ref, timeout=60)
    (tmp_path / "slow").unlink()

    for batch_id in (1, 2):  # the next tasks import the module in a clean process (a reused one would raise)
        out = ray.get(_run_stage.remote(str(tmp_path), batch_id), timeout=120)
        assert out["id"].tolist() == [batch_id] and int(out["pid"][0]) != interrupted


def test_a_drivers_interrupt_is_not_turned_into_an_exit():
    from raysweep.launch.data import retire_on_cancel

    @retire_on_cancel
    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted()
