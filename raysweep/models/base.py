"""The protocol every VLM family implements, and the shared machinery of chat (decoder) VLMs.

A family is an object with ``build``, ``apply_lora``, ``collate``, ``loss``, ``predict``,
``save_adapter`` and ``load_adapter`` (see :class:`Family`). Decoder VLMs (Qwen2-VL, LLaVA-NeXT,
Molmo) share :class:`ChatVLMFamily`, which needs only a handful of hooks per family; CLIP implements
the protocol on its own.

Rows are dicts with at least ``image`` (PNG/JPEG bytes or a PIL image), ``prompt`` (the full prompt
text including the prefix), ``answer`` (an answer name of the task) and ``label`` (its index in the
task's vocabulary), as in the Parquet datasets. A built model carries the task it answers
(:attr:`Built.task`): its answer names are what ``choice`` scores and ``generate`` parses into.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from raysweep.errors import UserError
from raysweep.models._tiny import count_params

IGNORE = -100


@dataclass
class Prediction:
    """One prediction: ``area`` is the label (index into the task's answers), or -1 when the
    generated text could not be parsed."""

    area: int
    text: str = ""
    scores: list[float] | None = None
    new_tokens: int = 0  # generate: tokens produced, EOS included (the decode steps this row took)


def decode_generated(tokenizer, new_ids: torch.Tensor, task) -> list[Prediction]:
    """Predictions from generated ids (prompt removed): text, parsed area, count of new tokens.

    A row's count ends at its first EOS (included); rows that finished early are padded after it.
    """
    texts = tokenizer.batch_decode(new_ids, skip_special_tokens=True)
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    preds = []
    for ids, text in zip(new_ids.tolist(), texts):
        n = ids.index(eos) + 1 if eos in ids else sum(1 for i in ids if i != pad)
        preds.append(Prediction(task.parse(text), text.strip(), new_tokens=n))
    return preds


@dataclass
class Built:
    """A built model: the torch module, its processor/tokenizer and bookkeeping."""

    model: Any
    processor: Any
    tokenizer: Any
    family: str
    config: Any
    device: torch.device
    task: Any = None  # the raysweep.tasks.Task whose answers the model gives (set by Family.build)
    trainable_params: int = 0
    total_params: int = 0
    lora: bool = False
    extras: dict = field(default_factory=dict)

    @property
    def answer_names(self) -> list[str]:
        """The answers of :attr:`task`, in label order."""
        return list(self.task.answer_names)


def load_image(image):
    """8-bit RGB from bytes or a PIL image, decoded by the rule every consumer shares
    (:func:`raysweep.images.load_rgb`: EXIF orientation applied, any mode converted correctly)."""
    from raysweep.images import load_rgb

    return load_rgb(image)


def override_normalisation(image_processor, model_cfg) -> None:
    """Apply ``model.image_mean`` / ``model.image_std`` when the config sets them."""
    if model_cfg.image_mean:
        image_processor.image_mean = list(model_cfg.image_mean)
    if model_cfg.image_std:
        image_processor.image_std = list(model_cfg.image_std)


def resolve_device(model_cfg) -> torch.device:
    name = getattr(model_cfg, "device", "auto")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def resolve_dtype(model_cfg, device: torch.device) -> torch.dtype:
    if model_cfg.dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, model_cfg.dtype)


def set_attention(model, implementation: str) -> None:
    """``model.attn_implementation``: switch the built model's attention kernel (one line when it cannot)."""
    try:
        model.set_attn_implementation(implementation)
    except (ImportError, ValueError) as err:
        reason = str(err).strip().splitlines()[0]
        raise UserError(f"model.attn_implementation={implementation}: {reason}; use sdpa (or leave it empty)") from None


def enable_gradient_checkpointing(built) -> None:
    """``train.gradient_checkpointing``: recompute activations in backward (non-reentrant, so a frozen base
    with LoRA needs no input that requires grad)."""
    inner = built.model.get_base_model() if built.lora else built.model
    kwargs = {"use_reentrant": False}
    if hasattr(inner, "activation_checkpointing_enable"):  # transformers >= 5.24; older versions: the old name
        inner.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        inner.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    if hasattr(inner.config, "use_cache"):
        inner.config.use_cache = False


def lora_targets(lora_cfg, default):
    """The peft ``target_modules``: the config's list (one entry with regex characters = a regex)."""
    targets = list(lora_cfg.targets)
    if not targets:
        return default
    if len(targets) == 1 and any(c in targets[0] for c in "*.()|[]^$\\"):
        return targets[0]
    return targets


class Family:
    """The protocol. Subclasses set ``name``, ``default_checkpoint``, ``checkpoints`` and ``tiny``."""

    name: str = ""
    default_checkpoint: str = ""
    checkpoints: tuple[str, ...] = ()
    tiny: str = ""  # one line describing the tiny variant

    # -- build ---------------------------------------------------------------------------------
    def build(self, model_cfg, task=None) -> Built:
        """``checkpoint == 'tiny'`` builds the tiny variant offline, ``shape:<Hub id>`` the real-shape
        variant (:mod:`raysweep.models._shapes`); else ``from_pretrained``.

        ``task`` (a :class:`raysweep.tasks.Task`; default the paper's 3x3 absolute position) is the
        answer space: the tiny tokenizer makes each of its answers one token.
        """
        from raysweep.tasks import default_task

        task = task or default_task()
        device = resolve_device(model_cfg)
        if model_cfg.checkpoint == "tiny":
            torch.manual_seed(model_cfg.seed)
            built = self.build_tiny(model_cfg, device, task)
        elif model_cfg.checkpoint.startswith("shape:"):  # a published architecture, cut short, random weights
            from raysweep.models._shapes import build_shape

            torch.manual_seed(model_cfg.seed)
            built = build_shape(self, model_cfg, device, resolve_dtype(model_cfg, device))
        else:
            built = self._load_pretrained(model_cfg, device)
        built.task = task
        if getattr(model_cfg, "attn_implementation", ""):
            set_attention(built.model, model_cfg.attn_implementation)
        built.model.to(device)
        built.trainable_params, built.total_params = count_params(built.model)
        return built

    def _load_pretrained(self, model_cfg, device) -> Built:
        """:meth:`build_pretrained`, with a missing folder or an unreachable Hub id as one clear line."""
        return self._from_checkpoint(model_cfg, lambda: self.build_pretrained(model_cfg, device, resolve_dtype(model_cfg, device)))

    def _from_checkpoint(self, model_cfg, load):
        """``load()`` of a Hub id or local folder, with a missing folder or an unreachable Hub id as one clear line."""
        from pathlib import Path

        from raysweep.storage import is_local_checkpoint

        ckpt = model_cfg.checkpoint
        if is_local_checkpoint(ckpt) and not (Path(ckpt).expanduser() / "config.json").is_file():
            raise UserError(
                f"model.checkpoint {ckpt!r}: no such model folder (expected config.json in it); give a local folder "
                f"written by save_pretrained, a Hub id such as {self.default_checkpoint!r}, or 'tiny'"
            )
        try:
            return load()
        except OSError as err:
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise UserError(
                f"model.checkpoint {ckpt!r} cannot be loaded ({reason}); download it into the Hugging Face cache "
                f"first (hf download {ckpt}) or set model.checkpoint to a local folder"
            ) from None

    def build_tiny(self, model_cfg, device, task) -> Built:
        raise NotImplementedError

    def build_pretrained(self, model_cfg, device, dtype) -> Built:
        raise NotImplementedError

    def load_processor(self, model_cfg) -> tuple[Any, Any]:
        """(processor, tokenizer) of a Hub or local checkpoint, without its weights."""
        raise NotImplementedError

    def build_collator(self, model_cfg, task=None) -> Built:
        """What :meth:`collate` needs - processor, tokenizer, task - on the CPU, with ``model`` None.

        Ray Data's collate stage (:mod:`raysweep.launch.data`) builds this once per data worker: a
        Hub or local checkpoint reads only its processor files, a real-shape variant only its
        processor; the tiny variant (a few MB) is built whole and its model dropped, since its
        tokenizer is made with it. Errors as :meth:`build`.
        """
        from dataclasses import replace

        from raysweep.tasks import default_task

        task = task or default_task()
        cpu = torch.device("cpu")
        if model_cfg.checkpoint == "tiny":
            built = self.build(replace(model_cfg, device="cpu"), task)
            built.model = None
            return built
        if model_cfg.checkpoint.startswith("shape:"):
            from raysweep.models._shapes import family_processor

            processor, tokenizer = family_processor(self, model_cfg)
        else:
            processor, tokenizer = self._from_checkpoint(model_cfg, lambda: self.load_processor(model_cfg))
        return Built(None, processor, tokenizer, self.name, model_cfg, cpu, task=task)

    # -- LoRA ----------------------------------------------------------------------------------
    def default_lora_targets(self, vision: bool):
        """peft ``target_modules`` (a regex string or a list) of the family's default adapter."""
        raise NotImplementedError

    def apply_lora(self, built: Built, lora_cfg) -> Built:
        """Wrap the model with a peft LoRA adapter; freeze the base; count trainable parameters."""
        from peft import LoraConfig as PeftLoraConfig
        from peft import get_peft_model

        init = {"gaussian": "gaussian", "default": True, "pissa": "pissa", "olora": "olora"}[lora_cfg.init]
        peft_cfg = PeftLoraConfig(
            r=lora_cfg.rank,
            lora_alpha=lora_cfg.alpha,
            lora_dropout=lora_cfg.dropout,
            init_lora_weights=init,
            target_modules=lora_targets(lora_cfg, self.default_lora_targets(lora_cfg.vision)),
        )
        built.model = get_peft_model(built.model, peft_cfg)
        built.lora = True
        built.trainable_params, built.total_params = count_params(built.model)
        return built

    def save_adapter(self, built: Built, path) -> None:
        """Write the adapter (safetensors + adapter_config.json) with peft ``save_pretrained``.

        Next to it goes what it was trained on (the resolved model section and the task, see
        :mod:`raysweep.models._adapter_identity`), which :meth:`load_adapter` checks.
        """
        from raysweep.models._adapter_identity import task_identity, write_identity

        if not built.lora:
            raise UserError("this model has no LoRA adapter to save; call apply_lora first")
        built.model.save_pretrained(str(path), safe_serialization=True)
        write_identity(path, built.config, task_identity(built))

    def load_adapter(self, built: Built, path, trainable: bool = False) -> Built:
        """Attach a saved adapter (folder written by :meth:`save_adapter`).

        An adapter trained on another base (family, checkpoint, tiny weights or shapes, image size,
        task) is refused in one line naming the keys; one that peft cannot place is one line too.
        """
        from peft import PeftModel

        from raysweep.models._adapter_identity import check_identity, check_weights_placed, misfit_error, read_adapter_files

        saved = read_adapter_files(path)
        check_identity(built, path)
        try:
            model = PeftModel.from_pretrained(built.model, str(path), is_trainable=trainable)
        except (ValueError, RuntimeError, KeyError) as err:  # no such modules, other shapes
            raise misfit_error(built, path, err) from None
        check_weights_placed(model, built, path, saved)
        built.model = model.to(built.device)
        built.lora = True
        built.trainable_params, built.total_params = count_params(built.model)
        return built

    # -- batches, loss, predictions --------------------------------------------------------------
    def collate(self, built: Built, rows: list[dict], train: bool) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def loss(self, built: Built, batch: dict) -> torch.Tensor:
        raise NotImplementedError

    def predict(self, built: Built, rows: list[dict], mode: str = "choice", max_new_tokens: int = 15) -> list[Prediction]:
        raise NotImplementedError


def to_device(batch: dict, built: Built) -> dict:
    """Move a batch to the model's device; floating tensors take the model's dtype."""
    dtype = next(built.model.parameters()).dtype
    out = {}
    for k, v in batch.items():
        if isinstance(v, torch.Tensor):
            v = v.to(built.device, dtype=dtype) if v.is_floating_point() else v.to(built.device)
        out[k] = v
    return out


class ChatVLMFamily(Family):
    """Shared code of decoder VLMs driven by a processor and a chat template.

    Hooks: :meth:`prompt_text` (chat template), ``answer_sep`` (text between the generation prompt
    and the answer), :meth:`encode` (processor call) and :meth:`continuation_positions`.
    """

    answer_sep: str = ""

    def prompt_text(self, built: Built, prompt: str) -> str:
        """The prompt through the family's chat template, ending with the generation prompt."""
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
        return built.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def encode(self, built: Built, images, texts, padding_side: str, **text_kwargs) -> dict:
        tok = built.tokenizer
        old, tok.padding_side = tok.padding_side, padding_side
        try:
            enc = built.processor(images=images, text=texts, return_tensors="pt", padding=True, **text_kwargs)
        finally:
            tok.padding_side = old
        return dict(enc)

    def collate(self, built: Built, rows: list[dict], train: bool) -> dict[str, torch.Tensor]:
        """Processor inputs; with ``train`` right-padded and ``labels`` on the answer tokens + EOS only.

        Without ``train`` the prompts are left-padded for generation and scoring. The processor runs
        once per batch (its image part is most of the collate time); where each answer starts comes
        from the character offsets of that one tokenisation (:meth:`answer_starts`).
        """
        images = [load_image(r["image"]) for r in rows]
        prompts = [self.prompt_text(built, r["prompt"]) for r in rows]
        if not train:
            return self.encode(built, images, prompts, "left")
        answers = [self.answer_sep + r["answer"] + built.tokenizer.eos_token for r in rows]
        enc = self.encode(built, images, [p + a for p, a in zip(prompts, answers)], "right", return_offsets_mapping=True)
        offsets = enc.pop("offset_mapping")
        starts = self.answer_starts(offsets, enc["attention_mask"], answers)
        prompt = torch.arange(enc["input_ids"].shape[1])[None] < starts[:, None]
        enc["labels"] = enc["input_ids"].masked_fill(prompt | (enc["attention_mask"] == 0), IGNORE)
        if built.extras.get("grounding"):
            enc["grounding_index"], enc["grounding_cell"] = self.grounding_targets(built, rows, prompts, answers, offsets, enc["attention_mask"])
        return enc

    def grounding_targets(self, built: Built, rows: list[dict], prompts: list[str], answers: list[str], offsets: torch.Tensor,
                          mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """Token index of the last token of each object's name in the prompt, and that object's cell.

        Reads each row's ``grounding`` (``[end, row, col]`` per named object, ``end`` a character
        index in the row's ``prompt``; :meth:`raysweep.scenes.SceneSet.grounding`). Characters are
        counted from the end of the text, as in :meth:`answer_starts`: the processor expands the image
        placeholder before the prompt, so offsets from the start shift and offsets from the end do not.

        Returns:
            ``(index, cell)``, both ``(batch, k)`` long, ``k`` the most names of a row; ``cell`` is
            ``row * grid + col`` (``grid`` = ``built.extras["grounding_grid"]``), ``index`` -1 and
            ``cell`` -100 where a row names fewer objects.
        Raises:
            UserError: a row without ``grounding`` (rows read from a Parquet set; render them from a
                data config), or a name that no token ends in.
        """
        grid = int(built.extras.get("grounding_grid", 9))
        k = max(len(r["grounding"]) if r.get("grounding") is not None else 0 for r in rows)  # lists, or arrays via Ray Data
        index = torch.full((len(rows), max(k, 1)), -1, dtype=torch.long)
        cell = torch.full((len(rows), max(k, 1)), IGNORE, dtype=torch.long)
        begin, end = offsets.unbind(-1)
        real = mask.bool()
        last = torch.where(real, end, 0).amax(1)
        for i, (row, prompt, answer) in enumerate(zip(rows, prompts, answers)):
            if row.get("grounding") is None:
                raise UserError(f"train.grounding_weight: row {row.get('scene_id')} has no name positions (rows read from a Parquet set); "
                                "render the training rows from a data config (data.source=synthetic) or set train.grounding_weight=0")  # fmt: skip
            at = prompt.rfind(row["prompt"])  # the user's text inside the chat template
            for j, (stop, r, c) in enumerate(row["grounding"]):
                char = last[i] - (len(prompt) - at - stop) - len(answer)  # just past the name, in the tokenised text
                hit = torch.nonzero(real[i] & (begin[i] < char) & (end[i] >= char))
                if not len(hit):
                    raise UserError(f"train.grounding_weight: no token ends the name at character {stop} of {row['prompt']!r}")
                index[i, j], cell[i, j] = int(hit[0, 0]), int(r) * grid + int(c)
        return index, cell

    def answer_starts(self, offsets: torch.Tensor, mask: torch.Tensor, answers: list[str]) -> torch.Tensor:
        """Index of each row's first answer token, from the right-padded tokens' character offsets.

        The answer (separator + answer + EOS) is the last ``len(answer)`` characters of the text the
        tokenizer saw (the processor expands the image placeholder inside the prompt, never in the
        answer). Refuses when a token spans the boundary: the prompt's last token would merge with the
        answer's first, so the prompt's tokens would change when the answer follows (tested equal to
        tokenising the prompt alone, tests/test_models_families.py).
        """
        begin, end = offsets.unbind(-1)
        real = mask.bool()
        boundary = torch.where(real, end, 0).amax(1, keepdim=True) - torch.tensor([len(a) for a in answers])[:, None]
        in_prompt = real & (begin < boundary)
        starts = in_prompt.sum(1, keepdim=True)
        spans = real & (begin < boundary) & (end > boundary)
        scattered = in_prompt != (torch.arange(mask.shape[1])[None] < starts)  # an answer token before a prompt token
        if (spans | scattered).any():
            raise RuntimeError(f"{self.name}: the prompt's tokens change when the answer follows; cannot mask the loss")
        return starts[:, 0]

    def loss(self, built: Built, batch: dict) -> torch.Tensor:
        """Mean cross-entropy over the label (answer) tokens."""
        batch = {k: v for k, v in batch.items() if not k.startswith("grounding_")}
        return built.model(**to_device(batch, built)).loss

    def grounding_logits(self, built: Built, batch: dict, head: torch.nn.Module):
        """``(out, logits, cell)`` of one forward pass of a batch collated with ``grounding``.

        ``logits`` ``(batch, k, grid * grid)``: ``head`` (a linear map from the language model's width
        to the cells) on the last layer's hidden state at the last token of each object's name
        (``grounding_index``); ``cell`` ``(batch, k)``: that object's cell (``grounding_cell``,
        ``IGNORE`` where a row names fewer); ``out``: the model's output (its ``loss`` the answer's).
        """
        batch = to_device(batch, built)
        index, cell = batch.pop("grounding_index"), batch.pop("grounding_cell")
        out = built.model(**batch, output_hidden_states=True)
        hidden = out.hidden_states[-1]  # (batch, tokens, width), after the final norm
        rows = torch.arange(hidden.shape[0], device=hidden.device)[:, None].expand_as(index)
        return out, head(hidden[rows, index.clamp(min=0)].float()), cell

    def grounding_loss(self, built: Built, batch: dict, head: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        """(answer loss, grounding loss) of one forward pass (``train.grounding_weight``).

        The grounding loss is the cross-entropy of :meth:`grounding_logits` against each named
        object's cell: it asks the model to know, where "red star" is read, where the red star stands.
        """
        out, logits, cell = self.grounding_logits(built, batch, head)
        aux = torch.nn.functional.cross_entropy(logits.flatten(0, 1), cell.flatten(), ignore_index=IGNORE)
        return out.loss, aux

    def predict(self, built: Built, rows: list[dict], mode: str = "choice", max_new_tokens: int = 15) -> list[Prediction]:
        """``generate``: greedy text, then the task's parser; ``choice``: best log-likelihood of its answers."""
        if mode == "generate":
            return self.predict_generate(built, rows, max_new_tokens)
        if mode == "choice":
            return self.predict_choice(built, rows)
        raise UserError(f"unknown prediction mode {mode!r}; choose choice or generate")

    @torch.no_grad()
    def predict_generate(self, built: Built, rows, max_new_tokens: int) -> list[Prediction]:
        batch = to_device(self.collate(built, rows, train=False), built)
        tok = built.tokenizer
        out = built.model.generate(
            **batch, do_sample=False, max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id,
            temperature=None, top_p=None, top_k=None,
        )
        return decode_generated(tok, out[:, batch["input_ids"].shape[1]:], built.task)

    def candidates(self, built: Built, with_eos: bool | None = None):
        """Token ids of the task's answers after the prompt: (shared prefix, per-answer suffixes).

        The EOS is scored too (``with_eos=None``) unless every suffix is one distinct token:
        otherwise "center" would be a prefix of "center left" and would always win.
        """
        key = ("choice_candidates", with_eos, tuple(built.answer_names))
        if key not in built.extras:
            tok = built.tokenizer
            seqs = [tok(self.answer_sep + name + tok.eos_token, add_special_tokens=False)["input_ids"] for name in built.answer_names]
            prefix = []
            while all(len(s) > len(prefix) + 1 for s in seqs) and len({s[len(prefix)] for s in seqs}) == 1:
                prefix.append(seqs[0][len(prefix)])
            suffixes = [s[len(prefix):] for s in seqs]
            single = all(len(s) == 2 for s in suffixes) and len({s[0] for s in suffixes}) == len(suffixes)
            if with_eos is False or (with_eos is None and single):
                suffixes = [s[:-1] for s in suffixes]
            built.extras[key] = (prefix, suffixes)
        return built.extras[key]

    def continuation_positions(self, built: Built, batch: dict, out, length: int, repeat: int):
        """Position ids of ``length`` tokens that continue each (left-padded) prompt; None = default."""
        start = batch["attention_mask"].sum(1, keepdim=True)
        pos = start + torch.arange(length, device=start.device)[None]
        return pos.repeat_interleave(repeat, dim=0)

    def prompt_positions(self, batch: dict):
        """Position ids of the left-padded prompt (None lets the model compute them)."""
        mask = batch["attention_mask"]
        return (mask.long().cumsum(-1) - 1).clamp(min=0)

    @torch.no_grad()
    def predict_choice(self, built: Built, rows, with_eos: bool | None = None) -> list[Prediction]:
        """Score the 9 answers with one forward pass of the prompt.

        Single-token answers read the next-token distribution; multi-token answers reuse the
        prompt's KV cache (repeated 9x) and score the continuations in one more forward pass.
        Scores are summed log-probabilities of each answer's tokens (see :meth:`candidates`).
        """
        prefix, suffixes = self.candidates(built, with_eos)
        batch = to_device(self.collate(built, rows, train=False), built)
        if prefix:
            extra = torch.tensor(prefix, device=built.device)[None].expand(len(rows), -1)
            batch["input_ids"] = torch.cat([batch["input_ids"], extra], 1)
            batch["attention_mask"] = torch.cat([batch["attention_mask"], torch.ones_like(extra)], 1)
        positions = self.prompt_positions(batch)
        if positions is not None:
            batch["position_ids"] = positions
        single = all(len(s) == 1 for s in suffixes)
        out = built.model(**batch, use_cache=not single, **({"logits_to_keep": 1} if single else {}))
        first = torch.log_softmax(out.logits[:, -1].float(), -1)
        if single:
            scores = first[:, [s[0] for s in suffixes]]
        else:
            scores = self._score_continuations(built, batch, out, first, suffixes)
        return [Prediction(int(s.argmax()), "", s.tolist()) for s in scores.cpu()]

    def _score_continuations(self, built, batch, out, first, suffixes):
        n, k = first.shape[0], len(suffixes)
        length = max(len(s) for s in suffixes) - 1
        first_scores = first[:, [s[0] for s in suffixes]]  # (n, k)
        if length == 0:
            return first_scores
        pad = built.tokenizer.pad_token_id or 0
        cont = torch.full((k, length), pad, dtype=torch.long)
        cmask = torch.zeros((k, length), dtype=torch.long)
        for j, s in enumerate(suffixes):
            cont[j, : len(s) - 1] = torch.tensor(s[:-1][: length]) if len(s) > 1 else cont[j, :0]
            cmask[j, : len(s) - 1] = 1
        # Inputs are the suffix tokens 0..L-2; targets are tokens 1..L-1.
        targets = torch.full((k, length), IGNORE, dtype=torch.long)
        for j, s in enumerate(suffixes):
            targets[j, : len(s) - 1] = torch.tensor(s[1:])
        dev = built.device
        cont, cmask, targets = cont.to(dev).repeat(n, 1), cmask.to(dev).repeat(n, 1), targets.to(dev).repeat(n, 1)
        cache = out.past_key_values
        cache.batch_repeat_interleave(k)
        mask = torch.cat([batch["attention_mask"].repeat_interleave(k, 0), torch.ones_like(cmask)], 1)
        kwargs = {}
        positions = self.continuation_positions(built, batch, out, length, k)
        if positions is not None:
            kwargs["position_ids"] = positions
        out2 = built.model(input_ids=cont, attention_mask=mask, cache=cache, use_cache=True, **kwargs)
        logp = torch.log_softmax(out2.logits.float(), -1)
        gathered = logp.gather(-1, targets.clamp(min=0)[..., None])[..., 0]
        rest = (gathered * (targets != IGNORE)).sum(1).view(n, k)
        return first_scores + rest
