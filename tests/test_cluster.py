"""Ray sharding on a local 2-CPU cluster: the same samples and scores as one process, and a
killed worker's unit is redone. Skipped when Ray is not installed."""

import os
import sys
from functools import partial
from pathlib import Path

import pandas as pd
import pytest

from thinkscope.cluster import Cluster, ClusterSpec
from thinkscope.core.atomic import write_text
from thinkscope.core.errors import UserError
from thinkscope.generation.pipeline import GenerateConfig, generate_run
from thinkscope.models import load_model
from thinkscope.scoring import score_run

ray = pytest.importorskip("ray")

GYM = "gym:basic_arithmetic?min_terms=2&max_terms=2&min_digits=1&max_digits=1"


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_options_pick_one_process_or_a_cluster():
    assert ClusterSpec().cluster() is None
    assert ClusterSpec(ray=True).cluster() == Cluster(workers=1, address=None)
    assert ClusterSpec(workers=3).cluster() == Cluster(workers=3, address=None)
    assert ClusterSpec(ray_address="ray://head:10001", workers=2).cluster() == Cluster(
        workers=2, address="ray://head:10001"
    )
    with pytest.raises(UserError, match="^--workers: "):
        ClusterSpec.parse(workers=0)


STAGES = {  # command: (library function it hands the cluster to, its positional arguments)
    "generate": ("thinkscope.generation.pipeline.generate_run", []),
    "think-at-n": ("thinkscope.select.experiment.run_selection", []),
    "score": ("thinkscope.scoring.stage.score_run", ["RUN"]),
}


@pytest.mark.parametrize("command", sorted(STAGES))
@pytest.mark.parametrize(
    ("options", "cluster"),
    [
        (["--ray", "--workers", "2"], Cluster(workers=2)),
        (["--workers", "2", "--ray"], Cluster(workers=2)),
        (["--ray"], Cluster(workers=1)),
        (["--ray-address", "ray://head:10001"], Cluster(workers=1, address="ray://head:10001")),
        ([], None),
    ],
)
def test_cluster_options_take_no_optional_value(command, options, cluster, monkeypatch, tmp_path):
    """``--ray`` is a flag: the option after it stays an option (it used to be its address)."""
    import importlib
    from types import SimpleNamespace

    from click.testing import CliRunner

    from thinkscope.cli.app import COMMANDS, load

    seen = {}

    def stage(*args, cluster=None, **kwargs):
        seen["cluster"] = cluster
        raise SystemExit(3)

    target, positional = STAGES[command]
    module, _, name = target.rpartition(".")
    monkeypatch.setattr(importlib.import_module(module), name, stage)
    if command == "score":  # the run folder and model the command opens before scoring
        run = SimpleNamespace(path=tmp_path, config={})
        monkeypatch.setattr("thinkscope.runstore.folder.Run.open", lambda path: run)
        monkeypatch.setattr("thinkscope.models.load_model", lambda *a, **k: None)
    out = [] if command == "score" else ["--out", str(tmp_path / "out")]
    args = [*positional, *options, *out]
    result = CliRunner().invoke(load(command, COMMANDS[command]), args)
    assert result.exit_code == 3, result.output
    assert seen == {"cluster": cluster}


def test_two_workers_give_the_single_process_samples_and_scores(
    local_ray, tiny_model_dir, tmp_path
):
    config = GenerateConfig(
        model=str(tiny_model_dir),
        task=GYM,
        questions=4,
        n=2,
        max_new_tokens=6,
        temperature=0.9,
        prompt_style="fewshot",
        batch_size=2,
        backend="hf",
    )
    one = generate_run(config, tmp_path / "one", show_progress=False)
    two = generate_run(config, tmp_path / "two", show_progress=False, cluster=Cluster(2))
    first, second = one.traces(), two.traces()
    assert len(first) == 8 and first["n_tokens"].sum() > 8
    pd.testing.assert_frame_equal(first, second)
    assert two.timing["generated_tokens"] == one.timing["generated_tokens"]

    lm = load_model(str(tiny_model_dir))
    specs = "dtr,logprob,length"
    from thinkscope.metrics import parse_metrics

    single = score_run(lm, one.path, parse_metrics(specs), batch_tokens=64, show_progress=False)
    sharded = score_run(
        lm,
        two.path,
        parse_metrics(specs),
        batch_tokens=64,
        show_progress=False,
        cluster=Cluster(2),
    )
    pd.testing.assert_frame_equal(single, sharded)
    tokens = [pd.read_parquet(p / "token_metrics.parquet") for p in (one.path, two.path)]
    pd.testing.assert_frame_equal(*tokens)


def _flaky_work(folder: Path, unit: str) -> dict:
    """Writes ``unit``'s shard; the first attempt at unit 00001 kills its worker process."""
    marker = folder / "killed-once"
    if unit == "00001" and not marker.exists():
        marker.touch()
        os._exit(1)
    write_text(folder / f"{unit}.txt", unit)
    return dict(unit=unit, pid=os.getpid())


@pytest.mark.slow  # an actor restart: ~10 s idle, ~80 s on a loaded machine
def test_a_killed_worker_is_restarted_and_its_unit_redone(local_ray, tmp_path):
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers lack tests/
    units = [f"{i:05d}" for i in range(4)]
    results = list(Cluster(2).map(partial(partial, _flaky_work, tmp_path), units))
    assert sorted(r["unit"] for r in results) == units
    assert (tmp_path / "killed-once").exists()
    assert sorted(p.stem for p in tmp_path.glob("*.txt")) == units


def test_generate_and_score_workers_load_with_the_loading_options(
    tiny_model_dir, tmp_path, monkeypatch
):
    """What a Ray worker builds from its factory: the model loaded with the driver's options."""
    import thinkscope.generation.pipeline as pipeline
    import thinkscope.models
    from thinkscope.metrics import parse_metrics
    from thinkscope.models.spec import ModelSpec
    from thinkscope.scoring.ray import _score_worker

    seen, real = [], thinkscope.models.load_model
    monkeypatch.setattr(
        thinkscope.models,
        "load_model",
        lambda spec, **options: seen.append(ModelSpec.of(spec, **options)) or real(spec, **options),
    )
    config = GenerateConfig(
        model=str(tiny_model_dir), task=GYM, questions=2, n=2, max_new_tokens=3, backend="hf"
    )
    generated = generate_run(config, tmp_path / "run", show_progress=False)
    seen.clear()
    loading = {"dtype": "bfloat16", "attn_implementation": "eager"}
    work = pipeline._unit_worker(config.model_copy(update=loading), tmp_path / "again", None)
    (tmp_path / "again").mkdir()
    assert work("00000")["samples"] == 4
    assert [(s.dtype, s.attn_implementation) for s in seen] == [("bfloat16", "eager")]
    seen.clear()
    _score_worker(
        ModelSpec(model=str(tiny_model_dir), **loading),
        generated.traces_path,
        parse_metrics("length"),
        [[0]],
        None,
        tmp_path / "shards",
        None,
    )("0")
    assert [(s.dtype, s.attn_implementation) for s in seen] == [("bfloat16", "eager")]
