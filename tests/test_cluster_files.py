"""cluster/: the YAML files parse, the runtime env installs what pyproject lists, submit.sh behaves."""

import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "cluster"
SUBMIT = CLUSTER / "submit.sh"


def _name(requirement: str) -> str:
    """PEP 503 normalised name of a requirement string, extras included (``ray[data,train]``)."""
    match = re.match(r"\s*([A-Za-z0-9._-]+)\s*(\[[^\]]*\])?", requirement)
    extras = ",".join(sorted(e.strip() for e in (match.group(2) or "[]")[1:-1].split(",") if e.strip()))
    return re.sub(r"[-_.]+", "-", match.group(1)).lower() + (f"[{extras}]" if extras else "")


@pytest.mark.parametrize("path", sorted(CLUSTER.glob("*.yaml")), ids=lambda p: p.name)
def test_every_yaml_parses(path):
    assert isinstance(yaml.safe_load(path.read_text()), dict)


def test_runtime_env_pip_matches_pyproject():
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    env = yaml.safe_load((CLUSTER / "runtime_env.yaml").read_text())
    pip = env["pip"]["packages"] if isinstance(env["pip"], dict) else env["pip"]
    assert sorted(map(_name, pip)) == sorted(map(_name, deps))
    assert env["working_dir"] == "."
    assert {"HF_HOME", "MLFLOW_TRACKING_URI"} <= set(env["env_vars"])


def test_runtime_env_is_valid_for_ray():
    from ray.runtime_env import RuntimeEnv

    RuntimeEnv(**yaml.safe_load((CLUSTER / "runtime_env.yaml").read_text()))


def test_one_ray_version_everywhere():
    """cluster/versions.env pins Ray once; every image tag, rayVersion and ray pin under cluster/ names it."""
    env = dict(line.split("=", 1) for line in (CLUSTER / "versions.env").read_text().splitlines() if line and not line.startswith("#"))
    version = env["RAY_VERSION"]
    files = [p for p in sorted(CLUSTER.rglob("*")) if p.is_file() and p.suffix in (".yaml", ".sh", ".sbatch")]
    found = {}
    for path in files:
        text = path.read_text()
        for pattern in (r"rayproject/ray:(\d+\.\d+\.\d+)", r"ray\[[^\]]*\]==(\d+\.\d+\.\d+)", r"rayVersion:\s*\"?(\d+\.\d+\.\d+)"):
            for match in re.findall(pattern, text):
                found.setdefault(match, set()).add(path.name)
    assert set(found) == {version}, found
    named = set(found[version])
    assert {"kuberay-raycluster.yaml", "kuberay-rayjob.yaml", "aws-cluster.yaml", "runtime_env.yaml"} <= named
    ray_dep = next(d for d in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"] if d.startswith("ray["))
    assert version.startswith(ray_dep.split(">=")[1]), f"pyproject's {ray_dep} lower bound is not the cluster's Ray {version}"


def test_kuberay_has_cpu_head_and_gpu_workers():
    spec = yaml.safe_load((CLUSTER / "kuberay-raycluster.yaml").read_text())["spec"]
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    (group,) = spec["workerGroupSpecs"]
    limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert int(limits["nvidia.com/gpu"]) >= 1 and group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]


def test_aws_cluster_has_gpu_worker_type():
    cfg = yaml.safe_load((CLUSTER / "aws-cluster.yaml").read_text())
    assert cfg["head_node_type"] in cfg["available_node_types"]
    workers = [t for n, t in cfg["available_node_types"].items() if n != cfg["head_node_type"]]
    assert any(t["node_config"]["InstanceType"].startswith(("p4", "p5")) for t in workers)


def test_submit_sh_syntax():
    subprocess.run(["bash", "-n", str(SUBMIT)], check=True)


def _run_submit(*args, env=None):
    return subprocess.run(["bash", str(SUBMIT), *args], capture_output=True, text=True, cwd=REPO, env=env)


def test_submit_sh_usage_without_args():
    result = _run_submit()
    assert result.returncode == 2
    assert "usage: RAY_ADDRESS=" in result.stderr
    assert _run_submit("--help").returncode == 0


def test_submit_sh_needs_address_and_config(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")}
    result = _run_submit("configs/paper/models.yaml", env=env)
    assert result.returncode == 2 and "RAY_ADDRESS" in result.stderr
    result = _run_submit("configs/paper/nope.yaml", env={**env, "RAY_ADDRESS": "http://127.0.0.1:8265"})
    assert result.returncode == 2 and "not found" in result.stderr


def test_submit_sh_command_line(tmp_path):
    """A stand-in `ray` records what submit.sh runs, with the tracking URI put into the runtime env."""
    fake = tmp_path / "bin" / "ray"
    fake.parent.mkdir()
    fake.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$@" > "$RECORD"\nwhile [[ $1 != --runtime-env ]]; do shift; done\ncp "$2" "$RECORD.env"\n')
    fake.chmod(0o755)
    record = tmp_path / "args"
    env = {**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}", "RECORD": str(record),
           "RAY_ADDRESS": "http://head:8265", "MLFLOW_TRACKING_URI": "http://mlflow.internal:5000"}
    result = subprocess.run(["bash", str(SUBMIT), "models.yaml", "sweep.max_concurrent=2"], cwd=REPO / "configs" / "paper",
                            capture_output=True, text=True, env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    args = record.read_text().splitlines()
    assert args[:5] == ["job", "submit", "--address", "http://head:8265", "--working-dir"]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    command = args[args.index("--"):]
    assert command[:2] == ["--", "env"] and command[2] == f"RAYSWEEP_GIT_COMMIT={head}"  # provenance without .git
    assert command[3] in ("RAYSWEEP_GIT_DIRTY=true", "RAYSWEEP_GIT_DIRTY=false")
    assert command[4:] == ["python", "-m", "raysweep.cli", "sweep", "configs/paper/models.yaml", "sweep.max_concurrent=2"]
    sent = yaml.safe_load(Path(f"{record}.env").read_text())
    assert sent["env_vars"]["MLFLOW_TRACKING_URI"] == "http://mlflow.internal:5000"
