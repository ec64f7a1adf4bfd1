"""``thinkscope experiment ...``: the one-command experiments (DTR sweeps and diagnostics,
REV, SFT filtering)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from thinkscope.cli.compare import sft_filtering_command
from thinkscope.cli.loading import loading_options
from thinkscope.cli.options import sampling_options
from thinkscope.cli.rev import rev_command

experiment_app = typer.Typer(no_args_is_help=True, help="One-command experiments around DTR.")
console = Console()


def _experiment_command(name: str, doc: str):
    @loading_options
    @sampling_options
    def command(
        out: Path = typer.Option(..., help="Result folder for the experiment."),
        model: str = typer.Option("smollm2-135m"),
        task: str = typer.Option("demo-arith"),
        questions: int = typer.Option(12),
        samples_per_question: int = typer.Option(4),
        max_new_tokens: int = typer.Option(64),
        prompt_style: str = typer.Option("fewshot"),
        g: float = typer.Option(0.5, help="Settling threshold on the JSD (nats)."),
        rho: float = typer.Option(0.85, help="Deep from layer ceil(rho * L)."),
        plot_out: Path = typer.Option(None, help="Also save the main figure here."),
        run: Path = typer.Option(
            None,
            help="Reuse this finished (scored) run instead of generating one "
            "(one-run experiments: not temperature-sweep or cot-vs-direct).",
        ),
        loading: dict | None = None,
        sampling: dict | None = None,
    ) -> None:
        from thinkscope.experiments import EXPERIMENTS, Experiment, ExperimentConfig

        config = ExperimentConfig(
            out=out,
            model=model,
            task=task,
            questions=questions,
            samples_per_question=samples_per_question,
            max_new_tokens=max_new_tokens,
            prompt_style=prompt_style,
            g=g,
            rho=rho,
            plot_out=plot_out,
            run=run,
            loading=loading or {},
            **(sampling or {}),
        )
        table = EXPERIMENTS[name](Experiment(name, config))
        console.print(table.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
        console.print(f"results: {out / 'results.csv'}; figures: {out / 'figures'}")

    command.__doc__ = doc
    return command


def _register_experiments() -> None:
    names_and_docs = {
        "threshold-sweep": "Settling depths and DTR across thresholds g.",
        "temperature-sweep": "DTR and accuracy at T = 0 / 0.4 / 0.8.",
        "cot-vs-direct": "Prompting control: chain of thought against direct answers.",
        "token-types": "Settling depth by token type: digits, operators, words, punctuation.",
        "length-vs-dtr": "Correlation of completion length with DTR, with a scatter plot.",
        "jsd-diagnostic": "Raw JSD per layer for chosen traces, as heatmaps.",
        "dtr-accuracy": "The DTR paper's correlation protocol and accuracy by DTR quintile.",
    }
    for name, doc in names_and_docs.items():
        experiment_app.command(name)(_experiment_command(name, doc))


_register_experiments()
experiment_app.command("rev")(rev_command)
experiment_app.command("sft-filtering")(sft_filtering_command)
