"""Memory and resource plan of a train or sweep config, without weights or a GPU (``raysweep plan``).

Per Ray Train worker, in GiB:

* ``weights``: every parameter of the full-depth base model (counted on the ``meta`` device from the
  published architecture, :mod:`raysweep.models._shapes`) in the run's dtype (``auto`` = bf16 on a
  GPU); ZeRO-3 partitions them over the workers.
* ``lora``: the adapter's parameters (r x (in + out) per targeted linear layer) in the same dtype.
* ``optimizer``: AdamW's two moments plus an fp32 master copy of the adapter (12 bytes per trainable
  parameter), partitioned over the workers from ZeRO-1 on; ``gradients``: one per trainable
  parameter in the dtype, partitioned from ZeRO-2 on.
* ``activations`` for one micro batch at the real sequence length (prompt under the chat template +
  image tokens + the longest answer + end token): per layer and token, the tensors a decoder layer
  keeps for backward (7 x hidden + 2 x KV width + 4 x MLP width values), with ``eager`` attention also
  heads x sequence scores; the logits in fp32 for the loss; the vision tower's only when it is adapted
  (a frozen tower keeps nothing for backward). ``train.gradient_checkpointing`` keeps one hidden state
  per layer plus one layer's worth.
* ``overhead``: a fixed 1 GiB for the CUDA context and the allocator's fragmentation.

These are estimates for sizing; ``benchmarks/gpu_check.sh`` compares them with
``torch.cuda.max_memory_allocated`` where a GPU is available.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from raysweep.errors import UserError

GIB = 1024**3
OVERHEAD_GIB = 1.0
WARN_MARGIN = 0.10  # train/sweep pre-flight: refuse only beyond 10% over the GPU memory, warn below it
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclass
class Dims:
    """The widths that decide activation memory (one tower)."""

    hidden: int
    inter: int
    layers: int
    heads: int
    kv: int  # width of K (= V) projections
    vocab: int = 0


@dataclass
class Plan:
    """One trial's plan (a train config is one trial)."""

    family: str
    checkpoint: str
    params: int
    params_source: str
    gpus: int
    lora_params: int
    seq_len: int
    image_tokens: int
    image_tokens_source: str
    memory_gib: dict = field(default_factory=dict)
    fits: bool = True
    suggestions: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


# -- image tokens -------------------------------------------------------------------------------------------


