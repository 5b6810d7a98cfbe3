"""ASHA against the full grid on the quickstart space: trial-epochs spent and best accuracy reached.

    python benchmarks/bench_asha.py [extra key=value overrides]

Runs `raysweep sweep configs/quickstart.yaml` twice on a local Ray, once with ASHA and once with
sweep.scheduler=fifo (every trial to the end), each into its own MLflow store, and compares the
trial-epochs spent, the best synthetic-test and COCO accuracy among completed trials, and wall time.
Target: ASHA spends at most a third of the grid's trial-epochs and gets within 1 point of its best.
Writes benchmarks/results/asha.json.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(scheduler: str, tmp: Path, extra: list[str]) -> dict:
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp}/{scheduler}.db"
    args = [sys.executable, "-m", "raysweep.cli", "sweep", str(REPO / "configs/quickstart.yaml"), f"sweep.scheduler={scheduler}",
            f"sweep.name=bench-{scheduler}", f"sweep.storage_path={tmp}/sweeps", f"mlflow.tracking_uri={uri}", *extra]  # fmt: skip
    start = time.time()
    proc = subprocess.run(args, cwd=REPO, capture_output=True, text=True)
    wall = time.time() - start
    if proc.returncode != 0:
        raise SystemExit(proc.stdout[-3000:] + proc.stderr[-3000:])
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("raysweep-quickstart")
    parent = next(r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("raysweep.role") == "sweep")
    trials = [r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("raysweep.role") == "trial"]
    best = {}
    for key in ("test/civet_test/acc", "test/coco_tiny/acc"):
        values = [t.data.metrics[key] for t in trials if key in t.data.metrics]
        best[key] = max(values) if values else None
    return {"wall_s": round(wall, 1), "trial_epochs": int(parent.data.metrics["trial_epochs"]),
            "grid_trial_epochs": int(parent.data.metrics["grid_trial_epochs"]),
            "stopped_early": int(parent.data.metrics["stopped_early"]), "trials": len(trials), **best}  # fmt: skip


def main() -> None:
    extra = sys.argv[1:]
    with tempfile.TemporaryDirectory() as tmp:
        asha = run("asha", Path(tmp), extra)
        grid = run("fifo", Path(tmp), extra)
    results = {"asha": asha, "grid": grid, "epoch_share": asha["trial_epochs"] / grid["trial_epochs"]}
    print(json.dumps(results, indent=2))
    print("\n| scheduler | trials | stopped early | trial-epochs | best synthetic test | best COCO (tinycoco) | wall s |")
    print("|---|---|---|---|---|---|---|")
    for name, r in (("ASHA", asha), ("full grid (fifo)", grid)):
        pct = lambda v: f"{v:.1%}" if v is not None else "-"  # noqa: E731
        print(f"| {name} | {r['trials']} | {r['stopped_early']} | {r['trial_epochs']} | {pct(r['test/civet_test/acc'])} | "
              f"{pct(r['test/coco_tiny/acc'])} | {r['wall_s']} |")
    print(f"\nASHA spent {results['epoch_share']:.0%} of the grid's trial-epochs.")
    out = REPO / "benchmarks" / "results" / "asha.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
