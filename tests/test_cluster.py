"""Ray sharding on a local 2-CPU cluster: the same samples and scores as one process, and a
killed worker's unit is redone. Skipped when Ray is not installed."""

import os
import sys
from functools import partial
from pathlib import Path

import pandas as pd
import pytest

from thinkscope.cluster import Cluster, from_options
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
    assert from_options(None, 1) is None
    assert from_options("local", 1) == Cluster(workers=1, address=None)
    assert from_options(None, 3) == Cluster(workers=3, address=None)
    assert from_options("ray://head:10001", 2).address == "ray://head:10001"
    with pytest.raises(UserError, match="--workers"):
        from_options(None, 0)


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
    from thinkscope.models.loading import Loading
    from thinkscope.scoring.ray import _score_worker

    loading = Loading(dtype="bfloat16", attn_implementation="eager")
    seen, real = [], thinkscope.models.load_model
    monkeypatch.setattr(
        thinkscope.models,
        "load_model",
        lambda spec, **options: seen.append(options) or real(spec, **options),
    )
    config = GenerateConfig(
        model=str(tiny_model_dir), task=GYM, questions=2, n=2, max_new_tokens=3, backend="hf"
    )
    generated = generate_run(config, tmp_path / "run", show_progress=False)
    seen.clear()
    work = pipeline._unit_worker(config, tmp_path / "again", None, loading)
    (tmp_path / "again").mkdir()
    assert work("00000")["samples"] == 4
    assert seen == [{"dtype": "bfloat16", "attn_implementation": "eager"}]
    seen.clear()
    _score_worker(
        str(tiny_model_dir),
        loading,
        generated.traces_path,
        parse_metrics("length"),
        [[0]],
        None,
        tmp_path / "shards",
    )("0")
    assert seen == [{"dtype": "bfloat16", "attn_implementation": "eager"}]
