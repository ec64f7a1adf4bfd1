"""The ``thinkscope`` command: a table of commands, each imported on first use.

``thinkscope --help`` lists the table without importing any command module, and each command
module imports torch, transformers and the like only inside its function, so help and typos
answer at once (``tests/test_cli_startup.py`` checks ``sys.modules``).
"""

from __future__ import annotations

import shlex
import signal
import sys
from dataclasses import dataclass, field
from importlib import import_module
from typing import NoReturn

import typer
from typer.core import TyperCommand, TyperGroup

from thinkscope.core.errors import RunFailure, UserError
from thinkscope.core.invocation import set_command


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
    "profile": Entry(
        "thinkscope.cli.profile:profile_app",
        "A model's thinking card, and the difference between two.",
    ),
    "models": Entry(
        "thinkscope.cli.models:models_app",
        "What a model's layers are made of, and what thinkscope can measure on them.",
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


class Interrupted(Exception):
    """Ctrl-C while a command ran."""


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

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as err:  # Typer would turn it into a silent exit 130
            raise Interrupted from err


app = typer.Typer(
    cls=LazyGroup,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Measure how deeply a language model thinks while it reasons.",
)


@app.callback()
def root(
    debug: bool = typer.Option(
        False, "--debug", help="Show the traceback of an error instead of one line."
    ),
) -> None:
    """Measure how deeply a language model thinks while it reasons."""


def resumes_by_rerun(path: str) -> bool:
    """Whether the command ``path`` (no ``--resume`` option) skips its finished work when rerun
    with the same arguments: ``score``, ``compare``, ``decode-sweep``, ``demo`` and every
    experiment but ``rev``."""
    from thinkscope.experiments.catalog import EXPERIMENTS

    rerun = {"score", "compare", "decode-sweep", "demo", "experiment sft-filtering"}
    return path in rerun | {f"experiment {name}" for name in EXPERIMENTS}


def resume_hint(args: list[str]) -> str:
    """How to resume the interrupted command ``args``: itself with ``--resume`` when the command
    has that option, itself again when a rerun resumes (:func:`resumes_by_rerun`); else
    nothing."""
    name = next((a for a in args if a in COMMANDS), None)
    if name is None:
        return ""
    command = load(name, COMMANDS[name])
    rest = args[args.index(name) + 1 :]
    path = name
    if isinstance(command, TyperGroup) and rest and rest[0] in command.commands:
        command, path = command.commands[rest[0]], f"{name} {rest[0]}"
    elif isinstance(command, TyperGroup) and hasattr(command, "default_command"):
        command = command.commands[command.default_command]  # ``profile MODEL``
    if any("--resume" in p.opts for p in command.params):
        again = args if "--resume" in args else [*args, "--resume"]
    elif resumes_by_rerun(path):
        again = args
    else:
        return ""
    return "; resume with: thinkscope " + shlex.join(again)


def one_line(message: str) -> str:
    """``message`` on one line: its lines joined by ``" | "``, blank ones dropped."""
    return " | ".join(line.strip() for line in str(message).splitlines() if line.strip())


def split_debug(args: list[str]) -> tuple[list[str], bool]:
    """``args`` without ``--debug`` (accepted anywhere before a ``--``), and whether it was
    there."""
    end = args.index("--") if "--" in args else len(args)
    kept = [a for a in args[:end] if a != "--debug"] + args[end:]
    return kept, len(kept) < len(args)


def _fail(message: str, code: int) -> NoReturn:
    print(f"error: {one_line(message)}", file=sys.stderr)
    sys.exit(code)


def main(args: list[str] | None = None) -> None:
    """Entry point: every error is one line on stderr (the traceback only with ``--debug``,
    given anywhere); exit code 2 for a usage error, 1 for a failure, 130 for an interruption
    (with the command that resumes the work, where one does)."""
    given = sys.argv[1:] if args is None else list(args)
    args, debug = split_debug(given)
    set_command(args)
    try:
        code = typer.main.get_command(app).main(args, prog_name="thinkscope", standalone_mode=False)
    except (Interrupted, KeyboardInterrupt, typer.Abort):
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C cannot cut the message
        print(f"interrupted{resume_hint(given)}", file=sys.stderr)
        sys.exit(130)
    except typer.TyperException as err:  # Click's usage errors (exit 2), as Typer raises them
        if debug:
            raise
        ctx = getattr(err, "ctx", None)
        where = f" (see `{ctx.command_path} --help`)" if ctx else ""
        _fail(f"{err.format_message()}{where}", err.exit_code)
    except UserError as err:
        if debug:
            raise
        _fail(str(err), 2)
    except RunFailure as err:
        if debug:
            raise
        _fail(str(err), 1)
    except Exception as err:
        if debug:
            raise
        _fail(
            f"{type(err).__name__}: {err} (a bug in thinkscope; "
            "`thinkscope --debug ...` shows where)",
            1,
        )
    finally:
        set_command(None)  # later calls from Python in this process record no command
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