def image_token_count(model_cfg, width: int, height: int) -> int:
    """Image tokens the family's processor puts into the sequence for one ``width`` x ``height`` image.

    CLIP: the vision tower's sequence (patches + class token); it puts none into a text sequence.
    """
    family = model_cfg.family
    if family == "qwen2-vl":
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

        low, high = _qwen_pixels(model_cfg)
        h, w = smart_resize(height, width, factor=28, min_pixels=low, max_pixels=high)
        return (h // 28) * (w // 28)
    if family == "clip":
        side, patch = _clip_vision(model_cfg)
        return (side // patch) ** 2 + 1
    if family == "molmo":  # Molmo's processor is Hub code: 336 px crops (at most 12) + the whole image, 144 tokens each
        crops = min(12, math.ceil(width / 336) * math.ceil(height / 336))
        return (crops + 1) * 144
    processor, tok = _processor(model_cfg)
    from PIL import Image

    text = f"{tok.image_token}"
    enc = processor(images=[Image.new("RGB", (width, height))], text=[text], return_tensors="pt")
    return int((enc["input_ids"] == tok.convert_tokens_to_ids(tok.image_token)).sum())


def _qwen_pixels(model_cfg) -> tuple[int, int]:
    if model_cfg.checkpoint == "tiny":
        side = model_cfg.image_size or 84
        return side * side, side * side
    return model_cfg.min_pixels or 3136, model_cfg.max_pixels or 12845056  # Qwen2-VL-7B preprocessor_config.json


def _clip_vision(model_cfg) -> tuple[int, int]:
    if model_cfg.checkpoint == "tiny":
        side = model_cfg.image_size or 84
        return side, getattr(model_cfg, "tiny_patch", 0) or side // 3
    return 336, 14


_PROCESSORS: dict = {}


def _processor(model_cfg):
    """(processor, tokenizer) of the config's family: tiny built here; otherwise the published settings."""
    import dataclasses
    import json

    key = json.dumps(dataclasses.asdict(model_cfg), sort_keys=True)
    if key not in _PROCESSORS:
        if model_cfg.checkpoint == "tiny":
            from raysweep.models import get_family

            built = get_family(model_cfg.family).build(dataclasses.replace(model_cfg, device="cpu"))
            _PROCESSORS[key] = (built.processor, built.tokenizer)
        else:
            from raysweep.models._shapes import shape_processor

            _PROCESSORS[key] = shape_processor(model_cfg)
    return _PROCESSORS[key]


# -- sequence length ----------------------------------------------------------------------------------------


def image_sizes(data_cfg) -> tuple[list[tuple[int, int]], str]:
    """The image sizes the training data holds, and how they were found."""
    if data_cfg.source == "synthetic":
        side = data_cfg.canvas_size
        return [(side, side)], f"exact: synthetic {side}x{side}"
    from raysweep.datasets import read_dataset

    path = data_cfg.parquet[data_cfg.source]
    table = read_dataset(path, columns=["width", "height"])
    sizes = list(zip(table.column("width").to_pylist(), table.column("height").to_pylist()))
    return sizes, f"95th percentile of {len(sizes)} images in {path}"


def sequence(cfg) -> tuple[int, int, str]:
    """(sequence length, image tokens, source) of one training example of ``cfg``."""
    sizes, source = image_sizes(cfg.data)
    counts = sorted(image_token_count(cfg.model, w, h) for w, h in set(sizes))
    if len(sizes) > 1:
        per_size = {s: image_token_count(cfg.model, *s) for s in set(sizes)}
        counts = sorted(per_size[s] for s in sizes)
    image = counts[min(len(counts) - 1, math.ceil(0.95 * len(counts)) - 1)]
    if cfg.model.family == "molmo":
        source += "; approximate (Molmo's processor is Hub code: (crops + 1) x 144)"
    elif cfg.model.family == "llava-next" and cfg.model.checkpoint != "tiny":
        source += "; text tokens under a stand-in tokenizer (Vicuna's ships in no package)"
    if cfg.model.family == "clip":
        return 0, image, source
    text = _text_tokens(cfg)
    return text + image, image, source


def _text_tokens(cfg) -> int:
    """Tokens of the longest prompt (chat template included, image placeholder excluded) + longest answer + end."""
    from raysweep.tasks import task_for

    task = task_for(cfg.data)
    scenes = task.scenes(cfg.data)
    step = max(1, len(scenes) // 50)
    questions = [scenes.prompt(scenes[i]) for i in range(0, len(scenes), step)]
    if cfg.model.family == "molmo":  # no Molmo tokenizer offline: Qwen's BPE as a proxy (both ~100k+ byte-level BPEs)
        from raysweep.models._real_tokenizers import qwen2_vl_tokenizer

        tok = qwen2_vl_tokenizer()
        return max(len(tok(q)["input_ids"]) for q in questions) + max(len(tok(" " + a)["input_ids"]) for a in task.answer_names) + 8
    processor, tok = _processor(cfg.model)
    prompts = []
    for q in questions:
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": q}]}]
        prompts.append(processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))
    prompt = max(len(tok(p)["input_ids"]) for p in prompts) - 1  # the one placeholder the processor expands
    answer = max(len(tok(" " + a, add_special_tokens=False)["input_ids"]) for a in task.answer_names) + 1
    return prompt + answer


# -- parameters ---------------------------------------------------------------------------------------------


def _meta_model(model_cfg):
    """(model on the meta device at full depth, source of its architecture)."""
    import torch

    from raysweep.models._shapes import ARCHITECTURES, _model_class, architecture, architecture_config, is_shape

    ckpt = model_cfg.checkpoint
    if ckpt == "tiny":
        import dataclasses

        from raysweep.models import get_family

        return get_family(model_cfg.family).build(dataclasses.replace(model_cfg, device="cpu")).model, "tiny variant, built"
    name = ckpt[len("shape:"):] if is_shape(ckpt) else ckpt
    if name in ARCHITECTURES:
        config, source = architecture_config(name), architecture(name)["source"]
        cls = _model_class(architecture(name)["family"])
    else:
        import transformers

        try:
            config = transformers.AutoConfig.from_pretrained(ckpt, local_files_only=True)
        except (OSError, ValueError):
            raise UserError(f"model.checkpoint {ckpt!r}: its config.json is not available offline; plan knows {', '.join(ARCHITECTURES)}") from None
        cls, source = getattr(transformers, config.architectures[0]), f"{ckpt}/config.json"
    with torch.device("meta"):
        return cls._from_config(config), source


def _towers(model) -> dict[str, Dims]:
    """The language model and vision tower widths of a transformers VLM (or CLIP's two towers)."""
    cfg = model.config
    out = {}
    text = getattr(cfg, "text_config", None) or cfg
    heads = text.num_attention_heads
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    out["text"] = Dims(text.hidden_size, text.intermediate_size, text.num_hidden_layers, heads, kv_heads * head_dim, text.vocab_size)
    vision = getattr(cfg, "vision_config", None)
    if vision is not None:
        hidden = getattr(vision, "embed_dim", None) or vision.hidden_size
        inter = getattr(vision, "intermediate_size", None) or hidden * getattr(vision, "mlp_ratio", 4)
        layers = getattr(vision, "depth", None) or vision.num_hidden_layers
        vheads = getattr(vision, "num_heads", None) or vision.num_attention_heads
        out["vision"] = Dims(hidden, inter, layers, vheads, hidden)
    return out


def _lora_params(model, family_obj, lora_cfg) -> tuple[int, bool]:
    """(adapter parameters, whether the vision tower is adapted) for the config's targets on ``model``."""
    import torch
    from peft import LoraConfig as PeftLoraConfig
    from peft.tuners.tuners_utils import check_target_module_exists

    from raysweep.models.base import lora_targets

    targets = lora_targets(lora_cfg, family_obj.default_lora_targets(lora_cfg.vision))
    peft_cfg = PeftLoraConfig(target_modules=targets)
    total, vision = 0, False
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and check_target_module_exists(peft_cfg, name):
            total += lora_cfg.rank * (module.in_features + module.out_features)
            vision = vision or any(k in name for k in ("visual", "vision"))
    return total, vision


# -- memory -------------------------------------------------------------------------------------------------


def _layer_activations(d: Dims, tokens: int, batch: int, nbytes: int, attn: str, checkpointing: bool) -> float:
    per_token = 7 * d.hidden + 2 * d.kv + 4 * d.inter
    full_layer = batch * tokens * per_token * nbytes
    if attn == "eager":
        full_layer += batch * d.heads * tokens * tokens * nbytes * 2  # scores and probabilities
    if checkpointing:
        return d.layers * batch * tokens * d.hidden * nbytes + full_layer
    return d.layers * full_layer


def plan_trial(cfg, gpus_per_trial: int | None = None) -> Plan:
    """The :class:`Plan` of one trial config (``raysweep plan``, and the train/sweep pre-flight)."""
    from raysweep.models import get_family

    family = get_family(cfg.model.family)
    ckpt = cfg.model.checkpoint
    dtype = cfg.model.dtype if cfg.model.dtype != "auto" else ("bfloat16" if cfg.train.use_gpu else "float32")
    nbytes = DTYPE_BYTES[dtype]
    workers = gpus_per_trial or cfg.train.num_workers
    stage = cfg.train.zero_stage if cfg.train.strategy == "deepspeed" and workers > 1 else 0
    attn = getattr(cfg.model, "attn_implementation", "") or "sdpa"
    checkpointing = getattr(cfg.train, "gradient_checkpointing", False)
    seq, image, image_source = sequence(cfg)
    batch = cfg.train.batch_size

    if cfg.model.family == "molmo":
        from raysweep.models._shapes import MOLMO_7B_O as m

        params, source = int(m["published_params"]), m["source"] + " (published count: no architecture offline)"
        out_in = m["lora_targets_per_layer"]
        lora = cfg.lora.rank * (out_in[0] + out_in[1]) * m["num_hidden_layers"]
        vision_lora = cfg.lora.vision
        if vision_lora:
            lora += cfg.lora.rank * 2 * m["vision_hidden"] * 3 * m["vision_layers"]
        towers = {"text": Dims(m["hidden_size"], 22016 // 2, m["num_hidden_layers"], m["num_attention_heads"], m["hidden_size"], m["vocab_size"]),
                  "vision": Dims(m["vision_hidden"], 4096, m["vision_layers"], 16, m["vision_hidden"])}  # fmt: skip
    else:
        model, source = _meta_model(cfg.model)
        params = sum(p.numel() for p in model.parameters())
        lora, vision_lora = _lora_params(model, family, cfg.lora) if cfg.lora.enabled else (0, False)
        towers = _towers(model)

    weights = params * nbytes / (workers if stage == 3 else 1)
    lora_bytes = lora * nbytes
    optimizer = lora * 12 / (workers if stage >= 1 else 1)
    gradients = lora * nbytes / (workers if stage >= 2 else 1)
    text, vision = towers["text"], towers.get("vision")
    if cfg.model.family == "clip":
        answers = 9  # the 9 area texts are encoded with every batch
        acts = _layer_activations(text, 16, answers, nbytes, attn, checkpointing)
        acts += _layer_activations(vision, image, batch, nbytes, attn, checkpointing)
    else:
        acts = _layer_activations(text, seq, batch, nbytes, attn, checkpointing)
        acts += batch * seq * text.vocab * (nbytes + 4 + 4)  # logits, their fp32 copy and its gradient
        if vision is not None and vision_lora:
            patches = image * (4 if cfg.model.family in ("qwen2-vl", "molmo") else 1)  # Qwen2-VL merges 2x2 patches
            acts += _layer_activations(vision, patches, batch, nbytes, attn, checkpointing)
    memory = {"weights": weights, "lora": lora_bytes, "optimizer": optimizer, "gradients": gradients, "activations": acts}
    memory = {k: round(v / GIB, 2) for k, v in memory.items()}
    memory["overhead"] = OVERHEAD_GIB
    memory["total"] = round(sum(memory.values()), 2)
    return Plan(cfg.model.family, ckpt, params, source, workers, lora, seq, image, image_source, memory)


def suggestions(cfg, plan: Plan, gpu_memory_gib: float) -> list[str]:
    """Config changes that lower the estimate, each with the total it would give."""
    import dataclasses

    tries = []
    if not getattr(cfg.train, "gradient_checkpointing", False):
        tries.append(("train.gradient_checkpointing=true", dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, gradient_checkpointing=True))))
    if cfg.train.strategy == "deepspeed" and cfg.train.zero_stage < 3 and plan.gpus > 1:
        tries.append(("train.zero_stage=3", dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, zero_stage=3))))
    if cfg.model.family == "qwen2-vl" and plan.image_tokens > 1024:
        tries.append(("model.max_pixels=802816 (at most 1024 image tokens)", dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, max_pixels=802816))))
    if getattr(cfg.model, "attn_implementation", "") == "eager":
        tries.append(("model.attn_implementation=sdpa", dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, attn_implementation="sdpa"))))
    out = []
    for text, changed in tries:
        total = plan_trial(changed, plan.gpus).memory_gib["total"]
        if total < plan.memory_gib["total"]:
            out.append(f"{text}: {total:.1f} GiB{' (fits)' if total <= gpu_memory_gib else ''}")
    return out


