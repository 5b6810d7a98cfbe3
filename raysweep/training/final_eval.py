"""End-of-run evaluation: the base model and the fine-tuned adapter on every eval set (no Ray here).

Who predicts is pluggable: :class:`~raysweep.evaluate.LocalPredictor` (this process) or, from the
Ray layer, :class:`~raysweep.launch.inference.RayDataPredictor` (Ray Data batch inference on a pool
of model replicas). Either gets all sets and modes of one model at once, so each replica builds the
model once per model.
"""

from __future__ import annotations

from pathlib import Path

from raysweep.training.data import eval_source


def eval_modes(eval_cfg) -> list[str]:
    return ["choice", "generate"] if eval_cfg.mode == "both" else [eval_cfg.mode]


def metric_prefix(kind: str, set_name: str, mode: str, primary: str) -> str:
    """``test/<set>/`` for the primary mode, ``test/<set>/<mode>/`` for the other."""
    return f"{kind}/{set_name}/" if mode == primary else f"{kind}/{set_name}/{mode}/"


def local_predictor(cfg, adapter_dir):
    """A :class:`~raysweep.evaluate.LocalPredictor` of ``cfg``'s base model, with ``adapter_dir`` if given."""
    from raysweep.evaluate import LocalPredictor

    def build():
        import torch

        from raysweep.models import get_family
        from raysweep.tasks import training_task

        torch.set_num_threads(cfg.train.threads)
        family = get_family(cfg.model.family)
        built = family.build(cfg.model, training_task(cfg.data))
        return family.load_adapter(built, adapter_dir) if adapter_dir is not None else built

    return LocalPredictor(build, cfg.eval.batch_size, cfg.eval.max_new_tokens)


def evaluate_sets(cfg, adapter_dir, out_dir, progress: bool = True, base_cache: str | None = None,
                  wait_s: float = 0.0, predictor_for=None) -> dict[str, float]:  # fmt: skip
    """Metrics ``base/<set>/...`` and ``test/<set>/...`` for every ``train.eval_sets`` entry.

    Reports (JSON, predictions, heatmaps) go to ``out_dir/<set>/{base,finetuned}[-<mode>]``.
    ``base_cache``: a sweep's :class:`~raysweep.training.base_cache.BaseCache` location; base results
    come from it where it holds them (waiting up to ``wait_s`` for one the driver is computing), and
    ``out_dir/base_from.json`` says where each set's came from. ``predictor_for(adapter_dir or
    None)``: who predicts (default :func:`local_predictor`).
    """
    import json

    from raysweep.evaluate import score_predictions, scalar_metrics, write_report
    from raysweep.training.base_cache import BaseCache, evaluate_base_sets

    predictor_for = predictor_for or (lambda adapter: local_predictor(cfg, adapter))
    sources = [(s.name, eval_source(s)) for s in cfg.train.eval_sets]
    sets = [(name, src.rows(range(len(src))), src.task) for name, src in sources]  # each set scored by its own task
    modes, primary = eval_modes(cfg.eval), eval_modes(cfg.eval)[0]
    metrics: dict[str, float] = {}

    def run(kind: str, folder: str, adapter, targets: list[tuple[int, Path]]) -> list[dict]:
        """Predict every (set, mode) of ``targets`` with one predictor; score, write reports, return each set's metrics."""
        jobs = [(sets[i][1], mode, sets[i][2]) for i, _ in targets for mode in modes]
        results = iter(predictor_for(adapter).predict(jobs))
        found_all = []
        for i, set_dir in targets:
            name, rows, task = sets[i]
            found = {}
            for mode in modes:
                preds, errors, seconds = next(results)
                result = score_predictions(rows, preds, errors, task, mode, cfg.eval.leniency, seconds, cfg.eval.max_new_tokens)
                found.update(scalar_metrics(result, metric_prefix(kind, name, mode, primary)))
                write_report(result, set_dir / (folder if mode == primary else f"{folder}-{mode}"), title=f"{name} {folder}", task=task)
                if progress:
                    print(f"  {kind:5s} {name:16s} {mode:8s} acc {result['acc']:.1%}  (n={result['n']})", flush=True)
            found_all.append(found)
        return found_all

    if cfg.train.eval_base:
        cache = BaseCache(base_cache) if base_cache else None
        base, source = evaluate_base_sets(cfg, Path(out_dir), cache, lambda targets: run("base", "base", None, targets), wait_s)
        metrics.update(base)
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "base_from.json").write_text(json.dumps(source, indent=2))
    if adapter_dir is not None and sets:
        for found in run("test", "finetuned", adapter_dir, [(i, Path(out_dir) / name) for i, (name, _, _) in enumerate(sets)]):
            metrics.update(found)
    return metrics
