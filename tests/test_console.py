"""The sweep's terminal: the trials board (live table on a terminal, one line per change otherwise)."""

import io
import re

from raysweep.launch.console import BoardCallback, steps_per_second
from raysweep.sweep.board import TrialBoard


class FakeTrial:
    def __init__(self, trial_id, values):
        self.trial_id = trial_id
        self.config = {"values": values, "base": {"train": {"batch_size": 8, "num_workers": 2, "grad_accum": 1}}}


def test_plain_stream_gets_one_line_per_change_and_no_repeats():
    out = io.StringIO()
    cb = BoardCallback("val/loss", ["train.lr"], max_epochs=2, stream=out)
    assert cb.board.is_live is False  # a StringIO is not a terminal
    t = FakeTrial("abc_00000", {"train.lr": 0.001})
    cb.on_trial_start(0, [], t)
    cb.on_trial_start(0, [], t)  # the same state again: not a change
    cb.on_trial_result(0, [], t, {"epoch": 1, "val/loss": 1.25, "train/rows_per_s": 32.0})
    cb.on_trial_result(0, [], t, {"epoch": 2, "val/loss": 0.5, "train/rows_per_s": 32.0})
    cb.on_trial_complete(0, [], t)
    lines = out.getvalue().splitlines()
    assert len(lines) == 4, lines
    assert "RUNNING" in lines[0] and "epoch   0/2" in lines[0] and "train.lr=0.001" in lines[0]
    assert "val/loss 1.2500" in lines[1] and "2.00 steps/s" in lines[1]  # 32 rows/s over 8 x 2 rows a step
    assert "EVAL" in lines[2]  # last epoch reported: the final evaluation runs next
    assert "DONE" in lines[3]


def test_trial_ended_before_its_last_epoch_is_stopped():
    out = io.StringIO()
    cb = BoardCallback("val/acc", [], max_epochs=5, stream=out)
    t = FakeTrial("x_1", {})
    cb.on_trial_result(0, [], t, {"epoch": 1, "val/acc": 0.2})
    cb.on_trial_complete(0, [], t)
    assert "STOPPED" in out.getvalue().splitlines()[-1]
    cb.on_trial_error(0, [], FakeTrial("x_2", {}))
    assert "ERROR" in out.getvalue().splitlines()[-1]


def test_terminal_table_is_drawn_in_place():
    out = io.StringIO()
    board = TrialBoard("val/acc", ["lora.rank"], 3, stream=out, live=True)
    for epoch in (1, 2, 3):
        board.update("t_0", {"lora.rank": 8}, status="RUNNING", epoch=epoch, metric=0.1 * epoch)
    board.stop()
    text = out.getvalue()
    # rich redraws by moving the cursor up over the previous table: ESC [ ... A
    assert re.search(r"\x1b\[\d*A", text)
    assert text.count("0.3000") >= 1 and "lora.rank" in text


def test_steps_per_second_needs_a_rate():
    assert steps_per_second({}, {"train": {"batch_size": 8}}) is None
    assert steps_per_second({"train/rows_per_s": 80.0}, {"train": {"batch_size": 8, "grad_accum": 2}}) == 5.0


def test_local_ray_is_quiet_and_tells_workers_its_dashboard(monkeypatch):
    import logging
    import os

    import ray

    from raysweep.launch import console

    seen = {}
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: seen.update(kw))
    monkeypatch.setattr(console, "quiet_driver", lambda: seen.update(quieted=True))
    console.init_sweep_ray(verbose=False)
    assert seen["log_to_driver"] is False and seen["logging_level"] == logging.ERROR and seen["quieted"]
    assert seen["runtime_env"]["env_vars"]["RAY_API_SERVER_ADDRESS"] == f"http://127.0.0.1:{seen['dashboard_port']}"
    assert seen["runtime_env"]["env_vars"]["RAY_TRAIN_ENABLE_PRINT_PATCH"] == "0"  # worker prints reach the driver once

    seen.clear()
    console.init_sweep_ray(verbose=True)  # --verbose: Ray's own output, no filter
    assert seen["log_to_driver"] is True and "logging_level" not in seen and "quieted" not in seen

    seen.clear()
    monkeypatch.setenv("RAY_ADDRESS", "http://head:8265")  # a cluster's: its own dashboard is known there
    console.init_sweep_ray(verbose=False)
    assert seen["runtime_env"] == {"env_vars": {"RAY_TRAIN_ENABLE_PRINT_PATCH": "0"}} and seen["log_to_driver"] is False
    assert os.environ["RAY_ADDRESS"] == "http://head:8265"


