"""``thinkscope experiment rev``: Typer over :func:`thinkscope.experiments.rev.evaluate.run_rev`."""

from __future__ import annotations

from pathlib import Path

import typer

from thinkscope.cli.loading import PANEL
from thinkscope.cli.options import spec_options
from thinkscope.cli.tables import Format, format_option, messages, print_tables
from thinkscope.models.spec import LoadingSpec


@format_option
@spec_options(LoadingSpec, "loading", PANEL)
def rev_command(
    runs: list[Path] = typer.Argument(..., help="Run folders (scored with rev,dtr,length or not)."),
    out: Path = typer.Option(..., help="Result folder."),
    resamples: int = typer.Option(10_000, help="Bootstrap resamples for the AUROC CIs."),
    folds: int = typer.Option(5, help="Cross-validation folds of the logistic models."),
    seed: int = typer.Option(0),
    ablation_questions: int = typer.Option(16, help="Problems of the head-ablation curve."),
    loading: LoadingSpec | None = None,
    fmt: Format = Format.table,
) -> None:
    """REV (seed 001) beside DTR: AUROCs, logistic models, DeLong, partial r, Cohen's d,
    figures and the success criteria. Each run's own model is loaded with the model options."""
    from thinkscope.core.errors import UserError
    from thinkscope.experiments.rev.evaluate import run_rev

    if resamples < 0 or folds < 2 or ablation_questions < 1:
        raise UserError("--resamples must be >= 0, --folds >= 2 and --ablation-questions >= 1")
    result = run_rev(
        runs,
        out,
        resamples=resamples,
        folds=folds,
        seed=seed,
        ablation_questions=ablation_questions,
        loading=loading,
    )
    tables = {"runs": result.runs, "models": result.models, "criteria": result.criteria}
    console = messages(fmt)
    print_tables(tables, fmt, console=console)
    console.print(f"results: {out}; figures: {out / 'figures'}")
