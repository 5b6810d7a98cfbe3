"""What ``raysweep sweep`` prints: Ray's own lines off unless ``--verbose``, one live trials table.

Ray's chatter is turned off by Ray's own settings where it has one:

- ``ray.init(log_to_driver=False)``: workers' and actors' output (Train's ``Reporting training
  result`` dumps, ``PreemptionWatcher``/``PlacementGroupCleaner`` warnings, the trials' tqdm bars)
  stays in the session's log files under ``/tmp/ray/session_*/logs`` and never reaches the driver;
- ``ray.init(logging_level=ERROR)``: the driver's ``ray`` logger (cluster start, token notice);
- ``RAY_AIR_NEW_OUTPUT=0`` with ``RunConfig(verbose=0)``: Tune's legacy reporter at verbosity 0
  prints nothing (the new engine still prints its configuration box and result paths at 0);
- Ray Train's ``RunConfig(logging_config=LoggingConfig(log_level="WARNING"))`` (set by
  :mod:`raysweep.launch.train`) for Train's own logger.

What has no setting is raysweep's filter: the ``ray.tune``/``ray.train``/``ray.data`` and MLflow
loggers of the driver are raised to ERROR (MLflow's ``Creating initial MLflow database tables``),
library warnings are ignored, and two kinds of lines printed with no setting are dropped
(:class:`DropLines`): the raylet's warnings, which the driver prints whatever ``log_to_driver``
says (``WARNING: 8 PYTHON worker processes have been started``; its errors still show), and MLflow's
``Successfully registered model``/``Created version`` notes (raysweep prints its own line). Trial progress comes through Tune's results instead, into the
:class:`~raysweep.sweep.board.TrialBoard`.
"""

from __future__ import annotations

import logging
import os
import re
import sys

from ray import tune

from raysweep.sweep.board import TrialBoard

QUIET_LOGGERS = ("ray", "ray.tune", "ray.train", "ray.data", "mlflow", "alembic", "py.warnings")


def init_sweep_ray(verbose: bool) -> None:
    """Start or connect to Ray for a sweep; quiet unless ``verbose`` (then Ray's defaults).

    A local cluster started here tells its workers where its own dashboard is
    (``RAY_API_SERVER_ADDRESS``): Ray Train's placement-group cleaner looks the dashboard up, and
    on a machine with a second local Ray instance (another user's, a test's) the lookup fails with
    ``Found multiple active Ray instances``, the cleaner dies, the placement groups of stopped trials
    are never freed and the next trials wait for resources forever.
    """
    import ray

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if ray.is_initialized():
        return
    from raysweep.launch.train import worker_runtime_env

    kwargs: dict = {"log_to_driver": True, "runtime_env": worker_runtime_env()}
    if not os.environ.get("RAY_ADDRESS"):
        port = free_port()
        kwargs.update(dashboard_port=port, runtime_env=worker_runtime_env(RAY_API_SERVER_ADDRESS=f"http://127.0.0.1:{port}"))
    if not verbose:
        quiet_driver()
        kwargs.update(log_to_driver=False, logging_level=logging.ERROR)
        sys.stdout = DropLines(sys.stdout, RAYLET_WARNING)
        sys.stderr = DropLines(sys.stderr, MLFLOW_REGISTRY_NOTES)
    ray.init(**kwargs)


def free_port() -> int:
    """A TCP port nothing listens on now (the local dashboard's)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def quiet_driver() -> None:
    """raysweep's filter for the driver's own lines that Ray has no setting for."""
    import warnings

    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")


RAYLET_WARNING = re.compile(r"\(raylet\).*WARNING:")  # printed by the driver whatever log_to_driver says
MLFLOW_REGISTRY_NOTES = re.compile(  # MLflow's eprint()s on registration
    r"^(Successfully registered model '|Created version '\d+' of model |Registered model '.*' already exists\. Creating a new version)"
)


class DropLines:
    """A stream that drops the lines matching ``pattern`` and passes everything else (errors included).

    Used where a library prints with no setting to stop it: the raylet's warnings on stdout, MLflow's
    registration notes on stderr (raysweep prints its own line for each registration).
    """

    def __init__(self, stream, pattern: re.Pattern):
        self._stream, self._pattern, self._skip_newline = stream, pattern, False

    def write(self, text: str) -> int:
        if self._pattern.search(text):
            self._skip_newline = not text.endswith("\n")  # print() writes the line, then its newline
            return len(text)
        if self._skip_newline and text == "\n":
            self._skip_newline = False
            return 1
        self._skip_newline = False
        return self._stream.write(text)

    def __getattr__(self, name):  # isatty, fileno, flush, encoding ...: the real stream's
        return getattr(self._stream, name)


class BoardCallback(tune.Callback):
    """Feeds Tune's trial events to a :class:`TrialBoard` (epoch, step rate, latest metric, status)."""

    def __init__(self, metric: str, keys: list[str], max_epochs: int, live: bool | None = None, stream=None):
        self.board = TrialBoard(metric, keys, max_epochs, stream=stream, live=live)
        self.metric, self.max_epochs = metric, max_epochs

    def _values(self, trial) -> dict:
        return trial.config.get("values", {})

    def on_trial_start(self, iteration, trials, trial, **info):
        self.board.update(trial.trial_id, self._values(trial), status="RUNNING")

    def on_trial_result(self, iteration, trials, trial, result, **info):
        finishing = result.get("epoch", 0) >= self.max_epochs
        self.board.update(trial.trial_id, self._values(trial), status="EVAL" if finishing else "RUNNING",
                          epoch=result.get("epoch"), metric=result.get(self.metric),
                          steps_per_s=steps_per_second(result, trial.config.get("base", {})))  # fmt: skip

    def on_trial_complete(self, iteration, trials, trial, **info):
        row = self.board.rows.get(trial.trial_id)
        done = row is not None and row.status == "EVAL"  # ended before its last epoch: ASHA stopped it
        self.board.update(trial.trial_id, self._values(trial), status="DONE" if done else "STOPPED")

    def on_trial_error(self, iteration, trials, trial, **info):
        self.board.update(trial.trial_id, self._values(trial), status="ERROR")

    def on_experiment_end(self, trials, **info):
        self.board.stop()


def steps_per_second(result: dict, base: dict) -> float | None:
    """Optimizer steps per second in the epoch just reported (``train/rows_per_s`` over the global batch)."""
    rows = result.get("train/rows_per_s")
    train = base.get("train", {})
    batch = (train.get("batch_size") or 0) * (train.get("num_workers") or 1) * (train.get("grad_accum") or 1)
    return rows / batch if isinstance(rows, (int, float)) and batch else None
