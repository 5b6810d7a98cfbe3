"""End-of-run evaluation: the base model and the fine-tuned adapter on every eval set (no Ray)."""

from __future__ import annotations

from pathlib import Path

from raysweep.training.data import eval_source


def eval_modes(eval_cfg) -> list[str]:
    return ["choice", "generate"] if eval_cfg.mode == "both" else [eval_cfg.mode]


def metric_prefix(kind: str, set_name: str, mode: str, primary: str) -> str:
    """``test/<set>/`` for the primary mode, ``test/<set>/<mode>/`` for the other."""
    return f"{kind}/{set_name}/" if mode == primary else f"{kind}/{set_name}/{mode}/"


def evaluate_sets(cfg, adapter_dir, out_dir, progress: bool = True) -> dict[str, float]:
    """Metrics ``base/<set>/...`` and ``test/<set>/...`` for every ``train.eval_sets`` entry.

    Reports (JSON, predictions, heatmaps) go to ``out_dir/<set>/{base,finetuned}[-<mode>]``.
    """
    import torch

    from raysweep.evaluate import evaluate_rows, scalar_metrics, write_report
    from raysweep.models import get_family
    from raysweep.tasks import training_task

    torch.set_num_threads(cfg.train.threads)
    family = get_family(cfg.model.family)
    built = family.build(cfg.model, training_task(cfg.data))
    sources = [(s.name, eval_source(s)) for s in cfg.train.eval_sets]
    sets = [(name, src.rows(range(len(src))), src.task) for name, src in sources]  # each set scored by its own task
    modes, primary = eval_modes(cfg.eval), eval_modes(cfg.eval)[0]
    metrics: dict[str, float] = {}

    def run(kind: str, folder: str):
        for name, rows, task in sets:
            for mode in modes:
                result = evaluate_rows(built, rows, mode=mode, batch_size=cfg.eval.batch_size,
                                       max_new_tokens=cfg.eval.max_new_tokens, leniency=cfg.eval.leniency, task=task)
                metrics.update(scalar_metrics(result, metric_prefix(kind, name, mode, primary)))
                sub = folder if mode == primary else f"{folder}-{mode}"
                write_report(result, Path(out_dir) / name / sub, title=f"{name} {folder}", task=task)
                if progress:
                    print(f"  {kind:5s} {name:16s} {mode:8s} acc {result['acc']:.1%}  (n={result['n']})", flush=True)

    if cfg.train.eval_base:
        run("base", "base")
    if adapter_dir is not None:
        built = family.load_adapter(built, adapter_dir)
        run("test", "finetuned")
    return metrics
