"""Memory of ``thinkscope.interp.collect`` over 10,000 prompts: streaming vs hoarding.

    python benchmarks/collect.py [--n 1000,10000] [--hidden 256] [--layers 8] [--batch 64]
                                 [--modes stream,rows,hoard]

Each measurement runs in its own child process on a randomly initialised llama (``--hidden``
wide, ``--layers`` blocks, the bundled model's tokenizer when it is cached, else a byte-level
one) over N distinct short prompts, and reports the peak resident memory beyond what the
loaded model already held (``ru_maxrss`` minus the RSS after loading):

- ``stream``: ``collect(..., positions="mean", covariance=True)``: float64 running mean and
  co-moment, O(layers * d^2) whatever N is;
- ``rows``: ``collect(..., rows=FILE.npy)``: the rows go to a memory map on disk;
- ``hoard``: the naive baseline, every block output ``[B, T, d]`` kept until the end and
  averaged there (what ``collect`` avoids).

The ratio N_max / N_min of each mode's extra memory shows whether it grows with N. All modes
run one after the other under the same machine load; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _model(hidden: int, layers: int):
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from thinkscope.models import LM
    from thinkscope.models.bundled import BUNDLED_NAME
    from thinkscope.models.lm import _resolve

    tokenizer = AutoTokenizer.from_pretrained(_resolve(BUNDLED_NAME), local_files_only=True)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 64),
        num_key_value_heads=1,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    return LM.wrap(LlamaForCausalLM(config).eval(), tokenizer, name="random-llama")


def _prompts(n: int) -> list[str]:
    from thinkscope.experiments.interp.presets import contrast_prompts

    reasoning, control, _ = contrast_prompts()
    base = reasoning + control
    return [f"({i}) {base[i % len(base)]}" for i in range(n)]


def child(mode: str, n: int, hidden: int, layers: int, batch: int) -> dict:
    import numpy as np
    import torch

    from thinkscope.interp.activations import collect

    torch.set_num_threads(2)
    lm = _model(hidden, layers)
    texts = _prompts(n)
    before = _rss_mb()
    start = time.perf_counter()
    if mode == "stream":
        collect(lm, texts, positions="mean", covariance=True, batch_size=batch)
    elif mode == "rows":
        with tempfile.TemporaryDirectory() as tmp:
            collect(lm, texts, positions="mean", rows=Path(tmp) / "rows.npy", batch_size=batch)
    else:
        kept = []
        with torch.no_grad():
            for begin in range(0, n, batch):
                enc = lm.tokenizer(texts[begin : begin + batch], return_tensors="pt", padding=True)
                with lm.record_blocks() as states:  # logits of the last position only
                    lm.model(**enc, use_cache=False, logits_to_keep=1)
                kept.append(([s.clone() for s in states], enc["attention_mask"]))
        sums = [np.zeros(hidden) for _ in range(layers)]
        for states, mask in kept:
            w = mask.unsqueeze(-1).float()
            for k, s in enumerate(states):
                sums[k] += ((s * w).sum(1) / w.sum(1)).double().sum(0).numpy()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"mode": mode, "n": n, "extra_mb": round(peak - before, 1), "s": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", default="1000,10000")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--modes", default="stream,rows,hoard")
    parser.add_argument("--child", default=None)
    args = parser.parse_args()
    if args.child:
        mode, n = args.child.split(":")
        print(json.dumps(child(mode, int(n), args.hidden, args.layers, args.batch)))
        return
    sizes = [int(x) for x in args.n.split(",")]
    results = {}
    print(f"random llama d={args.hidden}, {args.layers} layers, batch {args.batch}")
    print(f"{'mode':8s} {'N':>7s} {'extra MB':>9s} {'s':>7s}")
    modes = args.modes.split(",")
    for mode in modes:
        for n in sizes:
            cmd = [
                sys.executable,
                __file__,
                "--child",
                f"{mode}:{n}",
                "--hidden",
                str(args.hidden),
                "--layers",
                str(args.layers),
                "--batch",
                str(args.batch),
            ]
            out = json.loads(
                subprocess.run(cmd, capture_output=True, text=True, check=True)
                .stdout.strip()
                .splitlines()[-1]
            )
            results[mode, n] = out
            print(f"{mode:8s} {n:7d} {out['extra_mb']:9.1f} {out['s']:7.1f}")
    lo, hi = min(sizes), max(sizes)
    for mode in modes:
        growth = results[mode, hi]["extra_mb"] / max(results[mode, lo]["extra_mb"], 1e-9)
        print(f"{mode}: extra memory at N={hi} / at N={lo} = {growth:.2f}")
    if {"hoard", "stream"} <= set(modes):
        ratio = results["hoard", hi]["extra_mb"] / max(results["stream", hi]["extra_mb"], 1e-9)
        print(f"hoard / stream extra memory at N={hi}: {ratio:.1f}x")


if __name__ == "__main__":
    main()
