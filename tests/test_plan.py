"""raysweep plan (memory estimate, trials, refusal), the train/sweep pre-flight that uses it, the knobs it
accounts for (gradient checkpointing, attention implementation, image-token cap), and raysweep inspect."""

import dataclasses
import json

import pytest
import torch

from raysweep.cli import main
from raysweep.config import load_config
from raysweep.errors import UserError


@pytest.mark.parametrize(
    "checkpoint, published",
    # "Model size" on each checkpoint's Hub page (safetensors parameter count).
    [("Qwen/Qwen2-VL-7B-Instruct", 8.29e9), ("Qwen/Qwen2-VL-2B-Instruct", 2.21e9), ("llava-hf/llava-v1.6-vicuna-7b-hf", 7.06e9), ("openai/clip-vit-large-patch14-336", 428e6)],
)
def test_full_depth_parameter_counts_match_the_published_ones(checkpoint, published):
    from raysweep.models._shapes import count_published_params

    assert abs(count_published_params(checkpoint) - published) / published < 0.005


def test_plan_json_of_the_paper_sweep(capsys):
    assert main(["plan", "configs/paper/models.yaml", "--gpus", "8", "--gpu-memory", "80", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["trials_at_once"] == 2 and len(report["trials"]) == 4  # 4 GPUs per trial on 8 GPUs
    by_family = {t["family"]: t for t in report["trials"]}
    assert set(by_family) == {"qwen2-vl", "llava-next", "molmo", "clip"}
    for t in report["trials"]:
        assert {"family", "checkpoint", "params", "gpus", "fits", "memory_gib"} <= set(t)
        assert set(t["memory_gib"]) >= {"weights", "lora", "optimizer", "gradients", "activations", "total"}
        assert isinstance(t["params"], int) and t["gpus"] == 4 and t["fits"] is True
    qwen = by_family["qwen2-vl"]
    assert qwen["image_tokens"] == 144  # 336 px synthetic scenes: 12 x 12 merged tokens
    assert 15 < qwen["memory_gib"]["weights"] < 16  # 8.29B parameters in bf16


def test_plan_refuses_a_config_that_does_not_fit(capsys):
    code = main(["plan", "configs/models/qwen2-vl.yaml", "train.use_gpu=true", "--gpu-memory", "12"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "qwen2-vl" in err[0] and "12 GiB" in err[0]


def test_the_knobs_lower_the_estimate():
    from raysweep.plan import plan_trial

    cfg = load_config("configs/models/qwen2-vl.yaml", ["train.use_gpu=true", "train.batch_size=4"])
    base = plan_trial(cfg).memory_gib
    ckpt = plan_trial(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, gradient_checkpointing=True))).memory_gib
    eager = plan_trial(dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, attn_implementation="eager"))).memory_gib
    assert ckpt["activations"] < base["activations"] / 4 and ckpt["weights"] == base["weights"]
    assert eager["activations"] > base["activations"]
    zero3 = plan_trial(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, zero_stage=3, num_workers=4))).memory_gib
    assert zero3["weights"] == pytest.approx(base["weights"] / 4, rel=0.01)


def test_a_photo_under_the_labs_max_pixels_costs_thousands_of_tokens_and_the_cap_limits_it():
    from raysweep.plan import image_token_count

    cfg = load_config("configs/models/qwen2-vl.yaml").model
    assert image_token_count(cfg, 4000, 3000) > 10000  # max_pixels 16384*28*28 lets one photo become >10k tokens
    capped = dataclasses.replace(cfg, max_pixels=802816)
    assert image_token_count(capped, 4000, 3000) <= 1024
    assert image_token_count(capped, 336, 336) == 144  # small images unchanged


def test_train_preflight_refuses_beyond_ten_percent_and_warns_within():
    from raysweep.plan import check_memory, plan_trial

    cfg = load_config("configs/train-tiny.yaml", ["train.use_gpu=true"])
    total = plan_trial(cfg).memory_gib["total"]
    assert check_memory(cfg, total * 2) == []
    notes = check_memory(cfg, total / 1.05)
    assert len(notes) == 1 and "within 10%" in notes[0]
    with pytest.raises(UserError, match="by more than 10%"):
        check_memory(cfg, total / 1.2)
    assert "not checked" in check_memory(cfg, 0)[0]
    assert check_memory(load_config("configs/train-tiny.yaml"), 0.001) == []  # CPU runs: nothing to check


