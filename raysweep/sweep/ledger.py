"""raysweep's own record of a sweep's trials: one object per state transition (no Ray).

Summaries, the exit status and ``--resume`` are derived from this ledger, never from a framework's
status fields or from MLflow side effects: raysweep knows a trial's state because it wrote it down.

Layout: ``<sweep storage>/<sweep name>/ledger/<trial_id>/<time_ns>-<event>-<random>.json``, one
small object per event, written once and never rewritten, so object stores without atomic rename
(S3) work and concurrent writers (the driver, trial processes) never collide. Events:

=================  ==================================================================================
``started``        a trial process began (again, after a restart or a resume)
``epoch``          an epoch was reported with its checkpoint (``epoch``, ``metrics``); duplicates collapse
``stopped_early``  the scheduler (ASHA) decided to stop the trial (with the epoch's result it judged);
                   it stays stopped on resume
``trained``        training ended, the final evaluation begins
``completed``      the final evaluation is logged: the trial is done
``errored``        the trial raised (``error``, ``user_error``: a bad-input error, exit status 2)
``interrupted``    the sweep was interrupted while the trial was unfinished
``registered``     the trial's adapter became a registered model version (``model``, ``alias``, ``version``)
=================  ==================================================================================
"""

from __future__ import annotations

import os
import socket
import sys
import time
import uuid
from dataclasses import dataclass, field

from raysweep import storage

EVENTS = ("started", "epoch", "stopped_early", "trained", "completed", "errored", "interrupted", "registered")
TERMINAL = ("completed", "stopped_early", "errored")
LEDGER_DIR = "ledger"


@dataclass
class TrialState:
    """What the ledger says of one trial."""

    trial_id: str
    status: str = "pending"  # pending, running, completed, stopped_early, errored, interrupted
    epochs: dict[int, dict] = field(default_factory=dict)  # epoch -> its metrics (first report wins)
    error: str = ""
    user_error: bool = False
    registered: list[dict] = field(default_factory=list)
    attempts: int = 0
    values: dict = field(default_factory=dict)  # the point of the space (from ``started``)

    @property
    def finished(self) -> bool:
        """Completed, stopped by the scheduler or errored: nothing left to run (errored trials re-run on resume)."""
        return self.status in TERMINAL

    @property
    def last_metrics(self) -> dict:
        """The metrics of the last epoch recorded (empty when none)."""
        return self.epochs[max(self.epochs)] if self.epochs else {}


class Ledger:
    """Append-only event log of a sweep's trials under ``location`` (a local folder or a URI).

    Args:
        location: the ledger folder (``<sweep storage>/<name>/ledger``).
        listeners: objects with ``on_event(trial_id, event, data)``, called in the recording process
            after each event is stored (notifications; tests kill processes from here).
    """

    def __init__(self, location: str, listeners=()):
        self.location = location
        self.listeners = list(listeners)

    def record(self, trial_id: str, event: str, **data) -> None:
        """Store one event now (one new object), then tell the listeners."""
        if event not in EVENTS:
            raise ValueError(f"unknown ledger event {event!r}; known: {', '.join(EVENTS)}")
        now = time.time_ns()
        body = {"trial_id": trial_id, "event": event, "time_ns": now, "data": data,
                "writer": {"host": socket.gethostname(), "pid": os.getpid()}}  # fmt: skip
        storage.write_json(storage.join(self.location, trial_id, f"{now:020d}-{event}-{uuid.uuid4().hex[:8]}.json"), body)
        for listener in self.listeners:
            listener.on_event(trial_id, event, data)

    def events(self) -> dict[str, list[dict]]:
        """Every stored event by trial, in time order. An object cut short by a crash is skipped."""
        out: dict[str, list[dict]] = {}
        for rel in storage.list_files(self.location):
            try:
                body = storage.read_json(storage.join(self.location, rel))
            except (ValueError, UnicodeDecodeError):
                print(f"raysweep: ledger object {rel} is damaged (a writer was killed mid-write); ignored", file=sys.stderr)
                continue
            out.setdefault(body["trial_id"], []).append(body)
        for events in out.values():
            events.sort(key=lambda e: e["time_ns"])
        return out

    def states(self) -> dict[str, TrialState]:
        """The state of every trial the ledger knows."""
        return {trial_id: derive_state(trial_id, events) for trial_id, events in self.events().items()}

    def state(self, trial_id: str) -> TrialState:
        return self.states().get(trial_id) or TrialState(trial_id)


def derive_state(trial_id: str, events: list[dict]) -> TrialState:
    """Fold a trial's events (in time order) into its state.

    A scheduler stop is final; otherwise the latest of started/completed/errored/interrupted decides
    (a trial that errored and was started again by ``--resume`` is running). Epochs are keyed by
    number, so an epoch reported twice (a restarted worker, an orphaned one) counts once.
    """
    state = TrialState(trial_id)
    for e in events:
        kind, data = e["event"], e.get("data", {})
        if kind in ("epoch", "stopped_early") and data.get("metrics"):  # a stop carries the result it judged
            state.epochs.setdefault(int(data["epoch"]), data["metrics"])
        if kind == "epoch":
            continue
        if kind == "registered":
            state.registered.append(data)
        elif state.status == "stopped_early":
            continue
        elif kind == "started":
            state.status, state.attempts = "running", state.attempts + 1
            state.values = data.get("values", state.values)
        elif kind in ("completed", "stopped_early", "interrupted"):
            state.status = kind
        elif kind == "errored":
            state.status, state.error, state.user_error = "errored", data.get("error", ""), bool(data.get("user_error"))
    return state


def sweep_exit_status(states: dict[str, TrialState], expected: int) -> int:
    """0: every trial completed or was stopped by the scheduler; 2: the errors are all bad input;
    1: any other error; 130: interrupted (a trial unfinished, or fewer trials than ``expected``)."""
    if len(states) < expected or any(not s.finished for s in states.values()):
        return 130
    errored = [s for s in states.values() if s.status == "errored"]
    if errored:
        return 2 if all(s.user_error for s in errored) else 1
    return 0


def load_listeners(paths: list[str]) -> list:
    """Listener objects from ``module:Class`` paths (``sweep.callbacks``), built without arguments."""
    import importlib

    from raysweep.errors import UserError

    out = []
    for path in paths:
        module, _, name = path.partition(":")
        try:
            out.append(getattr(importlib.import_module(module), name)())
        except (ImportError, AttributeError, ValueError) as err:
            raise UserError(f"sweep.callbacks: {path!r} cannot be loaded ({err}); give module:Class of an importable class") from None
    return out
