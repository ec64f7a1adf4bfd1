"""One definition each: pass@k (against enumeration), the sample seed (every backend, repeat
and command draws it from ``generation.seeds``) and work-unit sizing."""

from __future__ import annotations

import hashlib
import itertools
import math
from fractions import Fraction

import pandas as pd
import pytest

import fake_vllm
from select_fixture import arithmetic_task, small_config
from thinkscope.core.errors import UserError
from thinkscope.generation.pipeline import GenerateConfig, generate_run, question_units
from thinkscope.generation.seeds import continuation_seed, sample_seed
from thinkscope.models import load_model
from thinkscope.select import experiment
from thinkscope.select.experiment import unit_starts
from thinkscope.stats.passk import mean_pass_at_k, pass_at_k


def _subset_pass(outcomes: list[bool], k: int) -> Fraction:
    """pass@k by enumeration: the share of k-subsets of the samples holding a correct one."""
    subsets = list(itertools.combinations(range(len(outcomes)), k))
    return Fraction(sum(any(outcomes[i] for i in s) for s in subsets), len(subsets))


@pytest.mark.parametrize("n", [1, 2, 5, 8])
def test_pass_at_k_is_the_share_of_k_subsets_with_a_correct_sample(n):
    for c in range(n + 1):
        outcomes = [False] * (n - c) + [True] * c
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(float(_subset_pass(outcomes, k)), abs=1e-12)
    assert pass_at_k(4, 1, 2) == 0.5  # not "any correct" (1.0) below k = n
    for bad in [(3, 4, 1), (3, 1, 0), (3, 1, 4), (3, -1, 1)]:
        with pytest.raises(UserError, match="pass@k"):
            pass_at_k(*bad)


def test_pass_at_k_is_stable_where_binomials_overflow_floats():
    n, c, k = 1200, 30, 400  # C(1200, 400) ~ 1e327: a float quotient of binomials is inf/inf
    exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
    assert pass_at_k(n, c, k) == pytest.approx(float(exact), rel=1e-12)


def test_mean_pass_at_k_averages_questions_not_samples():
    ids = ["a"] * 4 + ["b"] * 4 + ["c"] * 6
    correct = [1, 0, 0, 0] + [0] * 4 + [1, 1, 0, 0, 0, 0]
    want = (
        _subset_pass([True, False, False, False], 2)
        + 0
        + _subset_pass([True, True, False, False, False, False], 2)
    ) / 3
    assert mean_pass_at_k(ids, correct, 2) == pytest.approx(float(want), abs=1e-12)
    with pytest.raises(UserError, match="pass@k"):
        mean_pass_at_k(ids, correct, 5)  # question a has 4 samples
    with pytest.raises(UserError, match="at least one"):
        mean_pass_at_k([], [], 1)


def test_sample_seed_keeps_the_generate_key_and_gives_repeats_their_own_streams():
    # the values of generate's seeds before the derivation moved here (resumed runs keep them)
    assert sample_seed(0, "gsm8k-0", 0) == 3081479541956197924
    assert sample_seed(7, "q1", 3) == 2544017361204957215
    seeds = {
        sample_seed(s, f"q{q}", k, r)
        for s in range(3)
        for q in range(5)
        for k in range(4)
        for r in range(3)
    }
    assert len(seeds) == 3 * 5 * 4 * 3 and all(0 <= s < 2**63 for s in seeds)
    assert sample_seed(0, "q", 0, 1) != sample_seed(1, "q", 0)  # repeat 1 is not seed + 1
    assert continuation_seed(5) not in {5, sample_seed(5, "q", 0)}
    with pytest.raises(ValueError, match="repeat"):
        sample_seed(0, "q", 0, -1)


