"""``think-at-n --ray``: two local Ray workers select exactly what one process selects, and load
the model with the driver's loading options. Skipped when Ray is not installed."""

import pandas as pd
import pytest

import select_fixture
from select_fixture import arithmetic_task
from thinkscope.cluster import Cluster
from thinkscope.models.spec import ModelSpec
from thinkscope.select import experiment
from thinkscope.select.experiment import SelectConfig, run_selection, unit_worker

ray = pytest.importorskip("ray")

TIMED = ["wall_s", "lens_s"]  # seconds: the only columns allowed to differ


def small_config(model, tmp_path) -> SelectConfig:
    task = arithmetic_task(tmp_path)
    return select_fixture.small_config(task, model=str(model), repeats=1, backend="hf")


def test_a_unit_worker_loads_the_model_with_the_loading_options(
    tiny_model_dir, tmp_path, monkeypatch
):
    seen = []
    real = experiment.load_model
    monkeypatch.setattr(
        experiment,
        "load_model",
        lambda spec, **options: seen.append(ModelSpec.of(spec, **options)) or real(spec, **options),
    )
    config = small_config(tiny_model_dir, tmp_path)
    loading = {"dtype": "bfloat16", "attn_implementation": "eager"}
    unit_worker(config.model_copy(update=loading), tmp_path, None)
    assert [(s.dtype, s.attn_implementation) for s in seen] == [("bfloat16", "eager")]


def test_two_ray_workers_select_what_one_process_selects(tiny_model_dir, tmp_path):
    config = small_config(tiny_model_dir, tmp_path).model_copy(update={"dtype": "bfloat16"})
    one = run_selection(config, tmp_path / "one", show_progress=False)
    two = run_selection(config, tmp_path / "two", show_progress=False, cluster=Cluster(2))
    outcomes = [pd.read_parquet(tmp_path / run / "outcomes.parquet") for run in ("one", "two")]
    assert len(outcomes[0]) == 3 * len(experiment.METHODS)
    pd.testing.assert_frame_equal(*(o.drop(columns=TIMED) for o in outcomes))
    pd.testing.assert_frame_equal(one.drop(columns=TIMED), two.drop(columns=TIMED))
    log = (tmp_path / "two" / "log.txt").read_text()
    assert "2 Ray workers" in log
    assert log.count("(torch.bfloat16 model)") == 2  # both units ran on bf16 models


def test_the_command_passes_backend_cluster_and_loading_on(monkeypatch, tmp_path):
    import typer
    from typer.testing import CliRunner

    from thinkscope.cli.think_at_n import think_at_n_command

    seen = {}

    def capture(config, out, resume=False, cluster=None):
        seen.update(backend=config.backend, loading=ModelSpec.of(config).loading(), cluster=cluster)
        raise SystemExit(3)

    monkeypatch.setattr(experiment, "run_selection", capture)
    app = typer.Typer()
    app.command("think-at-n")(think_at_n_command)
    app.command("unused")(lambda: None)
    args = [
        "think-at-n",
        "--out",
        str(tmp_path / "o"),
        "--backend",
        "vllm",
        "--workers",
        "3",
        "--dtype",
        "bfloat16",
        "--revision",
        "r2",
    ]
    assert CliRunner().invoke(app, args).exit_code == 3
    assert seen == {
        "backend": "vllm",
        "loading": ModelSpec(dtype="bfloat16", revision="r2").loading(),
        "cluster": Cluster(workers=3),
    }
    args = ["think-at-n", "--out", str(tmp_path / "o"), "--ray-address", "ray://head:10001"]
    assert CliRunner().invoke(app, args).exit_code == 3
    assert seen["cluster"] == Cluster(workers=1, address="ray://head:10001")
    assert seen["backend"] == "auto"
