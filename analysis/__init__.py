"""Tables and figures of the paper from raysweep's MLflow runs: the library behind ``raysweep report``."""

from analysis.runs import Trial, best_per_family, eval_sets, load_trials

__all__ = ["Trial", "best_per_family", "build_report", "eval_sets", "load_trials"]


def __getattr__(name: str):
    # Lazy, so that `python -m analysis.report` does not find the module imported twice.
    if name == "build_report":
        from analysis.report import build_report

        return build_report
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")
