"""Lens engine benchmark on the bundled model: time and peak memory of four ways to get JSD.

    python benchmarks/lens.py [--tokens 512] [--memory-tokens 4096] [--g 0.5]

(a) plain fp32 per-layer loop: full [T, V] log-softmax and JSD tensors per layer (the
    replication's approach); (b) the engine, full profile; (c) the DTR-only fast path;
(d) the matmul floor: only the fp32 ``[T, d] @ [d, V]`` products of all L layers, in the
engine's row blocks. All four start from the same block outputs (one forward pass, timed
apart). Peak extra memory = peak RSS during the call (``VmHWM`` after resetting it through
``/proc/self/clear_refs``) minus RSS before it, after ``malloc_trim``; the ``--memory-tokens``
row runs (b) and (c) in a fresh subprocess. Each of (b)-(d) runs ``--repeat`` times round-robin
and keeps its best time. Never asserts on time: it prints ratios.

Measured 2026-11-25 on this 2-core Xeon (AVX-512), load average 0.66 at the start (1.9 by the
end of the T=4096 run), torch 2.13, 2 threads, ``python benchmarks/lens.py``::

    forward pass (prompt 44 + 512 tokens): 0.81 s, 68 MB
    method                                   time s  ms/token  x floor  peak extra MB
    (a) plain per-layer fp32 loop             13.74     26.84     4.48            697
    (b) engine, full profile (native kernel)   3.68      7.20     1.20            232
    (c) DTR fast path, g=0.5 (native kernel)   2.56      4.99     0.83            198
    (d) matmul floor, 512-row blocks           3.11      6.07     1.01             96
    (d) matmul floor, 1024-row blocks          3.07      5.99     1.00             96
    (b) with eager torch kernels               4.72      9.22     1.54            222
    (c) with eager torch kernels               3.41      6.66     1.11            199
    (a)/(b) = 3.73x; (c) multiplied 64% of the (token, layer) rows; max |JSD (b) - (a)| = 6.9e-06;
    (c) depths == (b) depths: True
    T=4096: (b) 28.6 s, peak extra 232 MB; (c) 23.0 s, peak extra 419 MB

Runs at load 2-4 (other jobs on the machine) gave (b) 1.2-1.35x and (c) 0.8-0.9x of a floor
that was itself 2x slower; the issue's "(d) about 12 s" was presumably measured under such load.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from thinkscope.generate.sampler import BatchSampler, SamplingParams
from thinkscope.lens import lens_profile, native, sampled_states, settle
from thinkscope.metrics import settling_depth
from thinkscope.models import load_model
from thinkscope.models.bundled import cache_dir

PROMPT = "Write a long, detailed story about a lighthouse keeper who learns mathematics."


def rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def measured(fn):
    """Run ``fn``; return (result, seconds, peak extra RSS in MB)."""
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = rss_mb("VmRSS")
    start = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - start
    return out, seconds, rss_mb("VmHWM") - before


def completion(lm, tokens: int) -> tuple[list[int], list[int]]:
    """A sampled ``tokens``-token completion of the bundled model (EOS suppressed), cached."""
    from transformers import SuppressTokensLogitsProcessor

    path = cache_dir() / "bench" / f"lens-completion-{tokens}.json"
    if path.is_file():
        data = json.loads(path.read_text())
        return data["prompt"], data["completion"]
    chat = [{"role": "user", "content": PROMPT}]
    prompt = list(
        lm.tokenizer.apply_chat_template(
            chat, add_generation_prompt=True, tokenize=True, return_dict=True
        )["input_ids"]
    )
    sampler = BatchSampler(
        lm,
        [prompt],
        [0],
        SamplingParams(temperature=0.7, max_new_tokens=tokens),
        processors=[SuppressTokensLogitsProcessor(sorted(lm.eos_token_ids))],
    )
    sampler.run()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"prompt": prompt, "completion": sampler.completions[0].token_ids}))
    return prompt, sampler.completions[0].token_ids


@torch.no_grad()
def plain_loop(lm, states) -> torch.Tensor:
    """(a): per layer, full ``[T, V]`` tensors: log-softmax, probabilities, mixture, JSD."""
    lp_final = torch.log_softmax(lm.head(states[-1]), -1)
    p_final = lp_final.exp()
    out = []
    for layer in range(lm.n_layers):
        lq = torch.log_softmax(lm.head(states[layer]), -1)
        q = lq.exp()
        log_m = torch.log(0.5 * (p_final + q))
        out.append(0.5 * (p_final * (lp_final - log_m)).sum(-1) + 0.5 * (q * (lq - log_m)).sum(-1))
    return torch.stack(out, 1)


def eager(fn):
    """Run ``fn`` with the native kernel switched off (the engine's torch-only path)."""
    saved, native.kernel = native.kernel, lambda: None
    try:
        return fn()
    finally:
        native.kernel = saved


@torch.no_grad()
def matmul_floor(lm, states, rows: int) -> None:
    """(d): the fp32 unembedding products alone, ``rows`` positions per call with torch's
    threads, into one reused output buffer."""
    weight = lm.anatomy.unembed.weight
    buf = torch.empty(rows, weight.shape[0])
    for layer in range(lm.n_layers):
        for t0 in range(0, states[layer].shape[0], rows):
            h = states[layer][t0 : t0 + rows]
            torch.mm(h, weight.t(), out=buf[: len(h)])


def memory_run(lm, prompt, tokens: list[int], n: int, g: float) -> dict:
    """(b) and (c) at ``n`` tokens (the completion repeated), in this process."""
    completion_ids = (tokens * math.ceil(n / len(tokens)))[:n]
    states, targets = sampled_states(lm, [prompt], [completion_ids])
    _, full_s, full_mb = measured(lambda: lens_profile(lm, states, targets=targets))
    _, fast_s, fast_mb = measured(lambda: settle(lm, states, [g], targets=targets))
    return {
        "full_s": full_s,
        "full_mb": full_mb,
        "fast_s": fast_s,
        "fast_mb": fast_mb,
        "states_mb": sum(s.numel() for s in states) * 4 / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--memory-tokens", type=int, default=4096, help="0 skips the memory run")
    parser.add_argument("--g", type=float, default=0.5, help="fast-path threshold (nats)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the best time is kept")
    parser.add_argument("--memory-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    lm = load_model("smollm2-135m")
    prompt, tokens = completion(lm, args.tokens)
    if args.memory_only:
        print(json.dumps(memory_run(lm, prompt, tokens, args.memory_tokens, args.g)))
        return
    load = os.getloadavg()[0]
    print(
        f"load average {load:.2f}{' (busy machine: timings unreliable)' if load > 1.5 else ''}; "
        f"torch threads {torch.get_num_threads()}; T={len(tokens)} L={lm.n_layers} "
        f"V={lm.vocab_size}"
    )
    (states, targets), fwd_s, fwd_mb = measured(lambda: sampled_states(lm, [prompt], [tokens]))
    ref, a_s, a_mb = measured(lambda: plain_loop(lm, states))
    kernel = "native kernel" if native.kernel() else "no compiler: eager"
    methods = {
        f"(b) engine, full profile ({kernel})": lambda: lens_profile(lm, states, targets=targets),
        f"(c) DTR fast path, g={args.g} ({kernel})": lambda: settle(lm, states, [args.g]),
        "(d) matmul floor, 512-row blocks": lambda: matmul_floor(lm, states, 512),
        "(d) matmul floor, 1024-row blocks": lambda: matmul_floor(lm, states, 1024),
        "(b) with eager torch kernels": lambda: eager(
            lambda: lens_profile(lm, states, targets=targets)
        ),
        "(c) with eager torch kernels": lambda: eager(lambda: settle(lm, states, [args.g])),
    }
    best: dict[str, tuple] = {}
    for _ in range(args.repeat):  # round-robin, best of: a passing job hits all methods alike
        for name, fn in methods.items():
            out, sec, mb = measured(fn)
            if name not in best or sec < best[name][1]:
                best[name] = (out, sec, max(mb, best.get(name, (0, 0, 0))[2]))
    prof, fast = best[next(iter(methods))][0], best[list(methods)[1]][0]
    d_s = min(sec for name, (_, sec, _) in best.items() if name.startswith("(d)"))
    same = torch.equal(fast.depths[:, 0], settling_depth(prof.jsd, args.g))
    err = float((prof.jsd - ref).abs().max())
    T = len(tokens)
    print(f"forward pass (prompt {len(prompt)} + {T} tokens): {fwd_s:.2f} s, {fwd_mb:.0f} MB")
    print(f"{'method':44s} {'time s':>8s} {'ms/token':>9s} {'x floor':>8s} {'peak extra MB':>14s}")
    rows = [("(a) plain per-layer fp32 loop", a_s, a_mb)]
    rows += [(name, sec, mb) for name, (_, sec, mb) in best.items()]
    for name, sec, mb in rows:
        print(f"{name:44s} {sec:8.2f} {1e3 * sec / T:9.2f} {sec / d_s:8.2f} {mb:14.0f}")
    a_b = a_s / best[next(iter(methods))][1]
    print(
        f"(a)/(b) = {a_b:.2f}x; (c) multiplied {fast.layer_rows / (T * lm.n_layers):.0%} of "
        f"the (token, layer) rows; max |JSD (b) - (a)| = {err:.1e}; "
        f"(c) depths == (b) depths: {same}"
    )
    if args.memory_tokens:
        cmd = [
            sys.executable,
            __file__,
            "--memory-only",
            "--tokens",
            str(args.tokens),
            "--memory-tokens",
            str(args.memory_tokens),
            "--g",
            str(args.g),
        ]
        res = json.loads(
            subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1]
        )
        print(
            f"T={args.memory_tokens} (fresh process; block outputs of "
            f"{res['states_mb']:.0f} MB not counted): "
            f"(b) {res['full_s']:.1f} s, peak extra {res['full_mb']:.0f} MB; "
            f"(c) {res['fast_s']:.1f} s, peak extra {res['fast_mb']:.0f} MB"
        )


if __name__ == "__main__":
    main()
