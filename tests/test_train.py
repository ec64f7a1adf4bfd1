"""LoRA SFT (TRL + PEFT) on a tiny random llama: masks, resume, merge, bad input."""

from __future__ import annotations

import json
import sys

import pytest
import torch

pytest.importorskip("trl")
pytest.importorskip("peft")

from transformers import TrainerCallback  # noqa: E402

from thinkscope.cli.app import main  # noqa: E402
from thinkscope.core.errors import UserError  # noqa: E402
from thinkscope.models import load_model  # noqa: E402
from thinkscope.sft import TrainConfig, load_sft_rows, merge_adapter, train  # noqa: E402
from thinkscope.sft.trainer import build_trainer, last_checkpoint  # noqa: E402

ROWS = [
    {"prompt": f"Question: What is {a} + {b}?\nAnswer:", "response": f" {a} + {b} = {a + b}."}
    for a, b in [(3, 5), (12, 7), (16, 3), (2, 2), (4, 1), (7, 7), (9, 1), (5, 3)]
]


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def data_dir(tmp_path):
    folder = tmp_path / "ds"
    folder.mkdir()
    _write(folder / "sft_correct.jsonl", ROWS)
    return folder


def _config(model_dir, dataset, **kw) -> TrainConfig:
    base = dict(
        model=str(model_dir),
        dataset=str(dataset),
        max_steps=6,
        batch_size=2,
        learning_rate=1e-2,
        lora_rank=4,
        save_steps=2,
        max_length=64,
        lora_dropout=0.0,
    )
    return TrainConfig(**{**base, **kw})


def _cli(monkeypatch, capsys, *args) -> tuple[int, str]:
    """Exit code and stderr of ``thinkscope ARGS`` (its stdout is left in :data:`STDOUT`)."""
    monkeypatch.setattr(sys, "argv", ["thinkscope", *map(str, args)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    STDOUT[:] = [out]
    return exit_info.value.code, err


STDOUT: list[str] = [""]


def test_loss_falls_on_the_response_only(tiny_model_dir, data_dir, tmp_path):
    trainer = build_trainer(_config(tiny_model_dir, data_dir), tmp_path / "out", progress=False)
    tok = trainer.processing_class
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(3)])
    for i in range(3):
        prompt = tok(ROWS[i]["prompt"])["input_ids"]
        full = tok(ROWS[i]["prompt"] + ROWS[i]["response"] + tok.eos_token)["input_ids"]
        labels, ids = batch["labels"][i].tolist(), batch["input_ids"][i].tolist()
        assert ids[: len(full)] == full
        assert labels[: len(prompt)] == [-100] * len(prompt)  # no loss on the prompt
        assert labels[len(prompt) : len(full)] == full[len(prompt) :]  # loss on response + eos
        assert all(x == -100 for x in labels[len(full) :])  # nor on padding


def test_messages_rows_mask_the_chat_prompt(tiny_model_dir, tmp_path):
    rows = [
        {
            "messages": [
                {"role": "user", "content": r["prompt"]},
                {"role": "assistant", "content": r["response"]},
            ]
        }
        for r in ROWS
    ]
    data = _write(tmp_path / "chat.jsonl", rows)
    trainer = build_trainer(_config(tiny_model_dir, data), tmp_path / "out", progress=False)
    tok = trainer.processing_class
    batch = trainer.data_collator([trainer.train_dataset[0]])
    prompt = tok.apply_chat_template(rows[0]["messages"][:1], add_generation_prompt=True)
    prompt = prompt["input_ids"] if isinstance(prompt, dict) else prompt
    labels = batch["labels"][0].tolist()
    assert labels[: len(prompt)] == [-100] * len(prompt)
    answer = tok.decode([t for t in labels if t != -100])
    assert answer.startswith(ROWS[0]["response"]) and answer.endswith("<eos>")


def _labels(trainer, i: int) -> list[int]:
    return [t for t in trainer.train_dataset[i]["labels"] if t != -100]


def test_truncated_rows_are_trained_without_an_end_of_sequence(tiny_model_dir, tmp_path):
    cut = {"prompt": ROWS[1]["prompt"], "response": " 12 + 7 = 1", "truncated": True}
    data = _write(tmp_path / "cut.jsonl", [{**ROWS[0], "truncated": False}, cut])
    trainer = build_trainer(_config(tiny_model_dir, data), tmp_path / "out", progress=False)
    tok = trainer.processing_class
    eos = tok.convert_tokens_to_ids("<eos>")
    for i, row, end in ((0, ROWS[0], "<eos>"), (1, cut, "")):
        prompt = tok(row["prompt"])["input_ids"]
        full = tok(row["prompt"] + row["response"] + end)["input_ids"]
        assert trainer.train_dataset[i]["input_ids"] == full
        assert _labels(trainer, i) == full[len(prompt) :]
    assert _labels(trainer, 0)[-1] == eos and _labels(trainer, 1)[-1] != eos
    assert eos not in trainer.train_dataset[1]["input_ids"]


