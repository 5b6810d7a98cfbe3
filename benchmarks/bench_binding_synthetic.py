"""Diagnostic: can the tiny language model bind names to objects when the image tokens are ideal? (README, Tasks)

    python benchmarks/bench_binding_synthetic.py --task relative --steps 2000 --tag REL
    python benchmarks/bench_binding_synthetic.py --task absolute --steps 2000 --tag ABS
    python benchmarks/bench_binding_synthetic.py --task relative --lora-rank 32 --steps 2000 --tag REL_LORA
    python benchmarks/bench_binding_synthetic.py --task relative --abs-first 1250 --abs-mix 0.25 --steps 3000 --tag CUR
    python benchmarks/bench_binding_synthetic.py --task absolute --extra-colours 12 --steps 2000 --tag ABS_X12
    python benchmarks/bench_binding_synthetic.py --task relative --aux-ground 1 --steps 2000 --tag REL_GROUND

No images, no vision tower, no Ray: each of the 81 cells of the 9x9 grid is one "image token", the
tiny tower's fixed sine-cosine code of its cell (:func:`raysweep.models._tiny.sincos_positions`, times
``--position-norm``) plus either a background vector or, where an object stands, the sum of a
random vector of its colour and one of its shape - colour and shape disentangled, as no random
tower delivers them - through a fixed random tanh mixing (``--mix``; 0 = none). After them come the
question's tokens, one per word ("where is the red star relative to the blue circle ? answer:"),
and a linear head reads the last token. The language model is configs/models/tiny-llava-next.yaml's
Llama (hidden 128, 4 layers, 4 heads, init range 0.1), trained in full (``--lora-rank 0``, the
default) or with LoRA on every linear layer of the language model; a trained 2-layer MLP stands in for the projector.

``--task relative``: the relation of two objects (relative_position's rule, MIN_GAP), the ordered cell
pair drawn uniformly among those the rule allows, so without telling the objects apart the direction
is a coin toss: 50% is what finding both objects and the axis is worth. ``--task absolute``: the
3x3 area of the named object, with the other object as a distractor. Combinations come from
configs/data/relative_train_wide.yaml (training) and relative_test.yaml (held-out: pairs never
trained on), the reference drawn among the other combinations as ``data.reference_shares=any`` does;
``--extra-colours N`` adds N colours on every shape to training.

``--aux-ground W`` adds W times an auxiliary grounding loss to the answer's (what
``train.grounding_weight`` does in raysweep): a linear head reads the last layer's hidden state at
the shape word of each name ("star" of "red star", "circle" of "blue circle") and predicts the cell
of that object (81 classes); ``--aux-at last`` puts two such heads on the last token instead, and
with ``--text-first`` (the question before the image tokens, "answer:" after them) every image token
predicts whether it holds the target, the reference or neither.

Every 250 steps one JSON line (step, loss, relative and absolute accuracy on 400 training-pool and
400 held-out questions each) is printed and appended to benchmarks/results/binding_synthetic.jsonl.
About 0.25 s a step at batch 32 on one core.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
GRID = 9
WORDS = ["<pad>", "where", "is", "the", "relative", "to", "?", "answer:"]


def main(argv: list[str] | None = None) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    from raysweep.config import load_config
    from raysweep.models._tiny import sincos_positions
    from raysweep.tasks.relative_position import MIN_GAP, RELATIONS, relation

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", choices=["relative", "absolute"], default="relative")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3, help="peak; linear warm-up over 50 steps, cosine to 0 at --steps")
    p.add_argument("--lora-rank", type=int, default=0, help="0 = train the language model in full")
    p.add_argument("--abs-first", type=int, default=0, help="--task relative: first steps on absolute questions")
    p.add_argument("--abs-mix", type=float, default=0.0, help="--task relative: share of absolute questions in every batch (after --abs-first)")
    p.add_argument("--extra-colours", type=int, default=0, help="colours added to training on every shape")
    p.add_argument("--mix", type=float, default=1.0, help="strength of the fixed random tanh mixing of a token's content")
    p.add_argument("--position-norm", type=float, default=3.0, help="scale of the sine-cosine codes (model.tiny_vision_position_norm)")
    p.add_argument("--text-first", action="store_true", help="question words before the image tokens, 'answer:' after them")
    p.add_argument("--aux-ground", type=float, default=0.0, help="weight of an auxiliary grounding loss (see the docstring)")
    p.add_argument("--aux-at", choices=["name", "last"], default="name",
                   help="image first: the grounding loss at each name's shape word (name) or two cell heads on the last token (last)")
    p.add_argument("--init-range", type=float, default=0.1, help="the Llama's initializer_range")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tag", default="x")
    a = p.parse_args(argv)

    torch.manual_seed(a.seed)
    torch.set_num_threads(1)
    hidden = 128
    train_combos = load_config(REPO / "configs/data/relative_train_wide.yaml").data.target_combos()
    test_combos = load_config(REPO / "configs/data/relative_test.yaml").data.target_combos()
    extra = [f"extra{i}" for i in range(a.extra_colours)]
    train_combos += [(shape, colour) for colour in extra for shape in sorted({s for s, _ in train_combos})]
    shapes = sorted({s for s, _ in train_combos + test_combos})
    colours = sorted({c for _, c in train_combos + test_combos})
    vocab = WORDS + colours + shapes
    token = {w: i for i, w in enumerate(vocab)}
    gen = torch.Generator().manual_seed(1000 + a.seed)
    colour_vec = torch.randn(len(colours), hidden, generator=gen) / hidden**0.5
    shape_vec = torch.randn(len(shapes), hidden, generator=gen) / hidden**0.5
    background = torch.randn(hidden, generator=gen) / hidden**0.5
    mixing = torch.randn(hidden, hidden, generator=gen) / hidden**0.5
    positions = sincos_positions(GRID, hidden)[1:] * a.position_norm  # (81, hidden), row-major cells
    pairs = torch.tensor([(t, r, label) for t in range(GRID * GRID) for r in range(GRID * GRID)
                          if (label := relation(divmod(t, GRID), divmod(r, GRID), MIN_GAP)) is not None])
    n_rel = len(RELATIONS)
    ctok = torch.tensor([token[c] for c in colours])  # colour index -> word id
    stok = torch.tensor([token[s] for s in shapes])

    def questions(combos, n: int, task: str):
        """(image tokens (n, 81, hidden), word ids (n, L), labels (n,): relations 0-3, areas 4-12)."""
        cc = torch.tensor([colours.index(c) for _, c in combos])
        ss = torch.tensor([shapes.index(s) for s, _ in combos])
        pr = pairs[torch.randint(len(pairs), (n,))]
        ia = torch.randint(len(combos), (n,))
        ib = (ia + torch.randint(1, len(combos), (n,))) % len(combos)  # any other combination
        feats = background.expand(n, GRID * GRID, hidden).clone()
        rows = torch.arange(n)
        feats[rows, pr[:, 0]] = colour_vec[cc[ia]] + shape_vec[ss[ia]]
        feats[rows, pr[:, 1]] = colour_vec[cc[ib]] + shape_vec[ss[ib]]
        feats = feats + a.mix * torch.tanh(feats @ mixing * 3) / 3 + positions
        word = lambda w: torch.full((n,), token[w])  # noqa: E731
        target = [word("the"), ctok[cc[ia]], stok[ss[ia]]]
        if task == "absolute":
            words = torch.stack([word("where"), word("is"), *target, word("?"), word("answer:")], 1)
            row, col = pr[:, 0] // GRID, pr[:, 0] % GRID
            return feats, words, n_rel + (row // 3) * 3 + col // 3, pr[:, :2]
        anchor = [word("the"), ctok[cc[ib]], stok[ss[ib]]]
        words = torch.stack([word("where"), word("is"), *target, word("relative"), word("to"), *anchor, word("?"), word("answer:")], 1)
        return feats, words, pr[:, 2], pr[:, :2]

    config = LlamaConfig(vocab_size=len(vocab), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256, initializer_range=a.init_range)
    lm = LlamaForCausalLM(config)
    if a.lora_rank:
        from peft import LoraConfig, get_peft_model

        lm = get_peft_model(lm, LoraConfig(r=a.lora_rank, lora_alpha=2 * a.lora_rank, target_modules=[
            "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
    projector = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, hidden))
    head = nn.Linear(hidden, n_rel + 9)
    ground = nn.Linear(hidden, GRID * GRID if not a.text_first else 3)
    # --aux-at last: the reference's cell (built only then, so the other runs draw the same weights and batches as recorded)
    ground_ref = nn.Linear(hidden, GRID * GRID) if a.aux_at == "last" else nn.Identity()
    params = [q for m in (lm, projector, head, ground, ground_ref) for q in m.parameters() if q.requires_grad]
    opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 50) * 0.5 * (1 + math.cos(math.pi * min(s, a.steps) / a.steps)))
    embed = lm.get_input_embeddings()

    def forward(feats, words):
        """(answer logits (n, 13), last hidden states (n, T, hidden))."""
        if a.text_first:
            seq = torch.cat([embed(words[:, :-1]), projector(feats), embed(words[:, -1:])], 1)
        else:
            seq = torch.cat([projector(feats), embed(words)], 1)
        h = lm(inputs_embeds=seq, output_hidden_states=True).hidden_states[-1]
        return head(h[:, -1]), h

    def logits(feats, words):
        return forward(feats, words)[0]

    def ground_loss(h, words, cells):
        """Auxiliary grounding: image first, each name's shape word predicts its object's cell (81 classes);
        text first, each image token predicts background / target / reference (3 classes)."""
        n = words.shape[0]
        if not a.text_first and a.aux_at == "last":
            loss = nn.functional.cross_entropy(ground(h[:, -1]), cells[:, 0])
            is_rel = (words == token["relative"]).any(1)
            if is_rel.any():
                loss = loss + nn.functional.cross_entropy(ground_ref(h[is_rel, -1]), cells[is_rel, 1])
            return loss
        is_rel = (words == token["relative"]).any(1)
        if not a.text_first:
            # each name's shape word ("star" of "red star"): the target's comes first, the reference's last
            shape_at = torch.isin(words, stok).int()
            rows = torch.arange(n)
            loss = nn.functional.cross_entropy(ground(h[rows, GRID * GRID + shape_at.argmax(1)]), cells[:, 0])
            if is_rel.any():
                r = rows[is_rel]
                last = words.shape[1] - 1 - shape_at.flip(1).argmax(1)
                loss = loss + nn.functional.cross_entropy(ground(h[r, GRID * GRID + last[r]]), cells[r, 1])
            return loss
        L = words.shape[1] - 1
        img = h[:, L:L + GRID * GRID]
        target = torch.zeros(n, GRID * GRID, dtype=torch.long)
        rows = torch.arange(n)
        target[rows, cells[:, 0]] = 1
        target[rows[is_rel], cells[is_rel, 1]] = 2
        return nn.functional.cross_entropy(ground(img).reshape(-1, 3), target.reshape(-1))

    def batch(step: int):
        share = 1.0 if a.task == "absolute" or step <= a.abs_first else a.abs_mix
        k = round(a.batch_size * share)
        parts = [questions(train_combos, m, t) for m, t in ((k, "absolute"), (a.batch_size - k, "relative")) if m]
        # the shorter absolute questions are padded on the left with <pad> (no attention mask: the last token stays the one read)
        width = max(w.shape[1] for _, w, _, _ in parts)
        words = torch.cat([torch.cat([torch.zeros(w.shape[0], width - w.shape[1], dtype=torch.long), w], 1) for _, w, _, _ in parts])
        return (torch.cat([f for f, _, _, _ in parts]), words, torch.cat([y for _, _, y, _ in parts]),
                torch.cat([c for _, _, _, c in parts]))

    out_path = REPO / "benchmarks/results/binding_synthetic.jsonl"
    t0, losses = time.time(), []
    for step in range(1, a.steps + 1):
        feats, words, labels, cells = batch(step)
        lo, h = forward(feats, words)
        answer_loss = nn.functional.cross_entropy(lo, labels)
        loss = answer_loss + a.aux_ground * ground_loss(h, words, cells) if a.aux_ground else answer_loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        losses.append(answer_loss.item())
        if step % 250 == 0 or step == a.steps:
            record = {"tag": a.tag, "step": step, "loss": round(sum(losses[-50:]) / len(losses[-50:]), 4)}
            with torch.no_grad():
                for task in ("relative", "absolute"):
                    for split, combos in (("train", train_combos), ("heldout", test_combos)):
                        feats, words, labels, _ = questions(combos, 400, task)
                        lo = logits(feats, words)
                        pred = lo[:, :n_rel].argmax(1) if task == "relative" else n_rel + lo[:, n_rel:].argmax(1)
                        record[f"{task}_{split}"] = round((pred == labels).float().mean().item(), 3)
            record.update(s=round(time.time() - t0), command="python benchmarks/bench_binding_synthetic.py " + " ".join(sys.argv[1:] if argv is None else argv))
            print(json.dumps(record), flush=True)
            with out_path.open("a") as f:
                f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
