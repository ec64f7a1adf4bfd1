"""lm-evaluation-harness: the thinkscope model, the bundled GSM8K task, and thinkscope's grader."""

import json

import pytest
import torch

pytest.importorskip("lm_eval")  # the `eval` extra

from lm_eval import simple_evaluate  # noqa: E402
from lm_eval.api.instance import Instance  # noqa: E402
from lm_eval.tasks import TaskManager  # noqa: E402

from thinkscope.cli.app import main
from thinkscope.core.errors import RunFailure, UserError
from thinkscope.decoding import DecodingConfig
from thinkscope.lmeval import TASKS_DIR
from thinkscope.lmeval.harness import _boundary, run_harness
from thinkscope.lmeval.model import ThinkscopeLM, decoding_from_args
from thinkscope.tasks.answers import grade
from thinkscope.tasks.loaders import load_problems
from tiny import tiny_lm

TASK = "gsm8k_cot_thinkscope"


class Script:
    """Forces each row to write a fixed completion: a test double for a model that answers."""

    def __init__(self, tokenizer, scripts: dict[str, str]) -> None:
        self.tokenizer = tokenizer
        self.scripts = {
            q: tokenizer(t, add_special_tokens=False)["input_ids"] for q, t in scripts.items()
        }
        self.pad = tokenizer.pad_token_id

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        forced = torch.full_like(scores, -torch.inf)
        for row, ids in enumerate(input_ids.tolist()):
            text = self.tokenizer.decode([i for i in ids if i != self.pad])
            question, _, written = text.rpartition("Q: ")[2].partition("\nA:")
            script = self.scripts[question]
            done = len(self.tokenizer(written, add_special_tokens=False)["input_ids"])
            forced[row, script[done] if done < len(script) else self.tokenizer.eos_token_id] = 0
        return forced


def test_lm_eval_accuracy_equals_thinkscope_grading_of_the_same_samples():
    problems = load_problems("gsm8k", 20)
    scripts = {}
    for i, p in enumerate(problems):  # half right, half wrong, in the few-shot answer format
        answer = p.answer if i % 2 == 0 else str(int(p.answer) + 1)
        scripts[p.question] = f" We add up. The answer is {answer}."
    lm = tiny_lm("llama")
    model = ThinkscopeLM(lm, batch_size=8, processors=[Script(lm.tokenizer, scripts)])
    manager = TaskManager(include_path=str(TASKS_DIR), include_defaults=False)
    out = simple_evaluate(
        model=model,
        tasks=[TASK],
        limit=20,
        task_manager=manager,
        log_samples=True,
        gen_kwargs="max_gen_toks=24",
    )
    for name in ("strict-match", "flexible-extract"):
        samples = [s for s in out["samples"][TASK] if s["filter"] == name]
        assert len(samples) == 20
        ours = [grade(s["resps"][0][0], s["target"]) for s in samples]
        for sample, graded in zip(samples, ours, strict=True):
            assert sample["resps"][0][0] == scripts[sample["doc"]["question"]]  # our sampler
            extracted = sample["filtered_resps"][0].rstrip(".")  # the metric ignores a final "."
            assert extracted == graded.pred  # the same answer, per sample
        accuracy = sum(g.correct for g in ours) / 20
        assert accuracy == 0.5
        assert out["results"][TASK][f"exact_match,{name}"] == accuracy


def _instance(kind: str, *args) -> Instance:
    return Instance(request_type=kind, doc={}, arguments=args, idx=0)


def test_loglikelihood_matches_lm_eval_own_hf_model(tiny_model_dir):
    from lm_eval.models.huggingface import HFLM

    ours = ThinkscopeLM(str(tiny_model_dir), batch_size=3)
    theirs = HFLM(pretrained=str(tiny_model_dir), batch_size=3, device="cpu")
    pairs = [
        ("What is 3 + 5?", " 8"),
        ("Janet has 16 eggs", " and eats 3."),
        ("The answer is", " 42"),
        ("", "Calculate 12 - 7."),
    ]
    requests = [_instance("loglikelihood", c, x) for c, x in pairs]
    for (ll, greedy), (ref, ref_greedy) in zip(
        ours.loglikelihood(requests), theirs.loglikelihood(requests), strict=True
    ):
        assert ll == pytest.approx(ref, abs=1e-4) and greedy == ref_greedy
    rolling = [_instance("loglikelihood_rolling", "Think step by step. " * 30)]
    assert ours.loglikelihood_rolling(rolling)[0] == pytest.approx(
        theirs.loglikelihood_rolling(rolling)[0], abs=1e-3
    )