def test_truncated_chat_rows_leave_the_assistant_turn_open(tiny_model_dir, tmp_path):
    def chat(row, truncated):
        turns = [{"role": "user", "content": row["prompt"]}]
        turns.append({"role": "assistant", "content": row["response"]})
        return {"messages": turns, "truncated": truncated}

    data = _write(tmp_path / "chat.jsonl", [chat(ROWS[0], False), chat(ROWS[1], True)])
    trainer = build_trainer(_config(tiny_model_dir, data), tmp_path / "out", progress=False)
    tok = trainer.processing_class
    for i, end in ((0, "<eos>"), (1, "")):
        prompt = f"<|user|>{ROWS[i]['prompt']}<eos><|assistant|>"  # tests/tiny.py's template
        assert (
            trainer.train_dataset[i]["input_ids"]
            == tok(prompt + ROWS[i]["response"] + end)["input_ids"]
        )
        assert tok.decode(_labels(trainer, i)) == ROWS[i]["response"] + end


class _Kill(TrainerCallback):
    """Stop the process (as a kill would) at the end of step ``at``, before it is saved."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.at:
            raise KeyboardInterrupt


def _step_losses(path) -> list[tuple[int, float]]:
    history = json.loads((path / "trainer_state.json").read_text())["log_history"]
    return [(e["step"], e["loss"]) for e in history if "loss" in e]


def _train_loss(path) -> float:
    """transformers' own mean loss of the last session (its final log entry)."""
    history = json.loads((path / "trainer_state.json").read_text())["log_history"]
    return history[-1]["train_loss"]


