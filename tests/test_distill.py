"""Distillation: teacher to student, expert-iteration rounds, nested dataset sizes, full
fine-tuning and the traces' training split, on tiny random llamas."""

from __future__ import annotations

import json
import sys

import pandas as pd
import pytest
import yaml

pytest.importorskip("trl")

from thinkscope.cli.app import main  # noqa: E402
from thinkscope.core.errors import UserError  # noqa: E402
from thinkscope.experiments import sft_filtering  # noqa: E402
from thinkscope.experiments.distill import check_sizes, nested_subset  # noqa: E402
from thinkscope.experiments.sft_filtering import SftFilteringConfig, run_sft_filtering  # noqa: E402
from thinkscope.models import load_model  # noqa: E402
from thinkscope.models.identity import identify  # noqa: E402
from thinkscope.models.spec import ModelSpec  # noqa: E402
from thinkscope.sft import TrainConfig, train  # noqa: E402


def _cli(monkeypatch, capsys, *args) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["thinkscope", *map(str, args)])
    with pytest.raises(SystemExit) as done:
        main()
    return done.value.code, capsys.readouterr().err


def _rows(path) -> list[str]:
    return path.read_text().splitlines()


def test_sizes_are_nested_prefixes_of_one_shuffle(tmp_path):
    """Fails if a subset is a plain prefix (no shuffle), if the order depends on the size (not
    nested), or if rows are repeated or invented."""
    data = tmp_path / "all.jsonl"
    rows = [json.dumps({"prompt": f"q{i}", "response": f"r{i}"}) for i in range(20)]
    data.write_text("".join(f"{r}\n" for r in rows))
    subsets = {n: _rows(nested_subset(data, n, 7, tmp_path / f"n{n}.jsonl")) for n in (5, 12, 20)}
    assert subsets[12][:5] == subsets[5] and subsets[20][:12] == subsets[12]
    assert sorted(subsets[20]) == sorted(rows) and len(set(subsets[20])) == 20
    assert subsets[20] != rows  # shuffled, not the file's order
    other = _rows(nested_subset(data, 5, 8, tmp_path / "seed8.jsonl"))
    assert other != subsets[5]  # the seed decides the order
    with pytest.raises(UserError, match="only 20 rows"):
        nested_subset(data, 21, 7, tmp_path / "n21.jsonl")


def test_sizes_larger_than_the_data_are_one_line(tmp_path):
    small, big = tmp_path / "s.jsonl", tmp_path / "b.jsonl"
    small.write_text('{"a": 1}\n{"a": 2}\n')
    big.write_text('{"a": 1}\n' * 9)
    files = {"reference": small, "all": big, "correct": "empty dataset"}
    check_sizes([1, 2], files, "round 1")  # the untrained arm is not counted
    with pytest.raises(UserError, match=r"--sizes 3 is more than the 2 rows of the reference"):
        check_sizes([1, 3], files, "round 1")
    with pytest.raises(UserError, match=r"--sizes 9 is more than the 8 traces"):
        SftFilteringConfig.parse(questions=4, n=2, sizes="2,9")
    for bad in ("2,x", "0,3", "3,3"):
        with pytest.raises(UserError, match="--sizes"):
            SftFilteringConfig.parse(sizes=bad)
    assert SftFilteringConfig.parse(questions=4, n=2, sizes="8,2").sizes == [2, 8]


def test_experiment_refuses_bad_sizes_before_loading_a_model(monkeypatch, capsys, tmp_path):
    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr("thinkscope.models.load_model", no_model)
    out = tmp_path / "exp"
    args = ("experiment", "sft-filtering", "--out", out, "--questions", "2", "--n", "2")
    code, err = _cli(monkeypatch, capsys, *args, "--sizes", "5")
    assert code == 2 and "--sizes 5 is more than the 4 traces" in err
    code, err = _cli(monkeypatch, capsys, *args, "--full", "--lora-rank", "8")
    assert code == 2 and "--lora-rank shapes a LoRA adapter" in err
    assert not out.exists()


