"""Runs or registered versions side by side, with a paired test on the same eval rows (no Ray).

Each reference is a run id, a run name, ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``. For every
eval set both sides were tested on, :func:`compare_runs` gives each side's accuracy with its interval,
the per-area differences and the exact McNemar test: among the rows one side gets right and the
other wrong (the discordant pairs), is the split more uneven than a fair coin would make it
(``scipy.stats.binomtest``, two-sided)? Pairing needs the same rows, so the eval sets' identities
(the ``raysweep.data.<set>`` provenance tag, or the set's Parquet content hash) and the rows' ids in
``predictions.jsonl`` must agree; otherwise the comparison is refused.

With ``pool_seeds`` a reference stands for its sweep point: every trial of the same sweep whose
swept values differ only in ``train.seed``. Accuracies are then means over seeds (95% t interval),
and the pairs are (seed, row): both sides must have run the same seeds.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from raysweep.errors import UserError
from raysweep.metrics import wilson_interval

SEED_TAG = "raysweep.space.train.seed"
BOOKKEEPING = ("train.name", "train.storage_path")  # where a run wrote, not what it was: left out of the config diff
RUN_ID = re.compile(r"^[0-9a-f]{32}$")
SET_ACC = re.compile(r"^test/([^/]+)/acc$")


@dataclass
class Side:
    """One side of a comparison: the reference as given and the run(s) it stands for."""

    ref: str
    runs: list  # mlflow Run objects; several when seeds are pooled
    label: str = ""
    version: str | None = None
    predictions: dict = field(default_factory=dict)  # set -> {(seed, row key): correct}

    @property
    def seeds(self) -> list[str]:
        return sorted(r.data.tags.get(SEED_TAG, r.data.params.get("train.seed", "?")) for r in self.runs)


def resolve(client, ref: str) -> tuple[object, str, str | None]:
    """``(run, label, registered version)`` of a reference; a UserError naming it when it is not found."""
    from mlflow.exceptions import MlflowException

    if ref.startswith("models:/"):
        body = ref[len("models:/") :]
        try:
            if "@" in body:
                name, alias = body.split("@", 1)
                mv = client.get_model_version_by_alias(name, alias)
            elif "/" in body:
                name, version = body.rsplit("/", 1)
                mv = client.get_model_version(name, version)
            else:
                raise UserError(f"{ref}: expected models:/NAME@ALIAS or models:/NAME/VERSION")
        except MlflowException as err:
            raise UserError(f"{ref}: no such registered model version ({str(err).splitlines()[0]})") from None
        if not mv.run_id:
            raise UserError(f"{ref}: version {mv.version} has no source run to read its evaluation from")
        return client.get_run(mv.run_id), f"{ref} (version {mv.version})", str(mv.version)
    if RUN_ID.match(ref):
        try:
            return client.get_run(ref), ref, None
        except MlflowException:
            pass
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id], filter_string=f"attributes.run_name = '{ref}'")]
    if not runs:
        raise UserError(f"{ref}: no run with that id or name; pass a run id, a run name, models:/NAME@ALIAS or models:/NAME/VERSION")
    if len(runs) > 1:
        ids = ", ".join(r.info.run_id for r in runs[:5])
        raise UserError(f"{ref}: {len(runs)} runs have that name ({ids}); pass one run id instead")
    return runs[0], f"{ref} ({runs[0].info.run_id[:8]})", None


def seed_siblings(client, run) -> list:
    """The trials of ``run``'s sweep at the same point (swept values equal except ``train.seed``), seed order."""
    parent = run.data.tags.get("mlflow.parentRunId")
    if not parent or SEED_TAG not in run.data.tags:
        return [run]
    point = {k: v for k, v in run.data.tags.items() if k.startswith("raysweep.space.") and k != SEED_TAG}
    children = client.search_runs([run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent}'", max_results=10000)
    same = [r for r in children if {k: v for k, v in r.data.tags.items() if k.startswith("raysweep.space.") and k != SEED_TAG} == point]
    return sorted(same, key=lambda r: r.data.tags.get(SEED_TAG, ""))


def eval_sets_of(run) -> list[str]:
    return sorted(m.group(1) for k in run.data.metrics for m in [SET_ACC.match(k)] if m)


def set_identity(client, run, name: str) -> str | None:
    """The eval set's identity: the provenance tag, else its Parquet hash from the run's config (None: unknown)."""
    tagged = run.data.tags.get(f"raysweep.data.{name}")
    if tagged:
        return tagged
    config = _artifact_text(client, run.info.run_id, "adapter/run_config.yaml")
    if config is None:
        return None
    import yaml

    for entry in (yaml.safe_load(config).get("train", {}).get("eval_sets") or []):
        if entry.get("name") == name and entry.get("path") and Path(entry["path"]).exists():
            from raysweep.datasets import dataset_identity

            limit = entry.get("limit")
            return "parquet:" + dataset_identity(entry["path"]) + (f":limit={limit}" if limit else "")
    return None


def _artifact_text(client, run_id: str, path: str) -> str | None:
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path, dst_path=tmp, tracking_uri=client.tracking_uri)
        except Exception:  # noqa: BLE001 - MLflow raises several kinds for a missing artifact
            return None
        return Path(local).read_text()


