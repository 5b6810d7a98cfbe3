"""analysis.report on a fabricated MLflow store: a sweep parent, trials with known metrics, one stopped early."""

import csv

import pytest

# analysis/ is a repo-level tool (`python -m analysis.report`), importable through pytest's pythonpath.
from analysis import report
from raysweep.tasks import default_task

AREA_SLUGS = default_task().slugs
from raysweep.tracking import RunLogger

EXPERIMENT = "paper-test"
SETS = ("civet_test", "coco_val")


def _final_metrics(base_coco: float, tuned_coco: float, tuned_civet: float) -> dict:
    """Final metrics of a tested trial: base is centre-biased, fine-tuned is uniform per area."""
    m = {}
    for kind, civet, coco in (("base", 0.30, base_coco), ("test", tuned_civet, tuned_coco)):
        for s, acc in (("civet_test", civet), ("coco_val", coco)):
            p = f"{kind}/{s}/"
            m.update({p + "acc": acc, p + "acc_ci_low": acc - 0.04, p + "acc_ci_high": acc + 0.04, p + "macro_acc": acc})
            for slug in AREA_SLUGS:
                m[p + f"acc/{slug}"] = (0.9 if slug == "center" else 0.2) if kind == "base" else acc
                m[p + f"pred_frac/{slug}"] = (0.6 if slug == "center" else 0.05) if kind == "base" else 1 / 9
            m[p + "center_bias"] = 0.5 if kind == "base" else 0.02
        m[f"{kind}/civet_test/generate/acc"] = civet - 0.05  # no interval logged: shown without one
    return m


TRIALS = [
    # name, family, distractors, val/acc per epoch, status, final metrics (None: stopped before testing)
    ("d0", "llava-next", 0, [0.5, 0.7, 0.8], "completed", _final_metrics(0.40, 0.50, 0.97)),
    ("d1", "llava-next", 1, [0.3], "stopped_early", None),
    ("d3", "llava-next", 3, [0.6, 0.8, 0.9], "completed", _final_metrics(0.40, 0.62, 0.96)),
    ("d5", "llava-next", 5, [0.4, 0.6, 0.7], "completed", _final_metrics(0.40, 0.55, 0.90)),
    ("q3", "qwen2-vl", 3, [0.7, 0.85], "completed", _final_metrics(0.45, 0.70, 0.99)),
]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlstore")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        parent = RunLogger.start(uri, EXPERIMENT, "distractors", tags={"raysweep.sweep": "distractors", "raysweep.role": "sweep"})
        for name, family, distractors, curve, status, final in TRIALS:
            run = RunLogger.start(uri, EXPERIMENT, name, parent.run_id, {"raysweep.role": "trial", "raysweep.trial_status": status})
            run.log_params({"family": family, "model.family": family, "base_checkpoint": f"hub/{family}",
                            "data.distractors": distractors, "data.fraction": 1.0, "lora.rank": 32, "train_rows": 1296})
            for epoch, acc in enumerate(curve, start=1):
                run.log_metrics({"val/acc": acc, "val/loss": 1 - acc}, step=epoch)
            if final:
                run.log_metrics(final)
            run.end("FINISHED")
        parent.end("FINISHED")
        plain = RunLogger.start(uri, EXPERIMENT, "plain-run", tags={"raysweep.family": "clip"})
        plain.log_params({"family": "clip", "data.distractors": 0})
        plain.log_metrics({"val/acc": 0.99}, step=1)
        plain.log_metrics(_final_metrics(0.30, 0.31, 1.0))
        plain.end("FINISHED")
    return uri


