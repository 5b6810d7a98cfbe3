"""Provenance on every run: code version (also without .git), package versions, data identity."""

import subprocess
from pathlib import Path

from raysweep.config import load_config
from raysweep.provenance import code_version, data_identities, provenance_tags

REPO = Path(__file__).resolve().parents[1]


def _git(repo, *args):
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=repo, check=True, capture_output=True)


def test_code_version_clean_dirty_and_without_git(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "a.py").write_text("x = 1\n")
    _git(repo, "add", "a.py")
    _git(repo, "commit", "-q", "-m", "one")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    (repo / "untracked.txt").write_text("not code")
    assert code_version(repo) == {"commit": head, "dirty": "false"}
    (repo / "a.py").write_text("x = 2\n")
    assert code_version(repo) == {"commit": head, "dirty": "true"}
    shipped = tmp_path / "shipped"  # a Ray job's working_dir: no .git, the submitter's variables
    shipped.mkdir()
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    monkeypatch.delenv("RAYSWEEP_GIT_COMMIT", raising=False)
    assert code_version(shipped) == {"commit": "unknown", "dirty": "unknown"}
    monkeypatch.setenv("RAYSWEEP_GIT_COMMIT", head)
    monkeypatch.setenv("RAYSWEEP_GIT_DIRTY", "false")
    assert code_version(shipped) == {"commit": head, "dirty": "false"}


def test_data_identities_follow_the_data_config():
    a = data_identities(load_config(REPO / "configs/train-tiny.yaml", []))
    b = data_identities(load_config(REPO / "configs/train-tiny.yaml", []))
    c = data_identities(load_config(REPO / "configs/train-tiny.yaml", ["data.distractors=3", "data.variants=1"]))
    assert a == b and a["train"] != c["train"] and a["train"].startswith("config:")
    d = data_identities(load_config(REPO / "configs/train-tiny.yaml", ["train.eval_sets=[{name: t, config: configs/data/civet_test.yaml, limit: 90}]"]))
    e = data_identities(load_config(REPO / "configs/train-tiny.yaml", ["train.eval_sets=[{name: t, config: configs/data/civet_test.yaml, limit: 91}]"]))
    assert d["t"] != e["t"]


def test_train_passes_provenance_tags_to_the_run(monkeypatch):
    import raysweep.launch.train as launch
    from raysweep.cli import main

    seen = {}

    class Stop(Exception):
        pass

    def fake_run_training(cfg, **kwargs):
        seen.update(kwargs["tags"])
        raise Stop

    import raysweep.launch.resources as resources

    monkeypatch.setattr(launch, "run_training", fake_run_training)
    monkeypatch.setattr(launch, "init_ray", lambda *a, **k: None)  # no Ray needed to see the tags
    monkeypatch.setattr(resources, "cluster_gpu_check", lambda cfg: None)
    try:
        main(["train", str(REPO / "configs/train-tiny.yaml")])
    except Stop:
        pass
    assert len(seen["raysweep.git_commit"]) == 40 and seen["raysweep.git_dirty"] in ("true", "false")
    assert seen["raysweep.version.torch"].startswith("2.") and seen["raysweep.data.train"].startswith("config:")
    assert provenance_tags()["raysweep.version.raysweep"] != "missing"
