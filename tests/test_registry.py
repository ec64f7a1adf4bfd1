from typer.testing import CliRunner

from thinkscope.cli.app import app
from thinkscope.generation.pipeline import GenerateConfig, generate_run
from thinkscope.runstore.registry import diff, find_run, list_runs

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
    rows = diff(runs[0], runs[1])
    assert [key for key, _, _ in rows[:3]] == ["config.model", "config.dtype", "config.weights"]
    assert rows[1][1:] == ("float32", "float32") and rows[2][1].startswith("sha256:")
    changed = {key for key, a, b in rows if a != b}
    assert changed == {"config.seed"} | {k for k, _, _ in rows if k.startswith("summary.")}
    runner = CliRunner()
    listed = runner.invoke(app, ["runs", "list"], terminal_width=200)
    assert listed.exit_code == 0 and listed.output.count("generate") == 2
    shown = runner.invoke(app, ["runs", "show", "1"], terminal_width=200)
    assert shown.exit_code == 0 and "config.seed" in shown.output
    diffed = runner.invoke(app, ["runs", "diff", "1", "2"], terminal_width=200)
    assert diffed.exit_code == 0 and "config.seed" in diffed.output
    assert "config.dtype" in diffed.output and "config.weights" in diffed.output
