"""``runs export --csv`` and ``runs best --by``: the registry as CSV, the best run by a column."""

from __future__ import annotations

import csv

from typer.testing import CliRunner

from thinkscope.cli.app import app
from thinkscope.runstore.registry import record


def _register(tmp_path) -> None:
    for name, created, delta in (("a", "2026-01-01", 0.02), ("b", "2026-01-02", 0.09)):
        record(
            tmp_path / name,
            "experiment rev",
            created,
            "finished",
            {"models": ["m", "n"]},
            {"delta_auc": delta, "runs": 2},
        )
    record(tmp_path / "c", "generate", "2026-01-03", "finished", {"seed": 0}, {"accuracy": 0.5})


def test_export_writes_every_run_and_column(tmp_path):
    _register(tmp_path)
    out = tmp_path / "registry.csv"
    result = CliRunner().invoke(app, ["runs", "export", "--csv", str(out)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    assert [r["path"].rsplit("/", 1)[-1] for r in rows] == ["a", "b", "c"]
    assert list(rows[0])[:5] == ["id", "path", "kind", "created", "status"]
    assert rows[1]["summary.delta_auc"] == "0.09" and rows[2]["summary.delta_auc"] == ""
    assert rows[0]["config.models"] == '["m", "n"]' and rows[2]["config.seed"] == "0"


def test_best_names_the_highest_and_refuses_an_unknown_column(tmp_path):
    _register(tmp_path)
    runner = CliRunner()
    best = runner.invoke(app, ["runs", "best", "--by", "delta_auc", "--format", "csv"])
    assert best.exit_code == 0, best.output
    assert str(tmp_path / "b") in best.output and "summary.delta_auc" in best.output
    # the generate run, which has no delta_auc, is not a candidate; a full name works too
    full = runner.invoke(app, ["runs", "best", "--by", "summary.accuracy", "--format", "csv"])
    assert str(tmp_path / "c") in full.output
    wrong = runner.invoke(app, ["runs", "best", "--by", "delta"])
    message = str(wrong.exception)
    assert wrong.exit_code != 0 and "\n" not in message
    assert "not a registry column" in message and "summary.delta_auc" in message
