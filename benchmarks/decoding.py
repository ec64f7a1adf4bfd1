"""Cost of one decoding step (:func:`thinkscope.decoding.decode_step`) per knob, as ratios.

    python benchmarks/decoding.py [--rows 64] [--vocab 49152] [--repeat 20] [--device cpu]

Random logits ``[rows, vocab]`` (the bundled model's vocabulary by default, peaked like a
language model's: ``3 * randn``). For each config the best of ``--repeat`` calls is kept and
printed as a ratio to the baseline measured in the same run: transformers' own
Temperature + TopP warpers (what the sampler used before DecodingConfig). It never asserts.
"""

from __future__ import annotations

import argparse
import time

import torch
from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopPLogitsWarper

from thinkscope.decoding import DecodingConfig, decode_step

CONFIGS = {
    "temperature 0.7": dict(temperature=0.7),
    "top-p 0.95": dict(temperature=0.7, top_p=0.95),
    "min-p 0.1": dict(temperature=0.7, min_p=0.1),
    "greedy-threshold 0.3": dict(temperature=0.7, greedy_threshold=0.3),
    "EDT (0.8, 1, 1)": dict(edt_var=[0.8, 1.0, 1.0]),
    "hewitt-epsilon 3e-4": dict(hewitt_epsilon=3e-4),
    "cal-acc": dict(cal_acc=[0.0, 0.5, 0.3]),
    "all knobs": dict(
        temperature=0.7,
        top_k=50,
        top_p=0.95,
        min_p=0.05,
        greedy_threshold=0.3,
        prob_threshold=1e-4,
        dynamic_top_k=[1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
        hewitt_epsilon=3e-4,
        cal_acc=[0.0, 0.5, 0.01],
    ),
}


def best(fn, repeat: int, device: str) -> float:
    times = []
    for _ in range(repeat):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--vocab", type=int, default=49152)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    logits = 3 * torch.randn(args.rows, args.vocab, device=args.device)
    ids = torch.zeros(args.rows, 1, dtype=torch.long, device=args.device)
    warpers = LogitsProcessorList([TemperatureLogitsWarper(0.7), TopPLogitsWarper(0.95)])
    base = best(lambda: warpers(ids, logits.clone()), args.repeat, args.device)
    print(
        f"[{args.rows}, {args.vocab}] on {args.device}; baseline HF temperature + top-p: "
        f"{base * 1e3:.1f} ms"
    )
    print(f"{'config':24s} {'ms':>8s} {'ratio':>7s}")
    for name, knobs in CONFIGS.items():
        config = DecodingConfig(**knobs)
        seconds = best(lambda c=config: decode_step(logits, c), args.repeat, args.device)
        print(f"{name:24s} {seconds * 1e3:8.1f} {seconds / base:7.2f}")


if __name__ == "__main__":
    main()
