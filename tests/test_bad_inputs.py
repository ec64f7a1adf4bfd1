"""A walk of bad inputs across every command: each is refused with one line on stderr
(``error: ...``), exit code 2 for a usage error or 1 for a failure, before any model is loaded,
and leaves nothing written (no file under the test's folder, no registry row).

Each row: an id, the arguments (``{name}`` is an input from :func:`inputs`, ``{tmp}`` the
test's own empty folder), the exit code and a substring of the message.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from dataset_fixture import make_run
from scored_run import make_scored_run
from thinkscope.cli.app import main

USAGE, FAILURE = 2, 1

CASES = [
    # paths and run folders
    ("score-no-run", "score {tmp}/nope --metrics dtr", USAGE, "run folder not found"),
    ("score-not-a-run", "score {empty} --metrics dtr", USAGE, "holds no traces.parquet"),
    ("analyze-no-run", "analyze {tmp}/nope", USAGE, "run folder not found"),
    ("analyze-not-a-run", "analyze {empty}", USAGE, "holds no traces.parquet"),
    ("analyze-unscored", "analyze {unscored}", USAGE, "score"),
    ("report-no-run", "report {tmp}/nope", USAGE, "run folder not found"),
    # metrics and their parameters
    ("metric-unknown", "score {scored} --metrics nosuch", USAGE, "unknown metric 'nosuch'"),
    ("metric-g-negative", "score {scored} --metrics dtr[g=-1]", USAGE, "dtr[g=-1.0] is out of"),
    ("metric-g-max-jsd", "score {scored} --metrics dtr[g=0.7]", USAGE, "must be in (0, 0.6931)"),
    ("metric-g-bits", "score {scored} --metrics dtr[g=1,base=2]", USAGE, "(0, 1) for base 2"),
    ("metric-rho", "score {scored} --metrics dtr[rho=1.5]", USAGE, "rho must be in (0, 1]"),
    ("metric-base", "score {scored} --metrics dtr[base=1]", USAGE, "log base must be e"),
    ("metric-param", "score {scored} --metrics dtr[x=1]", USAGE, "has no parameter 'x'"),
    ("metric-nan", "score {scored} --metrics dtr[g=abc]", USAGE, "is not a number"),
    ("metric-alpha", "score {scored} --metrics topk-agreement[alpha=0]", USAGE, "alpha must"),
    ("metric-k", "score {scored} --metrics topk-agreement[k=0]", USAGE, "k must be >= 1"),
    ("metric-window", "score {scored} --metrics tail-conf[window=0]", USAGE, "window must"),
    ("metric-syntax", "score {scored} --metrics dtr[g=0.5", USAGE, "cannot parse metrics"),
    # model ids
    ("model-missing-path", "generate {gen} --model {tmp}/nomodel", USAGE, "neither a model"),
    ("model-missing-gguf", "generate {gen} --model {tmp}/m.gguf", USAGE, "GGUF file not found"),
    ("model-no-config", "generate {gen} --model {empty}", USAGE, "has no config.json"),
    ("model-dtype", "generate {gen} --dtype float8", USAGE, "--dtype"),
    # tasks
    ("task-unknown", "generate {gen} --task no_such_task", USAGE, "no_such_task"),
    ("task-jsonl-missing", "generate {gen} --task jsonl:{tmp}/t.jsonl", USAGE, "t.jsonl"),
    ("task-questions", "generate {gen} --questions 0", USAGE, "--questions"),
    # sampling
    ("n-zero", "generate {gen} --n 0", USAGE, "--n"),
    ("max-new-tokens-zero", "generate {gen} --max-new-tokens 0", USAGE, "--max-new-tokens"),
    ("temperature-negative", "generate {gen} --temperature -1", USAGE, "--temperature"),
    ("top-p-zero", "generate {gen} --top-p 0", USAGE, "--top-p"),
    ("min-p-one", "generate {gen} --min-p 1", USAGE, "--min-p"),
    # decoding knobs, and greedy decoding with what it ignores
    ("greedy-min-p", "generate {gen} --temperature 0 --min-p 0.1", USAGE, "ignores --min-p 0.1"),
    ("greedy-top-p", "generate {gen} --temperature 0 --top-p 0.9", USAGE, "ignores --top-p"),
    ("greedy-top-k", "generate {gen} --temperature 0 --top-k 5", USAGE, "ignores --top-k 5"),
    ("greedy-edt", "generate {gen} --temperature 0 --edt-var 1,2,3", USAGE, "ignores --edt-var"),
    (
        "greedy-threshold",
        "generate {gen} --temperature 0 --greedy-threshold 0.3",
        USAGE,
        "--temperature 0 is greedy decoding, which ignores --greedy-threshold 0.3",
    ),
    ("dynamic-top-k", "generate {gen} --dynamic-top-k 1,2,3", USAGE, "needs 10 integers"),
    ("edt-var-two", "generate {gen} --edt-var 1,2", USAGE, "needs 3 numbers"),
    ("cal-acc-b", "generate {gen} --cal-acc 1,-1,0.3", USAGE, "needs B > 0"),
    ("cal-acc-both", "generate {gen} --cal-acc 1,1,1 --cal-acc-from {cal}", USAGE, "not both"),
    (
        "cal-acc-file",
        "generate {gen} --cal-acc-from {tmp}/cal.json --cal-acc-threshold 0.3",
        USAGE,
        "does not exist",
    ),
    ("cal-acc-alone", "generate {gen} --cal-acc-from {cal}", USAGE, "go together"),
    ("confidence-bin", "generate {gen} --confidence-bin-only 11", USAGE, "--confidence-bin-only"),
    ("greedy-threshold-range", "generate {gen} --greedy-threshold 1.5", USAGE, "--greedy-thresh"),
    # think-at-n
    (
        "prefix-longer-than-sample",
        "think-at-n {sel} --prefix-tokens 60 --max-new-tokens 48",
        USAGE,
        "--prefix-tokens 60 is longer than a whole sample (--max-new-tokens 48)",
    ),
    ("think-greedy", "think-at-n {sel} --temperature 0 --top-k 4", USAGE, "ignores --top-k"),
    ("think-g", "think-at-n {sel} --g 0.9", USAGE, "--g 0.9 is out of range"),
    ("think-rho", "think-at-n {sel} --rho 0", USAGE, "--rho"),
    ("think-base", "think-at-n {sel} --base 1", USAGE, "--base"),
    ("think-keep-ratio", "think-at-n {sel} --keep-ratio 0", USAGE, "--keep-ratio"),
    ("think-continuous", "think-at-n {sel} --continuous nope", USAGE, "--continuous"),
    # dataset
    ("dataset-no-run", "dataset build {tmp}/nope --out {tmp}/data", USAGE, "not found"),
    (
        "dataset-unscored-min-dtr",
        "dataset build {unscored_ds} --out {tmp}/data --min-dtr 0.3",
        USAGE,
        "score the run first",
    ),
    (
        "dataset-dtr-column",
        "dataset build {scored} --out {tmp}/data --min-dtr 0.3 --dtr-column dtr_nope",
        USAGE,
        "--dtr-column 'dtr_nope' is not a column of",
    ),
    ("dataset-format", "dataset build {ds} --out {tmp}/data --dataset-format x", USAGE, "'x'"),
    # interp
    ("probe-no-run", "interp probe --run {tmp}/nope --out {tmp}/p", USAGE, "run folder not found"),
    ("probe-folds", "interp probe --run {ds} --out {tmp}/p --folds 1", USAGE, "--folds must be"),
    (
        "probe-positions",
        "interp probe --run {ds} --out {tmp}/p --folds 2 --positions x",
        USAGE,
        "--positions",
    ),
    (
        "probe-layers",
        "interp probe --run {ds} --out {tmp}/p --folds 2 --layers 0-3",
        USAGE,
        "--layers",
    ),
    (
        "directions-file",
        "interp directions --out {tmp}/d --reasoning {tmp}/r.txt",
        USAGE,
        "prompt file not found",
    ),
    (
        "cka-model-b",
        "interp cka --model {model} --model-b {tmp}/nomodel --out {tmp}/c",
        USAGE,
        "neither a model",
    ),
    (
        "cka-batch",
        "interp cka --model {model} --model-b {model} --out {tmp}/c --batch-size 2",
        USAGE,
        "--batch-size",
    ),
    (
        "steer-directions",
        "interp steer --directions {tmp}/d.json --layer 1 --prompt hi",
        USAGE,
        "no directions at",
    ),
    ("interp-run-task", "interp run --model {model} --out {tmp}/i --task nope", USAGE, "'nope'"),
    (
        "interp-run-model-b",
        "interp run --model {model} --out {tmp}/i --model-b {tmp}/m",
        USAGE,
        "neither a model",
    ),
    ("interp-run-preset", "interp run --model {model} --out {tmp}/i --preset x", USAGE, "preset"),
    ("patch-layers", "interp patch --source a --target b --layers 0-2", USAGE, "--layers"),
    # experiments
    ("sweep-g", "experiment threshold-sweep {exp} --g 0.3,0.9", USAGE, "--g 0.9 is out of range"),
    (
        "experiment-run",
        "experiment token-types --out {tmp}/e --run {tmp}/nope",
        USAGE,
        "run folder not",
    ),
    ("experiment-n", "experiment length-vs-dtr {exp} --n 0", USAGE, "--n"),
    ("temperature-grid", "experiment temperature-sweep {exp} --temperatures 0,0", USAGE, "twice"),
    ("traces-syntax", "experiment jsd-diagnostic {exp} --traces q0", USAGE, "--traces takes"),
    ("rev-not-a-run", "experiment rev {empty} --out {tmp}/rev", USAGE, "holds no traces.parquet"),
    ("rev-folds", "experiment rev {scored} --out {tmp}/rev --folds 1", USAGE, "--folds"),
    ("rev-grid-option", "experiment rev {scored} --out {tmp}/r --models x", USAGE, "a grid"),
    ("rev-control", "experiment rev --out {tmp}/r --control {tmp}/no.txt", USAGE, "no such file"),
    ("rev-repeat", "experiment rev --out {tmp}/r --temperatures 0.2,0.2", USAGE, "not repeat"),
    ("rev-preset", "experiment rev --out {tmp}/r --preset best", USAGE, "--preset 'best'"),
    ("rev-out-root", "experiment rev --out {tmp}/r --root {tmp}/i", USAGE, "give one"),
    (
        "sweep-missing",
        "decode-sweep --configs {tmp}/s.yaml --out {tmp}/sw",
        USAGE,
        "sweep file not found",
    ),
    (
        "sweep-malformed",
        "decode-sweep --configs {bad_yaml} --out {tmp}/sw",
        USAGE,
        "bad.yaml is not valid YAML at line 3: expected ',' or ']'",
    ),
    (
        "sweep-unknown-knob",
        "decode-sweep --configs {knob_yaml} --out {tmp}/sw",
        USAGE,
        "knob.yaml: config 'a': --no-such-knob",
    ),
    (
        "sweep-greedy",
        "decode-sweep --configs {greedy_yaml} --out {tmp}/sw",
        USAGE,
        "ignores --min-p",
    ),
    (
        "decoding-report-no-logs",
        "decoding-report {ds}",
        USAGE,
        "has no step logs; generate it with --log-steps",
    ),
    ("decoding-report-no-run", "decoding-report {tmp}/nope", USAGE, "run folder not found"),
    ("decoding-report-threshold", "decoding-report {ds} --threshold 2", USAGE, "--threshold"),
    (
        "compare-tuned-missing",
        "compare {model} {tmp}/nope --out {tmp}/cmp",
        USAGE,
        "nope' is neither a model directory",
    ),
    (
        "compare-greedy",
        "compare {model} {model} --out {tmp}/cmp --temperature 0",
        USAGE,
        "--temperature",
    ),
    # training, merging, traces, calibration and the registry
    ("train-no-dataset", "train --dataset {tmp}/no.jsonl --out {tmp}/t", USAGE, "not found"),
    ("train-malformed", "train --dataset {bad_jsonl} --out {tmp}/t", USAGE, ":1: malformed JSON"),
    ("train-rank", "train --dataset {bad_jsonl} --out {tmp}/t --lora-rank 0", USAGE, "--lora-rank"),
    ("merge-no-adapter", "merge {tmp}/nope", USAGE, "no LoRA adapter in"),
    ("traces-task", "traces --task nope --out {tmp}/tr", USAGE, "unknown task 'nope'"),
    ("calibrate-task", "calibrate --out {tmp}/c --task nope", USAGE, "unknown task 'nope'"),
    ("calibrate-questions", "calibrate --out {tmp}/c --questions 0", USAGE, "--questions"),
    ("runs-show", "runs show 99999", USAGE, "no registered run '99999'"),
    ("runs-reproduce", "runs reproduce {tmp}/nope --out {tmp}/r", USAGE, "no registered run"),
    ("runs-diff", "runs diff 99998 99999", USAGE, "no registered run '99998'"),
    ("models-inspect", "models inspect {tmp}/nomodel", USAGE, "neither a model"),
    # the profile
    ("profile-model", "profile {tmp}/nomodel --out {tmp}/p", USAGE, "neither a model"),
    ("profile-budget", "profile --budget huge --out {tmp}/p", USAGE, "unknown budget 'huge'"),
    ("profile-resume", "profile --out {tmp}/p --resume", USAGE, "no profile to resume"),
    ("profile-diff", "profile diff {tmp}/a {tmp}/b --out {tmp}/d", USAGE, "no finished profile"),
    # usage
    ("unknown-option", "generate --no-such-option", USAGE, "No such option"),
    ("unknown-command", "nosuchcommand", USAGE, "No such command"),
    ("missing-argument", "score", USAGE, "Missing argument"),
]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_model_dir) -> dict[str, str]:
    """The inputs the cases name, made once, outside each test's own folder."""
    root = tmp_path_factory.mktemp("bad-inputs")
    (root / "empty").mkdir()
    task = root / "task.jsonl"
    task.write_text('{"question": "What is 3 + 5?", "answer": "8"}\n')
    (root / "cal.json").write_text('{"A": -1.0, "B": 1.0}')
    (root / "bad.jsonl").write_text("not json\n")
    (root / "bad.yaml").write_text("a: {temperature: 0.7}\nb: [1, 2\n")
    (root / "knob.yaml").write_text(yaml.safe_dump({"a": {"no_such_knob": 1}}))
    (root / "greedy.yaml").write_text(yaml.safe_dump({"g": {"temperature": 0, "min_p": 0.1}}))
    scored = make_scored_run(root / "scored")
    model = str(tiny_model_dir)
    return {
        "empty": str(root / "empty"),
        "scored": str(scored),
        "unscored": str(make_run(root / "unscored", scored=False)),
        "unscored_ds": str(make_run(root / "unscored-ds", scored=False)),
        "ds": str(make_run(root / "ds")),
        "model": model,
        "cal": str(root / "cal.json"),
        "bad_jsonl": str(root / "bad.jsonl"),
        "bad_yaml": str(root / "bad.yaml"),
        "knob_yaml": str(root / "knob.yaml"),
        "greedy_yaml": str(root / "greedy.yaml"),
        "gen": f"--model {model} --task jsonl:{task} --questions 1 --out {{tmp}}/run",
        "exp": f"--model {model} --task jsonl:{task} --questions 1 --out {{tmp}}/exp",
        "sel": f"--model {model} --task jsonl:{task} --questions 1 --out {{tmp}}/sel",
    }


