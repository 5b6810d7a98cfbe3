"""benchmarks/gpu_check.sh: refused without a GPU unless --cpu; --cpu --dry-run runs the whole check on a CPU."""

import json
import os
import subprocess
import sys

import pytest


def run(*args, tmp_path):
    env = dict(os.environ, PYTHON=sys.executable, CUDA_VISIBLE_DEVICES="")
    return subprocess.run(["bash", "benchmarks/gpu_check.sh", *args, "--out", str(tmp_path / "gpu_check.json")],
                          capture_output=True, text=True, env=env, timeout=900)  # fmt: skip


def test_without_a_gpu_it_stops_with_one_line(tmp_path):
    proc = run("--families", "clip", tmp_path=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["gpu_check: no CUDA GPU visible; run with --cpu --dry-run to check the script on a CPU"]


def test_cpu_dry_run_of_clip_writes_the_report(tmp_path):
    proc = run("--cpu", "--dry-run", "--families", "clip", "--batch", "2", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    clip = report["families"]["clip"]
    assert report["dry_run"] and not clip["full_depth"] and clip["trainable_params"] > 0
    assert all(loss == loss for loss in clip["losses"]) and clip["step_s_median"] > 0  # finite (not NaN)
    assert report["deepspeed"] == {"skipped": "needs a CUDA GPU"} or "skipped" in report["deepspeed"]
    assert "| clip |" in proc.stdout


@pytest.mark.integration
def test_cpu_dry_run_of_the_chat_families(tmp_path):
    proc = run("--cpu", "--dry-run", "--families", "qwen2-vl,llava-next", "--batch", "2", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    for name in ("qwen2-vl", "llava-next"):
        assert report["families"][name]["generate_s"] > 0 and report["families"][name]["choice_s"] > 0
