"""Checks that run before any work starts: what can be found out without a GPU is found out here.

Every check raises :class:`~raysweep.errors.UserError` with one line naming the culprit and the fix,
so a command fails in seconds instead of after an evaluation or a queue on a cluster.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from types import SimpleNamespace

from raysweep import storage
from raysweep.errors import UserError


def print_notes(notes: list[str]) -> None:
    """Pre-flight notes (skipped checks), one line each on stderr."""
    import sys

    for note in notes:
        print(f"raysweep: note: {note}", file=sys.stderr, flush=True)


def check_writable(path: str | Path, what: str) -> None:
    """Check that files can be created in folder ``path`` (created later if it does not exist yet).

    The nearest existing folder on the way is probed by creating and removing a temporary file, which
    also catches read-only file systems and holds for root (whom permission bits do not stop).

    Args:
        path: the folder that will be written (or whose parent will be, for a new folder).
        what: how the user named it, e.g. ``"--out out/x"``; it leads the error message.

    Raises:
        UserError: a file stands on the way, or the folder cannot be written.
    """
    path = Path(os.path.abspath(os.path.expanduser(str(path))))
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f"{what}: {probe} is a file, not a folder; choose another path")
    try:
        with tempfile.TemporaryFile(dir=probe, prefix=".raysweep-write-check-"):
            pass
    except OSError as err:
        reason = os.strerror(err.errno) if err.errno else str(err)
        hint = "a read-only file system" if err.errno == errno.EROFS else "no permission" if err.errno in (errno.EACCES, errno.EPERM) else reason
        raise UserError(f"{what}: cannot write to {probe} ({hint}); choose a writable folder") from None


def check_writable_file(path: str | Path, what: str) -> None:
    """Check that file ``path`` can be (re)written: its folder is writable and it is not a folder itself."""
    path = Path(os.path.abspath(os.path.expanduser(str(path))))
    if path.is_dir():
        raise UserError(f"{what}: {path} is a folder; give a file path")
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"{what}: {path} exists and cannot be written; choose another path")
    check_writable(path.parent, what)


def check_run_inputs(cfg, sweep: bool = False, configs_root: Path | None = None) -> list[str]:
    """Everything about a ``train`` or ``sweep`` config that can be checked on the driver, before Ray starts.

    For a sweep, every point of the space is built (:func:`raysweep.sweep.space.check_space`: every
    grid and choice value, sampled ranges at their ends and inside) and each distinct trial config
    is checked like a ``train`` config: the datasets it names open and validate (``data.parquet``
    source, ``train.eval_sets``), eval-set configs and ``train.deepspeed_config`` exist, the device
    string fits ``train.use_gpu``, a local checkpoint folder holds weights, the LoRA targets exist in
    the model (on its module names, no weights loaded), the MLflow names are allowed and the
    tracking server answers, local storage folders can be written, and with ``train.use_gpu`` the memory
    estimate of ``raysweep plan`` fits the GPU (``train.gpu_memory_gib`` or the local GPU; refused beyond 10%).

    Returns:
        Notes for the user (checks that were skipped, e.g. a Hub checkpoint not available offline).
    Raises:
        UserError: the first problem, naming the config key (and the sweep point).
    """
    trials = [cfg]
    if sweep:
        from raysweep._configlib import to_dict
        from raysweep.sweep.space import check_space

        trials = []
        check_space(to_dict(cfg), cfg.sweep.space, configs_root or Path("configs"), trials)
    notes: list[str] = []
    seen: set = set()
    for trial in trials:
        check_grounding(trial.data, trial.model, trial.train)
        for check, section in ((_check_data, (trial.data, trial.train)), (_check_model, (trial.model, trial.lora, trial.train))):
            key = (check.__name__, repr(section))
            if key not in seen:
                seen.add(key)
                notes += check(*section) or []
    check_mlflow(cfg.mlflow, [t.model.family for t in trials])
    notes += _check_memory(trials)
    storages = {"train.storage_path": cfg.train.storage_path}
    if sweep:
        storages["sweep.storage_path"] = cfg.sweep.storage_path
    for key, value in storages.items():
        if "://" not in value:  # object stores are checked by the cluster layer
            check_writable(value, f"{key} {value}")
    return list(dict.fromkeys(notes))


def _check_memory(trials) -> list[str]:
    """The memory estimate of ``raysweep plan`` per trial: refused beyond 10% over the GPU, a warning within."""
    from raysweep.plan import check_memory, local_gpu_memory_gib

    local = None
    notes: list[str] = []
    for trial in trials:
        if trial.train.use_gpu and not trial.train.gpu_memory_gib and local is None:
            local = local_gpu_memory_gib()
        notes += check_memory(trial, trial.train.gpu_memory_gib or local)
    return notes


def _check_data(data_cfg, train_cfg) -> None:
    import json

    from raysweep.datasets import open_dataset

    if data_cfg.source != "synthetic":
        if data_cfg.source not in data_cfg.parquet:
            raise UserError(f"data.source: unknown source {data_cfg.source!r}; add it under data.parquet or use synthetic")
        open_dataset(data_cfg.parquet[data_cfg.source])
    _check_training_rows(data_cfg)
    for s in train_cfg.eval_sets:
        if s.path:
            open_dataset(s.path)
        elif not Path(s.config).is_file():
            raise UserError(f"train.eval_sets: {s.name}: config {s.config} not found")
    if train_cfg.deepspeed_config:
        path = Path(train_cfg.deepspeed_config)
        if not path.is_file():
            raise UserError(f"train.deepspeed_config: {path} not found; give a DeepSpeed JSON file or leave it empty")
        try:
            json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError) as err:
            raise UserError(f"train.deepspeed_config: {path} is not valid JSON ({err}); fix the file") from None


def _check_training_rows(data_cfg) -> None:
    """The sources that data.mix and data.area_distribution=coco name open; data.curriculum has a launcher
    that switches phases; a synthetic source holds the rows data.size asks for."""
    from raysweep.datasets import open_dataset

    if data_cfg.mix.source and data_cfg.mix.source != "synthetic":
        open_dataset(data_cfg.parquet[data_cfg.mix.source])
    if data_cfg.area_distribution == "coco":
        from raysweep.tasks import training_task
        from raysweep.training.corrupt import coco_area_counts

        coco_area_counts(data_cfg, training_task(data_cfg))
    if data_cfg.curriculum:
        import raysweep.launch.train as launcher

        # The phases need the launcher to take each epoch's rows from train_src.for_epoch(epoch); it says
        # so with this flag (raysweep.launch.train is owned elsewhere; see README, Paper experiments).
        if not getattr(launcher, "SWITCHES_CURRICULUM_PHASES", False):
            raise UserError("data.curriculum: this version's training launcher does not switch data phases per epoch yet; "
                            "run each phase as its own run (data.mix.ratio) or leave data.curriculum empty")  # fmt: skip
    if data_cfg.source == "synthetic" and data_cfg.corrupted() and not data_cfg.mix.source:
        from raysweep.training.data import train_val_sources

        train_val_sources(SimpleNamespace(data=data_cfg))  # labels only, no image rendered


def check_grounding(data_cfg, model_cfg, train_cfg) -> None:
    """``train.grounding_weight`` needs name positions in the rows (rendered from a data config), a
    decoder family's hidden states, and the head whole on every rank (not ZeRO-3)."""
    from raysweep.errors import ConfigError
    from raysweep.models import get_family

    if not train_cfg.grounding_weight:
        return
    if not hasattr(get_family(model_cfg.family), "grounding_loss"):
        raise ConfigError("train.grounding_weight", f"the {model_cfg.family} family has no language-model hidden states to "
                                                    "ground; use llava-next or qwen2-vl, or set it to 0")  # fmt: skip
    if data_cfg.source != "synthetic" or data_cfg.mix.source:
        raise ConfigError("train.grounding_weight", "needs the names' positions, which only rows rendered from a data config "
                                                    "carry; use data.source=synthetic without data.mix, or set it to 0")  # fmt: skip
    if train_cfg.strategy == "deepspeed" and train_cfg.zero_stage == 3 and train_cfg.num_workers > 1:
        raise ConfigError("train.grounding_weight", "its head runs outside the model's forward, which ZeRO-3's partitioned "
                                                    "weights do not allow; use train.zero_stage 2, or set it to 0")  # fmt: skip


