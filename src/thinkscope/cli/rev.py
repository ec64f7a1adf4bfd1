"""``thinkscope experiment rev``: Typer over :func:`thinkscope.experiments.rev.grid.run_grid`
(a grid of models x temperatures, generated, scored and evaluated) and
:func:`thinkscope.experiments.rev.evaluate.run_rev` (runs that exist)."""

from __future__ import annotations

from pathlib import Path

import typer

from thinkscope.cli.loading import PANEL
from thinkscope.cli.options import OptionSpec, field_option, option_block, spec_options
from thinkscope.cli.tables import Format, format_option, messages, print_tables
from thinkscope.experiments.rev.spec import PRESETS, RevGridConfig
from thinkscope.models.spec import BUNDLED, LoadingSpec

#: The evaluation's options: they apply to RUN folders too.
EVALUATION = ("resamples", "folds", "seed", "ablation_questions", "control")
#: The grid's options, from :class:`RevGridConfig` (``--models`` and ``--temperatures`` take
#: comma lists).
GRID: dict[str, OptionSpec] = {
    "models": (str, BUNDLED, RevGridConfig.model_fields["models"].description),
    "temperatures": (str, "0.2", "Temperatures of the grid, a comma list."),
    **{
        name: field_option(RevGridConfig, name)
        for name in RevGridConfig.model_fields
        if name not in (*LoadingSpec.model_fields, "models", "temperatures", "temperature")
    },
}


def _given(ctx: typer.Context, values: dict) -> dict:
    """The options among ``values`` set on the command line (not left at their defaults)."""
    return {
        name: value
        for name, value in values.items()
        if (source := ctx.get_parameter_source(name)) is not None and source.name == "COMMANDLINE"
    }


@format_option
@spec_options(LoadingSpec, "loading", PANEL)
@option_block(GRID, "values", "Grid")
def rev_command(
    ctx: typer.Context,
    runs: list[Path] = typer.Argument(
        None, help="Run folders to evaluate (scored or not) instead of generating a grid."
    ),
    out: Path = typer.Option(None, help="Result folder (default: a new iteration of --root)."),
    root: Path = typer.Option(
        Path("experiments"),
        help="Folder of numbered iterations: without --out the result goes to "
        "ROOT/iteration_NNN, the next free number (an unfinished grid of the same config "
        "resumes in its own).",
    ),
    preset: str = typer.Option(None, help=f"The seed's settings: {' or '.join(PRESETS)}."),
    config: Path = typer.Option(None, help="YAML file of the grid's options (the same keys)."),
    loading: LoadingSpec | None = None,
    values: dict | None = None,
    fmt: Format = Format.table,
) -> None:
    """REV (seed 001) beside DTR over a grid of models x temperatures (generated, scored and
    evaluated, resumably) or over RUN folders: AUROCs, logistic models, DeLong, partial r,
    Cohen's d against the control set, the scaling, temperature and ablation figures and the
    seed's success criteria. Settings: the defaults (64 new tokens, T = 0.2), then --preset,
    then --config, then the options given."""
    from thinkscope.core.errors import UserError
    from thinkscope.core.invocation import command
    from thinkscope.experiments.rev.grid import next_iteration, run_grid
    from thinkscope.experiments.rev.spec import grid_config

    values = values or {}
    given = {**_given(ctx, values), **_given(ctx, (loading or LoadingSpec()).model_dump())}
    if out is not None and _given(ctx, {"root": root}):
        raise UserError("--out names the result folder and --root a folder of iterations: give one")
    if runs:
        grid_only = sorted(set(given) - set(EVALUATION) - set(LoadingSpec.model_fields))
        grid_only += [f for f, v in (("preset", preset), ("config", config)) if v is not None]
        if grid_only:
            flag = "--" + grid_only[0].replace("_", "-")
            raise UserError(f"{flag} sets up a grid; RUN folders are evaluated as they are")
        from thinkscope.experiments.rev.evaluate import run_rev

        checked = RevGridConfig.parse(**{k: values[k] for k in EVALUATION})
        target = out or next_iteration(root, None)
        evaluation = {k: getattr(checked, k) for k in EVALUATION}
        result = run_rev(runs, target, loading=loading, **evaluation)
    else:
        settings = grid_config(preset, config, given)
        target = out or next_iteration(root, settings)
        result = run_grid(settings, target, command())
    tables = {"runs": result.runs, "models": result.models, "criteria": result.criteria}
    console = messages(fmt)
    print_tables(tables, fmt, console=console)
    console.print(f"results: {target}; figures: {result.figures[0].parent}")
