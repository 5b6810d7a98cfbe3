"""raysweep report on a fabricated MLflow store: index.html (self-contained), report.md, CSVs, seeds, links."""

import csv
import html
import re

import pytest

from raysweep.cli import main
from raysweep.tracking import RunLogger

try:  # the answer grid's slugs, from whichever module the data's task names come from
    from raysweep.tasks import default_task

    SLUGS = default_task().slugs
except ImportError:
    from raysweep.metrics import AREA_SLUGS as SLUGS

EXPERIMENT = "report-test"
SWEEP = "ranks"
# rank, seed, val/acc per epoch, fine-tuned test accuracy on civet
TRIALS = [(8, 0, [0.4, 0.8], 0.80), (8, 1, [0.5, 0.7], 0.70), (16, 0, [0.6, 0.9], 0.90), (16, 1, [0.5, 0.95], 0.94)]


def _final(tuned: float) -> dict:
    m = {}
    for kind, acc in (("base", 0.2), ("test", tuned)):
        p = f"{kind}/civet/"
        m.update({p + "acc": acc, p + "acc_ci_low": acc - 0.05, p + "acc_ci_high": acc + 0.05})
        for i, slug in enumerate(SLUGS):
            m[p + f"acc/{slug}"] = acc if kind == "test" else 0.1 * (i % 3)
            m[p + f"pred_frac/{slug}"] = 1 / len(SLUGS)
        m[p + "center_bias"] = 0.3 if kind == "base" else 0.01
    return m


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlstore")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    parent = RunLogger.start(uri, EXPERIMENT, SWEEP, tags={"raysweep.sweep": SWEEP, "raysweep.role": "sweep"})
    parent.log_params({"sweep.seeds": "[0, 1]", "sweep.metric": "val/acc", "sweep.space.lora.rank.grid": "[8, 16]"})
    names = {}
    for rank, seed, curve, tuned in TRIALS:
        name = f"r{rank}-s{seed}"
        run = RunLogger.start(uri, EXPERIMENT, name, parent.run_id, {"raysweep.role": "trial", "raysweep.trial_status": "completed"})
        run.log_params({"family": "llava-next", "base_checkpoint": "tiny", "lora.rank": rank, "train.seed": seed, "train.lr": 0.001})
        for epoch, acc in enumerate(curve, start=1):
            run.log_metrics({"val/acc": acc}, step=epoch)
        run.log_metrics(_final(tuned))
        run.end("FINISHED")
        names[name] = run.run_id
    parent.end("FINISHED")
    return uri, names


@pytest.fixture(scope="module")
def report_dir(store, tmp_path_factory):
    uri, _ = store
    out = tmp_path_factory.mktemp("report") / "ranks"
    args = ["report", "--experiment", EXPERIMENT, "--sweep", SWEEP, "--out", str(out), "--tracking-uri", uri,
            "--mlflow-ui", "http://mlflow.example:5000/"]  # fmt: skip
    assert main(args) == 0
    return out


def test_writes_page_markdown_and_csv(report_dir, capsys):
    for name in ("index.html", "report.md", "models.csv", "trials.csv", "seeds.csv", "per_area.csv"):
        assert (report_dir / name).stat().st_size > 100, name


def test_page_is_self_contained(report_dir):
    page = (report_dir / "index.html").read_text()
    srcs = re.findall(r'\bsrc="([^"]*)"', page)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "<script" not in page and "<link" not in page and "url(" not in page
    assert len(srcs) >= 3  # the heatmap pair, the ablation line, the validation curves


def test_trial_table_links_each_run_to_the_mlflow_ui(store, report_dir):
    _, names = store
    page = html.unescape((report_dir / "index.html").read_text())
    trials = page[page.index('data-table="trials"'):]
    trials = trials[: trials.index("</table>")]
    for name, run_id in names.items():
        assert re.search(rf'<a href="http://mlflow.example:5000/#/experiments/\d+/runs/{run_id}">{name}</a>', trials), name


def test_means_over_seeds_with_intervals(report_dir):
    rows = list(csv.DictReader((report_dir / "seeds.csv").open()))
    by_point = {r["point"]: r for r in rows}
    assert set(by_point) == {"lora.rank=8", "lora.rank=16"}
    r16 = by_point["lora.rank=16"]
    assert r16["seeds"] == "0, 1" and float(r16["civet mean acc"]) == pytest.approx(0.92)
    assert float(r16["civet mean acc ci_low"]) < 0.92 < float(r16["civet mean acc ci_high"])
    md = (report_dir / "report.md").read_text()
    assert "### Mean over seeds" in md and "92.0% [" in md
    assert "Mean over seeds" in (report_dir / "index.html").read_text()


def test_configuration_of_sweep_and_best_run(report_dir):
    page = html.unescape((report_dir / "index.html").read_text())
    assert "sweep.seeds" in page and "best llava-next run r16-s1" in page


def test_no_links_without_a_ui_for_a_file_store(store, tmp_path):
    uri, _ = store
    assert main(["report", "--experiment", EXPERIMENT, "--out", str(tmp_path), "--tracking-uri", uri]) == 0
    assert "<a href" not in (tmp_path / "index.html").read_text()


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--experiment", "report-tset"], "Did you mean 'report-test'"),
        (["--experiment", EXPERIMENT, "--sweep", "nope"], "sweeps there: ranks"),
        (["--experiment", EXPERIMENT, "--mlflow-ui", "mlflow.example"], "expected an http(s) address"),
    ],
)
def test_bad_input_is_one_line_exit_2(store, tmp_path, capsys, extra, words):
    uri, _ = store
    assert main(["report", *extra, "--out", str(tmp_path / "o"), "--tracking-uri", uri]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1
