"""LoRA on the bundled model's truncated traces: with the default policy (truncated traces
excluded) the tuned model does not collapse to near-empty completions.

The recipe, sized for a 2-core CPU: 64 R1 traces cut at 32 new tokens (about a third to a half
end there), a dataset of every kept trace (``sft_all.jsonl``), 8 LoRA steps at a high learning
rate, the merged model greedy on 16 other problems with room for 64 tokens. Beside it the
recipe of the bug, truncated traces kept *with* an end-of-sequence token (rows without the
``truncated`` mark), is measured and printed, not asserted: it shows whether the cause is seen
at this size.
"""

from __future__ import annotations

import json
import time

import pytest

pytest.importorskip("trl")
pytest.importorskip("peft")

from thinkscope.generation.pipeline import GenerateConfig, generate_run  # noqa: E402
from thinkscope.sft import DatasetFilters, TrainConfig, build_dataset, merge_adapter, train  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.integration]

TASK = "gym:basic_arithmetic?min_terms=2&max_terms=2&min_digits=1&max_digits=1"
TRACES = dict(questions=16, n=4, seed=0, max_new_tokens=32, temperature=0.7)
HELD_OUT = dict(questions=16, n=1, seed=1, max_new_tokens=64, temperature=0.0)
NEAR_EMPTY = 0.25  # near-empty: a mean completion a quarter of the base model's or shorter


def _generate(model: str, out, settings: dict):
    config = GenerateConfig(model=model, task=TASK, prompt_style="r1", template="plain", **settings)
    return generate_run(config, out, show_progress=False).traces()


def _tuned_length(dataset, out) -> float:
    config = TrainConfig(
        model="smollm2-135m",
        dataset=str(dataset),
        max_steps=8,
        batch_size=4,
        learning_rate=1e-3,
        max_length=256,
        save_steps=100,
    )
    result = train(config, out, progress=False)
    merged = merge_adapter(result.path)
    return float(_generate(str(merged), out / "eval", HELD_OUT)["n_tokens"].mean())


def test_default_policy_does_not_collapse_completions(tmp_path):
    started = time.perf_counter()
    traces = _generate("smollm2-135m", tmp_path / "traces", TRACES)
    cut = int((traces["finish_reason"] == "length").sum())
    assert cut >= len(traces) // 4, "the recipe needs many truncated traces"
    default = build_dataset(tmp_path / "traces", tmp_path / "default", show_progress=False)
    kept = build_dataset(
        tmp_path / "traces",
        tmp_path / "keep",
        DatasetFilters(truncated="keep"),
        show_progress=False,
    )
    rows = [json.loads(line) for line in kept.sft_all.read_text().splitlines()]
    buggy = tmp_path / "buggy.jsonl"  # the bug: truncated rows unmarked, so an EOS follows them
    buggy.write_text(
        "".join(json.dumps({k: r[k] for k in ("prompt", "response")}) + "\n" for r in rows)
    )

    base = float(_generate("smollm2-135m", tmp_path / "base-eval", HELD_OUT)["n_tokens"].mean())
    tuned = _tuned_length(default.sft_all, tmp_path / "lora-default")
    bug = _tuned_length(buggy, tmp_path / "lora-buggy")
    print(
        f"\ntraces {len(traces)} ({cut} truncated); rows: default {default.n_all}, buggy "
        f"{len(rows)}; mean completion tokens (max {HELD_OUT['max_new_tokens']}): base "
        f"{base:.2f}, default policy {tuned:.2f}, truncated with EOS {bug:.2f}; "
        f"wall {time.perf_counter() - started:.0f} s"
    )
    assert tuned > NEAR_EMPTY * base
