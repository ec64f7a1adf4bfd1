import numpy as np
import pandas as pd
import pytest

from scored_run import VOCAB, VocabTokenizer, make_scored_run
from thinkscope.core.errors import UserError
from thinkscope.experiments import EXPERIMENTS, Experiment, ExperimentConfig
from thinkscope.experiments.common import THRESHOLDS
from thinkscope.experiments.tokens import token_category
from thinkscope.models.spec import ModelSpec
from thinkscope.runstore.folder import Run

GYM = "gym:basic_arithmetic?min_terms=2&max_terms=2&min_digits=1&max_digits=1"


def _config(tiny_model_dir, out, **overrides):
    values = dict(
        out=out,
        model_spec=ModelSpec(model=str(tiny_model_dir)),
        task=GYM,
        questions=2,
        n=5,
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
    pd.testing.assert_frame_equal(
        pd.read_csv(exp.out / "results.csv"), table, check_dtype=False, check_exact=False
    )
    assert list((exp.out / "figures").glob("*.png")) and plot.is_file()
    assert (exp.out / "experiment.yaml").is_file()
    with pytest.raises(UserError, match="finished experiment"):
        Experiment(name, exp.config, lm=lm)


def test_threshold_sweep_agrees_with_the_scorer_at_its_own_threshold(tiny_model_dir, lm, tmp_path):
    exp = Experiment("threshold-sweep", _config(tiny_model_dir, tmp_path / "t"), lm=lm)
    table = EXPERIMENTS["threshold-sweep"](exp).set_index("g")
    scored = Run.open(exp.out / "runs" / "main").traces()
    assert table.loc[0.5, "mean_dtr"] == pytest.approx(np.nanmean(scored["dtr"]), abs=1e-12)


def test_temperature_sweep_runs_its_grid_and_reuses_finished_runs(tiny_model_dir, lm, tmp_path):
    config = _config(tiny_model_dir, tmp_path / "temp", temperatures=(0.0, 1.3))
    first = EXPERIMENTS["temperature-sweep"](Experiment("temperature-sweep", config, lm=lm))
    assert list(first["temperature"]) == [0.0, 1.3]  # the grid, not the default 0 / 0.4 / 0.8
    assert sorted(p.name for p in (config.out / "runs").iterdir()) == [
        "temperature-0.0",
        "temperature-1.3",
    ]
    assert Run.open(config.out / "runs" / "temperature-1.3").config["temperature"] == 1.3
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


# -- experiments on a reused scored run whose JSDs cross every threshold (``--run``) ---------
L_FAKE = 8


@pytest.fixture
def fake_run(tmp_path):
    """A scored run whose JSD curves fall from ln 2 through 0.1..0.7 at varied layers."""
    return make_scored_run(tmp_path / "run", problems=5, n=4, n_layers=L_FAKE, seed=3)


def _fake_experiment(name, fake_run, tmp_path, **overrides):
    config = ExperimentConfig(out=tmp_path / name, run=fake_run, **overrides)
    return Experiment(name, config, lm=None)


def plain_depth(row, g):
    """First 1-indexed layer whose JSD is <= g (L when none), by a loop."""
    for layer, value in enumerate(row, start=1):
        if value <= g:
            return layer
    return len(row)


def plain_profiles(run):
    tokens = pd.read_parquet(run / "token_metrics.parquet")
    return [[list(map(float, r)) for r in profile] for profile in tokens["jsd_profile"]]


def test_threshold_sweep_on_a_reused_run_matches_plain_loops(fake_run, tmp_path):
    table = EXPERIMENTS["threshold-sweep"](
        _fake_experiment("threshold-sweep", fake_run, tmp_path, rho=0.85)
    ).set_index("g")
    profiles = plain_profiles(fake_run)
    deep_from = 7  # ceil(0.85 * 8) = ceil(6.8)
    for g in table.index:
        depths = [[plain_depth(row, g) for row in profile] for profile in profiles]
        ratios = [sum(d >= deep_from for d in ds) / len(ds) for ds in depths]
        flat = [d for ds in depths for d in ds]
        assert table.loc[g, "mean_dtr"] == pytest.approx(sum(ratios) / len(ratios), abs=1e-7)
        assert table.loc[g, "mean_settling_depth"] == pytest.approx(sum(flat) / len(flat))
        assert table.loc[g, "share_settling_at_last_layer"] == pytest.approx(
            sum(d == L_FAKE for d in flat) / len(flat)
        )
    depth = table["mean_settling_depth"].to_numpy()
    assert (np.diff(depth) <= 0).all() and depth[0] - depth[-1] > 1  # not a constant column
    assert not (tmp_path / "threshold-sweep" / "runs").exists()  # nothing generated


def test_token_types_on_a_reused_run_match_plain_loops(fake_run, tmp_path, monkeypatch):
    class Tokenizer(VocabTokenizer):
        all_special_ids = [0]

    exp = _fake_experiment("token-types", fake_run, tmp_path, g=0.3, rho=0.75)
    monkeypatch.setattr(exp, "tokenizer", Tokenizer)
    table = EXPERIMENTS["token-types"](exp).set_index("category")
    traces = pd.read_parquet(fake_run / "traces.parquet")
    by_category: dict[str, list[int]] = {}
    for ids, profile in zip(traces["token_ids"], plain_profiles(fake_run), strict=True):
        for token, row in zip(ids, profile, strict=True):
            category = token_category(VOCAB[token], token == 0)
            by_category.setdefault(category, []).append(plain_depth(row, 0.3))
    assert set(table.index) == set(by_category)
    for category, depths in by_category.items():
        assert table.loc[category, "n_tokens"] == len(depths)
        assert table.loc[category, "mean_settling_depth"] == pytest.approx(np.mean(depths))
        assert table.loc[category, "deep_share"] == pytest.approx(
            np.mean([d >= 6 for d in depths])
        )  # ceil(0.75 * 8) = 6
    assert table["mean_settling_depth"].nunique() > 1


def test_jsd_diagnostic_and_length_vs_dtr_on_a_reused_run(fake_run, tmp_path):
    diag = EXPERIMENTS["jsd-diagnostic"](_fake_experiment("jsd-diagnostic", fake_run, tmp_path))
    traces = pd.read_parquet(fake_run / "traces.parquet")
    profiles = plain_profiles(fake_run)
    for layer in range(L_FAKE):
        values = [p[t][layer] for p in profiles for t in range(len(p))]
        wrong = [
            p[t][layer]
            for p, ok in zip(profiles, traces["correct"], strict=True)
            if not ok
            for t in range(len(p))
        ]
        assert diag.loc[layer, "mean_jsd"] == pytest.approx(np.mean(values), rel=1e-6)
        assert diag.loc[layer, "mean_jsd_wrong"] == pytest.approx(np.mean(wrong), rel=1e-6)
    assert diag["mean_jsd"].iloc[0] > 0.5 > diag["mean_jsd"].iloc[-2]  # falls through g

    table = EXPERIMENTS["length-vs-dtr"](
        _fake_experiment("length-vs-dtr", fake_run, tmp_path, g=0.4, rho=0.5)
    )
    ratios = [np.mean([plain_depth(r, 0.4) >= 4 for r in p]) for p in profiles]
    lengths = traces["n_tokens"].to_numpy(float)
    assert table.loc[0, "n"] == len(traces)
    assert table.loc[0, "pearson_r"] == pytest.approx(np.corrcoef(lengths, ratios)[0, 1])


def test_multi_run_experiments_refuse_a_reused_run(fake_run, tmp_path):
    with pytest.raises(UserError, match="does not take --run"):
        EXPERIMENTS["temperature-sweep"](_fake_experiment("temperature-sweep", fake_run, tmp_path))
    with pytest.raises(UserError, match="not found"):
        EXPERIMENTS["threshold-sweep"](
            _fake_experiment("threshold-sweep", tmp_path / "nope", tmp_path)
        )


def test_cli_runs_an_experiment_on_a_reused_run(fake_run, tmp_path):
    from typer.testing import CliRunner

    from thinkscope.cli.app import app

    out = tmp_path / "cli"
    result = CliRunner().invoke(
        app, ["experiment", "threshold-sweep", "--run", str(fake_run), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(out / "results.csv")) == len(THRESHOLDS) and not (out / "runs").exists()
    result = CliRunner().invoke(
        app, ["experiment", "cot-vs-direct", "--run", str(fake_run), "--out", str(tmp_path / "cot")]
    )
    assert result.exit_code == 2 and "No such option: --run" in result.output  # not offered


def test_threshold_sweep_runs_its_grid(fake_run, tmp_path):
    exp = _fake_experiment("threshold-sweep", fake_run, tmp_path, thresholds=(0.65, 0.15))
    table = EXPERIMENTS["threshold-sweep"](exp)
    assert list(table["g"]) == [0.65, 0.15]
    profiles = plain_profiles(fake_run)
    for g, depth in zip(table["g"], table["mean_settling_depth"], strict=True):
        flat = [plain_depth(row, g) for profile in profiles for row in profile]
        assert depth == pytest.approx(np.mean(flat))
    assert table["mean_settling_depth"].iloc[0] < table["mean_settling_depth"].iloc[1]


def _names(frame):
    return (frame["problem_id"] + ":" + frame["sample_idx"].astype(str)).tolist()


def test_jsd_diagnostic_plots_the_chosen_traces_and_records_them(fake_run, tmp_path):
    chosen = ("demo-003:2", "demo-000:1", "demo-004:0")
    exp = _fake_experiment("jsd-diagnostic", fake_run, tmp_path / "chosen", traces=chosen)
    EXPERIMENTS["jsd-diagnostic"](exp)
    plotted = pd.read_csv(exp.out / "plotted_traces.csv")
    assert _names(plotted) == list(chosen)
    traces = pd.read_parquet(fake_run / "traces.parquet").set_index(["problem_id", "sample_idx"])
    for row in plotted.itertuples():
        assert row.correct == traces.loc[(row.problem_id, row.sample_idx), "correct"]
        assert row.n_tokens == traces.loc[(row.problem_id, row.sample_idx), "n_tokens"]

    default = _fake_experiment("jsd-diagnostic", fake_run, tmp_path / "default")
    EXPERIMENTS["jsd-diagnostic"](default)
    first = pd.read_csv(default.out / "plotted_traces.csv")
    assert _names(first) == [
        "demo-000:0",
        "demo-000:1",
        "demo-000:2",
        "demo-000:3",
    ]

    missing = _fake_experiment("jsd-diagnostic", fake_run, tmp_path / "x", traces=("demo-009:0",))
    with pytest.raises(UserError, match="^--traces: the run has no trace demo-009:0"):
        EXPERIMENTS["jsd-diagnostic"](missing)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"thresholds": ()}, "^--g needs at least one value"),
        ({"thresholds": (0.0, 0.5)}, "^--g values must be > 0"),
        ({"thresholds": (0.5, 0.5)}, "^--g lists a value twice"),
        ({"temperatures": (-0.1,)}, "^--temperatures values must be >= 0"),
        ({"traces": ("demo-000",)}, "^--traces takes PROBLEM_ID:SAMPLE"),
    ],
)
def test_bad_grids_are_one_line_errors(overrides, message, tmp_path):
    with pytest.raises(UserError, match=message):
        ExperimentConfig(out=tmp_path, **overrides)


