"""Fault injection at the sweep ledger's events, for tests only.

``KillOnEvent`` is a ``sweep.callbacks`` listener: when the ledger records the event named by
``RAYSWEEP_TEST_KILL_EVENT`` (the first time, marked by the file ``RAYSWEEP_TEST_KILL_MARKER``), it
SIGKILLs the process ``RAYSWEEP_TEST_KILL_PID`` (the sweep's driver). Listeners run in the process
that records the event (the driver for scheduler stops, epochs and registrations; a trial process for
``trained``), which inherits these variables from the driver.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path


class KillOnEvent:
    def on_event(self, trial_id: str, event: str, data: dict) -> None:
        if event != os.environ.get("RAYSWEEP_TEST_KILL_EVENT"):
            return
        marker = Path(os.environ["RAYSWEEP_TEST_KILL_MARKER"])
        if marker.exists():
            return
        marker.write_text(f"{event} of {trial_id}")
        os.kill(int(os.environ["RAYSWEEP_TEST_KILL_PID"]), signal.SIGKILL)