def _listing(root: Path) -> list[str]:
    """Every path under ``root`` but the cache of model hashes (links not followed: the shared
    model cache stays out); the registry is in it."""
    paths = (Path(d, name) for d, dirs, files in os.walk(root) for name in dirs + files)
    return sorted(str(p.relative_to(root)) for p in paths if "hashes" not in p.parts)


@pytest.fixture
def no_model_load(monkeypatch):
    """Loading any model fails the case: every refusal must come before the model loads."""
    import thinkscope.models.lm as lm

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the input was refused")

    monkeypatch.setattr(lm, "_from_pretrained", refuse)


@pytest.mark.parametrize(
    ("argv", "code", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_is_one_line_and_writes_nothing(
    argv, code, message, inputs, tmp_path, capsys, monkeypatch, no_model_load
):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    args = argv.format(**inputs, tmp=work).replace("{tmp}", str(work)).split()
    before = _listing(tmp_path)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(args)
    err = capsys.readouterr().err
    lines = err.splitlines()
    print(f"{' '.join(args)}\n  -> exit {exit_.value.code}: {err.strip()}")
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert exit_.value.code == code, err
    assert message in lines[0]
    assert _listing(tmp_path) == before, "the refused command wrote files"


def test_the_walk_covers_every_command():
    from thinkscope.cli.app import COMMANDS

    walked = {c[1].split()[0] for c in CASES}
    assert len(CASES) >= 50
    left = set(COMMANDS) - walked
    assert left <= {"demo", "eval"}, left  # eval's refusals: tests/test_lmeval.py


def test_a_dataset_build_that_fails_leaves_no_folder(inputs, tmp_path, capsys):
    """Refused after grading (a filter leaves nothing): the new folder goes too."""
    before = _listing(tmp_path)
    out = tmp_path / "data" / "sft"
    with pytest.raises(SystemExit) as exit_:
        main(["dataset", "build", inputs["ds"], "--out", str(out), "--min-tokens", "10000"])
    assert exit_.value.code == USAGE
    assert (
        capsys.readouterr()
        .err.splitlines()[-1]
        .startswith("error: no traces left after --min-tokens")
    )
    assert _listing(tmp_path) == before


def test_the_library_refuses_what_the_cli_refuses(tmp_path):
    """The contradictions live in the specs, so Python callers get the same one-line refusal."""
    from thinkscope.core.errors import UserError
    from thinkscope.generation.pipeline import GenerateConfig
    from thinkscope.generation.spec import greedy
    from thinkscope.metrics import parse_metrics
    from thinkscope.select.experiment import SelectConfig

    calibration = tmp_path / "calibration.json"
    calibration.write_text('{"A": -1.0, "B": 1.0}')
    with pytest.raises(UserError, match="--temperature 0 is greedy decoding, which ignores --min"):
        GenerateConfig.parse(temperature=0, min_p=0.1)
    with pytest.raises(UserError, match="ignores --cal-acc-from"):
        GenerateConfig.parse(temperature=0, cal_acc_from=calibration, cal_acc_threshold=0.3)
    sampled = GenerateConfig.parse(temperature=0.7, min_p=0.1, edt_var="1,2,3").model_dump()
    made = GenerateConfig.parse(**greedy(sampled))  # what a greedy side run is made from
    assert (made.temperature, made.min_p, made.edt_var) == (0, 0, None)
    assert SelectConfig.parse(prefix_tokens=48, max_new_tokens=48).prefix_tokens == 48
    with pytest.raises(UserError, match="--prefix-tokens 49 is longer"):
        SelectConfig.parse(prefix_tokens=49, max_new_tokens=48)
    # g's bound is the largest JSD, ln 2 nats = 1 bit: just below it is a threshold, at it not
    assert parse_metrics("dtr[g=0.6931]")[0].params["g"] == 0.6931
    assert parse_metrics("dtr[g=0.999,base=2]")[0].params["g"] == 0.999
    for bad in ("dtr[g=0.6932]", "dtr[g=1,base=2]", "dtr[g=0]", "mean-settling-depth[g=inf]"):
        with pytest.raises(UserError, match="out of range"):
            parse_metrics(bad)


def test_atomic_dir_leaves_nothing_on_failure_and_the_folder_on_success(tmp_path):
    from thinkscope.core.atomic import atomic_dir
    from thinkscope.core.errors import UserError

    out = tmp_path / "a" / "b" / "out"
    with pytest.raises(KeyboardInterrupt), atomic_dir(out) as tmp:
        (tmp / "half.csv").write_text("x")
        raise KeyboardInterrupt
    assert not (tmp_path / "a").exists()  # the parents made for it are gone too
    with atomic_dir(out) as tmp:
        (tmp / "done.csv").write_text("x")
        assert not out.exists()
    assert _listing(out) == ["done.csv"] and _listing(out.parent) == ["out", "out/done.csv"]
    with pytest.raises(UserError, match="not empty"), atomic_dir(out):
        pass
