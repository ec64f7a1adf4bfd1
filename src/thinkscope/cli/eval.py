"""``thinkscope eval``: register with ``app.command("eval", context_settings=EVAL_CONTEXT)``."""

from __future__ import annotations

import typer

EVAL_CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True}


def eval_command(ctx: typer.Context) -> None:
    """lm-evaluation-harness with the `thinkscope` model and the bundled tasks; every lm_eval
    option passes through, e.g. `thinkscope eval --model_args
    model=smollm2-135m,greedy_threshold=0.3 --tasks gsm8k_cot_thinkscope --limit 20`. With
    `backend=vllm` in --model_args, lm-eval's vllm model runs the same model, taking
    tensor_parallel_size, gpu_memory_utilization and max_model_len there."""
    from thinkscope.lmeval.harness import run_harness

    run_harness(ctx.args)
