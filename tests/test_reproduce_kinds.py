"""Every run kind writes a header and enters the registry once it finishes; ``runs reproduce``
reruns any of them from its header (from another directory too) and compares the folders."""

from __future__ import annotations

import json
import shutil

import pytest

from dataset_fixture import make_run
from select_fixture import arithmetic_task
from thinkscope.cli.app import main
from thinkscope.core.invocation import set_command
from thinkscope.experiments.reproduce import compare_folders
from thinkscope.models.identity import folder_hash
from thinkscope.runstore.header import read_header
from thinkscope.runstore.registry import list_runs

pytest.importorskip("trl")
pytest.importorskip("peft")

GYM = "gym:basic_arithmetic?min_terms=2&max_terms=2&min_digits=1&max_digits=1"
ROWS = [
    {"prompt": f"Question: What is {a} + {b}?\nAnswer:", "response": f" {a} + {b} = {a + b}."}
    for a, b in [(3, 5), (12, 7), (16, 3), (2, 2), (4, 1), (7, 7)]
]
TRAIN = ["--max-steps", "3", "--batch-size", "2", "--lora-rank", "4", "--save-steps", "2"]
TRAIN += ["--max-length", "64", "--lora-dropout", "0.0", "--learning-rate", "0.01"]
CALIBRATE = ["--task", "gsm8k:train", "--questions", "3", "--batch-size", "2", "--top-k", "5"]


@pytest.fixture(autouse=True)
def _no_command():
    """Each test starts as a Python caller: no command recorded by an earlier ``main``."""
    set_command(None)
    yield
    set_command(None)


def cli(capsys, *args) -> tuple[int, str, str]:
    """``thinkscope ARGS`` in this process (so that the command is recorded): exit code,
    stdout, stderr."""
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return exit_info.value.code or 0, captured.out, captured.err


def one_line(err: str) -> str:
    """The error line (progress bars may precede it on stderr)."""
    line = err.rstrip("\n").split("\n")[-1]
    assert line.startswith("error: "), err
    return line


def ok(capsys, *args) -> str:
    """Run a command that must succeed; its stdout."""
    code, out, err = cli(capsys, *args)
    assert code == 0, err
    return out


@pytest.fixture(scope="module")
def peaked_dir(tmp_path_factory):
    """A tiny llama whose unembedding is scaled up: its top probabilities spread over many
    bins, so a calibration has a power law to fit (a random tiny model's are all ~1/vocab)."""
    import torch

    from tiny import tiny_model, tiny_tokenizer

    path = tmp_path_factory.mktemp("peaked")
    model = tiny_model("llama", seed=3)
    with torch.no_grad():
        model.get_output_embeddings().weight.mul_(25.0)
    model.save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return path


