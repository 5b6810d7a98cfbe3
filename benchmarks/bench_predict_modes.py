"""Benchmark: `choice` against `generate` on the same tiny model and data (speed ratio, agreement).

    python benchmarks/bench_predict_modes.py --config configs/models/tiny-llava-next.yaml --steps 200 --n 144

Trains the tiny model's LoRA adapter for ``--steps`` (so that generate produces real answers), then
predicts ``--n`` held-out scenes in both modes, untrained and trained, at each of ``--batch-sizes``,
one torch thread. Writes benchmarks/results/predict_modes.json.

Both modes pay the same collation and the same forward pass of the prompt ("prefill"); `generate`
adds one decode step per new token. The ratio is therefore at most
(collate + prefill + new_tokens x decode_step) / (collate + prefill): it is largest where a decode
step costs about as much as the prefill (batch 1, where per-call overhead dominates both) and falls
as the batch grows (the prefill is compute that grows with the batch, a decode step stays cheap).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from _tiny_training import held_out_and_train, lora_trainer, train_seconds, train_steps

from raysweep.evaluate import evaluate_rows
from raysweep.metrics import agreement
from raysweep.models import get_family
from raysweep.models.base import to_device


def compare(built, rows, batch_size, max_new_tokens) -> dict:
    evaluate_rows(built, rows[:batch_size], "generate", batch_size, max_new_tokens)  # warm-up
    res = {m: evaluate_rows(built, rows, m, batch_size, max_new_tokens) for m in ("choice", "generate")}
    preds = {m: [p["pred"] for p in r["predictions"]] for m, r in res.items()}
    return {
        "batch_size": batch_size,
        "choice_rows_per_s": res["choice"]["rows_per_s"],
        "generate_rows_per_s": res["generate"]["rows_per_s"],
        "speed_ratio": res["choice"]["rows_per_s"] / res["generate"]["rows_per_s"],
        "agreement": agreement(preds["choice"], preds["generate"]),
        "choice_acc": res["choice"]["acc"],
        "generate_acc": res["generate"]["acc"],
        "generate_parse_fail_rate": res["generate"]["parse_fail_rate"],
        "mean_generated_chars": sum(len(p["text"]) for p in res["generate"]["predictions"]) / len(rows),
        "mean_new_tokens": res["generate"]["mean_new_tokens"],
    }


def breakdown(built, rows, batch_size, max_new_tokens) -> dict:
    """Milliseconds per batch: collation, the prompt's forward pass, one decode step (best of 3).

    The decode step is (generate ``max_new_tokens`` - generate 1 token) / (max_new_tokens - 1),
    with ``min_new_tokens`` forcing every row to run all the steps.
    """
    family = get_family(built.family)
    batches = [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]
    encoded = [to_device(family.collate(built, b, train=False), built) for b in batches]
    pad = built.tokenizer.pad_token_id

    def best(fn) -> float:
        times = []
        for _ in range(3):
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
        return min(times) * 1000 / len(batches)

    def gen(n):
        return [built.model.generate(**e, do_sample=False, max_new_tokens=n, min_new_tokens=n, pad_token_id=pad) for e in encoded]

    with torch.no_grad():
        collate = best(lambda: [family.collate(built, b, train=False) for b in batches])
        prefill = best(lambda: [built.model(**e, logits_to_keep=1) for e in encoded])
        decode = (best(lambda: gen(max_new_tokens)) - best(lambda: gen(1))) / (max_new_tokens - 1)
    bound = lambda k: (collate + prefill + (k - 1) * decode) / (collate + prefill)  # noqa: E731
    return {"batch_size": batch_size, "collate_ms": collate, "prefill_ms": prefill, "decode_step_ms": decode,
            "ratio_bound_15_tokens": bound(max_new_tokens), "ratio_bound_3_tokens": bound(3)}


def compare_all(built, rows, batch_sizes, max_new_tokens) -> list[dict]:
    out = []
    for bs in batch_sizes:
        out.append(compare(built, rows, bs, max_new_tokens))
        r = out[-1]
        print(f"  batch {bs:>3}: choice {r['choice_rows_per_s']:7.1f} rows/s  generate {r['generate_rows_per_s']:7.1f} rows/s"
              f"  ratio {r['speed_ratio']:.2f}x  agreement {r['agreement']:.0%}  new tokens {r['mean_new_tokens']:.1f}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/models/tiny-llava-next.yaml")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--n", type=int, default=144)
    parser.add_argument("--batch-sizes", default="1,4,16", help="comma-separated prediction batch sizes")
    parser.add_argument("--out", default="benchmarks/results/predict_modes.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    trainer = lora_trainer(args.config, [], lr=1e-3, warmup=100)
    cfg, built = trainer.cfg, trainer.built
    held_out, train = held_out_and_train(args.n)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    report = {"config": args.config, "n": args.n, "batch_sizes": batch_sizes, "max_new_tokens": cfg.eval.max_new_tokens,
              "trainable_params": built.trainable_params, "total_params": built.total_params}
    print("where the time goes (untrained, ms per batch)", flush=True)
    report["breakdown"] = []
    for bs in batch_sizes:
        b = breakdown(built, held_out, bs, cfg.eval.max_new_tokens)
        report["breakdown"].append(b)
        print(f"  batch {bs:>3}: collate {b['collate_ms']:.1f}  prefill {b['prefill_ms']:.1f}  decode step {b['decode_step_ms']:.2f}"
              f"  -> ratio at most {b['ratio_bound_15_tokens']:.1f}x (15 tokens), {b['ratio_bound_3_tokens']:.1f}x (3 tokens)", flush=True)
    print("untrained", flush=True)
    report["untrained"] = compare_all(built, held_out, batch_sizes, cfg.eval.max_new_tokens)
    epochs = train_steps(trainer, train, args.steps, batch_size=32, seed=0)
    report["train_seconds"], report["steps"] = train_seconds(epochs, 32), args.steps
    print(f"trained {args.steps} steps in {report['train_seconds']:.0f} s", flush=True)
    report["trained"] = compare_all(built, held_out, batch_sizes, cfg.eval.max_new_tokens)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