def _check_model(model_cfg, lora_cfg, train_cfg) -> list[str]:
    check_device(model_cfg, train_cfg.use_gpu)
    check_checkpoint_folder(model_cfg)
    notes = [check_lora_targets(model_cfg, lora_cfg), hub_note(model_cfg)]
    return [n for n in notes if n]


def hub_note(model_cfg, timeout_s: float = 3.0) -> str | None:
    """A warning (never an error) when a Hub checkpoint is not cached here and the Hub does not answer.

    The workers may have a cache or staged weights (``raysweep stage``) that the driver lacks, so
    this only tells the user, in seconds, what would otherwise show as minutes of retry warnings.
    """
    import os

    ckpt = model_cfg.checkpoint
    if ckpt == "tiny" or ckpt.startswith("shape:") or storage.is_local_checkpoint(ckpt):
        return None
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(ckpt, "config.json"), str):
        return None
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return f"model.checkpoint {ckpt} is not in the Hugging Face cache here and HF_HUB_OFFLINE is set: the workers need it cached or staged (raysweep stage)"
    import requests

    try:
        requests.head("https://huggingface.co", timeout=timeout_s)
    except requests.RequestException as err:
        return (f"model.checkpoint {ckpt} is not cached here and the Hugging Face Hub does not answer ({type(err).__name__}): "
                "the workers need it cached or staged (raysweep stage)")  # fmt: skip
    return None


