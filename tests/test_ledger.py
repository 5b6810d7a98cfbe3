"""raysweep's trial ledger: one object per event, states derived from it, exit statuses."""

import pytest

from raysweep.errors import UserError
from raysweep.sweep.ledger import Ledger, derive_state, load_listeners, sweep_exit_status


class Recorder:
    def __init__(self):
        self.seen = []

    def on_event(self, trial_id, event, data):
        self.seen.append((trial_id, event, data))


def test_each_event_is_one_new_object_and_listeners_hear_it(tmp_path):
    ledger = Ledger(str(tmp_path / "ledger"), load_listeners(["tests.test_ledger:Recorder"]))
    ledger.record("t1", "started", values={"lora.rank": 8})
    ledger.record("t1", "epoch", epoch=1, metrics={"val/acc": 0.5})
    files = sorted((tmp_path / "ledger" / "t1").iterdir())
    assert len(files) == 2 and "-started-" in files[0].name and "-epoch-" in files[1].name
    assert ledger.listeners[0].seen == [("t1", "started", {"values": {"lora.rank": 8}}), ("t1", "epoch", {"epoch": 1, "metrics": {"val/acc": 0.5}})]
    with pytest.raises(ValueError, match="unknown ledger event"):
        ledger.record("t1", "finished")


def test_states_from_events(tmp_path):
    ledger = Ledger(str(tmp_path))
    for e in (1, 2, 2):  # epoch 2 reported twice (a restarted worker): counted once, first report wins
        ledger.record("a", "epoch", epoch=e, metrics={"val/acc": e / 10})
    ledger.record("a", "started")
    ledger.record("a", "completed")
    ledger.record("b", "started")
    ledger.record("b", "stopped_early", epoch=1, metrics={"val/acc": 0.05, "epoch": 1})  # before its epoch event
    ledger.record("b", "started")  # a resume started it again: a scheduler stop is final
    ledger.record("b", "errored", error="killed")
    ledger.record("c", "started")
    ledger.record("c", "errored", error="x: bad", user_error=True)
    ledger.record("c", "started")  # --resume re-runs errored trials
    states = ledger.states()
    assert states["a"].status == "completed" and sorted(states["a"].epochs) == [1, 2] and states["a"].last_metrics == {"val/acc": 0.2}
    assert states["b"].status == "stopped_early" and states["b"].last_metrics == {"val/acc": 0.05, "epoch": 1}
    assert states["c"].status == "running" and states["c"].attempts == 2
    assert ledger.state("nobody").status == "pending"


def test_exit_status_is_derived_from_the_record():
    def st(*events):
        return derive_state("t", [{"event": k, "data": d, "time_ns": i} for i, (k, d) in enumerate(events)])

    done, stopped = st(("started", {}), ("completed", {})), st(("started", {}), ("stopped_early", {}))
    user = st(("started", {}), ("errored", {"error": "bad", "user_error": True}))
    crash = st(("started", {}), ("errored", {"error": "boom"}))
    running = st(("started", {}),)
    assert sweep_exit_status({"a": done, "b": stopped}, expected=2) == 0
    assert sweep_exit_status({"a": done, "b": crash}, expected=2) == 1
    assert sweep_exit_status({"a": user}, expected=1) == 2
    assert sweep_exit_status({"a": user, "b": crash}, expected=2) == 1
    assert sweep_exit_status({"a": done, "b": running}, expected=2) == 130
    assert sweep_exit_status({"a": done}, expected=2) == 130  # a trial never started


def test_a_damaged_object_is_skipped_with_a_note(tmp_path, capsys):
    ledger = Ledger(str(tmp_path))
    ledger.record("t", "started")
    (tmp_path / "t" / "99999999999999999999-completed-cut.json").write_text('{"trial_id": "t", "ev')
    assert ledger.state("t").status == "running"
    assert "damaged" in capsys.readouterr().err


def test_unknown_listener_is_one_line():
    with pytest.raises(UserError, match="sweep.callbacks: 'no.such:Thing' cannot be loaded"):
        load_listeners(["no.such:Thing"])
