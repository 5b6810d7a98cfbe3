"""Metrics as plain functions, named and scored by the task of the data."""

import math

import pytest

from raysweep import metrics
from raysweep.tasks import task_from_config


def test_accuracy_per_class_and_confusion():
    targets = [0, 0, 4, 8, 8, 8]
    preds = [0, 4, 4, 8, -1, 4]
    assert metrics.accuracy(targets, preds) == pytest.approx(3 / 6)
    per_class = metrics.per_class_accuracy(targets, preds, 9)
    assert per_class[0] == 0.5 and per_class[4] == 1.0 and per_class[8] == pytest.approx(1 / 3) and per_class[1] is None
    assert metrics.macro_accuracy(targets, preds, 9) == pytest.approx((0.5 + 1 + 1 / 3) / 3)
    m = metrics.confusion_matrix(targets, preds, 9)
    assert m[0][0] == 1 and m[0][4] == 1 and m[8][4] == 1 and sum(map(sum, m)) == 5  # unparsed left out
    assert metrics.parse_failure_rate(preds) == pytest.approx(1 / 6)
    # centre predictions for targets elsewhere: 2 of the 5 off-centre rows (the 3x3 task's bias index)
    assert task_from_config({}).bias(targets, preds) == {"center_bias": pytest.approx(2 / 5)}
    dist = metrics.prediction_distribution(preds, 9)
    assert dist[4] == pytest.approx(3 / 6) and sum(dist) == pytest.approx(5 / 6)


def test_wilson_interval_known_values():
    low, high = metrics.wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-3) and high == pytest.approx(0.9433, abs=1e-3)
    assert metrics.wilson_interval(0, 0) == (0.0, 1.0)
    low, high = metrics.wilson_interval(10, 10)
    assert high == 1.0 and 0.6 < low < 0.8


def test_summary_has_flat_mlflow_keys():
    s = metrics.summary([0, 1, 2, 3, 4, 5, 6, 7, 8], [0, 1, 2, 3, 4, 5, 6, 7, 4], task_from_config({}))
    for key in ("acc", "acc_ci_low", "acc_ci_high", "macro_acc", "parse_fail_rate", "center_bias", "acc/top_left", "pred_frac/bottom_right"):
        assert isinstance(s[key], float) and not math.isnan(s[key])
    assert s["acc"] == pytest.approx(8 / 9) and s["acc/bottom_right"] == 0.0 and s["pred_frac/center"] == pytest.approx(2 / 9)
    assert len(s["confusion"]) == 9 and all(len(r) == 9 for r in s["confusion"])
    assert metrics.agreement([1, 2, 3], [1, 2, 4]) == pytest.approx(2 / 3)


@pytest.mark.parametrize("side, central", [(2, []), (4, [5, 6, 9, 10]), (5, [12])])
def test_other_grids_name_their_classes_and_their_centre(side, central):
    task = task_from_config({"areas_per_side": side})
    n = side * side
    s = metrics.summary(list(range(n)), [central[0] if central else 0] * n, task)
    assert len(s["per_class"]) == n and len(s["confusion"]) == n
    assert {k for k in s if k.startswith("acc/")} == {f"acc/{slug}" for slug in task.slugs}
    if central:
        assert s["center_bias"] == pytest.approx(1.0)  # every off-centre target answered with a central area
    else:
        assert "center_bias" not in s  # a 2x2 grid has no centre
