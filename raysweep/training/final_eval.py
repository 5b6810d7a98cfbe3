"""End-of-run evaluation: the base model and the fine-tuned adapter on every eval set (no Ray)."""

from __future__ import annotations

from pathlib import Path

from raysweep.training.data import eval_source


def eval_modes(eval_cfg) -> list[str]:
    return ["choice", "generate"] if eval_cfg.mode == "both" else [eval_cfg.mode]


def metric_prefix(kind: str, set_name: str, mode: str, primary: str) -> str:
    """``test/<set>/`` for the primary mode, ``test/<set>/<mode>/`` for the other."""
    return f"{kind}/{set_name}/" if mode == primary else f"{kind}/{set_name}/{mode}/"


def evaluate_sets(cfg, adapter_dir, out_dir, progress: bool = True, base_cache: str | None = None,
                  wait_s: float = 0.0) -> dict[str, float]:  # fmt: skip
    """Metrics ``base/<set>/...`` and ``test/<set>/...`` for every ``train.eval_sets`` entry.

    Reports (JSON, predictions, heatmaps) go to ``out_dir/<set>/{base,finetuned}[-<mode>]``.
    ``base_cache``: a sweep's :class:`~raysweep.training.base_cache.BaseCache` location; base results
    come from it where it holds them (waiting up to ``wait_s`` for one the driver is computing), and
    ``out_dir/base_from.json`` says where each set's came from.
    """
    import json

    from raysweep.training.base_cache import BaseCache, evaluate_base_sets

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

    def run_one(kind: str, folder: str, index: int, set_dir: Path) -> dict:
        name, rows, task = sets[index]
        found = {}
        for mode in modes:
            result = evaluate_rows(built, rows, mode=mode, batch_size=cfg.eval.batch_size,
                                   max_new_tokens=cfg.eval.max_new_tokens, leniency=cfg.eval.leniency, task=task)
            found.update(scalar_metrics(result, metric_prefix(kind, name, mode, primary)))
            sub = folder if mode == primary else f"{folder}-{mode}"
            write_report(result, set_dir / sub, title=f"{name} {folder}", task=task)
            if progress:
                print(f"  {kind:5s} {name:16s} {mode:8s} acc {result['acc']:.1%}  (n={result['n']})", flush=True)
        return found

    if cfg.train.eval_base:
        cache = BaseCache(base_cache) if base_cache else None
        base, source = evaluate_base_sets(cfg, Path(out_dir), cache, lambda i, d: run_one("base", "base", i, d), wait_s)
        metrics.update(base)
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "base_from.json").write_text(json.dumps(source, indent=2))
    if adapter_dir is not None:
        built = family.load_adapter(built, adapter_dir)
        for i, (name, _, _) in enumerate(sets):
            metrics.update(run_one("test", "finetuned", i, Path(out_dir) / name))
    return metrics
