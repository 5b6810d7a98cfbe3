"""cluster/slurm/raysweep.sbatch: syntax, refusals, and the commands it runs (Slurm and Ray stand-ins)."""

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SBATCH = REPO / "cluster" / "slurm" / "raysweep.sbatch"

FAKE_SRUN = """#!/usr/bin/env bash
# srun stand-in: drop srun's own options, record the command, answer `hostname --ip-address`.
while [[ $1 == -* ]]; do case $1 in -w|--nodelist) shift 2;; *) shift;; esac; done
echo "srun $*" >> "$RECORD"
if [[ $1 == hostname ]]; then echo "10.9.8.7 fe80::1"; fi
"""

FAKE_PYTHON = """#!/usr/bin/env bash
# python stand-in: the Ray version, a token, the join wait (stdin script) and the sweep, recorded. The
# `ray start` tasks run in the background, so a loaded machine may record them late: the join wait
# waits for them, as the real one waits for the nodes.
case "$*" in
    *ray.__version__*) echo 2.60.0;;
    *secrets.token_hex*) echo 0123abcd;;
    "- "*) cat > /dev/null  # like the real wait: until $2 nodes have joined (their `ray start` ran; 30 s at most)
        for _ in $(seq 300); do [[ $(grep -c "ray start" "$RECORD") -ge $2 ]] && break; sleep 0.1; done
        echo "wait-for-nodes $2" >> "$RECORD";;
    *) echo "python $* RAY_ADDRESS=$RAY_ADDRESS RAY_AUTH_MODE=$RAY_AUTH_MODE token=${RAY_AUTH_TOKEN:+set}" >> "$RECORD";;
esac
"""


def _stubs(tmp_path: Path) -> dict:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in {"srun": FAKE_SRUN, "python": FAKE_PYTHON, "scontrol": "#!/usr/bin/env bash\nprintf 'gpu01\\ngpu02\\ngpu03\\n'\n"}.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "RAY_"))}
    return {**env, "PATH": f"{bin_dir}:{env['PATH']}", "PYTHON": str(bin_dir / "python"), "RECORD": str(tmp_path / "record"),
            "RAYSWEEP_VENV": str(tmp_path / "venv"), "RAYSWEEP_HEAD_WAIT_S": "0"}  # fmt: skip


def _run(*args, env):
    return subprocess.run(["bash", str(SBATCH), *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=60)


def test_sbatch_syntax():
    subprocess.run(["bash", "-n", str(SBATCH)], check=True)


def test_sbatch_refuses_without_config_or_outside_slurm(tmp_path):
    env = _stubs(tmp_path)
    result = _run(env=env)
    assert result.returncode == 2 and "sbatch cluster/slurm/raysweep.sbatch" in result.stdout
    result = _run("configs/paper/models.yaml", env=env)
    assert result.returncode == 2 and "not inside a Slurm job" in result.stderr
    slurm = {**env, "SLURM_JOB_NODELIST": "gpu[01-03]", "SLURM_SUBMIT_DIR": str(REPO)}
    result = _run("configs/paper/nope.yaml", env=slurm)
    assert result.returncode == 2 and "config configs/paper/nope.yaml not found" in result.stderr


def test_sbatch_starts_ray_on_every_node_then_the_sweep(tmp_path):
    (tmp_path / "venv" / "bin").mkdir(parents=True)
    (tmp_path / "venv" / "bin" / "activate").write_text("")
    env = {**_stubs(tmp_path), "SLURM_JOB_NODELIST": "gpu[01-03]", "SLURM_SUBMIT_DIR": str(REPO),
           "SLURM_CPUS_PER_TASK": "32", "SLURM_GPUS_PER_TASK": "8"}  # fmt: skip
    result = _run("configs/paper/models.yaml", "sweep.max_concurrent=2", env=env)
    assert result.returncode == 0, result.stderr
    lines = (tmp_path / "record").read_text().splitlines()
    assert lines[0] == "srun hostname --ip-address"
    head = "srun ray start --head --node-ip-address=10.9.8.7 --port=6379 --num-cpus=32 --num-gpus=8 --dashboard-host=0.0.0.0 --block"
    worker = "srun ray start --address=10.9.8.7:6379 --num-cpus=32 --num-gpus=8 --block"
    # The `ray start` tasks run in the background: their order is free, the sweep comes last.
    assert sorted(lines[1:5]) == sorted([head, worker, worker, "wait-for-nodes 3"])
    assert lines[5] == ("python -m raysweep.cli sweep configs/paper/models.yaml sweep.max_concurrent=2 "
                        "RAY_ADDRESS=10.9.8.7:6379 RAY_AUTH_MODE=token token=set")  # fmt: skip


def test_sbatch_refuses_another_ray_version(tmp_path):
    env = {**_stubs(tmp_path), "SLURM_JOB_NODELIST": "gpu01", "SLURM_SUBMIT_DIR": str(REPO)}
    (tmp_path / "bin" / "python").write_text("#!/usr/bin/env bash\necho 2.59.1\n")
    (tmp_path / "venv" / "bin").mkdir(parents=True)
    (tmp_path / "venv" / "bin" / "activate").write_text("")
    result = _run("configs/paper/models.yaml", env=env)
    assert result.returncode == 2 and "Ray 2.59.1 is installed but cluster/versions.env pins 2.60.0" in result.stderr
