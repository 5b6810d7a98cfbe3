"""Each base model is evaluated once per sweep: the cache of base-model results (no Ray)."""

from pathlib import Path

from raysweep.config import load_config
from raysweep.training.base_cache import BaseCache, base_key, evaluate_base_sets

REPO = Path(__file__).resolve().parents[1]
TRAIN = str(REPO / "configs" / "train-tiny.yaml")
SETS = "train.eval_sets=[{name: a, config: configs/data/civet_test.yaml, limit: 9}, {name: b, config: configs/data/civet_test.yaml, limit: 18}]"


def test_keys_follow_what_determines_the_result():
    cfg = load_config(TRAIN, [SETS])
    a, b = cfg.train.eval_sets
    assert base_key(cfg, a) == base_key(load_config(TRAIN, [SETS, "train.lr=0.5", "lora.rank=4"]), a)  # training keys: same base
    assert base_key(cfg, a) != base_key(cfg, b)  # another set (limit)
    assert base_key(cfg, a) != base_key(load_config(TRAIN, [SETS, "model.seed=1"]), a)
    assert base_key(cfg, a) != base_key(load_config(TRAIN, [SETS, "eval.mode=both"]), a)


def test_evaluated_once_then_served_from_the_cache(tmp_path):
    cfg = load_config(TRAIN, [SETS])
    cache = BaseCache(str(tmp_path / "cache"))
    calls = []

    def evaluate(targets):
        found = []
        for index, folder in targets:
            calls.append(index)
            (folder / "base").mkdir(parents=True)
            (folder / "base" / "metrics.json").write_text("{}")
            found.append({f"base/{cfg.train.eval_sets[index].name}/acc": 0.1 * (index + 1)})
        return found

    first, source = evaluate_base_sets(cfg, tmp_path / "out1", cache, evaluate)
    assert calls == [0, 1] and source == {"a": "evaluated", "b": "evaluated"}
    again, source = evaluate_base_sets(load_config(TRAIN, [SETS, "train.lr=0.5"]), tmp_path / "out2", cache, evaluate)
    assert calls == [0, 1] and again == first and all(v.startswith("cache:") for v in source.values())
    assert (tmp_path / "out2" / "a" / "base" / "metrics.json").is_file()  # the reports come along
    assert cache.evaluations() == 2


def test_a_pending_evaluation_is_waited_for_and_a_stale_mark_times_out(tmp_path):
    cfg = load_config(TRAIN, [SETS])
    cache = BaseCache(str(tmp_path / "cache"))
    key = base_key(cfg, cfg.train.eval_sets[0])
    cache.mark_pending(key)
    assert cache.wait(key, timeout_s=0.2, poll_s=0.05) is None  # the driver died: the trial goes on alone
    cache.clear_pending(key)
    assert not cache.pending(key)


def test_real_tiny_base_metrics_are_the_same_from_the_cache(tmp_path):
    from raysweep.training.final_eval import evaluate_sets

    cfg = load_config(TRAIN, ["train.eval_sets=[{name: t, config: configs/data/civet_test.yaml, limit: 9}]"])
    cache = str(tmp_path / "cache")
    fresh = evaluate_sets(cfg, None, tmp_path / "one", progress=False, base_cache=cache)
    cached = evaluate_sets(cfg, None, tmp_path / "two", progress=False, base_cache=cache)
    same = lambda m: {k: (None if v != v else v) for k, v in m.items()}  # noqa: E731 - NaN (empty areas) != NaN
    assert same(fresh) == same(cached) and "base/t/acc" in fresh and BaseCache(cache).evaluations() == 1
    assert "cache:" in (tmp_path / "two" / "base_from.json").read_text()
