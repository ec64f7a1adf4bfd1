from typer.testing import CliRunner

from thinkscope.cli.app import app
from thinkscope.generation.pipeline import GenerateConfig, generate_run
from thinkscope.runs.registry import diff, find_run, list_runs

GYM = "gym:basic_arithmetic?min_terms=2&max_terms=2&min_digits=1&max_digits=1"


def test_runs_list_show_and_diff(tiny_model_dir, tmp_path):
    for seed in (1, 2):
        config = GenerateConfig(
            model=str(tiny_model_dir), task=GYM, questions=2, n=1, max_new_tokens=4, seed=seed
        )
        generate_run(config, tmp_path / f"run{seed}", show_progress=False)
    runs = list_runs()
    assert [r["config"]["seed"] for r in runs] == [1, 2]
    assert find_run("2") == find_run(str(tmp_path / "run2"))
    changed = {key for key, _, _ in diff(runs[0], runs[1])}
    assert "config.seed" in changed and "config.task" not in changed
    runner = CliRunner()
    listed = runner.invoke(app, ["runs", "list"], terminal_width=200)
    assert listed.exit_code == 0 and listed.output.count("generate") == 2
    shown = runner.invoke(app, ["runs", "show", "1"], terminal_width=200)
    assert shown.exit_code == 0 and "config.seed" in shown.output
    diffed = runner.invoke(app, ["runs", "diff", "1", "2"], terminal_width=200)
    assert diffed.exit_code == 0 and "config.seed" in diffed.output