def trial_configs(cfg, configs_root) -> tuple[list, int]:
    """(the distinct trial configs to plan, the number of trials the sweep runs); a train config is one trial."""
    if not cfg.sweep.space:
        return [cfg], 1
    from raysweep._configlib import to_dict
    from raysweep.sweep.space import check_space, trial_count

    configs: list = []
    check_space(to_dict(cfg), cfg.sweep.space, configs_root, configs)
    trials = trial_count(cfg.sweep.space, cfg.sweep.num_samples) * max(1, len(cfg.sweep.seeds))
    return configs, trials


def check_memory(cfg, gpu_memory_gib: float | None) -> list[str]:
    """Pre-flight of ``train``/``sweep``: refuse a trial estimated beyond ``gpu_memory_gib`` + 10%, warn above it.

    Returns notes (warnings, or why the check was skipped). Only runs with ``train.use_gpu``.
    """
    if not cfg.train.use_gpu:
        return []
    if not gpu_memory_gib:
        return ["train.gpu_memory_gib is 0 and no GPU is visible here, so the memory estimate was not checked (raysweep plan --gpu-memory GiB)"]
    plan = plan_trial(cfg)
    total = plan.memory_gib["total"]
    if total > gpu_memory_gib * (1 + WARN_MARGIN):
        fixes = "; ".join(suggestions(cfg, plan, gpu_memory_gib)) or "use a GPU with more memory"
        raise UserError(f"{cfg.model.family} ({cfg.model.checkpoint}): estimated {total:.1f} GiB per worker exceeds the GPU's {gpu_memory_gib:g} GiB by more than 10% (raysweep plan shows the parts); try {fixes}")
    if total > gpu_memory_gib:
        return [f"{cfg.model.family} ({cfg.model.checkpoint}): estimated {total:.1f} GiB per worker is above the GPU's {gpu_memory_gib:g} GiB (within 10%: the estimate may be high); watch the first steps"]
    return []


def local_gpu_memory_gib() -> float:
    """Memory of this machine's first CUDA GPU in GiB, or 0."""
    import torch

    if not torch.cuda.is_available():
        return 0.0
    return torch.cuda.get_device_properties(0).total_memory / GIB
