"""An adapter is loaded only onto the base it was trained on: the identity saved with it is checked.

Every consumer loads through ``Family.load_adapter`` (``eval --adapter``, the final evaluation, the
registry's pyfunc model), so these tests drive that method, the CLI, and the registry path.
"""

import json
import re
import shutil
import warnings
from pathlib import Path

import pytest
import torch

from raysweep._configlib import to_dict
from raysweep.config import load_config
from raysweep.errors import UserError
from raysweep.models import build_model, get_family
from raysweep.models._adapter_identity import IDENTITY_FILE, differences
from raysweep.models._rows import synthetic_rows
from raysweep.tasks import default_task, task_from_config

AREA_NAMES = list(default_task().answer_names)


def _tiny(name: str, *overrides: str):
    return load_config(f"configs/models/tiny-{name}.yaml", list(overrides))


def _save_adapter(name: str, folder, *overrides: str):
    cfg = _tiny(name, *overrides)
    built = build_model(cfg.model, cfg.lora)
    with torch.no_grad():
        for n, p in built.model.named_parameters():
            if "lora_B" in n:
                p.normal_(std=0.5)  # an adapter that changes the answers
    get_family(name).save_adapter(built, folder)
    return built


@pytest.fixture(scope="module")
def llava_adapter(tmp_path_factory):
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("adapters") / "llava"
    built = _save_adapter("llava-next", folder)
    return folder, built


@pytest.fixture()
def old_llava_adapter(llava_adapter, tmp_path):
    """The same adapter as saved before identities existed."""
    folder = tmp_path / "old"
    shutil.copytree(llava_adapter[0], folder)
    (folder / IDENTITY_FILE).unlink()
    return folder


def _load(name: str, folder, *overrides: str):
    family = get_family(name)
    return family.load_adapter(family.build(_tiny(name, *overrides).model), folder)


@pytest.mark.parametrize("name", ["llava-next", "clip"])
def test_the_identity_is_the_whole_model_section_and_the_task(tmp_path, name):
    torch.set_num_threads(1)
    built = _save_adapter(name, tmp_path / "adapter", "model.seed=3")
    record = json.loads((tmp_path / "adapter" / IDENTITY_FILE).read_text())
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    assert record["model"] == to_dict(built.config) and record["model"]["seed"] == 3
    assert record["task"] == {"name": "absolute_position", "answer_names": AREA_NAMES}
    rows = synthetic_rows(2)
    fresh = _load(name, tmp_path / "adapter", "model.seed=3")
    before, after = get_family(name).predict(built, rows), get_family(name).predict(fresh, rows)
    assert torch.allclose(torch.tensor([p.scores for p in before]), torch.tensor([p.scores for p in after]), atol=1e-4)


@pytest.mark.parametrize(
    "name, overrides, was, now",
    [
        ("qwen2-vl", [], "model.family=llava-next", "model.family=qwen2-vl"),  # peft would load it silently
        ("clip", [], "model.family=llava-next", "model.family=clip"),  # peft would die in a traceback
        ("llava-next", ["model.seed=1"], "model.seed=0", "model.seed=1"),  # other random weights, same shapes
        ("llava-next", ["model.tiny_layers=2"], "model.tiny_layers=4", "model.tiny_layers=2"),
        ("llava-next", ["model.image_size=112"], "model.image_size=84", "model.image_size=112"),
        ("llava-next", ["model.image_mean=[0.5,0.5,0.5]"], "model.image_mean=[]", "model.image_mean=[0.5, 0.5, 0.5]"),
        ("llava-next", ["model.seed=2", "model.tiny_heads=2"], "model.seed=0, model.tiny_heads=4", "model.seed=2, model.tiny_heads=2"),
    ],
)
def test_an_adapter_on_another_base_is_one_line_naming_the_keys(llava_adapter, name, overrides, was, now):
    folder = llava_adapter[0]
    with pytest.raises(UserError) as err:
        _load(name, folder, *overrides)
    message = str(err.value)
    assert message == f"adapter {folder} was trained on {was} but the base is {now}; pass the matching model config"


def test_runtime_keys_may_differ(llava_adapter):
    folder, built = llava_adapter
    fresh = _load("llava-next", folder, "model.dtype=float32", "model.device=cpu", "model.trust_remote_code=true")
    lora_params = sum(p.numel() for n, p in fresh.model.named_parameters() if "lora_" in n)
    assert fresh.lora and lora_params == built.trainable_params


