"""The loss curve of a training run (matplotlib, Agg, no pyplot state)."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from thinkscope.core.atomic import atomic_write
from thinkscope.core.figures import CORRECT, STYLE, WRONG


def save_loss_curve(history: list[dict], path: Path, summary: dict) -> None:
    """Training loss per optimizer step from ``log_history``, and the held-out loss if any."""
    import matplotlib

    steps = [e["step"] for e in history if "loss" in e]
    losses = [e["loss"] for e in history if "loss" in e]
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(6, 3.6), layout="constrained")
        ax = fig.subplots()
        ax.plot(
            steps,
            losses,
            color=CORRECT,
            marker="." if len(steps) < 40 else None,
            label="training loss (completion tokens)",
        )
        if "eval_loss_before" in summary:
            last = steps[-1] if steps else 1
            ax.plot(
                [0, last],
                [summary["eval_loss_before"], summary["eval_loss_after"]],
                color=WRONG,
                marker="o",
                linestyle="--",
                label="held-out loss",
            )
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("cross-entropy (nats/token)")
        ax.set_title("LoRA SFT loss")
        ax.legend()
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