def _cli(*args):
    from click.testing import CliRunner

    from thinkscope.cli.app import COMMANDS, load

    return CliRunner().invoke(load("experiment", COMMANDS["experiment"]), list(map(str, args)))


def test_cli_grids_reach_the_experiment(fake_run, tmp_path):
    out = tmp_path / "grid"
    result = _cli("threshold-sweep", "--run", fake_run, "--out", out, "--g", "0.25,0.6")
    assert result.exit_code == 0, result.output
    assert list(pd.read_csv(out / "results.csv")["g"]) == [0.25, 0.6]
    out = tmp_path / "traces"
    result = _cli("jsd-diagnostic", "--run", fake_run, "--out", out, "--traces", "demo-001:3")
    assert result.exit_code == 0, result.output
    assert pd.read_csv(out / "plotted_traces.csv")["problem_id"].tolist() == ["demo-001"]
    result = _cli("threshold-sweep", "--run", fake_run, "--out", tmp_path / "bad", "--g", "0.2,x")
    assert isinstance(result.exception, UserError)
    assert str(result.exception) == "--g takes comma-separated numbers, got '0.2,x'"
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize(
    ("experiment", "option"),
    [
        ("temperature-sweep", "--temperature"),  # its grid is --temperatures
        ("temperature-sweep", "--run"),
        ("cot-vs-direct", "--prompt-style"),
        ("cot-vs-direct", "--run"),
        ("jsd-diagnostic", "--g"),
        ("jsd-diagnostic", "--rho"),
        ("threshold-sweep", "--traces"),
        ("dtr-accuracy", "--temperatures"),
    ],
)
def test_an_experiment_offers_only_the_options_it_uses(experiment, option, tmp_path):
    result = _cli(experiment, "--out", tmp_path, option, "1")
    assert result.exit_code == 2 and f"No such option: {option}" in result.output


