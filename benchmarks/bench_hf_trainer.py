"""raysweep's loop with its Ray Data input against transformers' ``Trainer`` with a DataLoader worker.

    python benchmarks/bench_hf_trainer.py [--runs 5] [--steps 45] [--batch 16]

The peer is what LLaMA-Factory and TRL run underneath: ``transformers.Trainer`` on the same tiny
LLaVA-NeXT with the same LoRA, rows (scenes rendered in ``__getitem__``), collate (the family's,
in ``collate_fn``), batch, AdamW and learning rate, one torch thread, ``dataloader_num_workers=1``
(the collate on the second core), 45 steps, no evaluation or saving; its time is ``train_runtime``.
raysweep: `raysweep train` with 1 Train worker of 1 CPU and ``train.data_loader=ray_data`` on a
local Ray of 2 CPUs, two epochs of 45 steps; its time is an epoch's training phase (45 x 16 rows /
``train/rows_per_s``, the pipeline's start included; validation and checkpoints excluded): epoch 1
(the Ray Data worker processes start) and epoch 2. Runs alternate; medians of ``--runs``.
Target (issue 10): raysweep >= 1.0x the Trainer's speed.
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

OVERRIDES = ["data.split=train", "train.eval_sets=[]", "train.patience=0", "train.warmup_steps=10", "train.threads=1",
             "train.val_limit=27"]  # fmt: skip


def hf_trainer(steps: int, batch: int, tmp: Path) -> float:
    """Seconds of ``Trainer.train()`` for ``steps`` steps (its ``train_runtime``)."""
    import torch
    from transformers import Trainer, TrainingArguments

    from raysweep.config import load_config
    from raysweep.models import get_family
    from raysweep.tasks import training_task
    from raysweep.training.data import train_val_sources

    torch.set_num_threads(1)
    cfg = load_config(REPO / "configs/train-tiny.yaml", [*OVERRIDES, f"train.batch_size={batch}"])
    family = get_family(cfg.model.family)
    built = family.apply_lora(family.build(cfg.model, training_task(cfg.data)), cfg.lora)
    rows, _ = train_val_sources(cfg)

    class Rows(torch.utils.data.Dataset):
        def __len__(self):
            return len(rows)

        def __getitem__(self, i):
            return rows.rows([i])[0]

    args = TrainingArguments(
        output_dir=str(tmp / "hf"), per_device_train_batch_size=batch, max_steps=steps, learning_rate=cfg.train.lr,
        weight_decay=cfg.train.weight_decay, warmup_steps=cfg.train.warmup_steps, lr_scheduler_type="linear",
        max_grad_norm=cfg.train.clip or 0.0, dataloader_num_workers=1, use_cpu=True, save_strategy="no", eval_strategy="no",
        logging_strategy="no", report_to=[], disable_tqdm=True, remove_unused_columns=False, seed=cfg.train.seed,
    )  # fmt: skip
    trainer = Trainer(model=built.model, args=args, train_dataset=Rows(), data_collator=lambda r: family.collate(built, r, train=True))
    return float(trainer.train().metrics["train_runtime"])


def raysweep_run(steps: int, batch: int, tmp: Path, tag: str) -> list[float]:
    """Seconds of each epoch's training phase (epochs 1 and 2) of `raysweep train` with the ray_data input."""
    from mlflow import MlflowClient

    from raysweep.config import load_config
    from raysweep.launch.train import run_training

    uri = f"sqlite:///{tmp}/mlflow.db"
    cfg = load_config(REPO / "configs/train-tiny.yaml", [*OVERRIDES, f"train.batch_size={batch}", f"train.steps_per_epoch={steps}",
                      "train.epochs=2", "train.num_workers=1", "train.cpus_per_worker=1", "train.data_loader=ray_data",
                      f"train.storage_path={tmp}/runs", f"mlflow.tracking_uri={uri}", f"train.name={tag}"])  # fmt: skip
    outcome = run_training(cfg, quiet=True)
    history = MlflowClient(uri).get_metric_history(outcome.run_id, "train/rows_per_s")
    return [steps * batch / m.value for m in sorted(history, key=lambda m: m.step)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=45)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    import os

    import ray

    os.chdir(REPO)
    from raysweep.launch.train import local_ray_options

    ray.init(num_cpus=2, log_to_driver=False, **local_ray_options())
    hf, ours1, ours2 = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            for who in ("hf", "raysweep") if i % 2 == 0 else ("raysweep", "hf"):
                started = time.time()
                if who == "hf":
                    hf.append(hf_trainer(args.steps, args.batch, Path(tmp)))
                else:
                    e1, e2 = raysweep_run(args.steps, args.batch, Path(tmp), f"bench-{i}")
                    ours1.append(e1)
                    ours2.append(e2)
                print(who, i, f"{time.time() - started:.1f} s", hf[-1:] if who == "hf" else (ours1[-1], ours2[-1]), flush=True)
    med = {"hf_trainer_s": statistics.median(hf), "raysweep_epoch1_s": statistics.median(ours1), "raysweep_epoch2_s": statistics.median(ours2)}
    results = {**med, "speed_vs_hf_epoch2": med["hf_trainer_s"] / med["raysweep_epoch2_s"],
               "speed_vs_hf_epoch1": med["hf_trainer_s"] / med["raysweep_epoch1_s"], "hf": hf, "raysweep_epoch1": ours1,
               "raysweep_epoch2": ours2, "steps": args.steps, "batch": args.batch}  # fmt: skip
    (REPO / "benchmarks" / "results").mkdir(exist_ok=True)
    (REPO / "benchmarks" / "results" / "hf_trainer.json").write_text(json.dumps(results, indent=2))
    print(f"\n| {args.steps} steps of batch {args.batch}, 1 torch thread, medians of {args.runs} | seconds | speed vs Trainer |\n|---|---|---|")
    print(f"| transformers Trainer, dataloader_num_workers=1 | {med['hf_trainer_s']:.2f} | 1.00x |")
    print(f"| raysweep, ray_data input, epoch 1 (pipeline processes start) | {med['raysweep_epoch1_s']:.2f} | {results['speed_vs_hf_epoch1']:.2f}x |")
    print(f"| raysweep, ray_data input, epoch 2 | {med['raysweep_epoch2_s']:.2f} | {results['speed_vs_hf_epoch2']:.2f}x |")


if __name__ == "__main__":
    main()
