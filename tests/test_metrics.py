"""Metrics as plain functions."""

import math

import pytest

from raysweep import metrics


def test_accuracy_per_area_and_confusion():
    targets = [0, 0, 4, 8, 8, 8]
    preds = [0, 4, 4, 8, -1, 4]
    assert metrics.accuracy(targets, preds) == pytest.approx(3 / 6)
    per_area = metrics.per_area_accuracy(targets, preds)
    assert per_area[0] == 0.5 and per_area[4] == 1.0 and per_area[8] == pytest.approx(1 / 3) and per_area[1] is None
    assert metrics.macro_accuracy(targets, preds) == pytest.approx((0.5 + 1 + 1 / 3) / 3)
    m = metrics.confusion_matrix(targets, preds)
    assert m[0][0] == 1 and m[0][4] == 1 and m[8][4] == 1 and sum(map(sum, m)) == 5  # unparsed left out
    assert metrics.parse_failure_rate(preds) == pytest.approx(1 / 6)
    # centre predictions for targets elsewhere: 2 of the 5 off-centre rows
    assert metrics.center_bias(targets, preds) == pytest.approx(2 / 5)
    dist = metrics.prediction_distribution(preds)
    assert dist[4] == pytest.approx(3 / 6) and sum(dist) == pytest.approx(5 / 6)


def test_wilson_interval_known_values():
    low, high = metrics.wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-3) and high == pytest.approx(0.9433, abs=1e-3)
    assert metrics.wilson_interval(0, 0) == (0.0, 1.0)
    low, high = metrics.wilson_interval(10, 10)
    assert high == 1.0 and 0.6 < low < 0.8


def test_summary_has_flat_mlflow_keys():
    s = metrics.summary([0, 1, 2, 3, 4, 5, 6, 7, 8], [0, 1, 2, 3, 4, 5, 6, 7, 4])
    for key in ("acc", "acc_ci_low", "acc_ci_high", "macro_acc", "parse_fail_rate", "center_bias", "acc/top_left", "pred_frac/bottom_right"):
        assert isinstance(s[key], float) and not math.isnan(s[key])
    assert s["acc"] == pytest.approx(8 / 9) and s["acc/bottom_right"] == 0.0 and s["pred_frac/center"] == pytest.approx(2 / 9)
    assert len(s["confusion"]) == 9 and all(len(r) == 9 for r in s["confusion"])
    assert metrics.agreement([1, 2, 3], [1, 2, 4]) == pytest.approx(2 / 3)