def test_cli_defaults_are_the_config_defaults():
    """The CLI repeats ExperimentConfig's defaults (so --help imports no torch): they agree."""
    from thinkscope.cli.experiment import EXPERIMENT_OPTIONS, GRIDS

    defaults = {
        name: info.get_default(call_default_factory=True)
        for name, info in ExperimentConfig.model_fields.items()
    }
    for name, (_, options) in EXPERIMENT_OPTIONS.items():
        for option, (_, default, _) in options.items():
            field = GRIDS.get((name, option))
            if field is not None:
                assert tuple(map(float, default.split(","))) == defaults[field], (name, option)
            elif option == "tasks":  # a comma list of text
                assert tuple(default.split(",")) == defaults[option], (name, option)
            elif option != "traces":
                assert default == defaults[option], (name, option)


@pytest.mark.parametrize("option", [["--questions", "3"], ["--model", "other"]])
def test_a_reused_run_refuses_the_options_of_generated_ones(option, fake_run, tmp_path):
    out = tmp_path / "x"
    result = _cli("token-types", "--run", fake_run, "--out", out, *option)
    assert isinstance(result.exception, UserError)
    assert str(result.exception) == (
        f"{option[0]} sets up generated runs; --run reuses one: drop {option[0]}"
    )
    assert not out.exists()