def test_two_rounds_chain_teacher_to_student(tiny_model_dir, tmp_path, monkeypatch):
    """Round 1 generates with the teacher and trains the student; round 2 generates with the
    model round 1 trained (its weights' hash in the traces' config) and trains it further. A
    run killed in round 2 resumes there: round 1 is not redone, round 2's traces are reused."""
    from tiny import tiny_model, tiny_tokenizer

    teacher = tmp_path / "teacher"
    tiny_model("llama", seed=1).save_pretrained(teacher)
    tiny_tokenizer().save_pretrained(teacher)
    problems = tmp_path / "problems.jsonl"  # no worked solutions: no reference arm to train
    problems.write_text('{"question": "What is 2 + 3?", "answer": "5"}\n' * 2)
    config = SftFilteringConfig(
        model=str(tiny_model_dir),
        teacher=str(teacher),
        rounds=2,
        task="gsm8k",
        train_task=f"jsonl:{problems}",
        questions=2,
        n=2,
        max_new_tokens=4,
        max_steps=1,
        batch_size=2,
        eval_questions=1,
        eval_n=1,
    )
    exp, train_arm = tmp_path / "exp", sft_filtering.train_arm

    def killed_in_round_2(config, dataset, out, start=None):
        if "round-2" in str(out):
            raise KeyboardInterrupt
        return train_arm(config, dataset, out, start)

    monkeypatch.setattr(sft_filtering, "train_arm", killed_in_round_2)
    with pytest.raises(KeyboardInterrupt):
        run_sft_filtering(config, exp)
    monkeypatch.setattr(sft_filtering, "train_arm", train_arm)
    merged1 = exp / "train/all/merged"
    round1_weights = (merged1 / "model.safetensors").stat().st_mtime_ns
    round2_traces = (exp / "round-2/all/traces/traces.parquet").stat().st_mtime_ns
    table = run_sft_filtering(config, exp)

    assert (merged1 / "model.safetensors").stat().st_mtime_ns == round1_weights
    assert (exp / "round-2/all/traces/traces.parquet").stat().st_mtime_ns == round2_traces
    student, teacher_id = (
        identify(ModelSpec.of(str(tiny_model_dir))),
        identify(ModelSpec.of(str(teacher))),
    )
    assert student != teacher_id
    traces1 = yaml.safe_load((exp / "traces/config.yaml").read_text())
    assert (traces1["model"], traces1["weights"]) == (str(teacher), teacher_id)
    trained1 = yaml.safe_load((exp / "train/all/train_config.yaml").read_text())
    assert (trained1["model"], trained1["weights"]) == (str(tiny_model_dir), student)
    traces2 = yaml.safe_load((exp / "round-2/all/traces/config.yaml").read_text())
    round1 = identify(ModelSpec.of(str(merged1)))
    assert (traces2["model"], traces2["weights"]) == (str(merged1), round1)
    assert round1 not in (student, teacher_id)
    trained2 = yaml.safe_load((exp / "round-2/train/all/train_config.yaml").read_text())
    assert (trained2["model"], trained2["weights"]) == (str(merged1), round1)

    rows = table.set_index(["round", "model"])
    assert list(rows.index) == [
        (0, "base"),
        (1, "reference"),
        (1, "correct"),
        (1, "all"),
        (1, "dtr-filtered"),
        (2, "all"),  # the arms without data in round 1 have no chain to continue
    ]
    assert rows.loc[(1, "all"), "generator"] == str(teacher)
    assert rows.loc[(2, "all"), "generator"] == str(merged1)
    assert rows.loc[(1, "reference"), "note"].startswith("not trained")
    cmp = pd.read_csv(exp / "round-2/compare/all/summary.csv").set_index("model")
    assert cmp.loc["base", "spec"] == str(tiny_model_dir)  # every round against the student
    assert cmp.loc["tuned", "mean_sample_accuracy"] == rows.loc[(2, "all"), "mean_sample_accuracy"]
    saved = pd.read_csv(exp / "results.csv")
    assert list(saved["round"]) == [0, 1, 1, 1, 1, 2]
    assert json.loads((exp / "results.json").read_text())[-1]["generator"] == str(merged1)
    assert (exp / "figures/sft_rounds.png").is_file()