def test_model_args_carry_the_decoding_knobs(tmp_path):
    fit = tmp_path / "calibration.json"
    fit.write_text(json.dumps({"A": 0.1, "B": 0.9}))
    args = {
        "edt_var": "0.8;1;1",
        "dynamic_top_k": "1:1:2:2:3:3:4:4:5:5",
        "greedy_threshold": 0.3,
        "cal_acc_from": str(fit),
        "cal_acc_threshold": 0.2,
        "seed": 3,
    }
    config = decoding_from_args(args)
    assert config.edt_var == [0.8, 1.0, 1.0] and config.dynamic_top_k[-1] == 5
    assert config.cal_acc == [0.1, 0.9, 0.2] and config.greedy_threshold == 0.3
    assert args == {"seed": 3}  # the rest goes to the model
    with pytest.raises(UserError, match="^model_args dynamic_top_k: "):
        decoding_from_args({"dynamic_top_k": "1;2"})


def test_model_args_decoding_wins_over_the_task_sampling():
    lm = tiny_lm("llama")
    task = {"until": ["Q:"], "do_sample": True, "temperature": 0.6, "top_p": 0.9}
    params, until = ThinkscopeLM(lm)._params(task)
    assert params.decoding == DecodingConfig(temperature=0.6, top_p=0.9) and until == ["Q:"]
    assert ThinkscopeLM(lm)._params({"do_sample": False})[0].temperature == 0
    knobs = ThinkscopeLM(lm, greedy_threshold=0.3, temperature=0.8)._params(task)[0].decoding
    assert knobs == DecodingConfig(greedy_threshold=0.3, temperature=0.8)


def test_thinkscope_eval_runs_lm_eval_cli_offline(tiny_model_dir, tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)  # no git checkout: lm-eval's git hash must not complain
    run_harness(
        [
            "--model_args",
            f"model={tiny_model_dir}",
            "--batch_size",
            "20",
            "--tasks",
            TASK,
            "--limit",
            "20",
            "--gen_kwargs",
            "max_gen_toks=8",
            "--output_path",
            str(tmp_path),
            "--log_samples",
        ]
    )
    results = json.loads(next(tmp_path.rglob("results_*.json")).read_text())
    samples = [json.loads(line) for line in next(tmp_path.rglob("samples_*.jsonl")).open()]
    samples = [s for s in samples if s["filter"] == "strict-match"]
    assert len(samples) == 20
    accuracy = sum(grade(s["resps"][0][0], s["target"]).correct for s in samples) / 20
    assert results["results"][TASK]["exact_match,strict-match"] == accuracy
    assert "not a git repository" not in capfd.readouterr().err


def _eval_error(capsys, *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", *args])
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("error: ")
    return exit_info.value.code, err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tasks", TASK, "--bogus"], "error: unrecognized arguments: --bogus (see `lm-eval run"),
        (["--limit", "2"], "error: --tasks is required, e.g. --tasks gsm8k_cot_thinkscope; list"),
    ],
)
def test_eval_usage_errors_are_one_line(capsys, args, message):
    code, err = _eval_error(capsys, *args)
    assert code == 2 and err.startswith(message)


def test_an_unknown_task_is_one_line_before_the_model_loads(capsys, tmp_path):
    missing = tmp_path / "no-model"  # loading it first would fail otherwise
    tasks = f"no_such_task,{TASK}"
    code, err = _eval_error(capsys, "--tasks", tasks, "--model_args", f"model={missing}")
    assert code == 2
    assert err == (
        f"error: --tasks: Tasks not found: no_such_task; list them with `lm-eval ls tasks "
        f"--include_path {TASKS_DIR}`"
    )


def test_lm_eval_failures_are_user_errors_before_the_evaluation_and_run_failures_after():
    import lm_eval.evaluator as evaluator

    original = evaluator.simple_evaluate
    with pytest.raises(UserError, match="^lm-eval: bad config$"), _boundary():
        raise ValueError("bad config")
    unknown = "^lm-eval failed: Attempted to load model 'nope'"
    with pytest.raises(RunFailure, match=unknown), _boundary():
        evaluator.simple_evaluate(model="nope", tasks=[TASK])
    with pytest.raises(RunFailure, match="^lm-eval failed: KeyError: 'x'$"), _boundary():
        raise KeyError("x")
    assert evaluator.simple_evaluate is original
