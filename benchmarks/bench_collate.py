"""Training collate per batch: the processor once (today) against twice (before), side by side.

    python benchmarks/bench_collate.py [--runs 7] [--batches 8] [--batch 16]

For each chat family with a tiny model (LLaVA-NeXT, Qwen2-VL): ``--batch`` synthetic rows per
batch (PIL images, as the training loop passes them), one torch thread, ``--batches`` batches per run; each run times both collates on the same
batches, alternating which goes first. The two-pass path is the reference the tests keep
(``tests/test_models_families.py::two_pass_collate``); the labels of both are checked equal here
too. Reports the median milliseconds per batch over ``--runs`` runs and their ratio. Writes
benchmarks/results/collate.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # one core, like the loop's one torch thread

from test_models_families import two_pass_collate  # noqa: E402

from raysweep.config import load_config  # noqa: E402
from raysweep.models import get_family  # noqa: E402
from raysweep.models._rows import synthetic_rows  # noqa: E402
from raysweep.models.base import load_image  # noqa: E402


def one_run(paths: dict, batches, flip: bool) -> dict[str, float]:
    """Milliseconds per batch of each path; both collate each batch in turn (the other first every other run)."""
    order = list(paths)[::-1] if flip else list(paths)
    spent = dict.fromkeys(paths, 0.0)
    for rows in batches:
        for key in order:
            started = time.perf_counter()
            paths[key](rows)
            spent[key] += time.perf_counter() - started
    return {key: seconds * 1000 / len(batches) for key, seconds in spent.items()}


def compare(name: str, runs: int, n_batches: int, batch: int) -> dict:
    family = get_family(name)
    built = family.build(load_config(REPO / f"configs/models/tiny-{name}.yaml").model)
    # PIL images, as the training loop's rows carry them (rendered in the worker, not PNG bytes)
    rows = [dict(r, image=load_image(r["image"])) for r in synthetic_rows(n_batches * batch)]
    batches = [rows[i : i + batch] for i in range(0, len(rows), batch)]
    paths = {
        "once": lambda b: family.collate(built, b, train=True),
        "twice": lambda b: two_pass_collate(family, built, b),
    }
    for b in batches:  # warm-up, and the labels must agree
        assert torch.equal(paths["once"](b)["labels"], paths["twice"](b)["labels"])
    times: dict[str, list[float]] = {"once": [], "twice": []}
    for run in range(runs):
        for key, ms in one_run(paths, batches, flip=run % 2 == 1).items():
            times[key].append(ms)
    once, twice = statistics.median(times["once"]), statistics.median(times["twice"])
    return {"family": name, "batch": batch, "batches_per_run": n_batches, "runs": runs,
            "twice_ms": twice, "once_ms": once, "ratio": once / twice, "times_ms": times}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = [compare(name, args.runs, args.batches, args.batch) for name in ("llava-next", "qwen2-vl")]
    print(f"| family (batch {args.batch}, 1 thread) | two-pass ms/batch | once ms/batch | once / two-pass |\n|---|---|---|---|")
    for r in results:
        print(f"| {r['family']} | {r['twice_ms']:.1f} | {r['once_ms']:.1f} | {r['ratio']:.2f}x |")
    out = REPO / "benchmarks" / "results" / "collate.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
