"""The ``thinkscope`` command: a thin Typer layer over the functions users call from Python."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from thinkscope.cluster import RAY_OPTION
from thinkscope.command import sampling_options
from thinkscope.decoding.command import decoding_options
from thinkscope.errors import UserError
from thinkscope.models.command import loading_options

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Measure how deeply a language model thinks while it reasons.",
)
runs_app = typer.Typer(no_args_is_help=True, help="List, show and compare registered runs.")
app.add_typer(runs_app, name="runs")
experiment_app = typer.Typer(no_args_is_help=True, help="One-command experiments around DTR.")
app.add_typer(experiment_app, name="experiment")
console = Console()


def _fields(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in ("question", "answer", "id"):
            raise UserError(f"--field takes question=KEY, answer=KEY or id=KEY, got {pair!r}")
        out[key] = value
    return out


@app.command()
@decoding_options
@loading_options
@sampling_options
def generate(
    out: Path = typer.Option(..., help="Run folder to create (or to resume)."),
    model: str = typer.Option(
        "smollm2-135m", help="smollm2-135m, a model directory, a .gguf file or a hub id."
    ),
    task: str = typer.Option(
        "gsm8k", help="gsm8k, gym:<name>[?k=v&...], jsonl:<path>, or a preset."
    ),
    questions: int = typer.Option(20, help="How many problems."),
    n: int = typer.Option(4, help="Samples per problem."),
    temperature: float = typer.Option(0.7, help="0 is greedy."),
    top_p: float = typer.Option(1.0),
    top_k: int = typer.Option(0),
    min_p: float = typer.Option(0.0),
    prompt_style: str = typer.Option("cot", help="cot, direct, r1 or fewshot."),
    template: str = typer.Option("auto", help="auto, chat or plain."),
    fewshot: int = typer.Option(0, help="Worked examples before the question."),
    stop: list[str] = typer.Option([], help="Stop string (repeatable)."),
    top_logprobs: int = typer.Option(0, help="Record the top-k log-probs of every step."),
    batch_size: int = typer.Option(64, help="Sequences decoded at once."),
    field: list[str] = typer.Option([], help="JSONL field mapping, e.g. question=problem."),
    resume: bool = typer.Option(False, help="Continue a killed run in --out."),
    backend: str = typer.Option("auto", help="auto (vLLM when installed with CUDA), hf or vllm."),
    ray: str = typer.Option(None, **RAY_OPTION),
    workers: int = typer.Option(1, help="Ray workers (> 1 starts a local cluster)."),
    decoding: dict | None = None,
    loading: dict | None = None,
    sampling: dict | None = None,
) -> None:
    """Sample N completions per problem, grade them, and write a run folder."""
    from thinkscope.cluster import from_options
    from thinkscope.generate.pipeline import GenerateConfig, generate_run, summarize

    config = GenerateConfig.parse(
        model=model,
        task=task,
        questions=questions,
        n=n,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        min_p=min_p,
        prompt_style=prompt_style,
        template=template,
        fewshot=fewshot,
        stop=stop,
        top_logprobs=top_logprobs,
        batch_size=batch_size,
        fields=_fields(field),
        backend=backend,
        **(decoding or {}),
        **(sampling or {}),
    )
    run = generate_run(
        config, out, resume=resume, cluster=from_options(ray, workers), loading=loading
    )
    _print_summary(summarize(run.traces(), run.timing), run.path)


def _print_summary(summary: dict, path: Path) -> None:
    table = Table(show_header=False, box=None)
    for key, value in summary.items():
        table.add_row(key.replace("_", " "), str(value))
    table.add_row("run", str(path))
    console.print(table)


@app.command()
def demo(out: Path = typer.Option(None, help="Run folder (default: runs/demo-<time>).")) -> None:
    """The main job on the bundled model: generate a small arithmetic mix and summarise it."""
    from thinkscope.demo import run_demo

    run_demo(out, console)


@runs_app.command("list")
def runs_list() -> None:
    """Every registered run."""
    from thinkscope.runstore.registry import list_runs

    table = Table("id", "kind", "created", "status", "model", "task", "accuracy")
    table.add_column("path", overflow="fold")
    for run in list_runs():
        cfg, summ = run["config"], run["summary"]
        table.add_row(
            str(run["id"]),
            run["kind"],
            run["created"],
            run["status"],
            str(cfg.get("model")),
            str(cfg.get("task")),
            str(summ.get("accuracy")),
            run["path"],
        )
    console.print(table)


@runs_app.command("show")
def runs_show(ref: str = typer.Argument(..., help="Run id (from `runs list`) or folder.")) -> None:
    """A run's config and summary."""
    from thinkscope.runstore.registry import find_run

    run = find_run(ref)
    table = Table("key", "value")
    for section in ("config", "summary"):
        for key, value in run[section].items():
            table.add_row(f"{section}.{key}", str(value))
    console.print(f"[bold]{run['path']}[/] ({run['kind']}, {run['status']}, {run['created']})")
    console.print(table)


@runs_app.command("diff")
def runs_diff(a: str, b: str) -> None:
    """Where two runs' configs and summaries differ."""
    from thinkscope.runstore.registry import diff, find_run

    run_a, run_b = find_run(a), find_run(b)
    table = Table("key", a, b)
    for key, value_a, value_b in diff(run_a, run_b):
        table.add_row(key, str(value_a), str(value_b))
    console.print(table)


def _register_stages() -> None:
    """Commands that live beside the functions they wrap."""
    from thinkscope.analyze import analyze_command
    from thinkscope.compare.command import compare_command, sft_filtering_command
    from thinkscope.decoding.analysis_command import (
        calibrate_command,
        decode_sweep_command,
        decoding_report_command,
    )
    from thinkscope.interp.command import interp_app
    from thinkscope.report import report_command
    from thinkscope.scoring_command import score_command
    from thinkscope.select.command import think_at_n_command
    from thinkscope.train.command import merge_command, train_command

    app.command("score")(score_command)
    from thinkscope.experiments.rev_command import rev_command
    from thinkscope.runstore.command import reproduce_command

    experiment_app.command("rev")(rev_command)
    runs_app.command("reproduce")(reproduce_command)
    app.add_typer(interp_app, name="interp")
    app.command("analyze")(analyze_command)
    app.command("report")(report_command)
    app.command("think-at-n")(think_at_n_command)
    from thinkscope.lmeval.command import EVAL_CONTEXT, eval_command

    app.command("eval", context_settings=EVAL_CONTEXT)(eval_command)
    app.command("calibrate")(calibrate_command)
    app.command("decoding-report")(decoding_report_command)
    app.command("decode-sweep")(decode_sweep_command)
    app.command("train")(train_command)
    app.command("merge")(merge_command)
    app.command("compare")(compare_command)
    experiment_app.command("sft-filtering")(sft_filtering_command)


_register_stages()


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


def _register_datasets() -> None:
    """``traces`` is the registered ``generate`` with R1 defaults; ``dataset build|reference``."""
    from thinkscope.datasets.command import dataset_app, traces_command

    generate_command = next(
        c.callback for c in app.registered_commands if (c.name or c.callback.__name__) == "generate"
    )
    app.command("traces")(traces_command(generate_command))
    app.add_typer(dataset_app, name="dataset")


_register_datasets()


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 2."""
    try:
        app()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
