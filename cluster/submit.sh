#!/usr/bin/env bash
# Submit a raysweep sweep to a running Ray cluster as a Ray Job (see cluster/README.md).
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: RAY_ADDRESS=http://HEAD:8265 cluster/submit.sh CONFIG [KEY=VALUE ...]

Runs `raysweep sweep CONFIG KEY=VALUE ...` on the cluster at $RAY_ADDRESS (the dashboard address,
e.g. http://127.0.0.1:8265 after `kubectl port-forward svc/raysweep-head-svc 8265` or `ray dashboard
cluster/aws-cluster.yaml`), shipping this repository as the job's working_dir with the runtime env
of cluster/runtime_env.yaml. CONFIG must lie inside the repository, e.g. configs/paper/models.yaml.

environment:
  RAY_ADDRESS           required: the Ray dashboard / job server address
  MLFLOW_TRACKING_URI   optional: replaces the placeholder tracking URI of cluster/runtime_env.yaml
  RAY_JOB_ARGS          optional: extra `ray job submit` flags, e.g. "--no-wait --submission-id paper-models"
  RAYSWEEP_RUNTIME_ENV  optional: another runtime env file than cluster/runtime_env.yaml (e.g. an image
                        with the packages baked in needs no pip list)

example:
  RAY_ADDRESS=http://127.0.0.1:8265 MLFLOW_TRACKING_URI=http://mlflow:5000 \
      cluster/submit.sh configs/paper/distractors.yaml sweep.max_concurrent=4
USAGE
}

if [[ $# -eq 0 ]]; then
    usage >&2
    exit 2
fi
if [[ "$1" == "-h" || "$1" == "--help" ]]; then
    usage
    exit 0
fi
if [[ -z "${RAY_ADDRESS:-}" ]]; then
    echo "submit.sh: error: set RAY_ADDRESS to the cluster's dashboard address (e.g. http://127.0.0.1:8265)" >&2
    exit 2
fi

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
config="$1"
shift
if [[ ! -f "$config" ]]; then
    echo "submit.sh: error: config $config not found; pass a YAML file such as configs/paper/models.yaml" >&2
    exit 2
fi
config_abs="$(cd "$(dirname "$config")" && pwd)/$(basename "$config")"
if [[ "$config_abs" != "$repo"/* ]]; then
    echo "submit.sh: error: $config lies outside $repo; the job only sees files of the repository" >&2
    exit 2
fi
config_rel="${config_abs#"$repo"/}"

runtime_env="${RAYSWEEP_RUNTIME_ENV:-cluster/runtime_env.yaml}"
[[ -f "$runtime_env" || -f "$repo/$runtime_env" ]] || { echo "submit.sh: error: runtime env $runtime_env not found" >&2; exit 2; }
[[ -f "$runtime_env" ]] && runtime_env="$(cd "$(dirname "$runtime_env")" && pwd)/$(basename "$runtime_env")"
cd "$repo"
if [[ -n "${MLFLOW_TRACKING_URI:-}" ]]; then
    tmp_env="$(mktemp "${TMPDIR:-/tmp}/raysweep-runtime-env.XXXXXX.yaml")"
    trap 'rm -f "$tmp_env"' EXIT
    sed "s|http://mlflow.CHANGE-ME:5000|${MLFLOW_TRACKING_URI}|" "$runtime_env" > "$tmp_env"
    runtime_env="$tmp_env"
fi

# The job's working_dir is shipped without .git: the code version is captured here and handed to the
# driver as environment variables (raysweep/provenance.py reads them when git is not there).
commit="$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)"
dirty=unknown
if [[ "$commit" != unknown ]]; then
    if [[ -n "$(git -C "$repo" status --porcelain --untracked-files=no)" ]]; then dirty=true; else dirty=false; fi
fi

# `python -m raysweep.cli` rather than the `raysweep` console script: the working_dir is on sys.path
# on every node, but the package itself is not pip-installed there.
# shellcheck disable=SC2086  # RAY_JOB_ARGS is a list of flags
ray job submit --address "$RAY_ADDRESS" --working-dir . --runtime-env "$runtime_env" ${RAY_JOB_ARGS:-} \
    -- env RAYSWEEP_GIT_COMMIT="$commit" RAYSWEEP_GIT_DIRTY="$dirty" python -m raysweep.cli sweep "$config_rel" "$@"
