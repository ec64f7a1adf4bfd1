"""thinkscope report: a self-contained page with the right data (the browser test loads it)."""

import base64
import importlib.util
import json
import math
import os
import re
from html.parser import HTMLParser

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from scored_run import VOCAB, VocabTokenizer, make_scored_run
from thinkscope.analysis import (
    analyze_run,
    build_report,
    load_scored,
    load_token_metrics,
)
from thinkscope.analysis.viewer import token_text
from thinkscope.cli.report import report_command
from thinkscope.core.errors import UserError


class _Page(HTMLParser):
    """Collects the inline JSON, the external references and the element ids of a page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.data, self.refs, self.ids, self.imgs, self._in_data = "", [], set(), [], False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.ids.add(attrs.get("id"))
        self.refs += [
            attrs[k] for k in ("src", "href") if k in attrs and not attrs[k].startswith("data:")
        ]
        self.imgs += [attrs["src"]] if tag == "img" else []
        self._in_data = attrs.get("id") == "report-data"

    def handle_endtag(self, tag):
        self._in_data = False

    def handle_data(self, data):
        if self._in_data:
            self.data += data


@pytest.fixture
def tokenizer(monkeypatch):
    monkeypatch.setattr("thinkscope.models.load_tokenizer", lambda spec: VocabTokenizer())


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_scored_run(tmp_path_factory.mktemp("r") / "run", problems=5, n=4, nan_rows=2)


def test_page_is_self_contained_with_summary_table_figures_and_data(run, tokenizer):
    report = build_report(run)
    text = report.path.read_text(encoding="utf-8")
    page = _Page(text)
    assert page.refs == []  # no stylesheet, script, image or font is fetched
    assert len(page.imgs) == 5 and all(i.startswith("data:image/png;base64,") for i in page.imgs)
    assert {"summary", "metric-table", "figures", "trace-list", "tokens", "inspector"} <= page.ids
    for needle in (
        "fake-model",
        "demo-arith",
        "100.0 tokens/s",
        "dtr[g=0.6]",
        "2 NaN value(s)",
        "self-certainty: 2 of 20 values are NaN",
    ):
        assert needle in text
    assert "</script>" not in page.data and "<" not in page.data  # cannot end its script early
    data = json.loads(page.data)
    assert len(data["traces"]) == data["total"] == 20 == report.n_traces
    assert data["n_layers"] == 8 and data["deep_layer"] == 7 and data["g"] == 0.5
    assert data["metrics"][data["dtr"]] == "dtr" and data["decoded"]


def test_tokens_and_per_token_arrays_round_trip(run, tokenizer):
    data = json.loads(_Page(build_report(run).path.read_text(encoding="utf-8")).data)
    scored = load_scored(run)
    tokens = load_token_metrics(scored)
    for i, trace in enumerate(data["traces"]):
        ids = scored.traces.at[i, "token_ids"]
        assert [data["vocab"][k] for k in trace["t"]] == [VOCAB[t] for t in ids]
        assert trace["ok"] == bool(scored.traces.at[i, "correct"])
        depth, jsd = tokens.of(i)
        assert np.frombuffer(base64.b64decode(trace["d"]), np.uint8).tolist() == depth.tolist()
        q = np.frombuffer(base64.b64decode(trace["j"]), np.uint8).reshape(jsd.shape)
        assert np.abs(q / 255 * math.log(2) - jsd).max() <= math.log(2) / 510 + 1e-6
    assert data["traces"][0]["m"][data["metrics"].index("self-certainty")] is None  # NaN


def test_analysis_is_rerun_only_when_missing_or_stale(tmp_path, tokenizer):
    run = make_scored_run(tmp_path / "run")
    assert build_report(run).reanalysed
    assert not build_report(run).reanalysed
    stamp = (run / "analysis" / "metrics.json").stat().st_mtime + 5
    os.utime(run / "scores.json", (stamp, stamp))
    assert build_report(run).reanalysed


def test_large_runs_are_subsampled_for_the_viewer(tmp_path, tokenizer):
    run = make_scored_run(tmp_path / "run", problems=5, n=6)
    analyze_run(run, resamples=0)
    report = build_report(run, max_traces=7)
    data = json.loads(_Page(report.path.read_text(encoding="utf-8")).data)
    assert (len(data["traces"]), data["total"], report.n_traces) == (7, 30, 7)
    assert any("viewer shows 7 of 30 traces" in n for n in report.notices)


def test_without_tokenizer_or_token_metrics_the_page_still_builds(tmp_path, monkeypatch):
    def unavailable(spec):
        raise UserError(f"unknown model {spec!r}: its tokenizer is not available")

    monkeypatch.setattr("thinkscope.models.load_tokenizer", unavailable)
    run = make_scored_run(tmp_path / "run", token_metrics=False)
    report = build_report(run, out=tmp_path / "elsewhere" / "page.html")
    data = json.loads(_Page(report.path.read_text(encoding="utf-8")).data)
    assert report.path == tmp_path / "elsewhere" / "page.html"
    assert not data["decoded"] and data["n_layers"] is None and "d" not in data["traces"][0]
    assert re.fullmatch(r"⟨\d+⟩", data["vocab"][0])
    assert "tokens shown as ids" in report.notices[0]


def test_report_command_and_unscored_run(tmp_path, tokenizer):
    app = typer.Typer()
    app.command()(report_command)
    run = make_scored_run(tmp_path / "run")
    result = CliRunner().invoke(app, [str(run)])
    assert result.exit_code == 0, result.output
    assert (
        "ran `thinkscope analyze`" in result.output and "16 traces in the viewer" in result.output
    )
    (run / "scores.json").unlink()
    result = CliRunner().invoke(app, [str(run)])
    assert isinstance(result.exception, UserError)
    assert "has no metric columns; run `thinkscope score" in str(result.exception)


class _SentencePiece:
    def decode(self, ids, **_):
        return {5: "the", 6: "<0x0A>"}[ids[0]].replace("<0x0A>", "\n")

    def convert_ids_to_tokens(self, i):
        return {5: "▁the", 6: "<0x0A>"}[i]


def test_token_text_keeps_sentencepiece_word_starts():
    assert token_text(_SentencePiece(), 5) == " the"
    assert token_text(_SentencePiece(), 6) == "\n"


@pytest.mark.integration
@pytest.mark.skipif(
    importlib.util.find_spec("thinkscope.scoring") is None, reason="scoring stage not installed"
)
def test_real_tiny_run_generated_scored_analysed_and_reported(tmp_path, bundled_lm):
    from thinkscope.generation.pipeline import GenerateConfig, generate_run
    from thinkscope.scoring import score

    config = GenerateConfig(
        model="smollm2-135m",
        task="demo-arith",
        questions=4,
        n=4,
        max_new_tokens=24,
        prompt_style="fewshot",
    )
    run = generate_run(config, tmp_path / "run", lm=bundled_lm, show_progress=False).path
    score(
        bundled_lm,
        run,
        metrics="dtr,length,logprob,self-certainty,jsd-profile",
        show_progress=False,
    )
    columns = list(json.loads((run / "scores.json").read_text())["columns"])
    analysis = analyze_run(run, resamples=200)
    assert analysis.metrics["metric"].tolist() == columns
    assert {"settling_depth.png", "jsd_by_layer.png"} <= set(analysis.figures)
    report = build_report(run)
    data = json.loads(_Page(report.path.read_text(encoding="utf-8")).data)
    assert len(data["traces"]) == 16 and data["decoded"]
    assert data["n_layers"] == bundled_lm.n_layers
    traces = load_scored(run).traces
    for i, trace in enumerate(data["traces"]):
        text = "".join(data["vocab"][k] for k in trace["t"])
        assert text.startswith(traces.at[i, "completion"].strip()[:8])
        assert len(base64.b64decode(trace["d"])) == traces.at[i, "n_tokens"]
