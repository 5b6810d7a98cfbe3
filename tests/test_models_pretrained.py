"""The real-checkpoint path (``model.checkpoint`` = a local folder or a Hub id), offline.

A tiny model written with ``save_pretrained`` is a real checkpoint folder: loading it goes through
each family's ``build_pretrained`` (``from_pretrained`` of the model and its processor), the code
that loads Qwen/Qwen2-VL-7B-Instruct or llava-hf/llava-v1.6-vicuna-7b-hf on a GPU cluster.
"""

import subprocess
import sys

import pytest
import torch

from raysweep.config import load_config
from raysweep.errors import UserError
from raysweep.models import build_model, get_family
from raysweep.models._rows import synthetic_rows


@pytest.fixture(scope="module")
def rows():
    torch.set_num_threads(1)
    return synthetic_rows(4)


@pytest.mark.parametrize("name", ["llava-next", "qwen2-vl", "clip"])
def test_a_saved_checkpoint_folder_loads_through_from_pretrained(tmp_path, rows, name):
    cfg = load_config(f"configs/models/tiny-{name}.yaml")
    tiny = build_model(cfg.model)
    tiny.model.save_pretrained(tmp_path)
    tiny.processor.save_pretrained(tmp_path)

    loaded_cfg = load_config(f"configs/models/tiny-{name}.yaml", [f"model.checkpoint={tmp_path}", "model.seed=1"])
    loaded = build_model(loaded_cfg.model, loaded_cfg.lora)  # a different seed: the weights must come from the folder
    assert loaded.lora and 0 < loaded.trainable_params < loaded.total_params
    family = get_family(name)
    tiny_scores = [p.scores for p in family.predict(tiny, rows, "choice")]
    loaded_scores = [p.scores for p in family.predict(loaded, rows, "choice")]  # fresh LoRA (B=0 at init) = base
    assert torch.allclose(torch.tensor(tiny_scores), torch.tensor(loaded_scores), atol=1e-5)
    tiny_text = [p.text for p in family.predict(tiny, rows, "generate", max_new_tokens=5)]
    assert tiny_text == [p.text for p in family.predict(loaded, rows, "generate", max_new_tokens=5)]
    # The processor came back from the folder too, with the tiny variant's normalisation.
    assert list(loaded.processor.image_processor.image_mean) == [0.0, 0.0, 0.0]


def test_a_missing_folder_is_one_clear_error(tmp_path):
    cfg = load_config("configs/models/tiny-llava-next.yaml", [f"model.checkpoint={tmp_path / 'nope'}"])
    with pytest.raises(UserError, match=r"model.checkpoint .*nope.*: no such model folder .*config.json"):
        build_model(cfg.model)
    (tmp_path / "empty").mkdir()
    cfg = load_config("configs/models/tiny-clip.yaml", [f"model.checkpoint={tmp_path / 'empty'}"])
    with pytest.raises(UserError, match="no such model folder"):
        build_model(cfg.model)


def test_an_unreachable_hub_id_exits_2_with_one_line(tmp_path):
    """Offline, a Hub id that is not in the cache: one line naming the checkpoint and the fix, exit 2."""
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "PATH": "/usr/bin:/bin"}
    code = (
        "import sys; from raysweep.cli import main; "
        "main(['generate', 'configs/data/civet_test.yaml', 'data.fraction=0.01', 'data.canvas_size=84', '--out', sys.argv[1], '--quiet']); "
        "sys.exit(main(['eval', 'configs/models/llava-next.yaml', '--data', sys.argv[1], '--out', sys.argv[1] + '-eval']))"
    )
    data = tmp_path / "data"
    proc = subprocess.run([sys.executable, "-c", code, str(data)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert "Traceback" not in proc.stderr
    assert "llava-hf/llava-v1.6-vicuna-7b-hf" in last and "hf download" in last
    assert not (tmp_path / "data-eval").exists()  # nothing written half
