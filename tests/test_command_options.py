"""Shared Typer option blocks: one declaration, the same flags on every command that uses it."""

import pytest
import typer
from typer.testing import CliRunner

from thinkscope.cli import app
from thinkscope.command import option_block

BLOCK = option_block({"alpha": (int, 3, "Alpha help."), "beta": (str, "b", None)}, "extra")


class Captured(Exception):
    """Stops a stubbed command once it has the value it was given."""


def _toy(command) -> typer.Typer:
    toy = typer.Typer()
    toy.command()(command)
    toy.command("other")(lambda: None)  # two commands: the test names the one it calls
    return toy


def test_a_block_adds_its_options_and_bundles_them_into_one_keyword():
    seen = []

    @BLOCK
    def command(name: str = typer.Option("x"), extra: dict | None = None) -> None:
        seen.append((name, extra))

    toy = _toy(command)
    assert CliRunner().invoke(toy, ["command"]).exit_code == 0
    assert CliRunner().invoke(toy, ["command", "--alpha", "7", "--name", "y"]).exit_code == 0
    assert seen == [("x", {"alpha": 3, "beta": "b"}), ("y", {"alpha": 7, "beta": "b"})]
    helped = CliRunner().invoke(toy, ["command", "--help"], terminal_width=200).output
    assert "--alpha" in helped and "Alpha help." in helped and "--beta" in helped


def test_an_option_the_command_declares_itself_stays_its_own():
    seen = []

    @BLOCK
    def command(alpha: int = typer.Option(9), extra: dict | None = None) -> None:
        seen.append((alpha, extra))

    assert CliRunner().invoke(_toy(command), ["command", "--beta", "c"]).exit_code == 0
    assert seen == [(9, {"beta": "c"})]


SAMPLING = ["--seed", "5", "--temperature", "0.25", "--max-new-tokens", "9"]


def _capture(monkeypatch, target: str, index: int = 0) -> list:
    got = []

    def stub(*args, **kwargs):
        got.append(args[index] if len(args) > index else kwargs)
        raise Captured

    monkeypatch.setattr(target, stub)
    return got


@pytest.mark.parametrize(
    ("args", "target"),
    [
        (["compare", "a", "b", "--out", "o"], "thinkscope.compare.core.compare_models"),
        (
            ["experiment", "sft-filtering", "--out", "o"],
            "thinkscope.experiments.sft_filtering.run_sft_filtering",
        ),
        (["generate", "--out", "o"], "thinkscope.generate.pipeline.generate_run"),
        (["traces", "--out", "o"], "thinkscope.generate.pipeline.generate_run"),
    ],
)
def test_the_sampling_block_reaches_each_commands_config(monkeypatch, tmp_path, args, target):
    got = _capture(monkeypatch, target)
    result = CliRunner().invoke(
        app, [str(tmp_path / a) if a == "o" else a for a in args] + SAMPLING
    )
    assert isinstance(result.exception, Captured), result.output
    config = got[0]
    assert (config.seed, config.temperature, config.max_new_tokens) == (5, 0.25, 9)


def test_an_experiment_keeps_its_own_max_new_tokens_default(monkeypatch, tmp_path):
    from thinkscope.experiments import EXPERIMENTS

    got = []

    def stub(experiment):
        got.append(experiment.config)
        raise Captured

    monkeypatch.setitem(EXPERIMENTS, "threshold-sweep", stub)
    args = ["experiment", "threshold-sweep", "--out", str(tmp_path), "--seed", "4"]
    args += ["--temperature", "0.5"]
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, Captured), result.output
    assert (got[0].seed, got[0].temperature, got[0].max_new_tokens) == (4, 0.5, 64)


@pytest.mark.parametrize(
    ("args", "target"),
    [
        (["dataset", "reference", "--out", "o"], "thinkscope.datasets.reference_dataset"),
        (["dataset", "build", "run", "--out", "o"], "thinkscope.datasets.build_dataset"),
    ],
)
def test_the_export_format_reaches_both_dataset_commands(monkeypatch, tmp_path, args, target):
    got = _capture(monkeypatch, target, index=99)
    args = [str(tmp_path / a) if a in ("o", "run") else a for a in args]
    result = CliRunner().invoke(app, args + ["--format", "messages"])
    assert isinstance(result.exception, Captured), result.output
    assert got[0]["format"] == "messages"
