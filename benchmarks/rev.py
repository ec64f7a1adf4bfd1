"""What the REV group costs per trace, against one plain forward pass measured in the same run.

    python benchmarks/rev.py [--model smollm2-135m] [--prompt 100] [--completion 64] [--repeats 3]
                             [--threads N]

Rows (median wall time over ``--repeats`` of one synthetic trace, fp32 on CPU):

- (a) one plain forward pass over prompt + completion[:-1] (``lm.model``, no hooks);
- (b) the scoring pass with the in-pass metrics ``ae,fl,ape`` (hooks, eager attention);
- (c) ``sib``: three paraphrase passes over the prompt plus the original;
- (d) ``apl,cud``: the ablation passes (one clean + L MLP + C head ablations, each ablation at
  block l computing blocks l..L-1 only);
- (d0) the same with every ablation pass through all L blocks, timed once (the former
  implementation: :func:`~thinkscope.metrics.rev.ablation.skip_blocks` made a no-op);
- (e) the whole ``rev`` group (b + c + d, one ``measure`` call).

It prints each time, its ratio to (a), and the issue's budget check: the group without the
ablation passes over (a), which should be at most 3, both as (b) + (c) and as (e) - (d). The
per-model calibration is computed (or read from the cache) before timing and reported
separately. Never asserts on time.

``--threads`` sets torch's intra-op threads. On a machine shared by more busy processes than
cores, 1 thread can be several times faster than 2: OpenMP's threads wait for each other at
every operator, and small elementwise operators suffer most.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time

import torch

from thinkscope.metrics import measure, parse_metrics
from thinkscope.metrics.rev import ablation as rev_ablation
from thinkscope.metrics.rev.control import controls
from thinkscope.models import load_model


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _table(rows: dict[str, float], base: float) -> None:
    print("\n| what | time s | x (a) |\n|---|---|---|")
    for name, value in rows.items():
        print(f"| {name} | {value:.3f} | {value / base:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--prompt", type=int, default=100)
    parser.add_argument("--completion", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument(
        "--skip-ablation", action="store_true", help="only (a)-(c): no calibration, no (d), (e)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    lm = load_model(args.model, device="cpu")
    text = "If Tom has 3 apples and buys 2 more, then how many apples does he have? " * 40
    ids = lm.tokenizer(text)["input_ids"]
    prompt, completion = ids[: args.prompt], ids[args.prompt : args.prompt + args.completion]
    seq = torch.tensor([prompt + completion[:-1]])

    @torch.no_grad()
    def plain():
        lm.model(input_ids=seq, use_cache=False)

    def run(metrics: str):
        return lambda: measure(lm, [prompt], [completion], parse_metrics(metrics))

    rows = {
        "(a) one plain forward pass": timed(plain, args.repeats),
        "(b) in-pass ae,fl,ape": timed(run("ae,fl,ape"), args.repeats),
        "(c) sib": timed(run("sib"), args.repeats),
    }
    base = rows["(a) one plain forward pass"]
    print(
        f"{args.model}: L = {lm.n_layers}, T = {len(prompt)} + {len(completion)} tokens, "
        f"threads = {torch.get_num_threads()}, load {os.getloadavg()[0]:.2f}"
    )
    if args.skip_ablation:
        _table(rows, base)
        print(
            f"\n(b) + (c) = {(rows['(b) in-pass ae,fl,ape'] + rows['(c) sib']) / base:.2f} x "
            "one forward pass (budget: 3)"
        )
        return
    start = time.perf_counter()
    ctl = controls(lm)
    print(f"calibration (cached after the first run): {time.perf_counter() - start:.2f} s")
    rows["(d) apl,cud ablation passes"] = timed(run("apl,cud"), args.repeats)
    skip = rev_ablation.skip_blocks
    rev_ablation.skip_blocks = lambda _lm, _outputs: contextlib.nullcontext()
    try:
        rows["(d0) the same, every pass through all L blocks"] = timed(run("apl,cud"), 1)
    finally:
        rev_ablation.skip_blocks = skip
    rows["(e) the whole rev group"] = timed(run("rev"), args.repeats)
    passes = 1 + lm.n_layers + len(ctl.circuit)
    _table(rows, base)
    ablation = rows["(d) apl,cud ablation passes"]
    ablation_before = rows["(d0) the same, every pass through all L blocks"]
    budget = (rows["(e) the whole rev group"] - ablation) / base
    direct = (rows["(b) in-pass ae,fl,ape"] + rows["(c) sib"]) / base
    print(
        f"\n(b) + (c) = {direct:.2f} x and (e) - (d) = {budget:.2f} x one forward pass "
        "(budget: 3; (e) - (d) is a difference of two noisy times); "
        f"(d) = {ablation / base:.1f} x for {passes} ablation passes "
        f"({ablation / base / passes:.2f} x per pass, {ablation_before / ablation:.2f} x faster "
        f"than (d0)); (e) = "
        f"{rows['(e) the whole rev group'] / base:.1f} x; load {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
