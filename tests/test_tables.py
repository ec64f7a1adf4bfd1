"""Tables for a person and for a script: ``cli/tables.py`` and ``--format`` on the commands that
print tables (json/csv carry the numbers the command wrote; the table fits 80 columns)."""

import io
import json

import pandas as pd
import pytest
from rich.console import Console

from select_fixture import arithmetic_task
from thinkscope.analysis.console import metric_rich_table
from thinkscope.cli.app import main
from thinkscope.cli.tables import Format, print_mapping, print_table
from thinkscope.cli.think_at_n import selection_columns
from thinkscope.core.tables import Col, fit_table, shorten_left
from thinkscope.runstore.registry import list_runs, record
from thinkscope.select.experiment import METHODS

GYM = "gym:basic_arithmetic?min_terms=2&max_terms=2&min_digits=1&max_digits=1"

FRAME = pd.DataFrame(
    {
        "method": ["think@n", "think@n-depth", "self-certainty@n"],
        "accuracy": [1 / 3, 0.1 + 0.2, float("nan")],
        "tokens": [123456, 7, 0],
    }
)


def _run(capsys, *args) -> tuple[str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    out, err = capsys.readouterr()
    assert exit_info.value.code in (0, None), err
    return out, err


def _render(table, width: int = 80) -> list[str]:
    console = Console(width=width, file=io.StringIO(), color_system=None)
    console.print(table)
    return console.file.getvalue().splitlines()


def test_json_and_csv_carry_exact_values_and_round_trip(capsys):
    print_table(FRAME, Format.json)
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["accuracy"] == 1 / 3 and rows[1]["accuracy"] == 0.1 + 0.2  # not 0.3
    assert rows[2]["accuracy"] is None  # NaN is null: valid JSON
    pd.testing.assert_frame_equal(pd.DataFrame(rows).fillna(float("nan")), FRAME)
    print_table(FRAME, Format.csv)
    text = capsys.readouterr().out
    back = pd.read_csv(io.StringIO(text), float_precision="round_trip")
    pd.testing.assert_frame_equal(back, FRAME)


def test_a_table_at_80_columns_wraps_no_cell_and_keeps_names_whole():
    rows = [
        {"method": m, "path": f"/very/long/home/of/someone/runs/run-{i:03d}", "x": 1.5, "y": 2.5}
        for i, m in enumerate(["think@n-depth-and-then-some", "think@n-depth-and-more"])
    ]
    columns = [
        Col("method", role="name"),
        Col("path", role="path"),
        Col("x", "a wide numeric header", show=".3f", drop=2),
        Col("y", "another wide header", show=".3f", drop=1),
    ]
    lines = _render(fit_table(rows, columns, 64), 64)
    assert all(len(line) <= 64 for line in lines)
    body = [line for line in lines if "think@n" in line]
    assert len(body) == 2  # one line per row: nothing wrapped
    assert "think@n-depth-and-then-some" in body[0] and "…/run-000" in body[0]
    header = lines[1]  # the highest drop went, the next one fits
    assert "another wide header" in header and "a wide numeric header" not in header
    assert "not shown at 64 columns: a wide numeric header" in " ".join(lines)


def test_paths_are_shortened_from_the_left_at_a_separator():
    assert shorten_left("/home/me/work/runs/abc", 12) == "…/runs/abc"
    assert shorten_left("/short", 12) == "/short"
    assert shorten_left("abcdefghijklmnop", 5) == "…mnop"
    assert len(shorten_left("/a/" + "x" * 30, 10)) == 10


@pytest.mark.parametrize("repeats", [1, 3])
def test_think_at_n_table_at_80_columns(repeats):
    table = pd.DataFrame(
        {
            "method": list(METHODS),
            "accuracy": 0.4567,
            "accuracy_std": 0.0 if repeats == 1 else 0.0123,
            "tokens": 123456.0,
            "prefill_tokens": 23456.0,
            "relative_cost": 0.53,
            "voters": 4.5,
            "pool_mismatches": 0,
            "wall_s": 12.5,
            "lens_s": 123.4,
            "lens_gflop": 123456.0,
        }
    )
    columns = selection_columns(repeats)
    lines = _render(fit_table(table.to_dict(orient="records"), columns, 80))
    assert all(len(line) <= 80 for line in lines)
    starts = [line.split()[0] for line in lines if line.strip()]
    assert all(starts.count(method) == 1 for method in METHODS)  # whole, distinct, one line
    assert ("± std" in lines[1]) == (repeats > 1) and "0.000" not in "\n".join(lines)


def test_runs_list_at_80_columns_and_as_json(capsys, monkeypatch, tmp_path):
    deep = tmp_path / ("a-rather-long-folder-name" * 3) / "runs"
    for i in range(3):
        config = {"model": f"/models/some/where/model-{i}", "task": GYM}
        record(
            deep / f"run-{i}",
            "generate",
            f"2026-01-0{i + 1}T10:00:00+00:00",
            "finished",
            config,
            {"accuracy": i / 3},
        )
    monkeypatch.setenv("COLUMNS", "80")
    out, _ = _run(capsys, "runs", "list")
    lines = out.splitlines()
    assert all(len(line) <= 80 for line in lines)
    for i in range(3):
        assert sum(f"…/runs/run-{i}" in line for line in lines) == 1
    out, err = _run(capsys, "runs", "list", "--format", "json")
    rows = json.loads(out)
    assert [r["path"] for r in rows] == [r["path"] for r in list_runs()]  # full paths
    assert [r["accuracy"] for r in rows] == [0, 1 / 3, 2 / 3] and err == ""
    out, _ = _run(capsys, "runs", "list", "--format", "csv")
    assert pd.read_csv(io.StringIO(out))["path"].tolist() == [r["path"] for r in rows]


def _records_equal(printed: list[dict], written: pd.DataFrame) -> None:
    frame = pd.DataFrame(printed).reindex(columns=written.columns)
    frame = frame.astype(written.dtypes.to_dict())  # json's null is the csv's empty NaN
    pd.testing.assert_frame_equal(frame, written, check_dtype=False)


def test_think_at_n_json_is_the_selection_csv(capsys, tmp_path, tiny_model_dir):
    task = arithmetic_task(tmp_path)
    out = tmp_path / "sel"
    printed, err = _run(
        capsys,
        "think-at-n", "--model", str(tiny_model_dir), "--task", f"jsonl:{task}",
        "--questions", "3", "--n", "4", "--prefix-tokens", "3", "--repeats", "1",
        "--max-new-tokens", "6", "--prompt-style", "cot", "--window", "3",
        "--out", str(out), "--format", "json",
    )  # fmt: skip
    written = pd.read_csv(out / "selection.csv", float_precision="round_trip")
    _records_equal(json.loads(printed), written)
    assert "selection.csv" in err  # the messages went to stderr


def test_decode_sweep_and_decoding_report_json_are_their_files(capsys, tmp_path, tiny_model_dir):
    configs = tmp_path / "sweep.yaml"
    configs.write_text("greedy: {temperature: 0}\nhot: {temperature: 1.0, log_steps: true}\n")
    out = tmp_path / "sweep"
    common = ["--model", str(tiny_model_dir), "--task", GYM, "--questions", "2", "--n", "2"]
    printed, _ = _run(
        capsys, "decode-sweep", *common, "--max-new-tokens", "4", "--configs", str(configs),
        "--out", str(out), "--format", "json",
    )  # fmt: skip
    _records_equal(json.loads(printed), pd.read_csv(out / "results.csv"))
    run = out / "runs" / "hot"
    printed, _ = _run(capsys, "decoding-report", str(run), "--format", "json")
    tables = json.loads(printed)
    assert list(tables) == ["low_confidence", "off_top", "mean_rank"]
    for name, rows in tables.items():
        written = pd.read_csv(run / "decoding" / f"{name}.csv", float_precision="round_trip")
        _records_equal(rows, written)
    printed, _ = _run(capsys, "decoding-report", str(run), "--format", "csv")
    assert set(pd.read_csv(io.StringIO(printed))["table"]) == set(tables)


def test_the_metric_table_keeps_long_metric_names_whole_at_80_columns():
    names = ["dtr", "dtr[base=2,g=0.5,rho=0.9]", "median-settling-depth"]
    metrics = pd.DataFrame(
        {
            "metric": names,
            "n": 1234,
            "auroc": [0.61234, float("nan"), 0.5],
            "auroc_lo": 0.55,
            "auroc_hi": 0.67,
            "r_binned": -0.123,
            "partial_r": 0.456,
            "partial_p": 1.2e-5,
            "delong_p_vs_dtr": 0.0123,
        }
    )
    lines = _render(metric_rich_table(metrics, 80))
    assert all(len(line) <= 80 for line in lines)
    for name in names:  # whole, on one line, with its whole count
        assert sum(line.split()[:2] == [name, "1234"] for line in lines if line.strip()) == 1
    assert "0.612 [0.55,0.67]" in "\n".join(lines) and "…" not in "\n".join(lines)
    assert "DeLong" in " ".join(lines[-3:])  # left out, and said so
    wide = _render(metric_rich_table(metrics, 120), 120)
    assert "DeLong" in wide[2] and "0.012" in wide[4]  # title, blank, header, rule, dtr


def test_the_known_metrics_name_rev_once():
    from thinkscope.core.errors import UserError
    from thinkscope.metrics import parse_metrics

    with pytest.raises(UserError) as error:
        parse_metrics("nope")
    known = str(error.value).split("known: ")[1].split(", ")
    assert "rev" in known and len(known) == len(set(known))


def test_a_summary_is_one_json_object_and_two_columns_for_a_person(capsys):
    summary = {"samples": 4, "accuracy": 1 / 3, "run": "/a/very/long/home/of/someone/runs/abc"}
    print_mapping(summary, Format.json)
    assert json.loads(capsys.readouterr().out) == summary
    console = Console(width=30, file=io.StringIO(), color_system=None)
    print_mapping(summary, Format.table, console)
    lines = console.file.getvalue().splitlines()
    assert [line.split() for line in lines if line.strip()] == [
        ["samples", "4"],
        ["accuracy", "0.3333"],
        ["run", "…/someone/runs/abc"],
    ]


def test_dataset_build_json_is_its_filter_counts_and_messages_go_to_stderr(capsys, tmp_path):
    from dataset_fixture import make_run

    run, out = make_run(tmp_path / "run"), tmp_path / "data"
    args = ["dataset", "build", str(run), "--out", str(out), "--require-correct"]
    printed, err = _run(capsys, *args, "--format", "json", "--dataset-format", "messages")
    steps = json.loads(printed)  # stdout is the table alone
    assert [s["filter"] for s in steps] == ["--require-correct", "--truncated exclude"]
    assert all(s["before"] - s["kept"] == s["dropped"] for s in steps)
    card = (out / "README.md").read_text()
    for s in steps:
        assert f"| `{s['filter']}` | {s['before']} | {s['kept']} | {s['dropped']} |" in card
    assert "sft_correct" in err and '"messages"' in (out / "sft_all.jsonl").read_text()
