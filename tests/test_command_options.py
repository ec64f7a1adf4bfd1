"""Shared Typer option blocks: one declaration, the same flags on every command that uses it."""

import pytest
import typer
from typer.testing import CliRunner

from thinkscope.cli.app import app
from thinkscope.cli.options import option_block

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
        (["compare", "a", "b", "--out", "o"], "thinkscope.experiments.compare.core.compare_models"),
        (
            ["experiment", "sft-filtering", "--out", "o"],
            "thinkscope.experiments.sft_filtering.run_sft_filtering",
        ),
        (["generate", "--out", "o"], "thinkscope.generation.pipeline.generate_run"),
        (["traces", "--out", "o"], "thinkscope.generation.pipeline.generate_run"),
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
        (["dataset", "reference", "--out", "o"], "thinkscope.sft.reference_dataset"),
        (["dataset", "build", "run", "--out", "o"], "thinkscope.sft.build_dataset"),
    ],
)
def test_the_export_format_reaches_both_dataset_commands(monkeypatch, tmp_path, args, target):
    got = _capture(monkeypatch, target, index=99)
    args = [str(tmp_path / a) if a in ("o", "run") else a for a in args]
    result = CliRunner().invoke(app, args + ["--dataset-format", "messages"])
    assert isinstance(result.exception, Captured), result.output
    assert got[0]["format"] == "messages"


def test_spec_options_declare_each_field_once_with_its_default_help_and_bounds():
    from typing import Literal

    from pydantic import Field

    from thinkscope.cli.options import spec_options
    from thinkscope.core.spec import Spec

    class Toy(Spec):
        rate: float = Field(0.5, ge=0, le=1, description="A rate.")
        mode: Literal["fast", "slow"] = Field("fast", description="How.")
        limit: int | None = Field(None, description="At most this many.")
        tags: list[str] = Field([], description="Tags (repeatable).")

    seen = []

    @spec_options(Toy, "toy", defaults={"mode": "slow"})
    def command(toy: Toy | None = None) -> None:
        seen.append(toy)

    toy = _toy(command)
    assert CliRunner().invoke(toy, ["command"]).exit_code == 0
    assert seen[-1] == Toy(rate=0.5, mode="slow", limit=None, tags=[])
    args = ["command", "--rate", "0.25", "--mode", "fast", "--limit", "3", "--tags", "a"]
    assert CliRunner().invoke(toy, [*args, "--tags", "b"]).exit_code == 0
    assert seen[-1] == Toy(rate=0.25, mode="fast", limit=3, tags=["a", "b"])
    bad = CliRunner().invoke(toy, ["command", "--rate", "2"])
    assert bad.exit_code != 0 and "--rate: Input should be less than or equal to 1" in str(
        bad.exception
    )
    bad = CliRunner().invoke(toy, ["command", "--mode", "medium"])
    assert "--mode" in str(bad.exception)
    helped = CliRunner().invoke(toy, ["command", "--help"], terminal_width=200).output
    assert "A rate." in helped and "How. (fast, slow)" in helped and "[default: slow]" in helped
