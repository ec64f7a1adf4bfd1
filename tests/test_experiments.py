import numpy as np
import pandas as pd
import pytest

from thinkscope.errors import UserError
from thinkscope.experiments import EXPERIMENTS, Experiment, ExperimentConfig
from thinkscope.experiments.tokens import token_category
from thinkscope.runstore.folder import Run

GYM = "gym:basic_arithmetic?min_terms=2&max_terms=2&min_digits=1&max_digits=1"


def _config(tiny_model_dir, out, **overrides):
    values = dict(
        out=out,
        model=str(tiny_model_dir),
        task=GYM,
        questions=2,
        samples_per_question=5,
        max_new_tokens=6,
        temperature=1.0,
    )
    return ExperimentConfig(**{**values, **overrides})


@pytest.fixture(scope="module")
def lm(tiny_model_dir):
    from thinkscope.models import load_model

    return load_model(str(tiny_model_dir))


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_every_experiment_writes_its_table_and_figure(name, tiny_model_dir, lm, tmp_path):
    plot = tmp_path / "elsewhere" / "main.png"
    exp = Experiment(name, _config(tiny_model_dir, tmp_path / name, plot_out=plot), lm=lm)
    table = EXPERIMENTS[name](exp)
    assert len(table) > 0
    assert pd.read_csv(exp.out / "results.csv").shape == table.shape
    assert list((exp.out / "figures").glob("*.png")) and plot.is_file()
    assert (exp.out / "experiment.yaml").is_file()
    with pytest.raises(UserError, match="finished experiment"):
        Experiment(name, exp.config, lm=lm)


def test_threshold_sweep_agrees_with_the_scorer_at_its_own_threshold(tiny_model_dir, lm, tmp_path):
    exp = Experiment("threshold-sweep", _config(tiny_model_dir, tmp_path / "t"), lm=lm)
    table = EXPERIMENTS["threshold-sweep"](exp).set_index("g")
    scored = Run.open(exp.out / "runs" / "main").traces()
    assert table.loc[0.5, "mean_dtr"] == pytest.approx(np.nanmean(scored["dtr"]), abs=1e-12)
    assert table["mean_settling_depth"].is_monotonic_decreasing  # a higher g settles earlier


def test_temperature_sweep_reuses_finished_runs(tiny_model_dir, lm, tmp_path):
    config = _config(tiny_model_dir, tmp_path / "temp")
    first = EXPERIMENTS["temperature-sweep"](Experiment("temperature-sweep", config, lm=lm))
    (config.out / "results.csv").unlink()
    again = EXPERIMENTS["temperature-sweep"](Experiment("temperature-sweep", config, lm=lm))
    pd.testing.assert_frame_equal(first, again)
    greedy = Run.open(config.out / "runs" / "temperature-0.0").traces()
    assert greedy["sample_idx"].max() == 0  # greedy draws one sample per question


@pytest.mark.parametrize(
    ("text", "special", "category"),
    [
        ("12", False, "digit"),
        (" 3.5", False, "digit"),
        (" +", False, "operator"),
        ("=", False, "operator"),
        (" answer", False, "word"),
        (".", False, "punctuation"),
        ("\n", False, "whitespace"),
        ("<|im_end|>", True, "special"),
    ],
)
def test_token_categories(text, special, category):
    assert token_category(text, special) == category
