"""cluster/kuberay-rayjob.yaml against the KubeRay CRD schema kept in cluster/schema/, offline.

The API server prunes fields a CRD does not know without a word (unless asked for strict
validation), so a misspelt key such as ``shutdownAfterJobFinish`` would silently keep a GPU
cluster alive. The test validates strictly: unknown fields are errors.
"""

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "cluster"


def _versions() -> dict[str, str]:
    lines = (CLUSTER / "versions.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def _strict(schema):
    """The CRD schema with ``additionalProperties: false`` wherever Kubernetes would prune unknown fields."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    if "properties" in out and "additionalProperties" not in out and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


@pytest.fixture(scope="module")
def rayjob_schema():
    path = CLUSTER / "schema" / f"kuberay-{_versions()['KUBERAY_VERSION']}-rayjob.schema.json"
    doc = json.loads(path.read_text())
    assert doc["kuberay_version"] == _versions()["KUBERAY_VERSION"] and doc["api_version"] == "ray.io/v1"
    return _strict(doc["schema"])


@pytest.fixture(scope="module")
def rayjob():
    return yaml.safe_load((CLUSTER / "kuberay-rayjob.yaml").read_text())


def _errors(schema, instance) -> list[str]:
    validator = jsonschema.Draft7Validator(schema)
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(instance)]


def test_rayjob_validates_against_the_kuberay_crd(rayjob_schema, rayjob):
    assert rayjob["apiVersion"] == "ray.io/v1" and rayjob["kind"] == "RayJob"
    assert _errors(rayjob_schema, rayjob) == []


def test_raycluster_spec_validates_against_the_same_schema(rayjob_schema):
    """kuberay-raycluster.yaml's spec is a RayClusterSpec, the type of a RayJob's rayClusterSpec."""
    spec = yaml.safe_load((CLUSTER / "kuberay-raycluster.yaml").read_text())["spec"]
    assert _errors(rayjob_schema["properties"]["spec"]["properties"]["rayClusterSpec"], spec) == []


def test_the_strict_schema_catches_typos_and_wrong_types(rayjob_schema, rayjob):
    typo = json.loads(json.dumps(rayjob))
    typo["spec"]["shutdownAfterJobFinish"] = typo["spec"].pop("shutdownAfterJobFinishes")
    assert any("shutdownAfterJobFinish" in e for e in _errors(rayjob_schema, typo))
    wrong = json.loads(json.dumps(rayjob))
    wrong["spec"]["rayClusterSpec"]["authOptions"]["mode"] = "password"
    assert any("password" in e for e in _errors(rayjob_schema, wrong))


def test_rayjob_runs_a_sweep_and_shuts_its_cluster_down(rayjob):
    from raysweep.config import load_config

    spec = rayjob["spec"]
    assert spec["shutdownAfterJobFinishes"] is True and spec["submissionMode"] == "K8sJobMode"
    assert spec["rayClusterSpec"]["authOptions"] == {"mode": "token"}  # KubeRay hands the token to the submitter
    assert spec["rayClusterSpec"]["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    words = spec["entrypoint"].split()
    assert words[:5] == ["python", "-m", "raysweep.cli", "sweep", "configs/paper/models.yaml"]
    cfg = load_config(REPO / words[4], words[5:])  # the entrypoint's config and overrides load
    assert cfg.train.storage_path.startswith("/mnt/shared/") and cfg.sweep.storage_path.startswith("/mnt/shared/")


def test_rayjob_runtime_env_is_the_projects(rayjob):
    """Same packages as cluster/runtime_env.yaml (itself checked against pyproject), code from a remote zip."""
    from ray.runtime_env import RuntimeEnv

    env = yaml.safe_load(rayjob["spec"]["runtimeEnvYAML"])
    RuntimeEnv(**env)
    project_env = yaml.safe_load((CLUSTER / "runtime_env.yaml").read_text())
    assert env["pip"]["packages"] == project_env["pip"]["packages"]
    assert re.match(r"^(s3|gs|https)://.+\.zip$", env["working_dir"])
    mlflow = yaml.safe_load((CLUSTER / "kuberay-mlflow.yaml").read_text())
    service = next(i for i in mlflow["items"] if i["kind"] == "Service")
    assert env["env_vars"]["MLFLOW_TRACKING_URI"] == f"http://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}"
    assert {"RAYSWEEP_GIT_COMMIT", "RAYSWEEP_GIT_DIRTY", "HF_HOME"} <= set(env["env_vars"])


def test_kuberay_version_is_named_where_the_schema_is_used():
    kuberay = _versions()["KUBERAY_VERSION"]
    assert f"KubeRay {kuberay}" in (CLUSTER / "kuberay-rayjob.yaml").read_text()
    assert [p.name for p in (CLUSTER / "schema").glob("kuberay-*-rayjob.schema.json")] == [f"kuberay-{kuberay}-rayjob.schema.json"]
