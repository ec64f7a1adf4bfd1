"""thinkscope analyze: the metric table, quintiles, figures and bad input, on fake scored runs."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from scored_run import make_scored_run
from thinkscope.analysis import analyze_run, load_scored, load_token_metrics
from thinkscope.cli.analyze import analyze_command
from thinkscope.core.errors import UserError
from thinkscope.stats import auroc, binned_correlation, delong_test, partial_correlation

METRICS = [
    "dtr",
    "dtr[g=0.6]",
    "length",
    "logprob",
    "neg-entropy",
    "self-certainty",
    "mean-settling-depth",
]
FIGURES = {
    "auroc.png",
    "accuracy_by_dtr_quintile.png",
    "settling_depth.png",
    "jsd_by_layer.png",
    "dtr_vs_length.png",
}


def _cli(*args: str):
    app = typer.Typer()
    app.command()(analyze_command)
    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    run = make_scored_run(tmp_path_factory.mktemp("a") / "run", problems=8, n=10, nan_rows=3)
    return run, analyze_run(run, resamples=500)


def test_table_has_one_row_per_metric_column_with_the_stats_values(analysed):
    run, result = analysed
    table = pd.read_csv(run / "analysis" / "metrics.csv", keep_default_na=False, na_values=[""])
    assert table["metric"].tolist() == METRICS
    required = [
        "metric",
        "n",
        "auroc",
        "auroc_lo",
        "auroc_hi",
        "r_binned",
        "partial_r",
        "partial_p",
        "n_nan",
        "delong_p_vs_dtr",
        "note",
    ]
    assert set(required) <= set(table.columns)

    traces = pd.read_parquet(run / "traces.parquet")
    y = traces["correct"].to_numpy()
    row = table.set_index("metric").loc["self-certainty"]
    ref = auroc(traces["self-certainty"], y, n_resamples=500)
    assert (row["n"], row["n_nan"]) == (len(traces) - 3, 3)
    assert row[["auroc", "auroc_lo", "auroc_hi"]].tolist() == pytest.approx(
        [ref.auroc, ref.lo, ref.hi]
    )
    assert row["r_binned"] == pytest.approx(binned_correlation(traces, "self-certainty").r)
    assert row["delong_p_vs_dtr"] == pytest.approx(
        delong_test(traces["self-certainty"], traces["dtr"], y).p
    )
    assert "3 NaN" in row["note"]

    ppl = np.exp(-traces["token_logprobs"].map(np.mean).astype(float))
    frame = traces.assign(perplexity=ppl, correct=y.astype(float))
    partial = partial_correlation(frame, "dtr", "correct", ("length", "perplexity"))
    dtr = table.set_index("metric").loc["dtr"]
    assert (dtr["partial_r"], dtr["partial_p"]) == pytest.approx((partial.r, partial.p))
    # independent references: Mann-Whitney by pairs (ties count 1/2), OLS residuals
    for metric in ("dtr", "self-certainty", "mean-settling-depth"):
        s = traces[metric].to_numpy(float)
        ok = ~np.isnan(s)
        pos, neg = s[ok & y], s[ok & ~y]
        pairs = sum((a > b) + 0.5 * (a == b) for a in pos for b in neg)
        assert table.set_index("metric").loc[metric, "auroc"] == pytest.approx(
            pairs / (len(pos) * len(neg)), abs=1e-12
        )
    design = np.column_stack([np.ones(len(frame)), frame["length"], ppl])

    def residual(v):
        return v - design @ np.linalg.lstsq(design, v, rcond=None)[0]

    r = np.corrcoef(residual(frame["dtr"].to_numpy(float)), residual(y.astype(float)))[0, 1]
    assert dtr["partial_r"] == pytest.approx(r, abs=1e-9)
    assert math.isnan(dtr["delong_p_vs_dtr"])
    assert "covariate" in table.set_index("metric").loc["length", "note"]


def test_json_quintiles_and_figures_are_written(analysed):
    run, result = analysed
    data = json.loads((run / "analysis" / "metrics.json").read_text())  # strict: no NaN tokens
    assert [m["metric"] for m in data["metrics"]] == METRICS
    assert data["settings"]["resamples"] == 500 and data["settings"]["reference"] == "dtr"
    quintiles = pd.read_csv(run / "analysis" / "quintiles.csv")
    assert (
        quintiles.groupby("metric")["bin"].apply(list) == [[0, 1, 2, 3, 4]] * len(METRICS)
    ).all()
    assert quintiles.set_index("metric").loc["self-certainty", "n"].sum() == 77
    assert set(result.figures) == FIGURES == set(data["figures"])
    for name in FIGURES:
        assert (run / "analysis" / "figures" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.notices == ["self-certainty: 3 of 80 values are NaN and were left out"]


@pytest.mark.parametrize("outcome", ["correct", "wrong"])
def test_single_class_run_gives_nan_with_a_note_not_a_crash(tmp_path, outcome):
    run = make_scored_run(tmp_path / "run", outcome=outcome)
    result = _cli(str(run), "--resamples", "200")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(run / "analysis" / "metrics.csv")
    assert (
        table[["auroc", "auroc_lo", "r_binned", "partial_r", "delong_p_vs_dtr"]].isna().all().all()
    )
    assert table["note"].str.contains(f"all 16 scored samples {outcome}").all()
    notice = f"all 16 samples are {outcome}: AUROC, DeLong and the correlations are undefined"
    assert result.output.count(notice) == 1
    assert "auroc.png skipped" in result.output
    assert (run / "analysis" / "figures" / "accuracy_by_dtr_quintile.png").is_file()


def test_cli_prints_the_table_and_the_nan_count(tmp_path):
    run = make_scored_run(tmp_path / "run", nan_rows=5)
    result = _cli(str(run), "--resamples", "100", "--seeds", "3")
    assert result.exit_code == 0, result.output
    for name in METRICS:
        assert name in result.output
    assert "self-certainty: 5 of 16 values are NaN and were left out" in result.output
    assert (
        "r_binned needs at least 5 samples per question (one per bin); this run has at most 4"
        in (result.output)
    )
    assert "4 figures" not in result.output and "5 figures" in result.output


def test_unscored_run_says_which_command_to_run(tmp_path):
    run = make_scored_run(tmp_path / "run")
    (run / "scores.json").unlink()
    with pytest.raises(
        UserError, match=r"has no metric columns; run `thinkscope score .*run` first"
    ):
        analyze_run(run)
    result = _cli(str(run))
    assert result.exit_code != 0 and isinstance(result.exception, UserError)
    assert "\n" not in str(result.exception)
    with pytest.raises(UserError, match="not found"):
        analyze_run(tmp_path / "nowhere")


def _edit_scores(run, edit) -> None:
    record = json.loads((run / "scores.json").read_text())
    edit(record["columns"])
    (run / "scores.json").write_text(json.dumps(record))


def test_scores_json_naming_missing_columns_is_an_error(tmp_path):
    run = make_scored_run(tmp_path / "run")
    _edit_scores(run, lambda columns: columns.update({"dtr[rho=0.9]": {"metric": "dtr"}}))
    with pytest.raises(UserError, match=r"lacks them; run `thinkscope score"):
        load_scored(run)


def test_token_metrics_are_aligned_to_traces_in_any_row_order(tmp_path):
    run = make_scored_run(tmp_path / "run", problems=3, n=3)
    scored = load_scored(run)
    before = load_token_metrics(scored)
    table = pd.read_parquet(run / "token_metrics.parquet")
    table.iloc[::-1].drop(index=4).to_parquet(run / "token_metrics.parquet", index=False)
    after = load_token_metrics(scored)
    assert after.n_layers == 8 and after.lengths()[4] == 0
    for i in range(len(scored.traces)):
        if i != 4:
            assert np.array_equal(after.of(i)[0], before.of(i)[0])
            assert np.array_equal(after.of(i)[1], before.of(i)[1])
    assert before.lengths().tolist() == scored.traces["n_tokens"].tolist()


def test_without_token_metrics_or_dtr_figures_are_skipped_with_notices(tmp_path):
    run = make_scored_run(tmp_path / "run", token_metrics=False)
    _edit_scores(run, lambda columns: [columns.pop(c) for c in ("dtr", "dtr[g=0.6]")])
    result = analyze_run(run, resamples=0)
    assert result.figures == ["auroc.png"]
    assert result.metrics["delong_p_vs_dtr"].isna().all()
    assert any("no DTR column" in n for n in result.notices)
    assert any("settling_depth.png skipped" in n for n in result.notices)


def test_dtr_variant_is_the_reference_when_plain_dtr_is_absent(tmp_path):
    run = make_scored_run(tmp_path / "run")
    _edit_scores(run, lambda columns: columns.pop("dtr"))
    scored = load_scored(run)
    assert scored.dtr_column == "dtr[g=0.6]" and scored.dtr_params["g"] == 0.6
    tokens = pd.read_parquet(run / "token_metrics.parquet")
    tokens["settling_depth[g=0.6]"] = tokens["settling_depth"].map(lambda d: d + 1)
    tokens.to_parquet(run / "token_metrics.parquet", index=False)
    first = scored.traces.at[0, "n_tokens"]
    assert (
        load_token_metrics(scored).settling[:first].tolist()
        == (tokens.at[0, "settling_depth"] + 1).tolist()
    )
    (run / "analysis" / "figures").mkdir(parents=True)
    (run / "analysis" / "figures" / "old.png").write_bytes(b"stale")
    result = analyze_run(run, resamples=0)
    assert "accuracy_by_dtr_quintile.png" in result.figures
    assert not (run / "analysis" / "figures" / "old.png").exists()


def test_flat_scores_json_and_a_run_without_jsd_profiles(tmp_path):
    run = make_scored_run(tmp_path / "run", layout="flat", jsd=None)
    scored = load_scored(run)
    assert scored.columns == METRICS
    tokens = load_token_metrics(scored)
    assert tokens.jsd is None and tokens.n_layers is None  # not guessed from the depths seen
    result = analyze_run(run, resamples=0)
    assert "jsd_by_layer.png" not in result.figures
    assert "settling_depth.png" not in result.figures
    assert any("records no layer count" in n for n in result.notices)
    record = json.loads((run / "scores.json").read_text())
    (run / "scores.json").write_text(json.dumps({**record, "n_layers": 12}))
    tokens = load_token_metrics(load_scored(run))
    assert tokens.n_layers == 12
    assert "settling_depth.png" in analyze_run(run, resamples=0).figures


def test_jsd_column_may_be_called_jsd(tmp_path):
    run = make_scored_run(tmp_path / "run", jsd="jsd", n_layers=6)
    tokens = load_token_metrics(load_scored(run))
    assert tokens.jsd.shape == (tokens.offsets[-1], 6) and tokens.n_layers == 6


def test_constant_and_identical_metrics_get_a_note(tmp_path):
    """DeepConf's windowed metrics equal token-conf when every trace fits in one window."""
    run = make_scored_run(tmp_path / "run", problems=4, n=5, tokens=(8, 40))
    traces = pd.read_parquet(run / "traces.parquet")
    conf = np.random.default_rng(1).normal(2.0, 0.3, len(traces))
    traces = traces.assign(
        **{"token-conf": conf, "group-conf-lowest": conf, "tail-conf": conf, "temperature": 0.7}
    )
    traces.to_parquet(run / "traces.parquet", index=False)

    def add(columns):
        columns["token-conf"] = {"metric": "token-conf", "params": {}}
        for name in ("group-conf-lowest", "tail-conf"):
            columns[name] = {"metric": name, "params": {"window": 2048}}
        columns["temperature"] = {"metric": "temperature", "params": {}}

    _edit_scores(run, add)
    notes = analyze_run(run, resamples=0).metrics.set_index("metric")["note"]
    assert "identical" not in notes["token-conf"] and "window" not in notes["token-conf"]
    for name in ("group-conf-lowest", "tail-conf"):
        assert "identical to token-conf on every trace" in notes[name]
        assert "one DeepConf window of 2048" in notes[name]
        assert f"at most {traces['n_tokens'].max()} tokens" in notes[name]
    assert notes["temperature"].startswith("constant (0.7) on every trace")
    for name in ("dtr", "logprob", "self-certainty"):  # informative columns get no such note
        assert "identical" not in notes[name] and "constant" not in notes[name]