def check_device(model_cfg, use_gpu: bool | None) -> None:
    """``model.device`` against ``train.use_gpu`` (``use_gpu`` None: a local command such as ``eval``).

    The GPUs of a cluster are the cluster's business (checked after connecting); here only what the
    config says can contradict itself, and, for local commands, whether this machine has CUDA.
    """
    device = model_cfg.device
    if not device.startswith("cuda"):
        return
    if use_gpu is False:
        raise UserError(f"model.device={device} but train.use_gpu is false, so the workers get no GPU; set train.use_gpu=true or model.device=auto")
    if use_gpu is None:
        import torch

        if not torch.cuda.is_available():
            raise UserError(f"model.device={device} but no CUDA GPU is visible here; use model.device=auto or cpu")


def check_checkpoint_folder(model_cfg) -> None:
    """A local ``model.checkpoint`` folder must hold ``config.json`` and weights (``*.safetensors`` or ``*.bin``)."""
    ckpt = model_cfg.checkpoint
    if ckpt == "tiny":
        return
    path = Path(ckpt).expanduser()
    if not storage.is_local_checkpoint(ckpt):
        return  # a Hub id, a shape: variant
    if not (path / "config.json").is_file():
        raise UserError(f"model.checkpoint {ckpt!r}: no such model folder (expected config.json in it); give a folder written by save_pretrained, a Hub id, or 'tiny'")
    if not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
        raise UserError(f"model.checkpoint {ckpt!r}: the folder has config.json but no weights (*.safetensors or *.bin); copy the weights into it or point model.checkpoint at the complete folder")


_MODULE_NAMES: dict[str, list[str] | None] = {}


def module_names(model_cfg) -> list[str] | None:
    """Names of the model's modules, without loading weights; None when the architecture is not available here.

    The tiny variants are built (they are small); a checkpoint's architecture is instantiated on the
    ``meta`` device from its ``config.json`` (a local folder or the Hugging Face cache, never the network;
    for a known checkpoint that is not cached, and for ``shape:`` variants, its published architecture).
    """
    import dataclasses
    import json

    key = json.dumps(dataclasses.asdict(model_cfg), sort_keys=True)
    if key in _MODULE_NAMES:
        return _MODULE_NAMES[key]
    names = None
    if model_cfg.checkpoint == "tiny":
        from raysweep.models import get_family

        built = get_family(model_cfg.family).build(dataclasses.replace(model_cfg, device="cpu"))
        names = [n for n, _ in built.model.named_modules()]
    else:
        import torch
        import transformers

        from raysweep.models._shapes import ARCHITECTURES, architecture_config, is_shape

        try:
            if is_shape(model_cfg.checkpoint):  # the published architecture the real-shape variant cuts short
                config = architecture_config(model_cfg.checkpoint)
            else:
                try:
                    config = transformers.AutoConfig.from_pretrained(model_cfg.checkpoint, local_files_only=True, trust_remote_code=model_cfg.trust_remote_code)
                except OSError:
                    if model_cfg.checkpoint not in ARCHITECTURES:
                        raise
                    config = architecture_config(model_cfg.checkpoint)  # not cached: its published config.json
            arch = getattr(transformers, (getattr(config, "architectures", None) or [""])[0], None)
            with torch.device("meta"):
                if arch is not None:
                    model = arch._from_config(config)
                else:  # a config.json without `architectures`: the auto class of its model type
                    try:
                        model = transformers.AutoModelForImageTextToText.from_config(config)
                    except ValueError:
                        model = transformers.AutoModel.from_config(config)
            names = [n for n, _ in model.named_modules()]
        except (OSError, ValueError):
            names = None
    _MODULE_NAMES[key] = names
    return names


