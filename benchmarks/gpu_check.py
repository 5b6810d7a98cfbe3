"""GPU check of the real-shape models: a LoRA training step, choice and generate at real widths, memory.

Run through ``bash benchmarks/gpu_check.sh`` (it supplies missing packages from carried wheels). On a
CUDA GPU each family is built at FULL depth from its published architecture with random weights
(no download: an 8B Qwen2-VL in bf16 is ~16.6 GB), so ``torch.cuda.max_memory_allocated`` of a training
step can be set against ``raysweep plan``'s estimate for the same batch. ``--cpu --dry-run`` runs the
same code on the CPU with the 1-2 layer real-shape variants and 56 px images: it checks the script.

Needs only torch, transformers, peft (and accelerate) plus pillow and the tokenizer data packages; no
Ray, MLflow or DeepSpeed (a ZeRO step runs only where ``import deepspeed`` works).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

GIB = 1024**3


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cpu", action="store_true", help="run on the CPU in fp32 (no GPU needed)")
    p.add_argument("--dry-run", action="store_true", help="1-2 layer variants, 56 px images, one timed step: checks the script")
    p.add_argument("--families", default="qwen2-vl,llava-next,clip", help="comma-separated families")
    p.add_argument("--batch", type=int, default=4, help="micro batch of the training step and of prediction")
    p.add_argument("--steps", type=int, default=5, help="timed training steps (after one warm-up step)")
    p.add_argument("--out", default="benchmarks/results/gpu_check.json", help="JSON report")
    return p.parse_args(argv)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def build(name, model_cfg, full_depth: bool, device, dtype):
    """The family's real-shape model (full depth: every published layer), with its LoRA adapter."""
    from raysweep.models import get_family
    from raysweep.models._shapes import _PROCESSORS, SHAPE_DEPTH, _model_class, config_for_tokenizer
    from raysweep.models.base import Built
    from raysweep.tasks import default_task

    family = get_family(name)
    processor, tok = _PROCESSORS[name](model_cfg)
    config = config_for_tokenizer(model_cfg.checkpoint, tok, None if full_depth else SHAPE_DEPTH[name], tie=not full_depth and name != "clip")
    torch.manual_seed(0)
    with torch.device(device):
        model = _model_class(name)._from_config(config, dtype=dtype)
    if name != "clip":
        model.generation_config.pad_token_id, model.generation_config.eos_token_id = tok.pad_token_id, tok.eos_token_id
    built = Built(model.eval(), processor, tok, name, model_cfg, device, task=default_task())
    return family, built


def check_family(name, args, device, dtype) -> dict:
    import dataclasses

    from raysweep.config import load_config
    from raysweep.models._rows import synthetic_rows
    from raysweep.plan import plan_trial

    cfg = load_config(f"configs/models/shape-{name}.yaml", [f"model.dtype={str(dtype).split('.')[-1]}", f"model.device={device.type}"])
    full = not args.dry_run
    family, built = build(name, cfg.model, full, device, dtype)
    built = family.apply_lora(built, cfg.lora)
    side = 56 if args.dry_run else cfg.data.canvas_size
    rows = synthetic_rows(args.batch, canvas_size=side)
    params = [p for p in built.model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    times, losses = [], []
    built.model.train()
    for step in range(1 + (1 if args.dry_run else args.steps)):
        sync(device)
        start = time.perf_counter()
        loss = family.loss(built, family.collate(built, rows, train=True))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync(device)
        if step:  # the first step warms up kernels and allocator
            times.append(time.perf_counter() - start)
        losses.append(loss.item())
    built.model.eval()
    peak = torch.cuda.max_memory_allocated() / GIB if device.type == "cuda" else None
    speed = {}
    for mode in ("choice", "generate"):
        sync(device)
        start = time.perf_counter()
        preds = family.predict(built, rows, mode, max_new_tokens=2 if args.dry_run else 15)
        sync(device)
        speed[mode] = time.perf_counter() - start
        assert len(preds) == len(rows)
    plan_cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, use_gpu=True, batch_size=args.batch, num_workers=1))
    estimate = plan_trial(plan_cfg).memory_gib if full else None
    return {
        "full_depth": full, "total_params": sum(p.numel() for p in built.model.parameters()), "trainable_params": sum(p.numel() for p in params),
        "image_side": side, "batch": args.batch, "losses": losses, "step_s_median": statistics.median(times),
        "peak_allocated_gib": peak, "plan_gib": estimate,
        "choice_s": speed["choice"], "generate_s": speed["generate"], "generate_over_choice": speed["generate"] / speed["choice"],
    }  # fmt: skip


