"""Project errors cross process boundaries intact and reach the user as one line, exit 2."""

import pickle

import pytest

from raysweep.errors import ConfigError, UserError, find_user_error


@pytest.mark.parametrize("err", [UserError("data.source: unknown source 'x'; add it"), ConfigError("lora.rank", "must be >= 1"), ConfigError("", "empty config")])
def test_project_errors_pickle_round_trip(err):
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is type(err) and str(back) == str(err) and back.message == err.message
    if isinstance(err, ConfigError):
        assert back.key == err.key


def test_user_errors_are_found_inside_wrappers():
    inner = ConfigError("train.lr", "must be > 0")

    class WorkerGroupError(Exception):  # the shape of Ray Train's: a dict of rank -> exception
        def __init__(self, failures):
            super().__init__("Training failed due to worker errors")
            self.worker_failures = failures

    class TuneError(Exception):
        def __init__(self, error):
            super().__init__("trial failed")
            self.error = error

    try:
        try:
            raise inner
        except ConfigError as err:
            raise RuntimeError("while building") from err
    except RuntimeError as chained:
        assert find_user_error(chained) is inner
    assert find_user_error(TuneError(WorkerGroupError({0: RuntimeError("other"), 1: inner}))) is inner
    assert find_user_error(RuntimeError("a real bug")) is None


def test_a_user_error_raised_in_a_ray_task_is_one_line_exit_2(capsys, monkeypatch):
    """Through Ray itself: the error is pickled in the worker and unwrapped on the driver."""
    ray = pytest.importorskip("ray")

    from raysweep.cli import main
    from raysweep.commands import config as config_command

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:

        @ray.remote
        def bad():
            raise ConfigError("lora.rank", "must be >= 1, got 0")

        def run(args):
            return ray.get(bad.remote())

        monkeypatch.setattr(config_command, "run", run)
        assert main(["config"]) == 2
    finally:
        ray.shutdown()
    err = capsys.readouterr().err.strip().splitlines()  # Ray's own start-up lines come first
    assert err[-1] == "raysweep config: error: lora.rank: must be >= 1, got 0"
    assert not any("Traceback" in line or 'File "' in line for line in err)


def test_a_user_error_ray_kept_only_as_traceback_text_is_found():
    """Ray Data ships a stage's exception to the consumer as text (UserCodeException): the last
    ``raysweep.errors.UserError: ...`` line of it is the error."""
    from raysweep.errors import find_user_error

    class WorkerGroupError(Exception):
        def __init__(self, failures):
            super().__init__("Training failed due to worker errors")
            self.worker_failures = failures

    text = ("ray::SplitCoordinator.get()\nTraceback (most recent call last):\n  File \"stage.py\", line 3\n"
            "    raise UserError(...)\nraysweep.errors.UserError: coco_val: row 7: bad image; remove it\n")  # fmt: skip
    found = find_user_error(WorkerGroupError({0: RuntimeError(text)}))
    assert found is not None and found.message == "coco_val: row 7: bad image; remove it"
    assert find_user_error(WorkerGroupError({0: RuntimeError("ValueError: nothing of ours")})) is None
