"""Per-step rank logs on the lm-eval path: ``thinkscope eval`` with ``log_steps=true`` writes
thinkscope's step log and seed 003's two rank-log shapes beside lm-eval's samples file, one
line per response in the samples file's order."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("lm_eval")  # the `eval` extra

from lm_eval.api.instance import Instance  # noqa: E402

from thinkscope.cli.app import main  # noqa: E402
from thinkscope.lmeval.harness import run_harness  # noqa: E402
from thinkscope.lmeval.model import ThinkscopeLM  # noqa: E402
from thinkscope.lmeval.steps import read_rank_log, read_samples, write_step_logs  # noqa: E402
from tiny import tiny_lm  # noqa: E402

TASK = "gsm8k_cot_thinkscope"


def _lines(path: Path) -> list:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _eval(tmp_path: Path, model_args: str) -> Path:
    run_harness(
        [
            "--model_args",
            model_args,
            "--tasks",
            TASK,
            "--limit",
            "5",
            "--gen_kwargs",
            "max_gen_toks=6",
            "--output_path",
            str(tmp_path / "out"),
            "--log_samples",
        ]
    )
    return next((tmp_path / "out").rglob("samples_*.jsonl"))


def test_eval_writes_the_step_log_and_the_seed_shapes_beside_the_samples(
    tiny_model_dir, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    args = f"model={tiny_model_dir},log_steps=true,low_conf_threshold=0.9,temperature=2.0"
    samples = _eval(tmp_path, args)
    date = samples.stem.removeprefix(f"samples_{TASK}_")
    steps = _lines(samples.with_name(f"steps_{TASK}_{date}.jsonl"))
    low = _lines(samples.with_name(f"low_conf_ranks_{TASK}_{date}.jsonl"))
    every = _lines(samples.with_name(f"all_sampled_ranks_{TASK}_{date}.jsonl"))
    docs = [s["doc_id"] for s in _lines(samples) if s["filter"] == "strict-match"]
    assert [s["doc_id"] for s in steps] == sorted(docs) == list(range(5))
    assert all(len(s["step_rank"]) == len(s["step_pmax"]) == 6 for s in steps)  # no stop hit
    assert every == [s["step_rank"] for s in steps]
    assert low == [
        [r for p, r in zip(s["step_pmax"], s["step_rank"], strict=True) if p < 0.9] for s in steps
    ]
    assert max(r for line in every for r in line) > 1  # T = 2 leaves the top-1 often
    frame = read_rank_log(samples.with_name(f"steps_{TASK}_{date}.jsonl"), read_samples(samples))
    assert list(frame["step_rank"]) == every


def test_step_logs_are_in_samples_order_and_cut_below_the_threshold(tmp_path):
    def record(doc: int, repeat: int, pmax: list[float]) -> dict:
        ranks = [doc * 10 + repeat + i for i in range(len(pmax))]
        return {
            "task": "t",
            "doc_id": doc,
            "repeat": repeat,
            "step_pmax": pmax,
            "step_rank": ranks,
            "step_prob": [0.1] * len(pmax),
            "step_kept": [3] * len(pmax),
        }

    records = [record(2, 0, [0.4, 0.5]), record(0, 1, [0.6]), record(0, 0, [0.49, 0.51, 0.2])]
    paths = write_step_logs(records, tmp_path, "D", threshold=0.5)
    assert [p.name for p in paths] == [
        "steps_t_D.jsonl",
        "low_conf_ranks_t_D.jsonl",
        "all_sampled_ranks_t_D.jsonl",
    ]
    steps, low, every = (_lines(p) for p in paths)
    assert [(s["doc_id"], s["repeat"]) for s in steps] == [(0, 0), (0, 1), (2, 0)]
    assert every == [[0, 1, 2], [1], [20, 21]]
    assert low == [[0, 2], [], [20]]  # pmax < 0.5, strictly


def test_greedy_eval_logs_rank_one_at_every_step(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    samples = _eval(tmp_path, f"model={tiny_model_dir},log_steps=true")
    every = next(samples.parent.glob("all_sampled_ranks_*.jsonl"))
    assert {r for line in _lines(every) for r in line} == {1}  # the task decodes greedily


def test_repeats_of_a_doc_are_numbered_in_request_order():
    lm = tiny_lm("llama")
    model = ThinkscopeLM(lm, batch_size=2, log_steps=True)
    kwargs = {"until": ["\n"], "max_gen_toks": 2, "do_sample": True, "temperature": 1.0}

    def request(doc: int) -> Instance:
        return Instance("generate_until", {}, (f"Q{doc}", kwargs), 0, ("t", doc, 1))

    first, second = request(0), request(1)
    model.generate_until([first, second, first])
    model.generate_until([first])
    keys = [(r["doc_id"], r["repeat"]) for r in model.step_log]
    assert sorted(keys) == [(0, 0), (0, 1), (0, 2), (1, 0)]


def _error(capsys, *args) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "--tasks", TASK, *args])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and "\n" not in err
    return err


def test_step_logs_need_an_output_folder_and_valid_args_before_the_model_loads(capsys, tmp_path):
    missing = f"model={tmp_path / 'no-model'},log_steps=true"  # loading it would fail
    assert _error(capsys, "--model_args", missing) == (
        "error: model_args log_steps=true writes the rank logs beside lm-eval's samples: add "
        "--output_path DIR --log_samples"
    )
    bad = f"{missing},low_conf_threshold=0"
    assert _error(capsys, "--model_args", bad) == (
        "error: model_args low_conf_threshold: Input should be greater than 0"
    )


class Engine:
    """A stand-in for ``vllm.LLM`` as lm-eval's vllm model calls it: records its constructor
    arguments and every request's sampling params, answers each prompt with one line."""

    made: list[dict] = []
    requests: list = []

    def __init__(self, **engine) -> None:
        Engine.made.append(engine)
        config = SimpleNamespace(max_model_len=2048)
        self.llm_engine = SimpleNamespace(model_config=config)

    def generate(self, prompts, sampling_params, use_tqdm=False, lora_request=None):
        Engine.requests.extend(sampling_params)
        reply = SimpleNamespace(text=" The answer is 3.", token_ids=[1], logprobs=None)
        return [SimpleNamespace(outputs=[reply]) for _ in prompts]