def test_another_answer_space_is_refused(llava_adapter):
    family = get_family("llava-next")
    base = family.build(_tiny("llava-next").model)
    base.task = task_from_config({"area_names": ["upper left", *AREA_NAMES[1:]]})
    with pytest.raises(UserError, match=r"trained on task.answer_names=\[\"top left\", .* but the base is task.answer_names=\[\"upper left\""):
        family.load_adapter(base, llava_adapter[0])


def test_eval_cli_refuses_a_foreign_adapter_with_exit_2_and_writes_nothing(llava_adapter, tmp_path, capsys):
    from raysweep.cli import main

    data = tmp_path / "data"
    assert main(["generate", "configs/data/civet_test.yaml", "data.fraction=0.01", "data.canvas_size=84", "--out", str(data), "--quiet"]) == 0
    capsys.readouterr()
    code = main(["eval", "configs/models/tiny-qwen2-vl.yaml", "--data", str(data), "--adapter", str(llava_adapter[0]),
                 "--limit", "2", "--out", str(tmp_path / "report")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "was trained on model.family=llava-next but the base is model.family=qwen2-vl" in err[0]
    assert not (tmp_path / "report" / "metrics.json").exists()


def test_an_old_adapter_on_its_own_base_loads_with_a_warning(old_llava_adapter, llava_adapter):
    rows = synthetic_rows(2)
    with pytest.warns(UserWarning, match=f"no {IDENTITY_FILE}.*cannot check"):
        fresh = _load("llava-next", old_llava_adapter)
    family = get_family("llava-next")
    expected = [p.scores for p in family.predict(llava_adapter[1], rows)]
    assert torch.allclose(torch.tensor([p.scores for p in family.predict(fresh, rows)]), torch.tensor(expected), atol=1e-4)


@pytest.mark.parametrize(
    "name, overrides, words",
    [
        ("clip", [], "Target modules .* not found in the base model"),  # was a peft traceback
        ("llava-next", ["model.tiny_hidden=64", "model.tiny_heads=2"], "size mismatch"),  # torch's state-dict error
        ("llava-next", ["model.tiny_layers=2"], "12 of its tensors have no place in the model"),  # peft drops them silently
    ],
)
def test_an_old_adapter_that_does_not_fit_is_one_line(old_llava_adapter, name, overrides, words):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(UserError) as err:
            _load(name, old_llava_adapter, *overrides)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"adapter {old_llava_adapter} does not fit the {name} base")
    assert message.endswith("pass the matching model config")
    assert re.search(words, message)


def _damage_truncate(folder):
    weights = folder / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])


@pytest.mark.parametrize(
    "damage, words",
    [
        (lambda f: (f / IDENTITY_FILE).write_text("{not json"), f"{IDENTITY_FILE} is not valid JSON"),
        (lambda f: (f / IDENTITY_FILE).write_text("[]"), f"{IDENTITY_FILE} holds no 'model' mapping"),
        (_damage_truncate, "adapter_model.safetensors is damaged"),
        (lambda f: (f / "adapter_model.safetensors").unlink(), "adapter_model.safetensors is missing"),
        (lambda f: (f / "adapter_config.json").write_text("{bad"), "adapter_config.json is damaged"),
        (lambda f: (f / "adapter_config.json").write_text("{}"), "adapter_config.json names no peft_type"),
        (lambda f: (f / "adapter_config.json").unlink(), "not found: expected a folder with adapter_config.json"),
    ],
)
def test_a_damaged_adapter_folder_is_one_line(llava_adapter, tmp_path, damage, words):
    folder = tmp_path / "damaged"
    shutil.copytree(llava_adapter[0], folder)
    damage(folder)
    with pytest.raises(UserError) as err:
        _load("llava-next", folder)
    assert str(err.value).startswith(f"adapter {folder}") and words in str(err.value) and "\n" not in str(err.value)


