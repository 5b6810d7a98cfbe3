"""raysweep compare on a fabricated MLflow store: predictions.jsonl artifacts with known discordant pairs."""

import json
import math

import pytest

from raysweep.cli import main
from raysweep.tracking import RunLogger

EXP = "compare-test"
ROWS = list(range(100))


def _p_two_sided(k: int, n: int) -> float:
    """Exact two-sided binomial p at 1/2, computed by hand (the test's independent reference)."""
    tail = sum(math.comb(n, i) for i in range(max(k, n - k), n + 1)) / 2**n
    return min(1.0, 2 * tail)


def _log_run(uri, tmp, name, right, rows=ROWS, identity="parquet:abc", params=None, tags=None, parent=None):
    run = RunLogger.start(uri, EXP, name, parent, {**({"raysweep.data.civet": identity} if identity else {}), **(tags or {})})
    run.log_params({"family": "llava-next", "lora.rank": 8, "train.lr": 0.001, "train.name": name, **(params or {})})
    folder = tmp / run.run_id
    preds = folder / "civet" / "finetuned"
    preds.mkdir(parents=True)
    with (preds / "predictions.jsonl").open("w") as fh:
        for i in rows:
            target = "area" if name == "run-c" else "label"  # run-c: predictions written before tasks named it label
            fh.write(json.dumps({"scene_id": f"s{i}", target: i % 9, "pred": i % 9 if i in right else (i + 1) % 9, "text": "x"}) + "\n")
    acc = len([i for i in rows if i in right]) / len(rows)
    areas = {f"test/civet/acc/{slug}": acc + d for slug, d in (("top_left", 0.0), ("center", -0.1))}
    run.log_metrics({"test/civet/acc": acc, **areas})
    run.log_artifacts(folder, "eval")
    run.end()
    return run.run_id


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cmp")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    a_right = set(range(60))
    b_right = set(range(50)) | set(range(60, 90))  # vs A: 10 rows only A gets right, 30 only B
    c_right = (a_right - {0, 1}) | {60, 61, 62}  # vs A: 2 and 3: noise
    ids = {
        "a": _log_run(uri, tmp, "run-a", a_right),
        "b": _log_run(uri, tmp, "run-b", b_right, params={"lora.rank": 16}),
        "c": _log_run(uri, tmp, "run-c", c_right, params={"train.lr": 0.0003}),
        "other_set": _log_run(uri, tmp, "run-other", a_right, identity="parquet:zzz"),
        "other_rows": _log_run(uri, tmp, "run-rows", a_right, rows=list(range(100, 200))),
    }
    _log_run(uri, tmp, "twin", a_right)
    _log_run(uri, tmp, "twin", b_right)
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    client.create_registered_model("cmp-model")
    version = client.create_model_version("cmp-model", f"runs:/{ids['b']}/eval", run_id=ids["b"])
    client.set_registered_model_alias("cmp-model", "champion", version.version)
    # a sweep with seeds: two points (rank 4, 8) x seeds 0, 1
    parent = RunLogger.start(uri, EXP, "seeded", tags={"raysweep.role": "sweep", "raysweep.sweep": "seeded"})
    for rank, seed, right in ((4, 0, set(range(40))), (4, 1, set(range(45))), (8, 0, set(range(70))), (8, 1, set(range(75)))):
        ids[f"r{rank}s{seed}"] = _log_run(uri, tmp, f"r{rank}s{seed}", right, params={"lora.rank": rank, "train.seed": seed}, parent=parent.run_id,
                                          tags={"raysweep.space.lora.rank": str(rank), "raysweep.space.train.seed": str(seed)})  # fmt: skip
    parent.end()
    return uri, ids


def _compare(uri, *args):
    return main(["compare", *args, "--tracking-uri", uri])


def test_paired_test_finds_a_real_difference(store, capsys):
    uri, ids = store
    assert _compare(uri, "run-a", ids["b"], "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["config_diff"] == {"lora.rank": ["8", "16"]}  # train.name differs too: bookkeeping, left out
    civet = result["sets"]["civet"]
    assert civet["rows"] == 100 and civet["identity"] == "parquet:abc" and civet["identity_unknown"] == []
    assert [r["acc"] for r in civet["runs"]] == [0.6, 0.8]
    assert civet["runs"][0]["ci_low"] < 0.6 < civet["runs"][0]["ci_high"]
    cmp = civet["vs_first"][0]
    assert (cmp["first_only_right"], cmp["only_right"]) == (10, 30)
    assert cmp["p_value"] == pytest.approx(_p_two_sided(30, 40)) and cmp["significant"]
    assert cmp["per_area_delta"] == {"top_left": pytest.approx(0.2), "center": pytest.approx(0.2)}


def test_noise_is_called_noise_and_registry_refs_resolve(store, capsys):
    uri, _ = store
    assert _compare(uri, "run-a", "run-c", "models:/cmp-model@champion", "models:/cmp-model/1") == 0
    text = capsys.readouterr().out
    assert "config keys that differ:" in text and "train.lr" in text
    assert f"A right/B wrong 2, A wrong/B right 3, p = {_p_two_sided(3, 5):.3g}: no difference beyond noise" in text
    assert "C: models:/cmp-model@champion (version 1)" in text
    assert "C is better: more than noise at 0.05" in text and "D is better" in text


def test_seeds_pool_into_seed_row_pairs(store, capsys):
    uri, ids = store
    assert _compare(uri, "r4s0", "r8s1", "--pool-seeds", "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["runs"][0]["seeds"] == ["0", "1"] and len(result["runs"][1]["run_ids"]) == 2
    assert "train.seed" not in result["config_diff"]
    civet = result["sets"]["civet"]
    assert civet["rows"] == 200  # (seed, row) pairs
    assert civet["runs"][0]["acc"] == pytest.approx(0.425) and civet["runs"][0]["seed_mean"]["mean"] == pytest.approx(0.425)
    assert civet["vs_first"][0]["only_right"] == 30 + 30 and civet["vs_first"][0]["first_only_right"] == 0


@pytest.mark.parametrize(
    "refs, words",
    [
        (["run-a", "run-other"], "eval set 'civet' is not the same data on both sides"),
        (["run-a", "run-rows"], "were scored on different rows"),
        (["run-a", "nosuch"], "nosuch: no run with that id or name"),
        (["run-a", "twin"], "twin: 2 runs have that name"),
        (["run-a", "models:/cmp-model@nope"], "models:/cmp-model@nope: no such registered model version"),
        (["run-a"], "at least two runs"),
    ],
)
def test_refusals_are_one_line_exit_2(store, capsys, refs, words):
    uri, _ = store
    assert _compare(uri, *refs) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1, err
