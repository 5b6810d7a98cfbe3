"""The open questions' report tables (issue 16) and the generation metrics they read."""

from __future__ import annotations

from analysis.experiments import experiment_tables
from analysis.runs import Trial
from analysis.tables import Acc


def trial(name: str, params: dict, metrics: dict) -> Trial:
    base = {"eval.mode": "both", "data.source": "synthetic", "data.size": "36", "data.area_distribution": "",
            "data.label_noise": "0.0", "data.label_noise_to": "uniform", "data.answer_format_noise": "0.0",
            "train.steps_per_epoch": "0", "data.mix.ratio": "0.0", "data.curriculum": "[]", "model.head": "text",
            "lora.enabled": "True"}  # fmt: skip
    return Trial(name, name, {**base, **params}, metrics, "FINISHED")


def test_collapse_table_has_one_row_per_arm_with_generation_columns():
    trials = [
        trial("clean", {}, {"test/coco_val/acc": 0.5, "test/coco_val/generate/acc": 0.4, "test/coco_val/generate/parse_fail_rate": 0.1,
                            "test/coco_val/generate/empty_answer_rate": 0.0, "test/coco_val/generate/mean_new_tokens": 3.0}),
        trial("noisy", {"data.label_noise": "0.2", "train.steps_per_epoch": "20"},
              {"test/coco_val/acc": 0.3, "test/coco_val/generate/acc": 0.0, "test/coco_val/generate/parse_fail_rate": 1.0,
               "test/coco_val/generate/empty_answer_rate": 0.75, "test/coco_val/generate/mean_new_tokens": 15.0}),
    ]  # fmt: skip
    tables = {t.slug: t for t in experiment_tables(trials, ["coco_val"])}
    assert list(tables) == ["collapse"]
    table = tables["collapse"]
    assert table.headers == ["run", "data.label_noise", "budget", "coco_val acc", "coco_val generate acc", "coco_val parse fail",
                             "coco_val empty", "coco_val tokens"]  # fmt: skip
    noisy = next(r for r in table.rows if r[0] == "noisy")
    assert noisy[1:3] == ["0.2", "compute-matched (20 steps/epoch)"]
    assert noisy[3] == Acc(0.3) and noisy[4] == Acc(0.0) and noisy[5:] == [1.0, 0.75, "15.0"]
    assert "| noisy | 0.2 | compute-matched (20 steps/epoch) | 30.0% | 0.0% | 100.0% | 75.0% | 15.0 |" in table.markdown()


def test_mixing_and_head_tables_appear_only_for_their_sweeps():
    mixing = [trial(f"r{r}", {"data.mix.ratio": str(r), "data.mix.source": "coco-full"}, {"test/civet_test/acc": 0.5}) for r in (0.0, 0.5)]
    assert [t.slug for t in experiment_tables(mixing, ["civet_test"])] == ["mixing"]
    heads = [trial(h, {"model.head": h, "eval.mode": "choice"}, {"test/civet_test/acc": 0.9}) for h in ("text", "linear")]
    (table,) = experiment_tables(heads, ["civet_test"])
    assert table.slug == "clip_heads" and table.headers == ["run", "model.head", "lora.enabled", "civet_test acc"]
    assert experiment_tables([trial("plain", {}, {})], ["civet_test"]) == []


def test_generate_mode_reports_empty_answers_and_the_used_budget(monkeypatch):
    from raysweep import evaluate
    from raysweep.models.base import Prediction
    from raysweep.tasks import default_task

    texts = [("top left", 3), ("", 1), ("top top top top", 15), ("center", 2)]
    from types import SimpleNamespace

    monkeypatch.setattr(evaluate, "predict_rows", lambda *a, **k: ([Prediction(-1, t, new_tokens=n) for t, n in texts], {}))
    monkeypatch.setattr(evaluate, "for_task", lambda built, task: SimpleNamespace(task=task))
    rows = [{"label": 0, "scene_id": i} for i in range(4)]
    result = evaluate.evaluate_rows(None, rows, mode="generate", max_new_tokens=15, task=default_task())
    assert result["empty_answer_rate"] == 0.25 and result["budget_used_rate"] == 0.25
    assert result["mean_new_tokens"] == 21 / 4 and result["parse_fail_rate"] == 0.5  # '' and the loop parse to nothing