@pytest.fixture
def lm_evals_vllm_model(monkeypatch, tiny_model_dir):
    """lm-eval's ``vllm_causallms`` importable on CPU over :class:`Engine`; every module it
    and thinkscope's vLLM model import, and the model registry, are restored afterwards."""
    import importlib.machinery
    import importlib.metadata
    import sys
    import types

    import lm_eval.models  # noqa: F401  (lm-eval's models, registered before the copy below)
    from lm_eval.api import registry
    from transformers import AutoTokenizer

    import thinkscope.generation.backends

    def module(name: str, **names) -> None:
        made = types.ModuleType(name)
        made.__spec__ = importlib.machinery.ModuleSpec(name, None)
        made.__dict__.update(names)
        monkeypatch.setitem(sys.modules, name, made)

    class Params(dict):  # vllm.SamplingParams: its keyword arguments
        def __init__(self, **kwargs) -> None:
            super().__init__(kwargs)

    module("vllm", LLM=Engine, SamplingParams=Params, TokensPrompt=dict)
    module("vllm.lora")
    module("vllm.lora.request", LoRARequest=object)
    module("vllm.tokenizers", get_tokenizer=lambda name, **_: AutoTokenizer.from_pretrained(name))
    module("vllm.v1")
    module("vllm.v1.sample")
    module("vllm.v1.sample.logits_processor", BatchUpdate=object, LogitsProcessor=object)
    real_version = importlib.metadata.version
    monkeypatch.setattr(  # an old vLLM: no chat-template resolution through the engine
        importlib.metadata, "version", lambda n: "0.8.0" if n == "vllm" else real_version(n)
    )
    monkeypatch.setattr(thinkscope.generation.backends, "cuda_available", lambda: True)
    monkeypatch.setattr(registry.model_registry, "_objs", dict(registry.model_registry._objs))
    monkeypatch.setattr(Engine, "made", [])
    monkeypatch.setattr(Engine, "requests", [])
    before = set(sys.modules)
    yield Engine
    for name in set(sys.modules) - before:
        if name.endswith(("vllm_causallms", "vllm_model", "vllm_processor")):
            del sys.modules[name]


def test_eval_on_vllm_carries_the_decoding_knobs_to_the_engine(
    lm_evals_vllm_model, tiny_model_dir, tmp_path, monkeypatch
):
    from thinkscope.decoding.batch import EXTRA_ARG

    monkeypatch.chdir(tmp_path)
    args = f"model={tiny_model_dir},backend=vllm,greedy_threshold=0.3,edt_var=0.8;1;1"
    run_harness(["--model_args", args, "--tasks", TASK, "--limit", "3"])
    (engine,) = lm_evals_vllm_model.made
    processors = engine["logits_processors"]
    assert [p.__name__ for p in processors] == ["DecodingLogitsProcessor"]
    requests = lm_evals_vllm_model.requests
    assert len(requests) == 3
    for params in requests:  # the task asks for greedy; the model_args' knobs win
        assert (params["temperature"], params["top_p"], params["top_k"], params["min_p"]) == (
            1.0,
            1.0,
            0,
            0.0,
        )
        config = params["extra_args"][EXTRA_ARG]
        assert config == {"temperature": 1.0, "greedy_threshold": 0.3, "edt_var": [0.8, 1.0, 1.0]}
        assert "Q:" in params["stop"] and params["max_tokens"] == 256


def test_eval_on_vllm_without_knobs_keeps_lm_evals_own_sampling(
    lm_evals_vllm_model, tiny_model_dir, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    run_harness(
        ["--model_args", f"model={tiny_model_dir},backend=vllm", "--tasks", TASK, "--limit", "2"]
    )
    (engine,) = lm_evals_vllm_model.made
    assert "logits_processors" not in engine
    assert all(
        p["temperature"] == 0.0 and "extra_args" not in p for p in lm_evals_vllm_model.requests
    )


@pytest.mark.integration
def test_bundled_model_eval_rank_logs_feed_the_decoding_report(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = "model=smollm2-135m,log_steps=true,temperature=0.7"
    run_harness(
        [
            "--model_args",
            args,
            "--tasks",
            TASK,
            "--limit",
            "2",
            "--batch_size",
            "2",
            "--gen_kwargs",
            "max_gen_toks=16",
            "--output_path",
            "out",
            "--log_samples",
        ]
    )
    samples = next((tmp_path / "out").rglob("samples_*.jsonl"))
    with pytest.raises(SystemExit) as exit_info:
        main(["decoding-report", "--samples", str(samples)])
    assert exit_info.value.code == 0
    summary = json.loads(next(tmp_path.rglob("decoding_*/summary.json")).read_text())
    steps = _lines(next(samples.parent.glob("steps_*.jsonl")))
    assert summary["samples"] == 2 and summary["threshold"] == 0.5
    low = sum(p < 0.5 for s in steps for p in s["step_pmax"])
    assert summary["mean_low_confidence_steps"] == low / 2
