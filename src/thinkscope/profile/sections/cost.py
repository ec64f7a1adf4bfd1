"""Cost on the machine that made the card: generation tokens/s (the base run's own timing) and
what the lens adds to a forward pass, per token, on the base run's first traces.

These numbers describe the machine as much as the model (``machine`` in ``profile.json`` says
which); ``profile diff`` compares them only between cards made on the same machine.
"""

from __future__ import annotations

import time

from pydantic import Field

from thinkscope.core.spec import Spec
from thinkscope.profile.section import Context, Section, SectionResult, Stat


class Sizes(Spec):
    """How many of the base run's traces the lens is timed on."""

    lens_traces: int = Field(32, ge=1, description="Traces the passes are timed on.")


SIZES = {"quick": Sizes(), "standard": Sizes(lens_traces=64), "full": Sizes(lens_traces=128)}


def _timed(work) -> float:
    tick = time.perf_counter()
    work()
    return time.perf_counter() - tick


def measure(ctx: Context) -> SectionResult:
    import torch

    from thinkscope.metrics import measure as lens_measure
    from thinkscope.metrics import parse_metrics
    from thinkscope.runstore.folder import Run

    run = Run(ctx.base)
    traces = run.traces().head(ctx.protocol.sizes("cost").lens_traces)
    prompts, completions = list(traces["prompt_ids"]), list(traces["token_ids"])
    lm = ctx.lm()
    tokens = sum(len(p) + len(c) for p, c in zip(prompts, completions, strict=True))

    def forward() -> None:
        with torch.inference_mode():
            for p, c in zip(prompts, completions, strict=True):
                ids = torch.tensor([[*p, *c]], device=lm.device)
                lm.model(input_ids=ids)

    specs = parse_metrics("dtr")
    forward()  # warm-up: the first pass pays for allocation and kernel selection
    forward_s = _timed(forward)

    def lens() -> None:
        for p, c in zip(prompts, completions, strict=True):
            lens_measure(lm, [p], [c], specs)

    lens_s = _timed(lens)
    generated = run.timing.get("tokens_per_s")
    stats = {
        "generation.tokens_per_s": (
            Stat(generated, unit="tokens/s", method="base run wall time")
            if generated
            else Stat.undefined("the base run recorded no generation rate")
        ),
        "forward.ms_per_token": Stat(1e3 * forward_s / tokens, n=tokens, unit="ms"),
        "lens.ms_per_token": Stat(1e3 * lens_s / tokens, n=tokens, unit="ms"),
        "lens.over_forward": Stat(lens_s / forward_s, n=tokens, unit="x", method="wall time ratio"),
    }
    notes = [
        f"timed on {len(traces)} traces ({tokens} tokens) one at a time; the lens time "
        "includes its own forward pass, so lens.over_forward is the whole cost of a DTR pass "
        "relative to a plain forward"
    ]
    return SectionResult(stats=stats, headline=["lens.over_forward"], notes=notes)


SECTION = Section(
    "cost",
    "Cost on this machine",
    measure,
    estimate=lambda protocol: 1.0 * protocol.sizes("cost").lens_traces,
)