@pytest.mark.slow
def test_sizes_train_every_arm_on_nested_subsets_fully(tiny_model_dir, tmp_path):
    config = SftFilteringConfig(
        model=str(tiny_model_dir),
        task="gsm8k",
        questions=2,
        n=2,
        max_new_tokens=4,
        max_steps=1,
        batch_size=1,
        eval_questions=1,
        eval_n=1,
        sizes=[2, 1],
        full=True,
    )
    exp = tmp_path / "exp"
    table = run_sft_filtering(config, exp)
    trained = table.dropna(subset=["size"])
    sizes = zip(trained["model"], trained["size"].astype(int), trained["train_rows"], strict=True)
    assert list(sizes) == [("reference", 1, 1), ("reference", 2, 2), ("all", 1, 1), ("all", 2, 2)]
    small, large = (_rows(exp / f"data/sizes/all-n{n}.jsonl") for n in (1, 2))
    assert large[:1] == small
    load_model(str(exp / "train/all-n2/model"))  # a whole model, no adapter
    assert not (exp / "train/all-n2/adapter").exists()
    assert (exp / "figures/sft_rounds.png").is_file()


def test_full_fine_tuning_saves_a_whole_model(tiny_model_dir, tmp_path):
    """Every weight moves (LoRA would leave the base weights as they are), and the saved
    folder is a model ``load_model`` reads."""
    import torch

    data = tmp_path / "rows.jsonl"
    data.write_text(
        "".join(
            json.dumps({"prompt": f"What is {a} + 1?", "response": f" {a + 1}."}) + "\n"
            for a in range(4)
        )
    )
    config = TrainConfig(
        model=str(tiny_model_dir), dataset=str(data), max_steps=2, batch_size=2, full=True
    )
    result = train(config, tmp_path / "out", progress=False)
    assert result.adapter == tmp_path / "out/model" and result.summary["full"] is True
    assert not (tmp_path / "out/adapter").exists()
    base = load_model(str(tiny_model_dir)).model.state_dict()
    tuned = load_model(str(result.adapter)).model.state_dict()
    moved = [k for k in base if not torch.equal(base[k], tuned[k])]
    assert "model.layers.0.mlp.up_proj.weight" in moved and "model.embed_tokens.weight" in moved


def test_full_refuses_lora_options_in_one_line(tmp_path, monkeypatch, capsys):
    data = tmp_path / "rows.jsonl"
    data.write_text('{"prompt": "a", "response": "b"}\n')
    for option in (("--lora-rank", "8"), ("--lora-dropout", "0.1"), ("--merge",)):
        args = ("train", "--dataset", data, "--out", tmp_path / "out", "--full", *option)
        code, err = _cli(monkeypatch, capsys, *args)
        assert code == 2 and option[0] in err and "--full" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_traces_default_to_the_training_split_and_warn_on_a_test_split(
    tiny_model_dir, tmp_path, monkeypatch, capsys
):
    model = ("--model", tiny_model_dir, "--questions", "1", "--n", "1", "--max-new-tokens", "2")
    code, err = _cli(monkeypatch, capsys, "traces", *model, "--out", tmp_path / "train")
    assert code in (0, None) and "warning" not in err
    frame = pd.read_parquet(tmp_path / "train/traces.parquet")
    assert frame["problem_id"].tolist() == ["gsm8k-train-0"]
    for task in ("gsm8k", "gsm8k:test"):
        out = tmp_path / task.replace(":", "-")
        code, err = _cli(monkeypatch, capsys, "traces", *model, "--task", task, "--out", out)
        lines = [line for line in err.splitlines() if "warning" in line]
        assert code in (0, None) and len(lines) == 1 and "test split" in lines[0]
        assert "test split" in (out / "log.txt").read_text()