@pytest.fixture
def dataset(tmp_path):
    folder = tmp_path / "ds"
    folder.mkdir()
    (folder / "sft_correct.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return folder


def _check_header(path, kind: str, model=None) -> dict:
    header = read_header(path)
    assert header["kind"] == kind and header["path"] == str(path.resolve())
    assert header["command"] and header["code"]["thinkscope"] and "git_commit" in header["code"]
    assert header["config"] and "seed" in header
    if model is not None:
        assert header["model"]["model"] == str(model)
        assert header["model"]["weights"] == f"sha256:{folder_hash(model)}"
    [row] = [r for r in list_runs() if r["path"] == str(path.resolve())]
    assert row["kind"] == kind and row["summary"]
    return header


def test_each_kind_is_registered_with_a_header(
    tiny_model_dir, peaked_dir, dataset, tmp_path, capsys
):
    runs = tmp_path / "runs"
    ok(capsys, "generate", "--model", tiny_model_dir, "--task", GYM, "--questions", "2",
       "--n", "2", "--max-new-tokens", "4", "--out", runs / "gen")  # fmt: skip
    header = _check_header(runs / "gen", "generate", tiny_model_dir)
    assert header["seed"] == 0 and header["config"]["n"] == 2

    ok(capsys, "score", runs / "gen", "--metrics", "dtr")
    header = read_header(runs / "gen")
    [stage] = header["stages"]
    assert stage["kind"] == "score" and stage["command"][:2] == ["score", str(runs / "gen")]
    assert stage["config"]["metrics"] == ["dtr"]
    [row] = [r for r in list_runs() if r["path"] == str((runs / "gen").resolve())]
    assert "mean_dtr" in row["summary"] and "accuracy" in row["summary"]  # merged, one row

    ok(capsys, "train", "--model", tiny_model_dir, "--dataset", dataset, "--out", runs / "train",
       *TRAIN)  # fmt: skip
    header = _check_header(runs / "train", "train", tiny_model_dir)
    assert header["config"]["dataset"] == str(dataset) and header["seed"] == 0

    ok(capsys, "merge", runs / "train")
    header = _check_header(runs / "train" / "merged", "merge", tiny_model_dir)
    assert header["command"] == ["merge", str(runs / "train")]

    ok(capsys, "calibrate", "--model", peaked_dir, *CALIBRATE, "--out", runs / "cal")
    _check_header(runs / "cal", "calibrate", peaked_dir)

    make_run(tmp_path / "fixture")
    ok(capsys, "dataset", "build", tmp_path / "fixture", "--out", runs / "data")
    header = _check_header(runs / "data", "dataset build")
    assert header["config"]["run"] == str((tmp_path / "fixture").resolve())

    kinds = {r["kind"] for r in list_runs()}
    assert kinds == {"generate", "train", "merge", "calibrate", "dataset build"}
    code, _, err = cli(capsys, "runs", "diff", runs / "train", runs / "cal")
    assert code == 2 and "one kind" in one_line(err)


def test_a_train_run_reproduces_identically_from_another_directory(
    tiny_model_dir, dataset, tmp_path, monkeypatch, capsys
):
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir(), there.mkdir()
    shutil.copytree(dataset, here / "ds")
    monkeypatch.chdir(here)  # relative paths in the command
    ok(capsys, "train", "--model", tiny_model_dir, "--dataset", "ds", "--out", "run", *TRAIN)
    header = read_header(here / "run")
    assert header["command"][header["command"].index("--dataset") + 1] == str(here / "ds")
    assert header["config"]["dataset"] == str(here / "ds")

    monkeypatch.chdir(there)
    out = ok(capsys, "runs", "reproduce", here / "run", "--out", "again")
    report = json.loads((there / "again" / "reproduce.json").read_text())
    assert report["identical"], report["files"]
    files = report["files"]
    assert files["adapter/adapter_model.safetensors"]["status"] == "identical"
    assert {"summary.json", "trainer_state.json", "train_config.yaml"} <= files.keys()
    assert "identical: again/reproduce.json" in out
    rerun = read_header(there / "again")["command"]
    assert rerun[rerun.index("--out") + 1] == str(there / "again")

    # the check can fail: a tampered loss in the original is reported
    summary = json.loads((here / "run" / "summary.json").read_text())
    (here / "run" / "summary.json").write_text(json.dumps({**summary, "final_loss": 1.0}))
    out = ok(capsys, "runs", "reproduce", here / "run", "--out", "third")
    report = json.loads((there / "third" / "reproduce.json").read_text())
    assert not report["identical"] and report["files"]["summary.json"]["status"] == "different"
    assert "DIFFERENT" in out


def test_a_calibrate_run_reproduces_and_a_bf16_rerun_differs(peaked_dir, tmp_path, capsys):
    run = tmp_path / "cal"
    ok(capsys, "calibrate", "--model", peaked_dir, *CALIBRATE, "--out", run)
    ok(capsys, "runs", "reproduce", run, "--out", tmp_path / "same")
    report = json.loads((tmp_path / "same" / "reproduce.json").read_text())
    assert report["identical"], report["files"]
    assert {"calibration.json", "positions.parquet", "config.yaml"} <= report["files"].keys()

    ok(capsys, "runs", "reproduce", run, "--out", tmp_path / "bf16", "--dtype", "bfloat16")
    report = json.loads((tmp_path / "bf16" / "reproduce.json").read_text())
    assert report["command"][-2:] == ["--dtype", "bfloat16"]
    assert report["files"]["calibration.json"]["status"] == "different"
    assert report["files"]["positions.parquet"]["differing"] > 0 and not report["identical"]


def test_a_failed_run_is_not_registered(tiny_model_dir, dataset, tmp_path, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("thinkscope.sft.trainer.save_loss_curve", broken)
    code, _, err = cli(capsys, "train", "--model", tiny_model_dir, "--dataset", dataset,
                    "--out", tmp_path / "run", *TRAIN)  # fmt: skip
    assert code == 1 and "disk full" in err
    assert list_runs() == [] and not (tmp_path / "run" / "run.json").exists()


def test_reproduce_refuses_a_python_run_and_changed_weights(peaked_dir, tmp_path, capsys):
    from thinkscope.experiments.decoding.calibrate import CalibrationConfig, run_calibration
    from thinkscope.models.spec import ModelSpec

    model = shutil.copytree(peaked_dir, tmp_path / "model")
    config = CalibrationConfig(
        model_spec=ModelSpec(model=str(model)), task="gsm8k:train", questions=3, top_k=5
    )
    run_calibration(config, tmp_path / "python", show_progress=False)
    code, _, err = cli(capsys, "runs", "reproduce", tmp_path / "python", "--out", tmp_path / "x")
    assert code == 2 and "made from Python" in one_line(err)

    ok(capsys, "calibrate", "--model", model, *CALIBRATE, "--out", tmp_path / "cli")
    weights = model / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    code, _, err = cli(capsys, "runs", "reproduce", tmp_path / "cli", "--out", tmp_path / "y")
    assert code == 2 and "weights" in one_line(err) and "changed" in one_line(err)
    assert not (tmp_path / "y").exists()


def test_folder_comparison_ignores_time_and_own_paths(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for folder, wall in ((a, 1.5), (b, 9.0)):
        folder.mkdir()
        (folder / "summary.json").write_text(
            json.dumps({"loss": 0.25, "wall_s": wall, "out": str(folder), "created": str(wall)})
        )
        (folder / "log.txt").write_text(str(wall))
        (folder / "table.csv").write_text(f"x,tokens_per_s\n1.0,{wall}\n")
    assert compare_folders(a, b)["identical"]
    (b / "table.csv").write_text("x,tokens_per_s\n1.5,9.0\n")
    (b / "extra.json").write_text("{}")
    files = compare_folders(a, b)["files"]
    assert files["table.csv"] == {"status": "different", "differing": 1, "max_abs_diff": 0.5}
    assert files["extra.json"] == {"status": "extra"}


def _think_at_n(model, tmp_path) -> list:
    task = arithmetic_task(tmp_path)
    return ["think-at-n", "--model", model, "--task", f"jsonl:{task}", "--questions", "3",
            "--n", "4", "--prefix-tokens", "3", "--repeats", "2", "--max-new-tokens", "8",
            "--prompt-style", "cot", "--batch-size", "8", "--window", "3", "--backend", "hf",
            "--temperature", "1.0"]  # fmt: skip


def _decode_sweep(model, tmp_path) -> list:
    (tmp_path / "sweep.yaml").write_text("hot: {temperature: 1.0}\ncold: {temperature: 0.5}\n")
    return ["decode-sweep", "--configs", tmp_path / "sweep.yaml", "--model", model, "--task", GYM,
            "--questions", "2", "--n", "2", "--max-new-tokens", "4"]  # fmt: skip


def _experiment(model, tmp_path) -> list:
    return ["experiment", "threshold-sweep", "--model", model, "--task", GYM, "--questions",
            "2", "--n", "2", "--max-new-tokens", "6", "--temperature", "1.0"]  # fmt: skip


def _cka(model, tmp_path) -> list:
    (tmp_path / "texts.txt").write_text("What is 3 + 5?\nThe answer is 8.\n#### 42\nThink\n")
    return ["interp", "cka", "--model", model, "--model-b", model,
            "--texts", tmp_path / "texts.txt"]  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "command", "data"),
    [
        ("think-at-n", _think_at_n, "outcomes.parquet"),
        ("decode-sweep", _decode_sweep, "results.csv"),
        ("experiment threshold-sweep", _experiment, "results.csv"),
        ("interp cka", _cka, "rows_a.npy"),
    ],
)
def test_more_kinds_register_and_reproduce(kind, command, data, tiny_model_dir, tmp_path, capsys):
    run = tmp_path / "run"
    ok(capsys, *command(tiny_model_dir, tmp_path), "--out", run)
    _check_header(run, kind, tiny_model_dir)
    ok(capsys, "runs", "reproduce", run, "--out", tmp_path / "again")
    report = json.loads((tmp_path / "again" / "reproduce.json").read_text())
    assert report["identical"], report["files"]
    assert report["files"][data]["status"] == "identical"


def test_an_eval_folder_is_registered_and_reproduces(tiny_model_dir, tmp_path, capsys):
    run = tmp_path / "eval"
    ok(capsys, "eval", "--model_args", f"model={tiny_model_dir}", "--tasks", "gsm8k_cot_thinkscope",
       "--limit", "2", "--gen_kwargs", "max_gen_toks=4", "--output_path", run)  # fmt: skip
    header = _check_header(run, "eval", tiny_model_dir)
    assert header["config"]["lm_eval_tasks"] == ["gsm8k_cot_thinkscope"]  # as lm-eval parsed it
    [row] = list_runs()
    assert "gsm8k_cot_thinkscope.exact_match,strict-match" in row["summary"]
    ok(capsys, "runs", "reproduce", run, "--out", tmp_path / "again")
    report = json.loads((tmp_path / "again" / "reproduce.json").read_text())
    assert report["identical"], report["files"]
    assert any(name.endswith("results_<date>.json") for name in report["files"])


def test_a_header_command_names_the_same_paths_from_any_directory(tmp_path):
    from thinkscope.runstore.header import absolute_args

    (tmp_path / "models" / "m").mkdir(parents=True)
    (tmp_path / "data.jsonl").write_text("{}\n")
    args = [
        "eval",
        "--model_args",
        "pretrained=models/m,dtype=float32",
        "--dataset=data.jsonl",
        "data.jsonl",
        "--metrics",
        "dtr[g=0.5]",
        "nowhere/x",
    ]
    m, data = str(tmp_path / "models" / "m"), str(tmp_path / "data.jsonl")
    assert absolute_args(args, tmp_path) == [
        "eval",
        "--model_args",
        f"pretrained={m},dtype=float32",
        f"--dataset={data}",
        data,
        "--metrics",
        "dtr[g=0.5]",
        "nowhere/x",  # not a path that exists: as typed
    ]
