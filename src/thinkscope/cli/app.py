"""The ``thinkscope`` command: a table of commands, each imported on first use.

``thinkscope --help`` lists the table without importing any command module, and each command
module imports torch, transformers and the like only inside its function, so help and typos
answer at once (``tests/test_cli_startup.py`` checks ``sys.modules``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from importlib import import_module

import typer
from typer.core import TyperCommand, TyperGroup

from thinkscope.core.errors import UserError


@dataclass(frozen=True)
class Entry:
    """A command: ``module:attribute`` (a function or a Typer app), its one-line help (the
    first sentence of the command's own help, so that listing needs no import;
    ``tests/test_cli_startup.py`` keeps the two equal), and Click context settings."""

    target: str
    help: str
    context: dict = field(default_factory=dict)


COMMANDS: dict[str, Entry] = {
    "demo": Entry("thinkscope.cli.generate:demo", "The main job on the bundled model."),
    "generate": Entry(
        "thinkscope.cli.generate:generate",
        "Sample N completions per problem, grade them, and write a run folder.",
    ),
    "traces": Entry(
        "thinkscope.cli.dataset:traces",
        "Generate R1-style reasoning traces for SFT datasets.",
    ),
    "score": Entry(
        "thinkscope.cli.score:score_command",
        "Add DTR, confidence and other metric columns to a run's traces.",
    ),
    "analyze": Entry(
        "thinkscope.cli.analyze:analyze_command",
        "AUROC, binned and partial correlations of every metric, and figures, into DIR/analysis.",
    ),
    "report": Entry(
        "thinkscope.cli.report:report_command",
        "One self-contained HTML page: run summary, metric table, figures and a trace viewer.",
    ),
    "think-at-n": Entry(
        "thinkscope.cli.think_at_n:think_at_n_command",
        "Think@n, Self-Certainty@n, DeepConf and Cons@n on one sample pool.",
    ),
    "calibrate": Entry(
        "thinkscope.cli.decoding_analysis:calibrate_command",
        "Teacher-force reference solutions: rank calibration grid and power-law fit.",
    ),
    "decoding-report": Entry(
        "thinkscope.cli.decoding_analysis:decoding_report_command",
        "Accuracy against low-confidence steps, sampled ranks, and confidence-conditioned votes.",
    ),
    "decode-sweep": Entry(
        "thinkscope.cli.decoding_analysis:decode_sweep_command",
        "Run several decoding configs over the same problems and seeds; one table.",
    ),
    "train": Entry(
        "thinkscope.cli.train:train_command",
        "LoRA SFT (TRL + PEFT) on prompt/response rows, loss on the response only.",
    ),
    "merge": Entry(
        "thinkscope.cli.train:merge_command", "Merge a LoRA adapter into its base model."
    ),
    "compare": Entry(
        "thinkscope.cli.compare:compare_command",
        "Base versus tuned on the same problems and seeds.",
    ),
    "eval": Entry(
        "thinkscope.cli.eval:eval_command",
        "lm-evaluation-harness with the `thinkscope` model and the bundled tasks.",
        {"allow_extra_args": True, "ignore_unknown_options": True},
    ),
    "dataset": Entry("thinkscope.cli.dataset:dataset_app", "SFT datasets from traces."),
    "experiment": Entry(
        "thinkscope.cli.experiment:experiment_app", "One-command experiments around DTR."
    ),
    "interp": Entry(
        "thinkscope.cli.interp:interp_app",
        "Directions, probes, CKA, steering, ablation and patching.",
    ),
    "runs": Entry(
        "thinkscope.cli.runs:runs_app", "List, show, compare and reproduce registered runs."
    ),
}


def load(name: str, entry: Entry) -> TyperCommand | TyperGroup:
    """The Click command behind ``entry``, imported now."""
    module, _, attribute = entry.target.partition(":")
    target = getattr(import_module(module), attribute)
    if isinstance(target, typer.Typer):
        command = typer.main.get_command(target)
    else:
        single = typer.Typer(add_completion=False)
        single.command(name, context_settings=entry.context or None)(target)
        command = typer.main.get_command(single)
    command.name = name
    return command


class LazyGroup(TyperGroup):
    """A group whose commands come from :data:`COMMANDS`: listed (and typos matched) from the
    table's stand-ins, imported only when one is run or its own help is asked for."""

    def __init__(self, **attrs) -> None:
        super().__init__(**attrs)
        self.commands = {
            name: TyperCommand(name, help=entry.help, short_help=entry.help)
            for name, entry in COMMANDS.items()
        }

    def resolve_command(self, ctx, args: list[str]):
        if args and args[0] in COMMANDS:
            return args[0], load(args[0], COMMANDS[args[0]]), args[1:]
        return super().resolve_command(ctx, args)


app = typer.Typer(
    cls=LazyGroup,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Measure how deeply a language model thinks while it reasons.",
)


@app.callback()
def root() -> None:
    """Measure how deeply a language model thinks while it reasons."""


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 2."""
    try:
        app()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
