"""``decoding-report --samples``: the step report of an lm-eval samples file and its rank log
(thinkscope's step log or seed 003's list-per-line shape); ``calibrate``'s unconditional
means; figures as PDF beside the PNGs."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from thinkscope.cli.app import main
from thinkscope.experiments.decoding.calibrate import grid_of, unconditional_of
from thinkscope.experiments.decoding.figures import draw_calibration
from thinkscope.experiments.decoding.step_report import samples_report

#: per doc: (strict-match exact_match, flexible-extract exact_match, step_pmax, step_rank)
DOCS = [
    (1, 1, [0.9, 0.8, 0.7], [1, 1, 1]),
    (0, 1, [0.3, 0.9, 0.4], [1, 2, 1]),
    (0, 0, [0.2, 0.1, 0.45], [3, 1, 2]),
    (1, 1, [0.95, 0.6], [1, 1]),
    (0, 1, [0.49, 0.51], [1, 5]),
]


def _write(folder: Path) -> Path:
    samples = folder / "samples_t_D.jsonl"
    lines = []
    for doc, (strict, flexible, _, _) in reversed(list(enumerate(DOCS))):  # any doc order
        for name, value in (("strict-match", strict), ("flexible-extract", flexible)):
            lines.append(
                {
                    "doc_id": doc,
                    "resps": [[f"answer {doc}"]],
                    "filtered_resps": [f"{doc}" if value else "x"],
                    "filter": name,
                    "metrics": ["exact_match"],
                    "exact_match": float(value),
                }
            )
    samples.write_text("".join(json.dumps(s) + "\n" for s in lines))
    steps = [
        {"doc_id": d, "repeat": 0, "step_pmax": p, "step_rank": r}
        for d, (*_, p, r) in enumerate(DOCS)
    ]
    (folder / "steps_t_D.jsonl").write_text("".join(json.dumps(s) + "\n" for s in steps))
    return samples


def test_report_of_a_samples_file_against_hand_counts(tmp_path):
    report = samples_report(_write(tmp_path), threshold=0.5)
    low = report.tables["low_confidence"].set_index("count")
    # pmax < 0.5 steps per doc: 0, 2, 3, 0, 1; strict-match (the first filter) right: 1,0,0,1,0
    assert low.loc["0", "n"] == 2 and low.loc["0", "accuracy"] == 1.0
    assert low.loc["2", "n"] == 1 and low.loc["3", "n"] == 1 and low.loc["1", "n"] == 1
    assert low.loc["1", "accuracy"] == 0.0
    off = report.tables["off_top"].set_index("count")  # ranks > 1 per doc: 0, 1, 2, 0, 1
    assert off.loc["0", "n"] == 2 and off.loc["1", "n"] == 2 and off.loc["2", "n"] == 1
    s = report.summary
    assert s["samples"] == 5 and s["accuracy"] == 0.4 and s["share_off_top_tokens"] == 4 / 13
    assert s["mean_low_confidence_steps"] == 6 / 5 and report.path == tmp_path / "decoding_t_D"
    flexible = samples_report(_write(tmp_path), filter_name="flexible-extract")
    assert flexible.summary["accuracy"] == 0.8 and flexible.summary["threshold"] == 0.5


def test_a_seed_shape_rank_log_counts_its_listed_ranks(tmp_path):
    samples = _write(tmp_path)
    seed = tmp_path / "low_conf_ranks_t_D.jsonl"
    seed.write_text("[1, 2]\n[]\n[3, 1, 7]\n[1]\n[]\n")
    report = samples_report(samples, seed, out=tmp_path / "seed")
    low = report.tables["low_confidence"].set_index("count")
    assert [low.loc[k, "n"] for k in ("0", "1", "2", "3")] == [2, 1, 1, 1]
    assert report.summary["threshold"] is None
    assert report.summary["share_off_top_tokens"] == 3 / 6  # ranks listed: 1,2,3,1,7,1


def test_cli_reads_samples_and_writes_pdf_figures(tmp_path, capsys):
    samples = _write(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["decoding-report", "--samples", str(samples), "--figure-format", "pdf"])
    assert exit_info.value.code == 0
    figures = tmp_path / "decoding_t_D" / "figures"
    pdfs = sorted(p.name for p in figures.glob("*.pdf"))
    assert pdfs == sorted(p.name.replace(".png", ".pdf") for p in figures.glob("*.png"))
    assert len(pdfs) == 4 and (figures / pdfs[0]).read_bytes().startswith(b"%PDF")


def _error(capsys, *args: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(["decoding-report", *args])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code != 0 and "\n" not in err
    return err


def test_bad_samples_and_rank_logs_are_one_line(tmp_path, capsys):
    samples = _write(tmp_path)
    not_jsonl = tmp_path / "samples_x.jsonl"
    not_jsonl.write_text("{oops\n")
    other = tmp_path / "samples_y.jsonl"
    other.write_text('{"a": 1}\n')
    short = tmp_path / "short.jsonl"
    short.write_text("[1]\n")
    seed = tmp_path / "seed.jsonl"
    seed.write_text("[1]\n" * 5)
    repeated = tmp_path / "samples_r.jsonl"
    repeated.write_text(
        json.dumps(
            {
                "doc_id": 0,
                "resps": [["a", "b"]],
                "filtered_resps": ["a"],
                "metrics": ["exact_match"],
                "exact_match": 1.0,
            }
        )
        + "\n"
    )
    alone = tmp_path / "samples_z.jsonl"
    alone.write_text(samples.read_text())
    cases = {
        ("--samples", str(tmp_path / "none.jsonl")): "none.jsonl does not exist",
        ("--samples", str(not_jsonl)): "is not JSONL: line 1",
        ("--samples", str(other)): "is not an lm-eval samples file (no doc_id, filtered_resps",
        ("--samples", str(samples), "--ranks", str(short)): "has 1 lines for 5 responses",
        ("--samples", str(samples), "--filter", "nope"): "--filter 'nope' is not in",
        ("--samples", str(samples), "--ranks", str(seed), "--threshold", "0.5"): "drop --thresh",
        ("--samples", str(repeated), "--ranks", str(short)): "has several responses",
        ("--samples", str(other), str(tmp_path)): "give a RUN or --samples FILE",
        ("--samples", str(samples), "--bin-run", str(tmp_path)): "--bin-run goes with a RUN",
        ("--samples", str(alone)): "no rank log",
    }
    for args, message in cases.items():
        err = _error(capsys, *args)
        assert err.startswith("error: ") and message in err, (args, err)
    assert not (tmp_path / "decoding_t_D").exists()  # nothing written on a refused input


def test_unconditional_means_are_the_grid_rows_weighted_by_their_counts():
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(30):
        t = int(rng.integers(1, 8))
        top = np.sort(rng.dirichlet(np.full(5, 0.3), size=t), axis=1)[:, ::-1]
        rows.append({"top_probs": top.tolist(), "ref_rank": rng.integers(1, 8, t).tolist()})
    positions = pd.DataFrame(rows)
    grid, overall = grid_of(positions, top_k=5), unconditional_of(positions, top_k=5)
    prob = np.nan_to_num(np.array(grid["prob"], dtype=float))
    count = np.array(grid["count"])
    assert overall["count"] == count.sum()
    np.testing.assert_allclose(overall["prob"], count @ prob / count.sum(), atol=1e-12)
    ranks = np.concatenate(positions["ref_rank"].to_list())
    assert overall["hits"] == [int((ranks == r).sum()) for r in range(1, 6)]
    assert sum(overall["hits"]) < len(ranks)  # ranks 6 and 7 fall outside the top 5


def test_calibration_figures_as_pdf_with_the_unconditional_row(tmp_path):
    summary = {
        "grid": {
            "bins": ["0.9-1.0", "0.8-0.9"],
            "prob": [[0.9, 0.1], [None, None]],
            "count": [10, 0],
        },
        "unconditional": {"prob": [0.9, 0.1], "hits": [9, 1], "count": 10},
        "model": "m",
        "task": "t",
        "tokens": 10,
        "A": 0.0,
        "B": 1.0,
        "fit_points": {"p": [0.1, 0.9], "c": [0.1, 0.9], "n": [5, 5]},
    }
    paths = draw_calibration(summary, tmp_path, pdf=True)
    for path in paths:
        assert path.with_suffix(".pdf").read_bytes().startswith(b"%PDF")