def test_identity_keys_by_kind(tmp_path, monkeypatch):
    base = to_dict(_tiny("llava-next").model)
    real = {**base, "checkpoint": "llava-hf/llava-v1.6-vicuna-7b-hf"}
    # The seed and the tiny shapes only matter for the tiny variant.
    assert differences({"model": real}, {"model": {**real, "seed": 5, "tiny_layers": 2}}) == []
    assert differences({"model": real}, {"model": {**real, "max_pixels": 802816}}) == [("model.max_pixels", 0, 802816)]
    # One local checkpoint folder, written relative or absolute, is one base.
    (tmp_path / "ckpt").mkdir()
    monkeypatch.chdir(tmp_path)
    rel, absolute = {**base, "checkpoint": "ckpt"}, {**base, "checkpoint": str(tmp_path / "ckpt")}
    assert differences({"model": rel}, {"model": absolute}) == []
    assert differences({"model": rel}, {"model": {**base, "checkpoint": "other"}}) == [("model.checkpoint", "ckpt", "other")]
    # A key missing from an older record counts as its default.
    older = {k: v for k, v in base.items() if k != "min_pixels"}
    assert differences({"model": older}, {"model": base}) == []


def test_a_registered_adapter_without_identity_is_checked_against_its_run_config(old_llava_adapter, tmp_path, monkeypatch):
    """Adapters registered before identities existed: the registered run config stands in for one."""
    from raysweep.commands import eval as eval_command

    config = tmp_path / "config.yaml"
    config.write_text("model:\n  family: llava-next\n  checkpoint: tiny\n  seed: 0\n  image_size: 84\n")
    monkeypatch.setattr("raysweep.tracking.fetch_registered_adapter", lambda uri, name, dst: (old_llava_adapter, config))
    cfg = _tiny("qwen2-vl")
    family = get_family("qwen2-vl")
    with eval_command.resolved_adapter("models:/raysweep-llava-next@champion", cfg) as folder:
        with pytest.raises(UserError, match="trained on model.family=llava-next but the base is model.family=qwen2-vl"):
            family.load_adapter(family.build(cfg.model), folder)


def test_a_per_epoch_checkpoint_adapter_carries_its_identity(tmp_path):
    """The training engine saves each checkpoint's adapter through save_adapter: it is checked too."""
    from raysweep.training.engine import TrainState, WorkerTrainer

    torch.set_num_threads(1)
    cfg = load_config("configs/models/tiny-llava-next.yaml", ["model.tiny_layers=2", "model.seed=7", "train.threads=1"])
    WorkerTrainer(cfg).save(tmp_path, TrainState(epoch=1, step=4, best=1.0))
    record = json.loads((tmp_path / "adapter" / IDENTITY_FILE).read_text())
    assert record["model"] == to_dict(cfg.model)
    with pytest.raises(UserError, match="trained on model.seed=7, model.tiny_layers=2 but the base is model.seed=0, model.tiny_layers=4"):
        _load("llava-next", tmp_path / "adapter")
    assert _load("llava-next", tmp_path / "adapter", "model.tiny_layers=2", "model.seed=7").lora


def test_a_registered_adapter_is_fetched_into_a_folder_removed_afterwards(tmp_path, monkeypatch):
    """`raysweep eval/probe --adapter models:/...` leave no temporary folder behind, also on an error."""
    import raysweep.tracking
    from raysweep.commands.eval import resolved_adapter
    from raysweep.config import load_config

    def fetch(uri, name, dst):
        (Path(dst) / "adapter").mkdir()
        (Path(dst) / "adapter" / "raysweep_identity.json").write_text("{}")
        return Path(dst) / "adapter", Path(dst) / "run_config.yaml"

    monkeypatch.setattr(raysweep.tracking, "fetch_registered_adapter", fetch)
    cfg = load_config("configs/models/tiny-llava-next.yaml", [f"mlflow.tracking_uri=sqlite:///{tmp_path}/m.db"])
    with resolved_adapter("models:/raysweep-llava-next@champion", cfg) as adapter:
        assert Path(adapter).is_dir()
    assert not Path(adapter).parent.exists()
    with pytest.raises(RuntimeError), resolved_adapter("models:/raysweep-llava-next@champion", cfg) as adapter:
        raise RuntimeError("the evaluation failed")
    assert not Path(adapter).parent.exists()
    with resolved_adapter(str(tmp_path / "local"), cfg) as local:  # a local folder is the user's: untouched
        assert local == str(tmp_path / "local")
