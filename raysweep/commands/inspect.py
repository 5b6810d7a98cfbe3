"""raysweep inspect: one training example as the model sees it, and one evaluation row in each mode."""

from raysweep.commands._common import add_config_arguments, load_from_args

HELP = "Show the N-th training example as the model sees it: templated prompt, ids, labelled ids and text, image tokens, shapes."


def add_arguments(parser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--row", type=int, default=0, metavar="N", help="which training example (default 0, the first)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args) -> int:
    import json

    from raysweep.errors import UserError

    if args.row < 0:
        raise UserError(f"--row must be >= 0, got {args.row}")
    cfg = load_from_args(args)
    report = inspect_example(cfg, args.row)
    print(json.dumps(report, indent=2) if args.json else format_example(report))
    return 0


def inspect_example(cfg, row: int = 0) -> dict:
    """The ``row``-th training example of ``cfg`` through the family's collate, as plain data."""
    import dataclasses

    import torch

    from raysweep.errors import UserError
    from raysweep.models import get_family
    from raysweep.models.base import IGNORE
    from raysweep.tasks import training_task
    from raysweep.training.data import train_val_sources

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    source, _ = train_val_sources(cfg)
    if row >= len(source):
        raise UserError(f"--row {row}: the training set has {len(source)} rows; give --row below that")
    example = source.rows([row])[0]
    family = get_family(cfg.model.family)
    built = family.build(dataclasses.replace(cfg.model, device="cpu"), training_task(cfg.data))
    tok = built.tokenizer
    batch = family.collate(built, [example], train=True)
    shapes = {k: list(v.shape) for k, v in batch.items() if isinstance(v, torch.Tensor)}
    report = {"family": cfg.model.family, "checkpoint": cfg.model.checkpoint, "row": row, "question": example["prompt"], "answer": example["answer"]}
    if cfg.model.family == "clip":
        texts = batch["input_ids"]
        report.update(prompt_text=[tok.decode(t, skip_special_tokens=True) for t in texts], input_ids=texts.tolist(),
                      labels=batch["labels"].tolist(), labelled_text=built.answer_names[int(batch["labels"][0])],
                      image_token_count=_clip_image_tokens(built), shapes=shapes)  # fmt: skip
        report["eval"] = {mode: {"inputs": "the same image and answer texts", "shapes": shapes} for mode in ("choice", "generate")}
        return report
    ids, labels = batch["input_ids"][0], batch["labels"][0]
    image_id = tok.convert_tokens_to_ids(getattr(tok, "image_token", None) or "<image>")
    report.update(
        prompt_text=family.prompt_text(built, example["prompt"]),
        input_ids=ids.tolist(),
        labels=labels.tolist(),
        labelled_text=tok.decode(ids[labels != IGNORE]),
        labelled_tokens=tok.convert_ids_to_tokens(ids[labels != IGNORE].tolist()),
        image_token_count=int((ids == image_id).sum()),
        sequence_length=int(batch["attention_mask"][0].sum()),
        shapes=shapes,
        tokenizer=getattr(tok, "name_or_path", "") or type(tok).__name__,
    )
    prompt = family.collate(built, [example], train=False)
    prefix, suffixes = family.candidates(built)
    report["eval"] = {
        "choice": {
            "input_ids": prompt["input_ids"][0].tolist(),
            "shared_prefix": tok.convert_ids_to_tokens(prefix),
            "candidates": {a: tok.convert_ids_to_tokens(s) for a, s in zip(built.answer_names, suffixes)},
            "shapes": {k: list(v.shape) for k, v in prompt.items() if isinstance(v, torch.Tensor)},
        },
        "generate": {
            "input_ids": prompt["input_ids"][0].tolist(),
            "max_new_tokens": cfg.eval.max_new_tokens,
            "do_sample": False,
            "shapes": {k: list(v.shape) for k, v in prompt.items() if isinstance(v, torch.Tensor)},
        },
    }
    return report


def _clip_image_tokens(built) -> int:
    vision = built.model.config.vision_config
    return (vision.image_size // vision.patch_size) ** 2 + 1


def format_example(report: dict) -> str:
    """A readable view: the texts in full, the id lists shortened."""

    def short(ids):
        return f"{ids[:12]} ... {ids[-12:]} ({len(ids)})" if len(ids) > 30 else str(ids)

    lines = [f"{report['family']} ({report['checkpoint']}), training row {report['row']}", f"question: {report['question']}", f"answer:   {report['answer']}"]
    if isinstance(report["prompt_text"], list):
        lines += ["texts:    " + " | ".join(report["prompt_text"]), f"label:    {report['labels']} = {report['labelled_text']}"]
    else:
        lines += [
            "prompt text (chat template):", report["prompt_text"],
            f"input ids:      {short(report['input_ids'])}",
            f"labels:         {short(report['labels'])}",
            f"labelled text:  {report['labelled_text']!r}  tokens {report['labelled_tokens']}",
            f"tokenizer:      {report['tokenizer']}",
            f"sequence length {report['sequence_length']}",
            f"choice: shared prefix {report['eval']['choice']['shared_prefix']}, candidates "
            + ", ".join(f"{a}={t}" for a, t in report["eval"]["choice"]["candidates"].items()),
        ]  # fmt: skip
    lines += [f"image tokens:   {report['image_token_count']}", f"shapes:         {report['shapes']}"]
    return "\n".join(lines)
