"""`thinkscope traces`: generate's command with the R1 prompt by default."""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from thinkscope.cli.app import main
from thinkscope.cli.dataset import traces_command
from thinkscope.tasks.problem import Problem
from thinkscope.tasks.prompts import R1_SYSTEM, render_prompt


def test_traces_is_generate_with_r1_defaults_and_inherits_new_options():
    seen = {}

    def generate(
        out: Path = typer.Option(...),
        prompt_style: str = typer.Option("cot"),
        template: str = typer.Option("auto"),
        backend: str = typer.Option("auto", help="an option added to generate later"),
    ) -> None:
        seen.update(prompt_style=prompt_style, template=template, backend=backend, out=out)

    runner = CliRunner()
    for command, style in ((generate, "cot"), (traces_command(generate), "r1")):
        one = typer.Typer()
        one.command()(command)
        result = runner.invoke(one, ["--out", "x", "--backend", "hf"])
        assert result.exit_code == 0, result.output
        assert seen == {
            "prompt_style": style,
            "template": "auto" if style == "cot" else "plain",
            "backend": "hf",
            "out": Path("x"),
        }
    assert inspect.signature(generate).parameters["prompt_style"].default.default == "cot"


def test_the_registered_traces_command_has_every_generate_option():
    from thinkscope.cli.dataset import traces as traces_command
    from thinkscope.cli.generate import generate as generate_command

    generate, traces = (inspect.signature(c).parameters for c in (generate_command, traces_command))
    assert list(generate) == list(traces)
    assert traces["prompt_style"].default.default == "r1"


def test_r1_prompt_is_the_seeds_form_and_stops_after_the_answer_tag():
    problem = Problem("p", "What is 2 + 2?", "4")
    plain = render_prompt(None, problem, "r1", "plain")
    assert plain.text == f"{R1_SYSTEM}\nUser: What is 2 + 2?\nAssistant: <think>"
    assert R1_SYSTEM.startswith("A conversation between User and Assistant.")
    assert "</answer>" in plain.stop and "\nUser:" in plain.stop
    from tiny import tiny_tokenizer

    chat = render_prompt(tiny_tokenizer(), problem, "r1", "chat")
    assert chat.text.endswith("<|assistant|><think>") and chat.stop == ("</answer>",)


def _run(*argv: str) -> None:
    sys.argv = ["thinkscope", *argv]
    with pytest.raises(SystemExit) as done:
        main()
    assert done.value.code in (0, None)


def test_traces_score_and_build_on_a_tiny_model(tiny_model_dir, tmp_path, capsys):
    run, ds = tmp_path / "run", tmp_path / "ds"
    model = ["--model", str(tiny_model_dir)]
    _run(
        "traces",
        *model,
        "--task",
        "gsm8k",
        "--questions",
        "2",
        "--n",
        "2",
        "--max-new-tokens",
        "6",
        "--out",
        str(run),
    )
    frame = pd.read_parquet(run / "traces.parquet")
    assert len(frame) == 4 and frame["prompt"].str.startswith(R1_SYSTEM).all()
    assert frame["prompt"].str.endswith("\nAssistant: <think>").all()
    _run("score", str(run), "--metrics", "dtr")
    _run("dataset", "build", str(run), "--out", str(ds), "--min-dtr", "0", "--truncated", "keep")
    rows = [json.loads(line) for line in (ds / "sft_all.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and {"dtr", "n_tokens", "is_correct"} <= set(rows[0])
    assert [r["prompt"] for r in rows] == frame["prompt"].tolist()
    assert [r["response"] for r in rows] == frame["completion"].tolist()
    capsys.readouterr()
    sys.argv = ["thinkscope", "traces", *model, "--out", str(run)]
    with pytest.raises(SystemExit) as again:
        main()
    assert again.value.code == 2 and "finished run" in capsys.readouterr().err


@pytest.mark.integration
def test_bundled_model_traces_to_dataset(tmp_path, capsys):
    from thinkscope.tasks.answers import grade

    run, ds = tmp_path / "run", tmp_path / "ds"
    _run("traces", "--questions", "2", "--n", "2", "--max-new-tokens", "48", "--out", str(run))
    _run("dataset", "build", str(run), "--out", str(ds), "--truncated", "keep")
    rows = [json.loads(line) for line in (ds / "sft_all.jsonl").read_text().splitlines()]
    assert len(rows) == 4
    for row in rows:
        assert row["prompt"].startswith(R1_SYSTEM) and row["prompt"].endswith("<think>")
        assert row["is_correct"] == grade(row["response"], row["ground_truth"]).correct
        assert "</answer>" not in row["response"] or row["response"].endswith("</answer>")
