"""raysweep plan: trials, GPUs and the memory of each Train worker for a train or sweep config, no GPU needed."""

from raysweep.commands._common import add_config_arguments, load_from_args

HELP = "Plan a train or sweep config without weights or a GPU: trials, GPUs per trial, trials at once, memory per worker."


def add_arguments(parser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--gpus", type=int, default=0, metavar="N", help="GPUs of the cluster (for trials at once)")
    parser.add_argument("--gpu-memory", type=float, default=0.0, metavar="GiB",
                        help="memory of one GPU (default: train.gpu_memory_gib, else this machine's GPU, else 80)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")


def run(args) -> int:
    import json
    import sys
    from pathlib import Path

    from raysweep.commands.sweep import _configs_root
    from raysweep.errors import UserError
    from raysweep.plan import local_gpu_memory_gib, plan_trial, suggestions, trial_configs

    if args.gpus < 0 or args.gpu_memory < 0:
        raise UserError("--gpus and --gpu-memory must be >= 0")
    cfg = load_from_args(args)
    configs, trials = trial_configs(cfg, _configs_root(Path(args.config)))
    memory = args.gpu_memory or cfg.train.gpu_memory_gib or local_gpu_memory_gib() or 80.0
    plans = []
    for trial in configs:
        plan = plan_trial(trial)
        plan.gpus = trial.train.num_workers if trial.train.use_gpu else 0
        plan.fits = plan.memory_gib["total"] <= memory
        if not plan.fits:
            plan.suggestions = suggestions(trial, plan, memory)
        plans.append(plan)
    per_trial = max(p.gpus for p in plans)
    at_once = (args.gpus // per_trial if per_trial else None) if args.gpus else None
    if cfg.sweep.space and at_once and cfg.sweep.max_concurrent:
        at_once = min(at_once, cfg.sweep.max_concurrent)
    report = {"config": args.config, "kind": "sweep" if cfg.sweep.space else "train", "trials_count": trials,
              "gpus": args.gpus, "gpu_memory_gib": memory, "trials_at_once": at_once,
              "trials": [p.as_dict() for p in plans]}  # fmt: skip
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_plan(report))
    misfits = [p for p in plans if not p.fits]
    if misfits:
        worst = max(misfits, key=lambda p: p.memory_gib["total"])
        print(f"raysweep plan: error: {worst.family} ({worst.checkpoint}) needs an estimated {worst.memory_gib['total']:.1f} GiB per worker, "
              f"more than the GPU's {memory:g} GiB; {'; '.join(worst.suggestions) or 'use a larger GPU'}", file=sys.stderr)  # fmt: skip
        return 2
    return 0


def format_plan(report: dict) -> str:
    """The plan as a table with the sources of its figures underneath."""
    lines = [
        f"{report['config']}: {report['kind']}, {report['trials_count']} trial(s); "
        + (f"{report['gpus']} GPUs: {report['trials_at_once']} trial(s) at once; " if report["gpus"] else "")
        + f"GPU memory {report['gpu_memory_gib']:g} GiB",
        f"{'family':<11} {'checkpoint':<34} {'params':>7} {'gpus':>4} {'seq':>5} {'img':>5}  "
        f"{'weights':>7} {'lora':>5} {'optim':>5} {'grads':>5} {'activ':>6} {'total':>6}  fits",
    ]
    for t in report["trials"]:
        m = t["memory_gib"]
        lines.append(
            f"{t['family']:<11} {t['checkpoint']:<34} {t['params'] / 1e9:>6.2f}B {t['gpus']:>4} {t['seq_len']:>5} {t['image_tokens']:>5}  "
            f"{m['weights']:>7.2f} {m['lora']:>5.2f} {m['optimizer']:>5.2f} {m['gradients']:>5.2f} {m['activations']:>6.2f} {m['total']:>6.2f}  "
            f"{'yes' if t['fits'] else 'NO'}"
        )
    lines.append("GiB per Train worker (total includes 1 GiB CUDA context and fragmentation); seq = tokens of one example, img = its image tokens")
    for t in report["trials"]:
        lines.append(f"  {t['family']}: params from {t['params_source']}; image tokens {t['image_tokens_source']}")
        lines += [f"    try {s}" for s in t["suggestions"]]
    return "\n".join(lines)
