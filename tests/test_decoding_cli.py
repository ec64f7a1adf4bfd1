"""The decoding options on generate / think-at-n / traces: recorded in the config, bad values
rejected in one line with exit code 2 and nothing written."""

import json
import sys

import pytest
import yaml

from thinkscope.cli.app import main

GYM = "gym:basic_arithmetic?min_terms=2&max_terms=2&min_digits=1&max_digits=1"


def _main(monkeypatch, *args) -> int:
    monkeypatch.setattr(sys, "argv", ["thinkscope", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    return exit_info.value.code


@pytest.mark.parametrize("command", ["generate", "think-at-n", "traces"])
@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--dynamic-top-k", "1,1,2"], "--dynamic-top-k: needs 10 integers"),
        (["--dynamic-top-k", "1,x"], "--dynamic-top-k: takes comma-separated ints"),
        (["--confidence-bin-only", "11"], "--confidence-bin-only: Input should be less"),
        (["--confidence-bin-only", "0"], "--confidence-bin-only: Input should be greater"),
        (["--edt-var", "0,1,1"], "--edt-var: needs N > 0"),
        (
            ["--cal-acc-from", "missing/calibration.json", "--cal-acc-threshold", "0.3"],
            "calibration file missing/calibration.json does not exist",
        ),
        (["--cal-acc-from", "missing/calibration.json"], "go together"),
    ],
)
def test_bad_decoding_options_fail_in_one_line(
    monkeypatch, capsys, tmp_path, command, options, message
):
    monkeypatch.chdir(tmp_path)
    code = _main(
        monkeypatch, command, "--out", str(tmp_path / "run"), "--model", "nowhere", *options
    )
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert message in err
    assert not (tmp_path / "run").exists()


def test_cal_acc_from_reads_a_and_b_into_the_run_config(monkeypatch, tmp_path, tiny_model_dir):
    fit = tmp_path / "calibration.json"
    fit.write_text(json.dumps({"A": 0.25, "B": 0.75, "grid": [[0.1]]}))
    out = tmp_path / "run"
    code = _main(
        monkeypatch,
        "generate",
        "--out",
        str(out),
        "--model",
        str(tiny_model_dir),
        "--task",
        GYM,
        "--questions",
        "1",
        "--n",
        "2",
        "--max-new-tokens",
        "3",
        "--prompt-style",
        "fewshot",
        "--cal-acc-from",
        str(fit),
        "--cal-acc-threshold",
        "0.3",
        "--dynamic-top-k",
        "1,1,2,2,3,3,4,4,5,5",
        "--log-steps",
    )
    assert code in (0, None)
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["cal_acc"] == [0.25, 0.75, 0.3]
    assert config["dynamic_top_k"] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5] and config["log_steps"]
    assert config["greedy_threshold"] is None
