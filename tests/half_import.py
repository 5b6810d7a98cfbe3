"""A module that, like torch's C extension, cannot be imported again in a process where an earlier
import of it was interrupted: torch then fails with ``generic_type: cannot initialize type
"RpcBackendOptions": an object with that name is already defined``. Tests of Ray Data task
cancellation (tests/test_ray_data_cancel.py) import it through :class:`tests.data_faults.HalfImportStage`.

While the file ``slow`` exists in the folder ``$RAYSWEEP_HALF_IMPORT_DIR`` the import waits (up to a
minute) after writing ``importing`` there, so a test can cancel the task inside the import.
"""

import os
import sys
import time
from pathlib import Path

if getattr(sys, "_raysweep_half_import_started", False):
    raise RuntimeError('generic_type: cannot initialize type "HalfImport": an object with that name is already defined')
sys._raysweep_half_import_started = True

_folder = Path(os.environ["RAYSWEEP_HALF_IMPORT_DIR"])
(_folder / "importing").write_text(str(os.getpid()))
_deadline = time.monotonic() + 60
while (_folder / "slow").exists() and time.monotonic() < _deadline:
    time.sleep(0.05)

PID = os.getpid()
