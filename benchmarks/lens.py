"""Lens engine benchmark on the bundled model: time and peak memory of four ways to get JSD.

    python benchmarks/lens.py [--tokens 512] [--memory-tokens 4096] [--g 0.5]

(a) plain fp32 per-layer loop: full [T, V] log-softmax and JSD tensors per layer (the
    replication's approach); (b) the engine, full profile; (c) the DTR-only fast path;
(d) the matmul floor: only the fp32 ``[T, d] @ [d, V]`` products of all L layers, in the
engine's row blocks. All four start from the same block outputs (one forward pass, timed
apart). Peak extra memory = peak RSS during the call (``VmHWM`` after resetting it through
``/proc/self/clear_refs``) minus RSS before it, after ``malloc_trim``; the ``--memory-tokens``
row runs (b) and (c) in a fresh subprocess. Never asserts on time: it prints ratios.
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
def matmul_floor(lm, states, rows: int = 512) -> None:
    """(d): the fp32 unembedding products alone, ``rows`` positions per call (the fastest
    block size measured here) with torch's threads, one reused output buffer."""
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
    prof, b_s, b_mb = measured(lambda: lens_profile(lm, states, targets=targets))
    fast, c_s, c_mb = measured(lambda: settle(lm, states, [args.g], targets=targets))
    _, d_s, d_mb = measured(lambda: matmul_floor(lm, states))
    _, be_s, be_mb = measured(lambda: eager(lambda: lens_profile(lm, states, targets=targets)))
    _, ce_s, ce_mb = measured(lambda: eager(lambda: settle(lm, states, [args.g], targets=targets)))
    same = torch.equal(fast.depths[:, 0], settling_depth(prof.jsd, args.g))
    err = float((prof.jsd - ref).abs().max())
    T = len(tokens)
    print(f"forward pass (prompt {len(prompt)} + {T} tokens): {fwd_s:.2f} s, {fwd_mb:.0f} MB")
    print(f"{'method':44s} {'time s':>8s} {'ms/token':>9s} {'x floor':>8s} {'peak extra MB':>14s}")
    kernel = "native kernel" if native.kernel() else "no compiler: eager"
    rows = (
        ("(a) plain per-layer fp32 loop", a_s, a_mb),
        (f"(b) engine, full profile ({kernel})", b_s, b_mb),
        (f"(c) DTR fast path, g={args.g} ({kernel})", c_s, c_mb),
        ("(d) matmul floor", d_s, d_mb),
        ("(b) with eager torch kernels", be_s, be_mb),
        ("(c) with eager torch kernels", ce_s, ce_mb),
    )
    for name, sec, mb in rows:
        print(f"{name:44s} {sec:8.2f} {1e3 * sec / T:9.2f} {sec / d_s:8.2f} {mb:14.0f}")
    print(
        f"(a)/(b) = {a_s / b_s:.2f}x; (c) multiplied {fast.layer_rows / (T * lm.n_layers):.0%} of "
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
