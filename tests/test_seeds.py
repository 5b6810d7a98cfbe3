"""sweep.seeds: one trial per seed at every point, group bests chosen by the mean over seeds."""

import pytest

from raysweep.config import load_config
from raysweep.errors import ConfigError
from raysweep.sweep.seeds import best_seeded_groups, mean_interval, point_key
from raysweep.sweep.space import grid_points


def test_seeds_become_a_grid_axis_over_train_seed():
    sweep = load_config(None, ["sweep.space={lora.rank: {grid: [4, 8]}}", "sweep.seeds=[0, 1, 2]"]).sweep
    space = sweep.search_space()
    assert space["train.seed"] == {"grid": [0, 1, 2]} and sweep.space == {"lora.rank": {"grid": [4, 8]}}
    assert len(grid_points(space)) == 6  # every point once per seed
    assert load_config(None, ["sweep.space={lora.rank: {grid: [4]}}"]).sweep.search_space() == {"lora.rank": {"grid": [4]}}


@pytest.mark.parametrize(
    "overrides, words",
    [
        (["sweep.seeds=[1, 1]"], "a seed is listed twice"),
        (["sweep.seeds=[1]", "sweep.space={train.seed: {grid: [1, 2]}}"], "train.seed is also in sweep.space"),
    ],
)
def test_bad_seeds_are_config_errors(overrides, words):
    with pytest.raises(ConfigError, match=words):
        load_config(None, overrides)


def test_mean_interval_is_a_t_interval():
    mean, low, high = mean_interval([0.8, 0.9, 1.0])
    assert mean == pytest.approx(0.9)
    # sd 0.1, t(0.975, 2) = 4.303: half-width 0.1 * 4.303 / sqrt(3) = 0.2484
    assert (low, high) == (pytest.approx(0.9 - 0.2484, abs=1e-4), pytest.approx(0.9 + 0.2484, abs=1e-4))
    assert mean_interval([0.5]) == (0.5, None, None)
    assert mean_interval([]) == (None, None, None)


def _trial(tid, rank, seed, best, status="completed", tuned=None):
    return {"trial_id": tid, "values": {"lora.rank": str(rank), "train.seed": str(seed)}, "best": best, "status": status,
            "group": "all", "test": {} if tuned is None else {"test/civet/acc": tuned}}  # fmt: skip


def test_best_point_is_chosen_by_its_mean_not_its_luckiest_seed():
    trials = [_trial("a0", 4, 0, 0.99, tuned=0.9), _trial("a1", 4, 1, 0.40, tuned=0.4),  # rank 4: one lucky seed
              _trial("b0", 8, 0, 0.80, tuned=0.8), _trial("b1", 8, 1, 0.82, tuned=0.85)]  # rank 8: steady  # fmt: skip
    best = best_seeded_groups(trials, "max")["all"]
    assert best["seed_mean"]["point"] == "lora.rank=8" == point_key({"lora.rank": 8, "train.seed": 3})
    assert best["trial_id"] == "b1"  # the registered adapter: the point's best seed
    assert best["seed_mean"]["best"][0] == pytest.approx(0.81)
    assert best["seed_mean"]["test"]["test/civet/acc"][0] == pytest.approx(0.825)
    assert best["seed_mean"]["seeds"] == ["0", "1"]
    # minimising: the lower mean wins
    assert best_seeded_groups(trials, "min")["all"]["seed_mean"]["point"] == "lora.rank=4"


def test_summary_reports_means_over_seeds(tmp_path):
    from raysweep.sweep.summary import collect_trials, format_summary
    from raysweep.tracking import RunLogger

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    parent = RunLogger.start(uri, "exp", "s", tags={"raysweep.role": "sweep"})
    for tid, rank, seed, accs in [("t0", 4, 0, [0.2, 0.99]), ("t1", 4, 1, [0.3, 0.4]), ("t2", 8, 0, [0.5, 0.8]), ("t3", 8, 1, [0.6, 0.82])]:
        run = RunLogger.start(uri, "exp", tid, parent.run_id, {"raysweep.trial_id": tid, "raysweep.trial_status": "completed",
                                                                "raysweep.space.lora.rank": str(rank), "raysweep.space.train.seed": str(seed)})  # fmt: skip
        run.log_params({"lora.rank": rank, "train.seed": seed, "family": "llava-next"})
        for epoch, acc in enumerate(accs, 1):
            run.log_metrics({"val/acc": acc}, step=epoch)
        run.log_metrics({"test/civet/acc": accs[-1], "base/civet/acc": 0.11})
        run.end()
    sweep = load_config(None, ["sweep.space={lora.rank: {grid: [4, 8]}}", "sweep.seeds=[0, 1]"]).sweep
    summary = collect_trials(uri, parent.run_id, sweep, max_epochs=2, states={})
    assert summary["groups"]["all"]["trial_id"] == "t3"  # rank 8 (mean 0.81) beats rank 4 (mean 0.695) despite t0's 0.99
    m = summary["parent_metrics"]
    assert m["best/all/val_seed_mean"] == pytest.approx(0.81)
    assert m["best/all/val_seed_ci_low"] < 0.81 < m["best/all/val_seed_ci_high"]
    text = format_summary(summary, sweep, [type("S", (), {"name": "civet"})()])
    assert "### Mean over seeds of each group's best point (95% t interval)" in text
    assert "| all | lora.rank=8 | 0, 1 | 0.8100 [" in text