def deepspeed_step(device) -> dict:
    """One ZeRO-2 and one ZeRO-3 step of a small model on one GPU, where DeepSpeed imports."""
    try:
        import deepspeed  # noqa: F401
    except Exception as err:  # noqa: BLE001 - any import failure means: not available here
        return {"skipped": f"deepspeed not importable ({type(err).__name__})"}
    if device.type != "cuda":
        return {"skipped": "needs a CUDA GPU"}
    import os

    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29533")
    os.environ.setdefault("RANK", "0")
    os.environ.setdefault("WORLD_SIZE", "1")
    os.environ.setdefault("LOCAL_RANK", "0")
    out = {}
    for stage in (2, 3):
        model = torch.nn.Sequential(torch.nn.Linear(1024, 4096), torch.nn.GELU(), torch.nn.Linear(4096, 1024)).to(device)
        config = {"train_micro_batch_size_per_gpu": 4, "bf16": {"enabled": True}, "zero_optimization": {"stage": stage},
                  "optimizer": {"type": "AdamW", "params": {"lr": 1e-4}}}  # fmt: skip
        try:
            engine, *_ = deepspeed.initialize(model=model, model_parameters=model.parameters(), config=config)
            x = torch.randn(4, 1024, device=device, dtype=torch.bfloat16)
            loss = engine(x).float().pow(2).mean()
            engine.backward(loss)
            engine.step()
            out[f"zero{stage}"] = {"loss": float(loss)}
        except Exception as err:  # noqa: BLE001 - reported, not fatal: the model checks above stand alone
            out[f"zero{stage}"] = {"error": f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"}
    return out


def main(argv=None) -> int:
    import peft
    import transformers

    args = parse_args(argv)
    if not args.cpu and not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU visible; run with --cpu --dry-run to check the script on a CPU", file=sys.stderr)
        return 2
    device = torch.device("cpu" if args.cpu else "cuda")
    dtype = torch.float32 if args.cpu else torch.bfloat16
    torch.set_num_threads(max(1, min(4, torch.get_num_threads())))
    report = {
        "device": "cpu" if args.cpu else torch.cuda.get_device_name(0), "dtype": str(dtype).split(".")[-1], "dry_run": args.dry_run,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__},
        "families": {}, "deepspeed": deepspeed_step(device),
    }  # fmt: skip
    for name in [f for f in args.families.split(",") if f]:
        report["families"][name] = check_family(name, args, device, dtype)
        print(f"gpu_check: {name}: {json.dumps(report['families'][name])}", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(table(report))
    return 0


def table(report: dict) -> str:
    """The README table of a report."""
    lines = [f"{report['device']}, {report['dtype']}, torch {report['versions']['torch']}, transformers {report['versions']['transformers']}"
             + (" (dry run: 1-2 layers, 56 px)" if report["dry_run"] else ""),
             "| family | params | step s | peak GiB | plan GiB | choice s | generate s | generate / choice |", "|---|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for name, r in report["families"].items():
        peak = f"{r['peak_allocated_gib']:.1f}" if r["peak_allocated_gib"] is not None else "-"
        plan = f"{r['plan_gib']['total']:.1f}" if r["plan_gib"] else "-"
        lines.append(f"| {name} | {r['total_params'] / 1e9:.2f}B | {r['step_s_median']:.2f} | {peak} | {plan} | {r['choice_s']:.2f} | {r['generate_s']:.2f} | {r['generate_over_choice']:.1f} |")
    lines.append(f"DeepSpeed: {json.dumps(report['deepspeed'])}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
