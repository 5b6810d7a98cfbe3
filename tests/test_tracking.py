"""The MLflow side of the run lifecycle: a new SQLite store opened by several processes at once."""

import subprocess
import sys

_OPEN_STORE = r"""
import sys
from raysweep.tracking import RunLogger
RunLogger.start(sys.argv[1], "exp", sys.argv[2])
"""


def test_concurrent_first_writers_of_a_new_sqlite_store_all_succeed(tmp_path):
    """Without the lock, 5 of 6 processes failed on schema creation (duplicate column / alembic version)."""
    from raysweep.tracking import _client

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    procs = [subprocess.Popen([sys.executable, "-c", _OPEN_STORE, uri, f"run{i}"], stderr=subprocess.PIPE, text=True) for i in range(6)]
    errors = [p.communicate()[1] for p in procs if p.wait() != 0]
    assert not errors, errors[0][-2000:]
    exp = _client(uri).get_experiment_by_name("exp")
    runs = _client(uri).search_runs([exp.experiment_id])
    assert sorted(r.info.run_name for r in runs) == [f"run{i}" for i in range(6)]
