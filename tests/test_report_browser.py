"""report.html in headless Chromium (:mod:`chromium`): it loads, filters and inspects tokens."""

from __future__ import annotations

import json

from chromium import BROWSER
from scored_run import VocabTokenizer, make_scored_run

pytestmark = BROWSER


def test_report_loads_filters_and_inspects_tokens(tmp_path, monkeypatch, browser, artifacts):
    from thinkscope.analysis import build_report

    monkeypatch.setattr("thinkscope.models.load_tokenizer", lambda spec: VocabTokenizer())
    run = make_scored_run(tmp_path / "run", problems=6, n=6, n_layers=12, nan_rows=2)
    report = build_report(run, max_traces=2000)
    traces = json.loads((run / "analysis" / "metrics.json").read_text())["n_traces"]
    import pandas as pd

    wrong = int((~pd.read_parquet(run / "traces.parquet")["correct"]).sum())
    assert 0 < wrong < traces

    browser.call("Page.navigate", session=True, url=report.path.resolve().as_uri())
    browser.wait_event("Page.loadEventFired")
    rows = "document.querySelectorAll('#trace-list .trace-row').length"
    assert browser.js(rows) == traces
    assert browser.js("document.querySelectorAll('#figures img').length") == 5
    assert browser.js("document.querySelectorAll('#metric-table tbody tr').length") == 7
    tokens = browser.js("document.querySelectorAll('#tokens .tok').length")
    assert (
        tokens
        == browser.js(
            "JSON.parse(document.getElementById('report-data').textContent).traces[0].t.length"
        )
        > 0
    )

    browser.mouse("click", "[data-filter=wrong]")
    assert browser.js(rows) == wrong
    assert browser.js(
        "[...document.querySelectorAll('#trace-list .mark')].every(m => m.textContent === '✗')"
    )
    browser.mouse("click", "#trace-list .trace-row:nth-child(2)")
    assert browser.js("document.querySelector('#trace-head h3').textContent").endswith("✗ wrong")
    browser.mouse("hover", "#tokens .tok:nth-child(3)")
    assert browser.js("document.querySelectorAll('#inspector svg circle').length") == 12
    assert "settles at layer" in browser.js("document.getElementById('inspector').textContent")

    browser.screenshot(artifacts / "report.png")
    assert (artifacts / "report.png").stat().st_size > 10_000
    assert browser.errors() == []
