"""``thinkscope experiment ...``: the one-command experiments (DTR sweeps and diagnostics,
REV, SFT filtering). Each DTR experiment offers only the options it uses."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer

from thinkscope.cli.compare import sft_filtering_command
from thinkscope.cli.loading import model_options
from thinkscope.cli.options import OptionSpec, field_option, option_block
from thinkscope.cli.rev import rev_command
from thinkscope.cli.tables import Format, format_option, messages, print_table
from thinkscope.core.errors import UserError
from thinkscope.generation.spec import SamplingSpec
from thinkscope.metrics.dtr_spec import G_DEFAULT, RHO_DEFAULT, DTRSpec
from thinkscope.models.spec import ModelSpec
from thinkscope.tasks.spec import TaskSpec

experiment_app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="One-command experiments around DTR."
)

# Defaults are ExperimentConfig's (experiments/common.py); they are repeated here so that
# `thinkscope experiment X --help` imports no torch; tests/test_experiments.py compares them.
GENERATION: dict[str, OptionSpec] = {  # the options of the runs an experiment generates
    "task": field_option(TaskSpec, "task", "demo-arith"),
    "questions": field_option(TaskSpec, "questions", 12),
    "n": field_option(SamplingSpec, "n"),
    "max_new_tokens": field_option(SamplingSpec, "max_new_tokens", 64),
    "temperature": field_option(SamplingSpec, "temperature"),
    "seed": field_option(SamplingSpec, "seed"),
    "prompt_style": field_option(TaskSpec, "prompt_style", "fewshot"),
    "plot_out": (Path, None, "Also save the main figure here."),
}
G: OptionSpec = (float, G_DEFAULT, "Settling threshold on the JSD (nats).")
RHO: OptionSpec = (float, RHO_DEFAULT, DTRSpec.model_fields["rho"].description)
RUN: OptionSpec = (Path, None, "Reuse this finished (scored) run instead of generating one.")
G_GRID: OptionSpec = (
    str,
    "0.1,0.2,0.3,0.4,0.5,0.6",
    "Thresholds g to sweep (nats), a comma list.",
)
T_GRID: OptionSpec = (
    str,
    "0,0.4,0.8",
    "Temperatures to compare, a comma list (T = 0 is greedy: one sample per problem).",
)
TRACES: OptionSpec = (
    str,
    None,
    "Traces to plot, PROBLEM_ID:SAMPLE,... (default: the first four with tokens, in run "
    "order); the plotted ones are listed in plotted_traces.csv.",
)
TASKS: OptionSpec = (
    str,
    "gsm8k,demo-arith",
    "The two tasks to compare, MATH,EASY (same model and settings); the difference is the "
    "first minus the second.",
)


def _without(*names: str) -> dict[str, OptionSpec]:
    return {k: v for k, v in GENERATION.items() if k not in names}


#: Per experiment: its help and its options (beyond --out and the model options).
EXPERIMENT_OPTIONS: dict[str, tuple[str, dict[str, OptionSpec]]] = {
    "threshold-sweep": (
        "Settling depths and DTR at each threshold g of --g.",
        {**GENERATION, "g": G_GRID, "rho": RHO, "run": RUN},
    ),
    "temperature-sweep": (
        "DTR and accuracy at each sampling temperature of --temperatures.",
        {**_without("temperature"), "temperatures": T_GRID, "g": G, "rho": RHO},
    ),
    "cot-vs-direct": (
        "Prompting control: chain of thought against direct answers.",
        {**_without("prompt_style"), "g": G, "rho": RHO},
    ),
    "token-types": (
        "Settling depth by token type: digits, operators, words, punctuation.",
        {**GENERATION, "g": G, "rho": RHO, "run": RUN},
    ),
    "length-vs-dtr": (
        "Correlation of completion length with DTR, with a scatter plot.",
        {**GENERATION, "g": G, "rho": RHO, "run": RUN},
    ),
    "jsd-diagnostic": (
        "Mean JSD per layer, and heatmaps of the raw JSD of the traces of --traces.",
        {**GENERATION, "run": RUN, "traces": TRACES},
    ),
    "dtr-accuracy": (
        "The DTR paper's correlation protocol and accuracy by DTR quintile.",
        {**GENERATION, "g": G, "rho": RHO, "run": RUN},
    ),
    "contrast": (
        "Math against easy: DTR, accuracy and length of two tasks with 95% CIs, and their "
        "difference.",
        {**_without("task"), "tasks": TASKS, "g": G, "rho": RHO},
    ),
}
#: Options that take a comma list: (experiment, option) -> ExperimentConfig field.
GRIDS = {
    ("threshold-sweep", "g"): "thresholds",
    ("temperature-sweep", "temperatures"): "temperatures",
}


def _floats(option: str, text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise UserError(f"--{option} takes comma-separated numbers, got {text!r}") from None


def _refuse_generation_options(ctx: typer.Context) -> None:
    """``--run`` reuses a finished run (and its model): the options of a generated one would be
    ignored."""
    for name in ("model", *GENERATION):
        source = ctx.get_parameter_source(name)
        if name != "plot_out" and source is not None and source.name == "COMMANDLINE":
            option = name.replace("_", "-")
            raise UserError(f"--{option} sets up generated runs; --run reuses one: drop --{option}")


def _experiment_command(name: str, doc: str, options: dict[str, OptionSpec]) -> Callable:
    def command(
        ctx: typer.Context,
        out: Path = typer.Option(..., help="Result folder for the experiment."),
        values: dict | None = None,
        model_spec: ModelSpec | None = None,
        fmt: Format = Format.table,
    ) -> None:
        from thinkscope.experiments import EXPERIMENTS, Experiment, ExperimentConfig

        values = dict(values or {})
        if values.get("run") is not None:
            _refuse_generation_options(ctx)
        for (experiment, option), field in GRIDS.items():
            if experiment == name:
                values[field] = _floats(option, values.pop(option))
        for option in ("traces", "tasks"):  # comma lists of text
            text = values.pop(option, None)
            if text is not None:
                values[option] = tuple(text.split(","))
        config = ExperimentConfig.parse(out=out, model_spec=model_spec, **values)
        table = EXPERIMENTS[name](Experiment(name, config))
        print_table(table, fmt)
        messages(fmt).print(f"results: {out / 'results.csv'}; figures: {out / 'figures'}")

    command.__doc__ = doc
    return format_option(model_options(option_block(options, "values")(command)))


for _name, (_doc, _options) in EXPERIMENT_OPTIONS.items():
    experiment_app.command(_name)(_experiment_command(_name, _doc, _options))
experiment_app.command("rev")(rev_command)
experiment_app.command("sft-filtering")(sft_filtering_command)