def test_hf_and_vllm_runs_seed_every_sample_with_sample_seed(tiny_model_dir, tmp_path, monkeypatch):
    config = GenerateConfig(
        model=str(tiny_model_dir),
        task="demo-arith",
        questions=3,
        n=2,
        seed=11,
        max_new_tokens=3,
        batch_size=4,
        top_logprobs=2,  # the vLLM stand-in reports ranked log-probs
        backend="hf",
    )
    hf = generate_run(config, tmp_path / "hf", show_progress=False).traces()
    want = [sample_seed(11, p, k) for p, k in zip(hf["problem_id"], hf["sample_idx"], strict=True)]
    assert list(hf["sample_seed"]) == want

    fake_vllm.install(monkeypatch, load_model(str(tiny_model_dir)))
    requested = []
    generate = fake_vllm.FakeLLM.generate

    def recording(self, prompts, sampling, use_tqdm=True):
        requested.extend(params["seed"] for params in sampling)
        return generate(self, prompts, sampling, use_tqdm)

    monkeypatch.setattr(fake_vllm.FakeLLM, "generate", recording)
    vllm = config.model_copy(update={"backend": "vllm"})
    traces = generate_run(vllm, tmp_path / "vllm", show_progress=False).traces()
    assert requested == list(traces["sample_seed"]) == want  # the same sample, the same seed


def test_think_at_n_repeats_draw_sample_seed_with_their_repeat(
    tiny_model_dir, tmp_path, monkeypatch
):
    config = small_config(arithmetic_task(tmp_path), model=str(tiny_model_dir), batch_size=4)
    pools = []
    make_pool = experiment.Pool

    def recording(lm, prompts, seeds, params):
        pools.append(seeds)
        return make_pool(lm, prompts, seeds, params)

    monkeypatch.setattr(experiment, "Pool", recording)
    experiment.run_selection(config, tmp_path / "sel", show_progress=False)
    outcomes = pd.read_parquet(tmp_path / "sel/outcomes.parquet")
    ids = list(dict.fromkeys(outcomes["question_id"]))
    units = unit_starts(config, len(ids))
    assert len(pools) == len(units) == config.repeats * 3  # units of one question (4 // 4)
    for seeds, (repeat, start) in zip(pools, units.values(), strict=True):
        questions = ids[start : start + config.unit_questions]
        assert seeds == [
            [sample_seed(config.seed, q, k, repeat) for k in range(4)] for q in questions
        ]


def test_lm_eval_samples_draw_sample_seed_per_context(monkeypatch):
    from lm_eval.api.instance import Instance

    from thinkscope.lmeval import model as lmeval_model
    from tiny import tiny_lm

    seen = []

    class Recorder:
        def __init__(self, lm, prompts, seeds, params, processors):
            seen.extend(seeds)
            self.completions = [type("C", (), {"token_ids": [5]})() for _ in prompts]

        def run(self):
            pass

    monkeypatch.setattr(lmeval_model, "BatchSampler", Recorder)
    model = lmeval_model.ThinkscopeLM(tiny_lm("llama"), batch_size=8, seed=4)
    gen = {"until": ["\n"], "do_sample": True, "temperature": 1.0}
    requests = [
        Instance(request_type="generate_until", doc={}, arguments=(ctx, gen), idx=0)
        for ctx in ["Q: 1+1?", "Q: 2+2?", "Q: 1+1?"]
    ]
    model.generate_until(requests)
    key = [hashlib.sha1(c.encode()).hexdigest() for c in ["Q: 1+1?", "Q: 2+2?", "Q: 1+1?"]]
    assert seen == [sample_seed(4, key[0], 0), sample_seed(4, key[1], 0), sample_seed(4, key[2], 1)]


def test_generate_and_think_at_n_cut_questions_into_the_same_units(tmp_path):
    task = arithmetic_task(tmp_path)
    for batch_size, n in [(8, 4), (4, 4), (3, 4), (64, 2)]:
        select = small_config(task, batch_size=batch_size, n=n)
        generate = GenerateConfig(task=f"jsonl:{task}", batch_size=batch_size, n=n)
        assert generate.unit_questions == select.unit_questions == max(1, batch_size // n)
        problems = list(range(10))
        units = list(question_units(problems, generate.unit_questions))
        assert [u for _, u in units] == [
            problems[s : s + generate.unit_questions] for s in range(0, 10, generate.unit_questions)
        ]
        assert [name for name, _ in units] == [f"{i:05d}" for i in range(len(units))]
        starts = sorted(s for r, s in unit_starts(select, 10).values() if r == 0)
        assert starts == [u[0] for _, u in units]
