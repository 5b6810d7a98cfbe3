"""Does the step slow down when the other core works? The hardware side of the data-plane numbers.

    python benchmarks/bench_step_contention.py

The tiny LLaVA-NeXT + LoRA train step (batch 16, one torch thread, configs/train-tiny.yaml) pinned
to CPU 0, its median over 40 steps measured alone and while a forked process pinned to CPU 1 runs
a pure-Python loop, the family's collate in a loop, or a memory-bound numpy loop. Linux only
(``os.sched_setaffinity``). Measured once on the 2-core box (README, Data plane): 81 ms alone,
78-84 ms beside the others - so a slower step under the ray_data pipeline is scheduling (tasks on
the Train worker's core), not the machine.
"""
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ["OMP_NUM_THREADS"] = "1"
import torch
torch.set_num_threads(1)
from raysweep.config import load_config
from raysweep.training.data import epoch_batches, train_val_sources
from raysweep.training.engine import WorkerTrainer

COMMON = ["train.batch_size=16", "train.threads=1"]

def setup():
    cfg = load_config(str(REPO / "configs/train-tiny.yaml"), COMMON)
    tr = WorkerTrainer(cfg)
    train, _ = train_val_sources(cfg)
    pos = list(epoch_batches(len(train), 0, 0, 0, 1, 40, 16))
    return tr, train, pos

def busy(kind, stop):
    os.sched_setaffinity(0, {1})
    torch.set_num_threads(1)
    if kind == "collate":
        tr, train, pos = setup()
        i = 0
        while not stop.is_set():
            tr.prepare(train.rows(pos[i % len(pos)])); i += 1
    elif kind == "python":
        x = 0
        while not stop.is_set():
            for _ in range(10000): x += 1
    elif kind == "numpy":
        import numpy as np
        a = np.random.rand(4_000_000)
        while not stop.is_set():
            b = a * 2.0 + 1.0

def main():
    os.sched_setaffinity(0, {0})
    tr, train, pos = setup()
    batches = [tr.prepare(train.rows(p)) for p in pos[:10]]
    # collate cost alone
    t = time.perf_counter()
    for p in pos[:10]: tr.prepare(train.rows(p))
    print("collate ms", round((time.perf_counter() - t) * 100, 1), flush=True)
    for _ in range(5): tr.train_step(batches[0])
    for kind in ["none", "python", "collate", "numpy", "none", "collate", "python"]:
        stop = mp.Event(); p = None
        if kind != "none":
            p = mp.get_context("fork").Process(target=busy, args=(kind, stop)); p.start(); time.sleep(3 if kind=="collate" else 0.5)
        ts = []
        for i in range(40):
            t = time.perf_counter(); tr.train_step(batches[i % 10]); ts.append(time.perf_counter() - t)
        stop.set()
        if p: p.join()
        print(kind, "step ms median", round(statistics.median(ts) * 1000, 1), flush=True)

if __name__ == "__main__":
    main()
