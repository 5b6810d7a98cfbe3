"""What `raysweep sweep` prints (integration, about 2 minutes): only raysweep's lines, Ray's with --verbose.

The sweep runs as the user runs it: a subprocess that starts its own local Ray, its stdout and
stderr captured together and not a terminal (so each trial change is one line).
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[1]
TINY = [
    "data.combos=[{shapes: [circle, star], colors: [white]}, {shapes: [plus], colors: [red, blue]}]",
    "data.sizes={large: 0.86}", "model.tiny_layers=2", "train.batch_size=8", "train.steps_per_epoch=10",
    "train.val_limit=18", "train.epochs=2", "train.eval_sets=[{name: civet, config: configs/data/civet_test.yaml, limit: 18}]",
    "sweep.space={train.lr: {grid: [1.0e-3, 1.0e-6]}}", "sweep.scheduler=fifo", "sweep.max_concurrent=1",
]  # fmt: skip
OURS = re.compile(
    r"^(sweep \S+: \d+ trials|\[\d\d:\d\d:\d\d\] trial \S+ +(RUNNING|EVAL|DONE|STOPPED|ERROR)|### |\| |\|---|$|\d+ trials, "
    r"|group \S+: (registered|best trial)|\S+@\S+ -> version|Base-model evaluations that ran: \d+|MLflow: mlflow ui)"
)


def _sweep(tmp_path, name, *extra):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    args = [sys.executable, "-m", "raysweep.cli", "sweep", "configs/quickstart.yaml", *TINY, f"sweep.name={name}",
            f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow.db", f"sweep.storage_path={tmp_path}/sweeps", *extra]  # fmt: skip
    done = subprocess.run(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900)
    return done.returncode, done.stdout.splitlines()


def test_every_line_is_raysweeps_and_verbose_brings_ray_back(tmp_path):
    code, lines = _sweep(tmp_path, "quiet")
    assert code == 0, "\n".join(lines[-30:])
    foreign = [line for line in lines if not OURS.match(line)]
    assert foreign == [], foreign
    changes = [line for line in lines if re.match(r"^\[\d\d:\d\d:\d\d\] trial ", line)]
    assert any("epoch   2/2" in line and "steps/s" in line and "val/loss" in line for line in changes)
    assert sum(" DONE " in line for line in changes) == 2
    assert lines[-1].startswith("MLflow: mlflow ui")  # the summary ends the run: nothing after it

    code, lines = _sweep(tmp_path, "loud", "--verbose")
    assert code == 0
    assert any("RayTrainWorker" in line or "(pid=" in line for line in lines)  # the workers' output is back