def test_killed_train_resumes_without_lost_steps(tiny_model_dir, data_dir, tmp_path, capsys):
    config = _config(tiny_model_dir, data_dir)
    whole = train(config, tmp_path / "whole", progress=False)
    killed = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        train(config, killed, callbacks=[_Kill(5)], progress=False)
    assert last_checkpoint(killed / "checkpoints").name == "checkpoint-4"
    with pytest.raises(UserError, match="--resume"):
        train(config, killed, progress=False)
    capsys.readouterr()
    resumed = train(config, killed, resume=True)
    assert f"resuming {killed} from step 4 (checkpoint-4)\n" in capsys.readouterr().err
    assert resumed.summary["resumed_from_step"] == 4
    assert resumed.summary["global_step"] == whole.summary["global_step"] == 6
    steps = _step_losses(killed)
    assert [s for s, _ in steps] == [1, 2, 3, 4, 5, 6]  # every step once, none lost
    # The checkpoint restores weights, optimizer, RNG and data order, and on the CPU the same
    # fp32 ops run in the same order: each step's loss is the same float, so exact equality.
    losses = [x for _, x in _step_losses(whole.path)]
    assert [loss for _, loss in steps] == losses
    # the mean covers all 6 steps, not only the 2 after the resume (transformers' train_loss)
    assert resumed.summary["mean_train_loss"] == whole.summary["mean_train_loss"]
    assert whole.summary["mean_train_loss"] == sum(losses) / 6 == _train_loss(whole.path)
    assert _train_loss(killed) == sum(losses[4:]) / 2 != resumed.summary["mean_train_loss"]
    from safetensors.torch import load_file

    a = load_file(whole.adapter / "adapter_model.safetensors")
    b = load_file(resumed.adapter / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert (killed / "loss.png").stat().st_size > 1000


def test_incomplete_checkpoint_is_skipped(tmp_path):
    for step, complete in [(2, True), (4, True), (6, False)]:
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if complete:
            (folder / "trainer_state.json").write_text("{}")
    assert last_checkpoint(tmp_path).name == "checkpoint-4"


def test_merged_model_equals_base_plus_adapter(tiny_model_dir, data_dir, tmp_path):
    from peft import PeftModel

    result = train(
        _config(tiny_model_dir, data_dir, eval_file=str(data_dir / "sft_correct.jsonl")),
        tmp_path / "run",
        progress=False,
    )
    assert result.summary["eval_loss_after"] < result.summary["eval_loss_before"]
    merged = load_model(str(merge_adapter(result.path)), device="cpu")
    ids = torch.tensor([[5, 17, 40, 99, 3, 250, 8]])
    base = load_model(str(tiny_model_dir), device="cpu").model
    with torch.no_grad():
        want = PeftModel.from_pretrained(base, str(result.adapter)).eval()(input_ids=ids).logits
        got = merged.model(input_ids=ids).logits
        plain = load_model(str(tiny_model_dir), device="cpu").model(input_ids=ids).logits
    assert torch.allclose(got, want, atol=1e-4)
    assert (got - plain).abs().max() > 1e-2  # the adapter changed the model


def test_cli_train_and_merge(tiny_model_dir, data_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "cli"
    monkeypatch.setenv("THINKSCOPE_PROGRESS", "auto")  # stderr is no terminal: plain lines
    code, err = _cli(
        monkeypatch,
        capsys,
        "train",
        "--model",
        tiny_model_dir,
        "--dataset",
        data_dir,
        "--out",
        out,
        "--max-steps",
        "2",
        "--batch-size",
        "2",
        "--target-modules",
        "q_proj",
        "--target-modules",
        "v_proj",
        "--merge",
    )
    assert code in (0, None)
    lines = [line for line in err.splitlines() if line.startswith("train: ")]
    assert lines[0].startswith("train: 1/2 steps, loss ") and lines[-1].startswith("train: 2/2")
    assert "it/s" not in err and "examples/s" not in err  # no tqdm bar from transformers or TRL
    assert "'loss'" not in STDOUT[0]  # nor transformers' printed log dicts
    again = ["train", "--model", tiny_model_dir, "--dataset", data_dir, "--out", out]
    again += ["--max-steps", "2", "--batch-size", "2"]
    again += ["--target-modules", "q_proj", "--target-modules", "v_proj"]
    summary = (out / "summary.json").read_text()
    code, err = _cli(monkeypatch, capsys, *again, "--resume")
    assert code in (0, None) and err == f"{out} is complete (same config): nothing to do\n"
    code, err = _cli(monkeypatch, capsys, *again)
    assert code == 2 and f"{out} holds a finished training run; choose another --out" in err
    code, err = _cli(monkeypatch, capsys, *again, "--resume", "--seed", "1")
    assert code == 2 and "differs in seed" in err
    assert (out / "summary.json").read_text() == summary  # nothing was done
    adapter = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert sorted(adapter["target_modules"]) == ["q_proj", "v_proj"]
    base = load_model(str(tiny_model_dir), device="cpu").model.state_dict()
    merged = load_model(str(out / "merged"), device="cpu").model.state_dict()
    assert merged.keys() == base.keys()
    changed = {k.split(".")[-2] for k in base if not torch.equal(base[k], merged[k])}
    assert changed == {"q_proj", "v_proj"}  # merged into the target modules, nothing else


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"question": "q", "answer": "1"}], "expected string columns 'prompt' and 'response'"),
        ([{"messages": [{"role": "user", "content": "hi"}]}], "must end with an assistant turn"),
        ([], "holds no rows"),
        ([{"prompt": "p", "response": "r", "truncated": "yes"}], "'truncated' must be true"),
    ],
)
def test_bad_datasets_are_one_line_errors(rows, message, tmp_path, monkeypatch, capsys):
    data = _write(tmp_path / "bad.jsonl", rows)
    code, err = _cli(monkeypatch, capsys, "train", "--dataset", data, "--out", tmp_path / "o")
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_bad_inputs(tmp_path, data_dir, monkeypatch, capsys):
    code, err = _cli(monkeypatch, capsys, "merge", tmp_path)
    assert code == 2 and "no LoRA adapter" in err
    code, err = _cli(
        monkeypatch,
        capsys,
        "train",
        "--dataset",
        data_dir,
        "--file",
        "sft_x.jsonl",
        "--out",
        tmp_path / "o",
    )
    assert code == 2 and "has no sft_x.jsonl" in err
    code, err = _cli(
        monkeypatch,
        capsys,
        "train",
        "--dataset",
        data_dir,
        "--out",
        tmp_path / "o",
        "--lora-rank",
        "0",
    )
    assert code == 2 and err.startswith("error: --lora-rank")
    (tmp_path / "bad.jsonl").write_text('{"prompt": "a", "response": "b"}\n{oops\n')
    with pytest.raises(UserError, match=":2: malformed JSON"):
        load_sft_rows(tmp_path / "bad.jsonl")


def test_rows_cut_off_before_the_response_are_an_error(tiny_model_dir, data_dir, tmp_path):
    long = [{"prompt": "word " * 80, "response": " 1"}] * 3
    data = _write(tmp_path / "long.jsonl", long)
    with pytest.raises(UserError, match="raise --max-length"):
        build_trainer(_config(tiny_model_dir, data, max_length=16), tmp_path / "o", progress=False)
    mixed = _write(tmp_path / "mixed.jsonl", [*long, *ROWS])
    with pytest.warns(UserWarning, match="3 of 11 rows"):
        trainer = build_trainer(
            _config(tiny_model_dir, mixed, max_length=32), tmp_path / "o", progress=False
        )
    assert len(trainer.train_dataset) == len(ROWS)


def test_missing_train_extra_is_one_line(data_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "trl", None)  # import trl now raises ImportError
    code, err = _cli(monkeypatch, capsys, "train", "--dataset", data_dir, "--out", tmp_path / "o")
    assert code == 2 and "pip install 'thinkscope[train]'" in err and err.count("\n") == 1
