"""`raysweep eval` as Ray Data batch inference: 2 model replicas against 1.

    python benchmarks/bench_eval_replicas.py [--runs 5] [--rows 900] [--mode choice]

Writes the synthetic test split (``configs/data/civet_test.yaml``, the first ``--rows`` scenes) once,
then predicts it with the tiny LLaVA-NeXT through :class:`raysweep.launch.inference.RayDataPredictor`
with 1 and 2 replicas of 1 CPU and one torch thread each, on a local Ray of 2 CPUs, alternating,
``--runs`` times each. Rows/s counts from the first batch a replica starts to the last it finishes
(replica start-up, i.e. the model build, excluded). Target (issue 10): 2 replicas >= 1.4x one.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rows", type=int, default=900)
    parser.add_argument("--mode", default="choice", choices=["choice", "generate"])
    args = parser.parse_args()
    import os

    import ray

    from raysweep.cli import main as cli
    from raysweep.config import load_config
    from raysweep.datasets import open_dataset
    from raysweep.launch.inference import RayDataPredictor

    os.chdir(REPO)
    cfg = load_config(REPO / "configs/models/tiny-llava-next.yaml")
    rates: dict[int, list[float]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "test"
        assert cli(["generate", "configs/data/civet_test.yaml", "--out", str(data), "--quiet"]) == 0
        dataset = open_dataset(data)
        rows = dataset.read().to_pylist()[: args.rows]
        from raysweep.launch.train import local_ray_options

        ray.init(num_cpus=2, log_to_driver=False, **local_ray_options())
        for i in range(args.runs):
            for replicas in (1, 2) if i % 2 == 0 else (2, 1):
                predictor = RayDataPredictor(cfg.model, dataset.task, None, replicas, 1.0, 0, 1, cfg.eval.batch_size, cfg.eval.max_new_tokens)
                started = time.time()
                ((preds, errors, _),) = predictor.predict([(rows, args.mode, dataset.task)])
                assert len(preds) == len(rows) and not errors
                rates[replicas].append(predictor.last_rows_per_s)
                print(f"run {i}: {replicas} replica(s): {predictor.last_rows_per_s:.1f} rows/s "
                      f"({time.time() - started:.1f} s with start-up)", flush=True)  # fmt: skip
    med = {r: statistics.median(v) for r, v in rates.items()}
    ratios = [b / a for a, b in zip(rates[1], rates[2])]
    results = {"rows": len(rows), "mode": args.mode, "rows_per_s": rates, "median_rows_per_s": med,
               "two_over_one": med[2] / med[1], "pair_ratios": ratios}  # fmt: skip
    (REPO / "benchmarks" / "results").mkdir(exist_ok=True)
    (REPO / "benchmarks" / "results" / "eval_replicas.json").write_text(json.dumps(results, indent=2))
    print(f"\n| replicas (1 CPU, 1 thread each; {len(rows)} rows, {args.mode}, medians of {args.runs}) | rows/s |\n|---|---|")
    for r in (1, 2):
        print(f"| {r} | {med[r]:.1f} |")
    print(f"\n2 replicas / 1: {results['two_over_one']:.2f}x (pairs: {', '.join(f'{x:.2f}' for x in ratios)})")


if __name__ == "__main__":
    main()