def test_quiet_driver_raises_library_loggers(monkeypatch):
    import logging

    from raysweep.launch import console

    import os
    import warnings

    monkeypatch.setenv("RAY_AIR_NEW_OUTPUT", "1")
    monkeypatch.setenv("MLFLOW_LOGGING_LEVEL", "INFO")
    for name in console.QUIET_LOGGERS:
        monkeypatch.setattr(logging.getLogger(name), "level", logging.INFO)
    with warnings.catch_warnings():  # quiet_driver ignores every warning: keep that out of the other tests
        console.quiet_driver()

    assert os.environ["RAY_AIR_NEW_OUTPUT"] == "0"  # Tune's legacy reporter: silent at verbose=0
    assert all(logging.getLogger(n).level == logging.ERROR for n in ("ray.tune", "mlflow"))


def test_raylet_warnings_are_dropped_and_its_errors_kept():
    from raysweep.launch.console import RAYLET_WARNING, DropLines

    out = io.StringIO()
    stream = DropLines(out, RAYLET_WARNING)
    print("\x1b[33m(raylet)\x1b[0m WARNING: 8 PYTHON worker processes have been started on node: x", file=stream)
    print("\x1b[33m(raylet)\x1b[0m Raylet is terminated. Termination is unexpected.", file=stream)
    print("[07:56:46] trial t_0 RUNNING", file=stream)
    assert out.getvalue() == "\x1b[33m(raylet)\x1b[0m Raylet is terminated. Termination is unexpected.\n[07:56:46] trial t_0 RUNNING\n"
    assert stream.isatty() is False  # the rest is the real stream's


def test_callback_pickles_with_a_wrapped_stdout_after_drawing(monkeypatch, tmp_path):
    """Tune pickles its callbacks with the experiment state; a live table or a wrapped stdout must not break that."""
    import pickle
    import sys

    from raysweep.launch.console import RAYLET_WARNING, DropLines

    real = (tmp_path / "stdout").open("w")  # a file open for writing cannot be pickled
    monkeypatch.setattr(sys, "stdout", DropLines(real, RAYLET_WARNING))
    cb = BoardCallback("val/acc", ["lora.rank"], max_epochs=2)
    pickle.loads(pickle.dumps(cb))
    cb.on_trial_start(0, [], FakeTrial("t_0", {"lora.rank": 4}))
    live = BoardCallback("val/acc", [], max_epochs=2, live=True, stream=io.StringIO())
    live.on_trial_start(0, [], FakeTrial("t_1", {}))
    for callback in (cb, live):
        restored = pickle.loads(pickle.dumps(callback))
        assert restored.board.rows.keys() == callback.board.rows.keys()
    live.board.stop()
    real.close()
    assert "t_0" in (tmp_path / "stdout").read_text()


def test_mlflow_registration_notes_are_dropped(tmp_path, monkeypatch):
    """MLflow eprint()s two lines per registration; raysweep prints its own line for each."""
    import sys

    from mlflow import MlflowClient

    from raysweep.launch.console import MLFLOW_REGISTRY_NOTES, DropLines
    from raysweep.tracking import RunLogger

    import mlflow

    class Echo(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input: list[str]) -> list[str]:
            return model_input

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    run = RunLogger.start(uri, "e", "r")
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run(run_id=run.run_id):
        info = mlflow.pyfunc.log_model(name="model", python_model=Echo(), pip_requirements=[])
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", DropLines(err, MLFLOW_REGISTRY_NOTES))
    mlflow.register_model(info.model_uri, "m")
    mlflow.register_model(info.model_uri, "m")  # a second version: "Registered model 'm' already exists. Creating ..."
    print("raysweep: a real error", file=sys.stderr)
    assert err.getvalue() == "raysweep: a real error\n"
    assert MlflowClient(tracking_uri=uri).get_registered_model("m").name == "m"
