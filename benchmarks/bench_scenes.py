"""Scene generator throughput: in-memory rendering, Parquet with PNG, and Ray Data streaming.

    python benchmarks/bench_scenes.py [--repeats 5] [--skip-ray]

Single-core numbers pin this process to one CPU (os.sched_setaffinity). Prints a Markdown table
and writes benchmarks/results/scenes.json. Targets (issue 2, one core): >= 15,000 scenes/s in
memory with one object, >= 5,000/s with 3 distractors, >= 600/s written to Parquet with PNG.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from raysweep.config import load_config
from raysweep.scenes import Renderer, SceneSet


def render_rate(overrides, n: int) -> float:
    cfg = load_config(None, overrides).data
    scenes, renderer = SceneSet(cfg), Renderer(cfg)
    pool = scenes.pool_size
    renderer.render(scenes.scene(0).objects)  # warm the sprite cache
    t0 = time.perf_counter()
    for i in range(n):
        renderer.render(scenes.scene(i % pool).objects)
    return n / (time.perf_counter() - t0)


def parquet_rate(overrides) -> float:
    from raysweep.datasets.synthetic import generate

    cfg = load_config(None, overrides).data
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        manifest = generate(cfg, Path(tmp) / "ds", workers=1, progress=False)
        return manifest["rows"] / (time.perf_counter() - t0)


def ray_stream_rate(overrides, batch_size: int = 256) -> tuple[float, float]:
    """Scenes/s consumed from Ray Data (2 CPUs) against a plain loop, same scenes, arrays only."""
    import ray

    from raysweep.launch.data import render_batch, scene_dataset

    cfg = load_config(None, overrides).data
    n = len(SceneSet(cfg))
    t0 = time.perf_counter()
    for start in range(0, n, batch_size):
        render_batch({"id": list(range(start, min(n, start + batch_size)))}, cfg, encode=False)
    plain = n / (time.perf_counter() - t0)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        ds = scene_dataset(cfg, encode=False, batch_size=batch_size)
        for _ in ds.iter_batches(batch_size=batch_size):  # warm-up pass: workers start
            pass
        t0 = time.perf_counter()
        count = sum(len(b["scene_id"]) for b in ds.iter_batches(batch_size=batch_size))
        streamed = count / (time.perf_counter() - t0)
    finally:
        ray.shutdown()
    return plain, streamed


def summary(values):
    return {"min": round(min(values)), "median": round(statistics.median(values)), "max": round(max(values))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--skip-ray", action="store_true")
    args = parser.parse_args()

    all_cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(all_cpus)})
    results = {
        "render_1_object": summary([render_rate([], args.n) for _ in range(args.repeats)]),
        "render_3_distractors": summary([render_rate(["data.distractors=3"], args.n) for _ in range(args.repeats)]),
        "parquet_png_test_split": summary([parquet_rate(["data.combos=[{shapes: [circle,square,triangle,star], colors: [red,green,blue,magenta,yellow,cyan]}]"]) for _ in range(max(1, args.repeats // 2))]),
    }
    os.sched_setaffinity(0, all_cpus)
    if not args.skip_ray:
        plain, streamed = ray_stream_rate(["data.distractors=3"])
        results["ray_data_2cpu_arrays"] = {"plain_loop": round(plain), "ray_data": round(streamed)}
    print("| measurement (scenes/s) | min | median | max |\n|---|---|---|---|")
    for key, val in results.items():
        if "median" in val:
            print(f"| {key} (1 core) | {val['min']} | {val['median']} | {val['max']} |")
    if "ray_data_2cpu_arrays" in results:
        r = results["ray_data_2cpu_arrays"]
        print(f"\nRay Data on 2 CPUs, 336 px arrays, 3 distractors: {r['ray_data']} scenes/s; plain loop: {r['plain_loop']} scenes/s")
    out = Path(__file__).parent / "results" / "scenes.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