def check_lora_targets(model_cfg, lora_cfg) -> str | None:
    """Every LoRA target must exist in the model: a typo fails here instead of adapting nothing.

    A list target must match at least one module (peft's rule: the whole name or its last
    components); a regex target must match at least one module name.

    Returns:
        A note when the model's architecture is not available offline (the check was skipped).
    Raises:
        UserError: naming the target that matches nothing, with the closest module name.
    """
    if not lora_cfg.enabled:
        return None
    from peft import LoraConfig as PeftLoraConfig
    from peft.tuners.tuners_utils import check_target_module_exists

    from raysweep.errors import did_you_mean
    from raysweep.models import get_family
    from raysweep.models.base import lora_targets

    names = module_names(model_cfg)
    if names is None:
        return f"model.checkpoint {model_cfg.checkpoint}: its config is not available offline here, so the LoRA targets were not checked"
    targets = lora_targets(lora_cfg, get_family(model_cfg.family).default_lora_targets(lora_cfg.vision))
    for target in [targets] if isinstance(targets, str) else targets:
        peft_cfg = PeftLoraConfig(target_modules=target if isinstance(targets, str) else [target])
        if not any(check_target_module_exists(peft_cfg, n) for n in names if n):
            leaves = sorted({n.rsplit(".", 1)[-1] for n in names if n})
            raise UserError(
                f"lora.targets: {target!r} matches no module of {model_cfg.family} ({model_cfg.checkpoint}). "
                f"{did_you_mean(target, leaves)}Module names end in e.g. {', '.join(leaves[:12])}"
            )
    return None


def check_mlflow(mlflow_cfg, families: list[str]) -> None:
    """MLflow's own name rules (experiment, registered model, alias) and a reachable tracking server.

    An http(s) tracking URI must answer ``/health`` within a few seconds; a SQLite file's folder
    must be writable.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.utils import validation

    from raysweep.tracking import tracking_uri

    checks = [("mlflow.experiment", validation._validate_experiment_name, mlflow_cfg.experiment)]
    models = [mlflow_cfg.registered_model] if mlflow_cfg.registered_model else [f"raysweep-{f}" for f in dict.fromkeys(families)]
    checks += [("mlflow.registered_model", validation._validate_model_name, m) for m in models]
    if mlflow_cfg.alias:
        checks += [("mlflow.alias", validation._validate_model_alias_name, mlflow_cfg.alias),
                   ("mlflow.alias", validation._validate_model_alias_name_reserved, mlflow_cfg.alias)]  # fmt: skip
    for key, validate, value in checks:
        try:
            validate(value)
        except MlflowException as err:
            raise UserError(f"{key}={value!r}: MLflow refuses it ({err.message}); choose another") from None
    uri = tracking_uri(mlflow_cfg)
    if uri.startswith(("http://", "https://")):
        check_tracking_server(uri)
    elif uri.startswith("sqlite:///"):
        check_writable(Path(uri[len("sqlite:///"):]).parent, f"mlflow.tracking_uri {uri}")


def check_tracking_server(uri: str, timeout_s: float = 5.0) -> None:
    """An MLflow tracking server answers ``GET /health`` within ``timeout_s`` seconds."""
    import requests

    try:
        requests.get(uri.rstrip("/") + "/health", timeout=timeout_s).raise_for_status()
    except requests.RequestException as err:
        reason = type(err).__name__
        if isinstance(err, requests.HTTPError) and err.response is not None:
            reason = f"HTTP {err.response.status_code}"
        raise UserError(f"mlflow.tracking_uri {uri} does not answer ({reason}, waited {timeout_s:g} s); start the server or fix the URI") from None