def load_predictions(client, run, name: str) -> dict[tuple, bool]:
    """``{row key: correct}`` of the fine-tuned model on eval set ``name``; a row key is ``(scene_id, occurrence)``."""
    text = _artifact_text(client, run.info.run_id, f"eval/{name}/finetuned/predictions.jsonl")
    if text is None:
        raise UserError(f"run {run.info.run_id}: no eval/{name}/finetuned/predictions.jsonl artifact; the paired test "
                        "needs the fine-tuned model's predictions (logged by raysweep train's final evaluation)")  # fmt: skip
    seen: dict = {}
    out = {}
    for line in text.splitlines():
        if line.strip():
            row = json.loads(line)
            key = row.get("scene_id", row.get("id"))
            seen[key] = seen.get(key, -1) + 1
            target = row["label"] if "label" in row else row["area"]  # "area" in predictions written before tasks
            out[(str(key), seen[key])] = row["pred"] == target
    return out


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value: a binomial test of the discordant pairs against 1/2."""
    from scipy.stats import binomtest

    n = a_only + b_only
    return 1.0 if n == 0 else float(binomtest(b_only, n, 0.5, alternative="two-sided").pvalue)


def compare_runs(uri: str, refs: list[str], pool_seeds: bool = False, alpha: float = 0.05) -> dict:
    """Compare each of ``refs[1:]`` with ``refs[0]``; returns a JSON-ready dict (see :func:`format_comparison`).

    Raises:
        UserError: a reference is not found, the runs share no eval set, or an eval set's identity or rows differ.
    """
    import os

    from mlflow import MlflowClient

    from raysweep.sweep.seeds import mean_interval

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per predictions file otherwise
    if len(refs) < 2:
        raise UserError("compare needs at least two runs or model versions (A B ...)")
    client = MlflowClient(tracking_uri=uri)
    sides = []
    for ref in refs:
        run, label, version = resolve(client, ref)
        sides.append(Side(ref, seed_siblings(client, run) if pool_seeds else [run], label, version))
    common = sorted(set.intersection(*[set.intersection(*[set(eval_sets_of(r)) for r in s.runs]) for s in sides]))
    if not common:
        raise UserError(f"{' and '.join(refs)} share no eval set with a fine-tuned accuracy (test/<set>/acc); nothing to pair")
    base = sides[0]
    result = {"runs": [_side_json(s) for s in sides], "config_diff": config_diff(sides), "sets": {}, "alpha": alpha,
              "pooled_seeds": pool_seeds}  # fmt: skip
    for name in common:
        identities = {s.ref: sorted({set_identity(client, r, name) or "unknown" for r in s.runs}) for s in sides}
        known = {tuple(v) for v in identities.values() if v != ["unknown"]}
        if len(known) > 1 or any(len(v) > 1 for v in identities.values()):
            shown = "; ".join(f"{ref}: {', '.join(v)}" for ref, v in identities.items())
            raise UserError(f"eval set {name!r} is not the same data on both sides ({shown}); a paired test needs the same rows: "
                            "compare runs evaluated on one dataset")  # fmt: skip
        for s in sides:
            s.predictions[name] = {(r.data.tags.get(SEED_TAG, "") if pool_seeds else "", *key): ok
                                   for r in s.runs for key, ok in load_predictions(client, r, name).items()}  # fmt: skip
        rows = set(base.predictions[name])
        for s in sides[1:]:
            if set(s.predictions[name]) != rows:
                what = f"seeds {base.seeds} vs {s.seeds}" if pool_seeds and base.seeds != s.seeds else "row ids"
                raise UserError(f"eval set {name!r}: {s.ref} and {base.ref} were scored on different rows ({what}); "
                                "a paired test needs the same rows")  # fmt: skip
        unknown = [ref for ref, v in identities.items() if v == ["unknown"]]
        entry = {"identity": (sorted(known)[0][0] if known else None), "identity_unknown": unknown, "rows": len(rows),
                 "runs": [], "vs_first": []}  # fmt: skip
        for s in sides:
            correct = sum(s.predictions[name].values())
            low, high = wilson_interval(correct, len(rows))
            stat = {"acc": correct / len(rows), "ci_low": low, "ci_high": high, "correct": correct}
            if len(s.runs) > 1:
                stat["seed_mean"] = dict(zip(("mean", "ci_low", "ci_high"), mean_interval([r.data.metrics.get(f"test/{name}/acc") for r in s.runs])))
            stat["per_area"] = per_area(s.runs, name)
            entry["runs"].append(stat)
        for s, stat in zip(sides[1:], entry["runs"][1:]):
            a, b = base.predictions[name], s.predictions[name]
            a_only = sum(a[k] and not b[k] for k in rows)
            b_only = sum(b[k] and not a[k] for k in rows)
            p = mcnemar_exact(a_only, b_only)
            areas = entry["runs"][0]["per_area"]
            entry["vs_first"].append({
                "ref": s.ref, "delta": stat["acc"] - entry["runs"][0]["acc"], "first_only_right": a_only,
                "only_right": b_only, "p_value": p, "significant": p < alpha,
                "per_area_delta": {k: stat["per_area"][k] - areas[k] for k in areas if k in stat["per_area"]},
            })  # fmt: skip
        result["sets"][name] = entry
    return result


def per_area(runs: list, name: str) -> dict[str, float]:
    """Fine-tuned accuracy per answer area (the slugs the run logged), averaged over ``runs``."""
    prefix = f"test/{name}/acc/"
    keys = [k for k in runs[0].data.metrics if k.startswith(prefix)]
    return {k[len(prefix) :]: sum(r.data.metrics.get(k, 0.0) for r in runs) / len(runs) for k in keys}


def config_diff(sides: list[Side]) -> dict[str, list]:
    """Config keys (run params) whose values differ between the sides' first runs.

    Left out: where a run wrote (``train.name``, ``train.storage_path``), the ``sweep.*`` section, and
    ``train.seed`` when seeds are pooled.
    """
    params = [s.runs[0].data.params for s in sides]
    pooled = any(len(s.runs) > 1 for s in sides)
    keys = sorted(set().union(*params))
    return {k: [p.get(k) for p in params] for k in keys
            if len({p.get(k) for p in params}) > 1 and k not in BOOKKEEPING and not k.startswith("sweep.")
            and not (pooled and k == "train.seed")}  # fmt: skip


def _side_json(s: Side) -> dict:
    return {"ref": s.ref, "label": s.label, "version": s.version, "run_ids": [r.info.run_id for r in s.runs],
            "run_names": [r.info.run_name for r in s.runs], "seeds": s.seeds if len(s.runs) > 1 else None}  # fmt: skip


def format_comparison(result: dict) -> str:
    """The comparison as text: the sides, differing config keys, then per eval set accuracy, per-area deltas and McNemar."""
    letters = [chr(ord("A") + i) for i in range(len(result["runs"]))]
    lines = []
    for letter, side in zip(letters, result["runs"]):
        seeds = f", seeds {', '.join(side['seeds'])} pooled" if side["seeds"] else ""
        lines.append(f"{letter}: {side['label']}  run {', '.join(side['run_ids'])}{seeds}")
    diff = result["config_diff"]
    lines += ["", "config keys that differ:" if diff else "config: no key differs"]
    width = max((len(k) for k in diff), default=0)
    lines += [f"  {k:{width}s}  " + "  |  ".join(str(v) for v in values) for k, values in diff.items()]
    for name, entry in result["sets"].items():
        unknown = f" (not recorded for {', '.join(entry['identity_unknown'])}: paired by row ids)" if entry["identity_unknown"] else ""
        lines += ["", f"eval set {name}: {entry['rows']} paired rows" + (f", identity {entry['identity']}" if entry["identity"] else "") + unknown]
        for letter, stat in zip(letters, entry["runs"]):
            mean = stat.get("seed_mean")
            seeds = f"   mean over seeds {_pct(mean['mean'])} [{_pct(mean['ci_low'])}, {_pct(mean['ci_high'])}]" if mean else ""
            lines.append(f"  {letter}  accuracy {_pct(stat['acc'])} [{_pct(stat['ci_low'])}, {_pct(stat['ci_high'])}]{seeds}")
        for letter, cmp in zip(letters[1:], entry["vs_first"]):
            verdict = (f"{letter} is {'better' if cmp['delta'] > 0 else 'worse'}: more than noise at {result['alpha']}"
                       if cmp["significant"] else f"no difference beyond noise at {result['alpha']}")  # fmt: skip
            lines.append(f"  {letter}-A {cmp['delta'] * 100:+.1f} pp; exact McNemar: A right/{letter} wrong {cmp['first_only_right']}, "
                         f"A wrong/{letter} right {cmp['only_right']}, p = {cmp['p_value']:.3g}: {verdict}")  # fmt: skip
            if cmp["per_area_delta"]:
                cells = [f"{k} {v * 100:+.1f}" for k, v in cmp["per_area_delta"].items()]
                lines.append(f"  per area {letter}-A (pp): " + ", ".join(cells))
    return "\n".join(lines)


def _pct(v) -> str:
    return "-" if v is None else f"{v:.1%}"
