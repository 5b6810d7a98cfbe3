"""Fault injection at the sweep ledger's events, for tests only.

``KillOnEvent`` is a ``sweep.callbacks`` listener: when the ledger records the event named by
``RAYSWEEP_TEST_KILL_EVENT`` (the first time, marked by the file ``RAYSWEEP_TEST_KILL_MARKER``), it
SIGKILLs the process ``RAYSWEEP_TEST_KILL_PID`` (the sweep's driver). Listeners run in the process
that records the event (the driver for scheduler stops and registrations; a trial process for
``trained``; rank 0 of a trial's Ray Train workers for ``epoch``), which inherits these variables
from the driver.

Where the driver's pid cannot be passed down (a sweep submitted as a Ray job: its workers get their
variables from the job's runtime env, fixed before the driver starts), set
``RAYSWEEP_TEST_KILL_PID_FILE`` instead: the first process that loads the listener, the driver
(``run_sweep`` builds its ledger before any trial starts), writes its pid there, and the listener
that fires reads it. ``RAYSWEEP_TEST_KILL_EPOCH`` limits ``epoch`` events to that epoch.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path


class KillOnEvent:
    def __init__(self) -> None:
        pid_file = os.environ.get("RAYSWEEP_TEST_KILL_PID_FILE")
        if pid_file and not Path(pid_file).exists():
            Path(pid_file).write_text(str(os.getpid()))

    def on_event(self, trial_id: str, event: str, data: dict) -> None:
        if event != os.environ.get("RAYSWEEP_TEST_KILL_EVENT"):
            return
        epoch = os.environ.get("RAYSWEEP_TEST_KILL_EPOCH")
        if epoch and data.get("epoch") != int(epoch):
            return
        marker = Path(os.environ["RAYSWEEP_TEST_KILL_MARKER"])
        if marker.exists():
            return
        pid = os.environ.get("RAYSWEEP_TEST_KILL_PID") or Path(os.environ["RAYSWEEP_TEST_KILL_PID_FILE"]).read_text()
        marker.write_text(f"{event} of {trial_id} {data.get('epoch', '')}".strip())
        os.kill(int(pid), signal.SIGKILL)
