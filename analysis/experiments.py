"""Tables of the paper's open questions (issue 16): the collapse decomposition, synthetic-real mixing,
CLIP's heads. Each appears in ``raysweep report`` when the trials vary its keys.

Every row is one trial: the keys that define its arm, then per eval set the fine-tuned accuracy in
choice and generate mode and, for generate, the parse-failure rate, the empty-answer rate and the
mean generated length (tokens) - the signs of the collapse the paper reports (empty or looping
answers).
"""

from __future__ import annotations

from analysis.runs import Trial
from analysis.tables import Table, acc_cell

# (table slug, title, the keys of its arms, what makes a trial part of it)
COLLAPSE_KEYS = ("data.source", "data.size", "data.area_distribution", "data.label_noise", "data.label_noise_to",
                 "data.answer_format_noise", "train.steps_per_epoch")  # fmt: skip
MIXING_KEYS = ("data.source", "data.mix.source", "data.mix.ratio", "data.curriculum", "data.size")
HEAD_KEYS = ("model.head", "lora.enabled")
DEFAULTS = {"data.size": "0", "data.area_distribution": "", "data.label_noise": "0.0", "data.answer_format_noise": "0.0",
            "data.mix.ratio": "0.0", "data.curriculum": "[]", "model.head": "text"}  # fmt: skip


def _set(trial: Trial, key: str) -> bool:
    value = trial.params.get(key)
    return value is not None and value != DEFAULTS.get(key)


def _varies(trials: list[Trial], keys: tuple[str, ...]) -> list[str]:
    return [k for k in keys if len({t.params.get(k) for t in trials}) > 1]


def budget(trial: Trial) -> str:
    """data-matched (same epochs) or compute-matched (the same fixed steps per epoch for every arm)."""
    steps = trial.params.get("train.steps_per_epoch", "0")
    return "data-matched" if steps in ("0", "", None) else f"compute-matched ({steps} steps/epoch)"


def _metric_columns(trials: list[Trial], sets: list[str]) -> tuple[list[str], list]:
    """Headers and per-trial cell makers for the accuracy and generation columns that were logged."""
    has_generate = any(f"test/{s}/generate/acc" in t.metrics or t.params.get("eval.mode") == "generate" for t in trials for s in sets)
    columns = []
    for s in sets:
        columns.append((f"{s} acc", lambda t, s=s: acc_cell(t, f"test/{s}/")))
        if has_generate:
            prefix = lambda t, s=s: f"test/{s}/" if t.params.get("eval.mode") == "generate" else f"test/{s}/generate/"  # noqa: E731
            columns += [
                (f"{s} generate acc", lambda t, p=prefix: acc_cell(t, p(t))),
                (f"{s} parse fail", lambda t, p=prefix: t.metric(p(t) + "parse_fail_rate")),
                (f"{s} empty", lambda t, p=prefix: t.metric(p(t) + "empty_answer_rate")),
                (f"{s} tokens", lambda t, p=prefix: _tokens(t.metric(p(t) + "mean_new_tokens"))),
            ]
    return [h for h, _ in columns], [f for _, f in columns]


def _tokens(value: float | None) -> str | None:
    return None if value is None else f"{value:.1f}"


def _table(slug: str, title: str, trials: list[Trial], sets: list[str], keys: list[str], note: str, extra=()) -> Table:
    headers, cells = _metric_columns(trials, sets)
    rows = []
    for t in sorted(trials, key=lambda t: [str(t.params.get(k)) for k in keys]):
        rows.append([t.name, *[t.params.get(k) for k in keys], *[f(t) for f in extra], *[c(t) for c in cells]])
    extra_headers = ["budget"] if extra else []
    return Table(slug, title, ["run", *keys, *extra_headers, *headers], rows, note)


def experiment_tables(trials: list[Trial], sets: list[str]) -> list[Table]:
    """The tables of the open-question experiments the trials belong to (none for other sweeps)."""
    tables = []
    corrupted = any(_set(t, k) for t in trials for k in ("data.area_distribution", "data.label_noise", "data.answer_format_noise"))
    if corrupted or "data.size" in _varies(trials, COLLAPSE_KEYS):
        keys = _varies(trials, COLLAPSE_KEYS[:-1]) or ["data.source"]
        tables.append(_table(
            "collapse", "Collapse decomposition (issue 16)", trials, sets, keys,
            "One factor of the training rows per arm (data.size, data.area_distribution, data.label_noise, "
            "data.answer_format_noise). Budget: data-matched = the same epochs over each arm's rows; compute-matched = "
            "the same optimizer steps. Fine-tuned accuracy (choice, and generate with its parse-failure rate, share of "
            "empty answers and mean generated tokens): a collapse shows as generate accuracy near zero with parse "
            "failures, empty answers or the whole token budget used.",
            extra=(budget,),
        ))  # fmt: skip
    if any(_set(t, "data.mix.ratio") or _set(t, "data.curriculum") for t in trials):
        tables.append(_table(
            "mixing", "Synthetic-real mixing (issue 16)", trials, sets, _varies(trials, MIXING_KEYS) or ["data.mix.ratio"],
            "data.mix.ratio of each trial's training rows come from data.mix.source (its training part), the rest from "
            "data.source; data.curriculum runs phases of epochs at their own ratio.",
        ))  # fmt: skip
    if any(_set(t, "model.head") for t in trials):
        tables.append(_table(
            "clip_heads", "CLIP: text matching against trained heads (issue 16)", trials, sets, list(HEAD_KEYS),
            "model.head=text matches the image against 'a photo of a {answer}'; linear/mlp is a classification head on "
            "CLIP's image features, trained alone (lora.enabled false: towers frozen) or with LoRA on the vision tower.",
        ))  # fmt: skip
    return tables