@pytest.fixture(scope="module")
def sweep_report(store, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    code = report.main(["--experiment", EXPERIMENT, "--sweep", "distractors", "--tracking-uri", store, "--out", str(out)])
    assert code == 0
    return out


def _csv(path):
    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_model_table_best_run_per_family_with_ci_and_gain(sweep_report):
    md = (sweep_report / "report.md").read_text()
    # llava-next: d3 has the best val/acc (0.9); d1 is stopped and never tested.
    assert "| llava-next | fine-tuned | choice | d3 | 96.0% [92.0%, 100.0%] | +66.0 pp | 62.0% [58.0%, 66.0%] | +22.0 pp |" in md
    assert "| llava-next | base (hub/llava-next) | choice | d3 | 30.0% [26.0%, 34.0%] |  | 40.0% [36.0%, 44.0%] |  |" in md
    # the second prediction mode (eval.mode=both) gets its own rows; a mode no run logged stays "-"
    assert "| llava-next | fine-tuned | generate | d3 | 91.0% | +66.0 pp | - | - |" in md
    rows = {(r["family"], r["model"], r["prediction"]): r for r in _csv(sweep_report / "models.csv")}
    tuned = rows[("qwen2-vl", "fine-tuned", "choice")]
    assert float(tuned["coco_val"]) == pytest.approx(0.70)
    assert float(tuned["coco_val ci_low"]) == pytest.approx(0.66)
    assert float(tuned["coco_val gain"]) == pytest.approx(0.25)
    assert "plain-run" not in md  # not a trial of this sweep


def test_ablation_rows_per_swept_value_and_missing_metrics(sweep_report):
    rows = _csv(sweep_report / "ablations.csv")
    assert {r["key"] for r in rows} == {"data.distractors"}  # fraction and rank were not swept
    by = {(r["value"], r["family"]): r for r in rows}
    assert [v for v, f in by if f == "llava-next"] == ["0", "1", "3", "5"]
    stopped = by[("1", "llava-next")]
    assert (stopped["trials"], stopped["completed"], stopped["coco_val best"]) == ("1", "0", "")
    assert float(by[("3", "llava-next")]["coco_val best"]) == pytest.approx(0.62)
    assert float(by[("3", "llava-next")]["best val/acc"]) == pytest.approx(0.9)
    # the best trial's accuracy carries its Wilson interval; a mean of one trial has none
    assert float(by[("3", "llava-next")]["coco_val best ci_low"]) < 0.62 < float(by[("3", "llava-next")]["coco_val best ci_high"])
    means = [r for r in rows if r["coco_val mean ci_low"]]
    assert all(float(r["coco_val mean ci_low"]) <= float(r["coco_val mean"]) <= float(r["coco_val mean ci_high"]) for r in means)
    md = (sweep_report / "report.md").read_text()
    assert "| data.distractors | 1 | llava-next | 1 | 0 | 30.0% | - | - | - | - |" in md


def test_per_area_and_center_bias(sweep_report):
    md = (sweep_report / "report.md").read_text()
    assert "**llava-next, coco_val**" in md
    assert "| center | 20.0% → 62.0% | 90.0% → 62.0% | 20.0% → 62.0% |" in md
    area = [r for r in _csv(sweep_report / "per_area.csv") if r["family"] == "qwen2-vl" and r["eval set"] == "coco_val"]
    assert [r["area"] for r in area] == AREA_SLUGS
    assert float(area[4]["base"]) == pytest.approx(0.9) and float(area[4]["gain"]) == pytest.approx(-0.2)
    bias = {(r["family"], r["eval set"]): r for r in _csv(sweep_report / "center_bias.csv")}
    row = bias[("llava-next", "civet_test")]
    assert float(row["base center_bias"]) == pytest.approx(0.5) and float(row["fine-tuned center_bias"]) == pytest.approx(0.02)
    assert float(row["base center share"]) == pytest.approx(0.6)


def test_trials_table_lists_every_trial_with_status(sweep_report):
    rows = {r["run"]: r for r in _csv(sweep_report / "trials.csv")}
    assert set(rows) == {"d0", "d1", "d3", "d5", "q3"}
    assert (rows["d1"]["status"], rows["d1"]["epochs"], rows["d1"]["coco_val acc"]) == ("stopped_early", "1", "")
    assert rows["d3"]["epochs"] == "3"


def test_figures_are_written_and_linked(sweep_report):
    figs = sweep_report / "figures"
    expected = ["area_acc_llava-next_coco_val.png", "area_acc_qwen2-vl_civet_test.png", "acc_vs_data.distractors.png", "val_acc_curves.png"]
    for name in expected:
        assert (figs / name).stat().st_size > 1000, name
        assert f"](figures/{name})" in (sweep_report / "report.md").read_text()


def test_whole_experiment_includes_plain_runs(store, tmp_path):
    assert report.main(["--experiment", EXPERIMENT, "--tracking-uri", store, "--out", str(tmp_path)]) == 0
    printed = (tmp_path / "report.md").read_text()
    assert "| clip | fine-tuned | choice | plain-run |" in printed
    assert "6 trials (5 completed, 1 stopped_early)" in printed


@pytest.mark.parametrize(
    "args, words",
    [
        (["--experiment", "paper-tset"], "Did you mean 'paper-test'"),
        (["--experiment", EXPERIMENT, "--sweep", "nope"], "sweeps there: distractors"),
    ],
)
def test_errors_are_one_line_exit_2(store, tmp_path, capsys, args, words):
    assert report.main([*args, "--tracking-uri", store, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1


def test_missing_store_is_an_error(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'nothing.db'}"
    assert report.main(["--experiment", EXPERIMENT, "--tracking-uri", uri, "--out", str(tmp_path / "o")]) == 2
    assert "no MLflow store" in capsys.readouterr().err
    assert not (tmp_path / "nothing.db").exists()


def test_ablation_mean_has_a_t_interval_over_several_trials():
    from analysis.runs import Trial
    from analysis.tables import Acc, ablation_table

    def trial(i, rank, acc):
        return Trial(f"r{i}", f"t{i}", {"lora.rank": str(rank), "family": "llava-next"},
                     {"test/coco/acc": acc, "test/coco/acc_ci_low": acc - 0.05, "test/coco/acc_ci_high": acc + 0.05,
                      "val/acc": acc}, "completed")  # fmt: skip

    table = ablation_table([trial(0, 8, 0.5), trial(1, 8, 0.6), trial(2, 8, 0.7), trial(3, 16, 0.4)], ["coco"], ["lora.rank"])
    rows = {r[1]: r for r in table.rows}
    best, mean = rows["8"][-2], rows["8"][-1]
    assert (best.value, best.low, best.high) == pytest.approx((0.7, 0.65, 0.75))
    assert mean.value == pytest.approx(0.6) and mean.low == pytest.approx(0.6 - 0.2484, abs=1e-3) and mean.high > 0.8
    assert rows["16"][-1] == Acc(0.4, None, None)  # one trial: no interval
