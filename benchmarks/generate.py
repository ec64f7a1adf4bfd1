"""Generation throughput on the bundled model: thinkscope's sampler against HF ``generate``.

    python benchmarks/generate.py [--batches 1,16,64] [--max-new-tokens 32] [--repeat 1]
                                  [--baseline b00a910] [--device cuda --vllm]

For each batch size B, B distinct GSM8K prompts (chain-of-thought, chat template) are sampled
at temperature 0.7 with a stop string, ``max_new_tokens`` tokens at most, once by
:class:`~thinkscope.generation.sampler.BatchSampler` and once by ``model.generate`` (left
padding, ``do_sample=True``, the same stop string through ``stop_strings``). Tokens/s counts
the tokens each row really generated (up to its EOS or stop), over the wall time of the call;
the best of ``--repeat`` runs is kept. ``--baseline COMMIT`` also runs the sampler module as it
was at that commit (the "before" of the sampler changes: prefill states copied per sample,
full-length prefill logits, a host transfer of the tokens per step, every row decoded for stop
strings). All run in this process, one after the other, so the ratios are fair under the
machine's load at that moment. ``--vllm`` (CUDA) also times the vLLM backend on the same
requests, engine start-up excluded. It never asserts on time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import types

import torch

from thinkscope.generation import sampler as current
from thinkscope.models import load_model
from thinkscope.tasks.loaders import load_problems
from thinkscope.tasks.prompts import render_prompt

STOP = ("Question:",)


def prompts(lm, batch: int) -> list[list[int]]:
    problems = load_problems("gsm8k", batch, seed=0)
    rendered = [render_prompt(lm.tokenizer, p, "cot", "chat") for p in problems]
    return [lm.tokenizer(p.text, add_special_tokens=not p.chat)["input_ids"] for p in rendered]


def params(max_new: int, module=None):
    return (module or current).SamplingParams(temperature=0.7, max_new_tokens=max_new, stop=STOP)


def ours(lm, ids: list[list[int]], max_new: int, module=None) -> int:
    sampling = module or current
    sampler = sampling.BatchSampler(lm, ids, list(range(len(ids))), params(max_new, module))
    sampler.run()
    return sampler.generated_tokens


def sampler_at(commit: str):
    """``thinkscope.generation.sampler`` as it was at ``commit``, imported under another name."""
    source = subprocess.run(
        ["git", "show", f"{commit}:src/thinkscope/generate/sampler.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    module = types.ModuleType(f"sampler_{commit}")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, f"sampler@{commit}", "exec"), module.__dict__)
    return module


def hf(lm, ids: list[list[int]], max_new: int) -> int:
    pad, width = lm.tokenizer.pad_token_id, max(len(p) for p in ids)
    batch = torch.tensor([[pad] * (width - len(p)) + p for p in ids], device=lm.device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in ids], device=lm.device)
    out = lm.model.generate(
        input_ids=batch,
        attention_mask=mask,
        do_sample=True,
        temperature=0.7,
        top_p=1.0,
        top_k=0,
        max_new_tokens=max_new,
        stop_strings=list(STOP),
        tokenizer=lm.tokenizer,
        pad_token_id=pad,
        eos_token_id=sorted(lm.eos_token_ids),
    )[:, width:]
    done = torch.isin(out, torch.tensor(sorted(lm.eos_token_ids)))
    total = 0
    for row, ended in zip(out.tolist(), done.tolist(), strict=True):  # up to the first EOS
        total += ended.index(True) + 1 if True in ended else len(row)
    return total


def best_rate(fn, lm, ids, max_new: int, repeat: int) -> float:
    rates = []
    for _ in range(repeat):
        start = time.perf_counter()
        tokens = fn(lm, ids, max_new)
        rates.append(tokens / (time.perf_counter() - start))
    return max(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="1,16,64")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--baseline", help="Also time the sampler module of this git commit.")
    parser.add_argument("--vllm", action="store_true", help="Also time the vLLM backend.")
    args = parser.parse_args()
    torch.manual_seed(0)
    lm = load_model("smollm2-135m", device=args.device)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    print(
        f"commit {commit}, {args.device}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, load {os.getloadavg()[0]:.2f}, "
        f"max_new_tokens {args.max_new_tokens}"
    )
    start = time.perf_counter()
    current._stop_candidates(lm.tokenizer, STOP)  # once per tokenizer and stop strings: cached
    print(f"stop-string vocabulary scan (once per process): {time.perf_counter() - start:.2f} s")
    old = sampler_at(args.baseline) if args.baseline else None
    engine = None
    if args.vllm:
        from thinkscope.generation.backends.vllm import VLLMBackend

        engine = VLLMBackend("smollm2-135m", gpu_memory_utilization=0.5)
    header = f"{'batch':>5}  {'thinkscope':>10}  {'HF generate':>11}  {'ratio':>6}"
    print(header + (f"  {'baseline':>8}  {'now/baseline':>12}" if old else "") + "  (tok/s)")
    for batch in (int(b) for b in args.batches.split(",")):
        ids = prompts(lm, batch)
        mine = best_rate(ours, lm, ids, args.max_new_tokens, args.repeat)
        theirs = best_rate(hf, lm, ids, args.max_new_tokens, args.repeat)
        line = f"{batch:>5}  {mine:>10.1f}  {theirs:>11.1f}  {mine / theirs:>6.2f}"
        if old:
            before = best_rate(
                lambda *a: ours(*a, module=old), lm, ids, args.max_new_tokens, args.repeat
            )
            line += f"  {before:>8.1f}  {mine / before:>12.2f}"
        if engine:
            fast = best_rate(
                lambda _lm, ids, new: (
                    engine.complete(ids, list(range(len(ids))), params(new)).generated_tokens
                ),
                lm,
                ids,
                args.max_new_tokens,
                args.repeat,
            )
            line += f"  vllm {fast:>8.1f}  vllm/HF {fast / theirs:>6.2f}"
        print(line, flush=True)
    print(f"load at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