def test_gradient_checkpointing_gives_the_same_gradients():
    from raysweep.models import build_model, get_family
    from raysweep.models._rows import synthetic_rows
    from raysweep.models.base import enable_gradient_checkpointing

    torch.set_num_threads(1)
    cfg = load_config("configs/models/tiny-llava-next.yaml")
    rows = synthetic_rows(4)
    grads = []
    for checkpointing in (False, True):
        built = build_model(cfg.model, cfg.lora)
        with torch.no_grad():
            for n, p in built.model.named_parameters():
                if "lora_B" in n:
                    p.normal_(std=0.1)
        if checkpointing:
            enable_gradient_checkpointing(built)
            assert built.model.get_base_model().is_activation_checkpointing
        built.model.train()
        family = get_family("llava-next")
        family.loss(built, family.collate(built, rows, train=True)).backward()
        grads.append({n: p.grad.clone() for n, p in built.model.named_parameters() if p.requires_grad})
    assert grads[0].keys() == grads[1].keys()
    assert all(torch.allclose(grads[0][n], grads[1][n], atol=1e-5) for n in grads[0])


def test_attn_implementation_eager_scores_like_sdpa_and_an_unavailable_kernel_is_one_line():
    from raysweep.models import get_family
    from raysweep.models._rows import synthetic_rows

    torch.set_num_threads(1)
    cfg = load_config("configs/models/tiny-llava-next.yaml").model
    family, rows = get_family("llava-next"), synthetic_rows(2)
    scores = [torch.tensor([p.scores for p in family.predict(family.build(dataclasses.replace(cfg, attn_implementation=impl)), rows)]) for impl in ("sdpa", "eager")]
    assert torch.allclose(scores[0], scores[1], atol=1e-4)
    with pytest.raises(UserError, match="model.attn_implementation=flash_attention_2"):
        family.build(dataclasses.replace(cfg, attn_implementation="flash_attention_2"))


def test_inspect_json_shows_the_example_as_the_model_sees_it(capsys):
    assert main(["inspect", "configs/models/tiny-llava-next.yaml", "--row", "3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"prompt_text", "answer", "input_ids", "labels", "image_token_count", "eval"} <= set(report)
    kept = [i for i, lab in zip(report["input_ids"], report["labels"]) if lab != -100]
    assert kept == [lab for lab in report["labels"] if lab != -100]
    assert report["labelled_text"].strip() == report["answer"] + "</s>"
    assert report["prompt_text"].startswith("USER: <image>\n") and report["prompt_text"].endswith("ASSISTANT:")
    assert report["image_token_count"] == report["input_ids"].count(_image_id()) > 0
    assert set(report["eval"]) == {"choice", "generate"}
    assert report["eval"]["generate"]["input_ids"] == report["input_ids"][: len(report["eval"]["generate"]["input_ids"])]


def _image_id():
    from raysweep.models import get_family

    return get_family("llava-next").build(load_config("configs/models/tiny-llava-next.yaml").model).tokenizer.convert_tokens_to_ids("<image>")


def test_inspect_refuses_a_row_past_the_end(capsys):
    assert main(["inspect", "configs/models/tiny-clip.yaml", "--row", "99999"]) == 2
    assert "--row 99999" in capsys.readouterr().err


@pytest.mark.integration
def test_inspect_the_real_shape_qwen2_vl(capsys):
    assert main(["inspect", "configs/models/shape-qwen2-vl.yaml", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["image_token_count"] == 144
    assert report["labelled_text"] == report["answer"] + "<|im_end|>"
    assert report["prompt_text"].endswith("<|im_start|>assistant\n")


def test_train_preflight_runs_the_estimate(tmp_path):
    from raysweep.preflight import check_run_inputs

    common = ["train.use_gpu=true", f"train.storage_path={tmp_path}/runs", f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow.db"]
    with pytest.raises(UserError, match=r"llava-next \(tiny\): estimated .* exceeds the GPU's 0.01 GiB by more than 10%"):
        check_run_inputs(load_config("configs/train-tiny.yaml", [*common, "train.gpu_memory_gib=0.01"]))
    assert not any("GiB" in n for n in check_run_inputs(load_config("configs/train-tiny.yaml", [*common, "train.gpu_memory_gib=80"])))


def test_the_trainer_turns_gradient_checkpointing_on():
    from raysweep.training.engine import WorkerTrainer

    cfg = load_config("configs/train-tiny.yaml", ["train.gradient_checkpointing=true", "train.num_workers=1"])
    trainer = WorkerTrainer(cfg, distributed=False)
    assert trainer.built.model.get_base_model().is_activation_checkpointing
    assert not WorkerTrainer(load_config("configs/train-tiny.yaml", ["train.num_workers=1"]), distributed=False).built.model.get_base_model().is_activation_checkpointing
