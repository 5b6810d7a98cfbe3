"""Exploration: relative-position variants on CPU, held-out AND training accuracy (README, Tasks).

    python benchmarks/bench_relative_variants.py --steps 400 --eval-every 100 --tag lmhead [key=value ...]
    python benchmarks/bench_relative_variants.py --steps 1000 --eval-every 200 --tag cos train.lr_schedule=cosine

configs/train-tiny-relative.yaml (or ``--config``) plus ``key=value`` overrides, trained as bench_relative_learns.py
does (one process, one torch thread, batches of ``--bs`` drawn with a seeded generator); every
``--eval-every`` steps one JSON line: the mean loss of the last 50 steps, ``choice`` accuracy on 200
training scenes and on ``--n`` held-out test scenes, the held-out mirror rate, and held-out accuracy
by what tells the two objects apart, by their distance along the asked axis, and where a guess from the
reference's cell alone is right or wrong (relative_by_pair.py). With ``train.lr_schedule=cosine`` the
learning rate decays to 0 at ``--steps`` (the same schedule ``raysweep train`` runs over its epochs).

Two experiment-only levers on the binding of names to objects (README, Tasks): ``--attr-steps N
--attr-mix F`` trains the first N steps on attribute questions about the same scenes ("What shape is
the red object?", :func:`attribute_rows`) and keeps a share F of every later batch so (``attr_loss``:
their answer-token loss, no step taken), and ``--abs-steps M`` adds M steps of absolute-position
questions with one distractor after them (binding, then reading out a position); ``--text-first`` puts the question before the image in the
user message (image tokens can then read the question), by patching ``ChatVLMFamily.prompt_text``.
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from raysweep.config import load_config
from raysweep.evaluate import evaluate_rows
from raysweep.training.data import SyntheticRows, limit_rows, train_val_sources
from raysweep.training.engine import WorkerTrainer
from relative_by_pair import accuracy_by_distance, accuracy_by_pair, accuracy_by_reference_rule, named_objects  # benchmarks/, the script's own folder

REPO = Path(__file__).resolve().parents[1]
p = argparse.ArgumentParser()
p.add_argument("overrides", nargs="*")
p.add_argument("--steps", type=int, default=400)
p.add_argument("--eval-every", type=int, default=100)
p.add_argument("--n", type=int, default=300)
p.add_argument("--bs", type=int, default=32)
p.add_argument("--tag", default="x")
p.add_argument("--config", default=str(REPO / "configs/train-tiny-relative.yaml"), help="the training config (overrides apply to it)")
p.add_argument("--seed", type=int, default=0, help="seed of the batch order (the LoRA init follows model.seed)")
p.add_argument("--easy-steps", type=int, default=0, help="first steps on the easy set (data.reference_within)")
p.add_argument("--easy-within", type=int, default=0, help="data.reference_within of the easy set")
p.add_argument("--attr-steps", type=int, default=0, help="first steps on attribute questions about the same scenes (see attribute_rows)")
p.add_argument("--attr-mix", type=float, default=0.0, help="after --attr-steps, this share of every batch stays attribute questions")
p.add_argument("--abs-steps", type=int, default=0, help="after --attr-steps, this many steps of absolute-position questions with 1 distractor")
p.add_argument("--text-first", action="store_true", help="the question before the image in the user message (experiment-only patch of ChatVLMFamily.prompt_text)")
p.add_argument("--test-override", action="append", default=[], help="key=value override of the held-out set's config (repeatable)")
a = p.parse_args()


def attribute_rows(rows: list[dict], rng) -> list[dict]:
    """The same scenes asked about one object's other attribute: "What shape is the red object?" when
    the two colours differ, else "What colour is the star?" (the object asked about drawn at random).
    Answering needs the binding the relative task needs (find the object a word names, read it) and
    says nothing about where anything is."""
    out = []
    for r in rows:
        objs, i = named_objects(r["prompt"]), int(rng.integers(2))
        (c, s), (c2, _) = objs[i], objs[1 - i]
        if c != c2:
            q, ans = f"What shape is the {c} object?", s
        else:
            q, ans = f"What colour is the {s}?", c
        out.append({**r, "prompt": "Answer using as few words as possible. " + q, "answer": ans})
    return out

torch.set_num_threads(1)
if a.text_first:
    from raysweep.models.base import ChatVLMFamily

    def _text_first(self, built, prompt):
        messages = [{"role": "user", "content": [{"type": "text", "text": prompt}, {"type": "image"}]}]
        return built.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    ChatVLMFamily.prompt_text = _text_first
cfg = load_config(a.config, a.overrides)
tr = WorkerTrainer(cfg, total_steps=a.steps)
train, _ = train_val_sources(cfg)


def whole_pool(*extra: str):
    """The training pool of the config with ``extra`` overrides, all of it (``data.fraction=1.0``)."""
    return train_val_sources(load_config(a.config, a.overrides + [*extra, "data.fraction=1.0"]))[0]


easy = whole_pool(f"data.reference_within={a.easy_within}") if a.easy_steps else train
if a.easy_steps:
    print("easy scenes", len(easy), flush=True)
absolute = whole_pool("data.task=absolute_position", "data.distractors=1") if a.abs_steps else None


def phase(step: int):
    """(source, attribute questions in the batch) at ``step``: the easy set, attribute questions, absolute
    questions, then the relative pool with ``--attr-mix`` of attribute questions."""
    if step <= a.attr_steps:
        return (easy if step <= a.easy_steps else train), a.bs
    if step <= a.attr_steps + a.abs_steps:
        return absolute, 0
    return (easy if step <= a.easy_steps else train), int(round(a.attr_mix * a.bs))


test_set = load_config(str(REPO / cfg.train.eval_sets[0].config), a.test_override).data
rows = [] if not a.n else (lambda ho: ho.rows(range(len(ho))))(limit_rows(SyntheticRows(test_set), a.n, 0))
trs = train.rows(list(range(0, len(train), max(1, len(train)//200)))[:200])
print("prompt", repr(tr.family.prompt_text(tr.built, trs[0]["prompt"])), flush=True)
print("train scenes", len(train), "trainable", tr.built.trainable_params, tr.built.total_params, flush=True)
rng = np.random.default_rng(a.seed); t0 = time.time(); losses = []
for step in range(1, a.steps + 1):
    src, n_attr = phase(step)
    batch = src.rows(rng.choice(len(src), a.bs, replace=False))
    if n_attr:
        batch = attribute_rows(batch[:n_attr], rng) + batch[n_attr:]
    losses.append(tr.train_step(tr.prepare(batch)))
    if step % a.eval_every == 0:
        R = evaluate_rows(tr.built, rows, "choice", 64) if a.n else {"acc": None}; te = R["acc"]; mr = R.get("mirror_rate")
        ta = evaluate_rows(tr.built, trs, "choice", 64)["acc"]
        kinds = {k: acc for k, (acc, _) in accuracy_by_pair(rows, R.get("predictions", [])).items()}
        dist = {k: acc for k, (acc, _) in accuracy_by_distance(rows, R.get("predictions", [])).items()}
        rule = {k: acc for k, (acc, _) in accuracy_by_reference_rule(rows, R.get("predictions", [])).items()}
        attr = None
        if a.attr_steps or a.attr_mix:  # answer-token loss on 64 attribute questions (no training step)
            with torch.no_grad():
                tr.engine.eval()
                attr = round(float(np.mean([tr._loss(tr.prepare(attribute_rows(trs[i:i + 32], np.random.default_rng(i)))).item() for i in (0, 32)])), 3)
        print(json.dumps({"tag": a.tag, "step": step, "attr_loss": attr, "loss": round(float(np.mean(losses[-50:])), 3), "train_acc": round(ta, 3), "test_acc": te and round(te, 3), "mirror": mr, "test_acc_by_pair": kinds, "test_acc_by_distance": dist, "test_acc_by_reference_rule": rule, "s": round(time.time() - t0)}), flush=True)
