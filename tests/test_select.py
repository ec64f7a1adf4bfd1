import math
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import torch

from select_fixture import arithmetic_task, small_config
from thinkscope.core.errors import UserError
from thinkscope.generation.pipeline import sample_seed
from thinkscope.generation.sampler import Completion, SamplingParams
from thinkscope.lens.head import Head
from thinkscope.metrics import spec
from thinkscope.metrics.confidence import group_confidences
from thinkscope.metrics.dtr import deep_layer, deep_thinking_ratio
from thinkscope.metrics.forward_pass import measure
from thinkscope.select import (
    Pool,
    PrefixDTR,
    PrefixScore,
    PrefixSelfCertainty,
    PrefixSettlingDepth,
    cons_at_n,
    deepconf_offline,
    deepconf_online,
    experiment,
    kept_count,
    pool_mismatches,
    think_at_n,
    token_confidences,
    top_k,
    vote,
)
from thinkscope.select.experiment import SelectConfig, run_selection, summarize
from thinkscope.select.vote import answer_classes
from tiny import tiny_lm

N, MAX_NEW = 6, 12


@pytest.fixture(scope="module")
def lm():
    """A tiny llama for which 21 token ids end a sample, so lengths vary (EOS ~7% a step)."""
    lm = tiny_lm("llama")
    lm.model.generation_config.eos_token_id = [lm.tokenizer.eos_token_id, *range(40, 60)]
    return lm


def make_pool(lm, n=N, max_new=MAX_NEW, seed=0) -> Pool:
    """Two questions with prompts of different lengths (so the prefill pads)."""
    texts = ["What is 3 + 5?", "Calculate 12 - 7. Think step by step, then answer."]
    prompts = [lm.tokenizer(t)["input_ids"] for t in texts]
    seeds = [[sample_seed(seed, f"q{q}", k) for k in range(n)] for q in range(len(texts))]
    params = SamplingParams(temperature=1.0, max_new_tokens=max_new, top_logprobs=20)
    return Pool(lm, prompts, seeds, params)


@pytest.fixture(scope="module")
def pool(lm):
    return make_pool(lm)


@pytest.fixture(scope="module")
def cons(pool):
    return cons_at_n(pool)


def ids(completion: Completion) -> list[int]:
    return completion.token_ids


# -- votes ------------------------------------------------------------------------------
def test_vote_majority_weights_ties_and_abstentions():
    assert vote(["8", "9", "8", None]) == "8"
    assert vote(["8", "9", "9"], [3.0, 1.0, 1.0]) == "8"
    assert vote(["9", "8"]) == "9"  # tie: first to appear
    assert vote([None, None]) is None and vote([]) is None
    assert top_k([0.2, 0.9, 0.5, 0.9], 2) == [1, 3]
    assert top_k([1.0, 1.0, 1.0], 2) == [0, 1]
    with pytest.raises(ValueError):
        vote(["8"], [1.0, 2.0])


def test_votes_group_answers_by_meaning():
    """``1/2``, ``0.5`` and ``\\frac{1}{2}`` are one answer (the grader's comparison)."""
    assert vote(["3", "1/2", "3", "0.5", r"\frac{1}{2}"]) == "1/2"  # 3 votes against 2
    assert vote(["3", "0.5", "3", "1/2"]) == "3"  # tie 2-2: first class to appear
    assert vote(["0.50", "7", "1/2", "7"], [1.0, 1.5, 1.0, 0.4]) == "0.50"  # 2.0 > 1.9
    assert vote(["18", "$18.00", "17", "17"]) == "18"
    assert answer_classes(["2", None, "2.0", "x", "4/2"]) == [0, None, 0, 3, 0]


def test_pool_samples_ranges():
    pool = Pool(None, [[1], [2]], [[1, 2, 3], [4, 5, 6]], SamplingParams())
    assert pool.samples(0, 0) == [] and pool.samples(2, 2) == []
    assert pool.samples(1, 2) == [(0, 1), (1, 1)]
    assert pool.samples(2) == [(0, 2), (1, 2)] and len(pool.samples()) == 6


def test_kept_count_is_a_ceiling_that_ignores_float_noise():
    assert kept_count(8, 0.5) == 4
    assert kept_count(10, 0.3) == 3  # 0.3 * 10 = 3.0000000000000004
    assert kept_count(8, 0.6) == 5
    assert kept_count(8, 0.01) == 1
    assert kept_count(8, 1.0) == 8


# -- DeepConf confidences -------------------------------------------------------------------
def test_token_and_group_confidences_by_hand():
    tops = [[math.log(0.5), math.log(0.25)], [math.log(0.5), math.log(0.5)], [0.0, 0.0]]
    completion = Completion(token_ids=[1, 2, 3], top_logprobs=tops)
    conf = token_confidences(completion)
    torch.testing.assert_close(
        conf, torch.tensor([1.5 * math.log(2), math.log(2), 0.0], dtype=torch.float64)
    )
    torch.testing.assert_close(
        group_confidences(conf, 2), torch.stack([conf[:2].mean(), conf[1:].mean()])
    )
    torch.testing.assert_close(group_confidences(conf, 5), conf.mean().reshape(1))
    with pytest.raises(ValueError, match="top_logprobs=20"):
        token_confidences(Completion(token_ids=[1, 2]))


# -- Think@n: a pruning decision known in advance, token by token ---------------------------
class PresetScore(PrefixScore):
    """Scores sample ``row`` by ``preset[row]`` and counts the steps it was shown."""

    def __init__(self, preset):
        super().__init__()
        self.preset, self.steps = preset, Counter()

    def __call__(self, rows, states):
        self.steps.update(rows)
        super().__call__(rows, states)

    def values(self, states):
        return torch.zeros(states[0].shape[0])

    def score(self, row):
        return self.preset[row]


@pytest.mark.parametrize("prefix", [1, 4])
def test_think_at_n_keeps_the_known_top_and_counts_every_token(pool, cons, prefix):
    preset = [
        5,
        1,
        4,
        1,
        3,
        9,  # question 0 keeps 0, 2, 5
        2,
        2,
        7,
        0,
        2,
        1,
    ]  # question 1 keeps 2 and the first two 2s: 0, 1
    score = PresetScore(preset)
    gen = think_at_n(pool, score, prefix=prefix, keep_ratio=0.5)
    assert gen.voters == [[0, 2, 5], [0, 1, 2]]
    assert gen.weights == [[1.0] * 3, [1.0] * 3]
    expected_tokens = [0, 0]
    for q in range(2):
        for k in range(N):
            mine, full = gen.completions[q][k], cons.completions[q][k]
            row = q * N + k
            assert score.steps[row] == min(prefix, len(ids(full)))  # one call per prefix token
            if k in gen.voters[q] or len(ids(full)) <= prefix:
                assert ids(mine) == ids(full) and mine.finish_reason == full.finish_reason
                expected_tokens[q] += len(ids(full))
            else:  # pruned: never generated past the prefix
                assert mine.finish_reason == "pruned" and ids(mine) == ids(full)[:prefix]
                expected_tokens[q] += prefix
    assert gen.tokens() == expected_tokens
    assert gen.prefill_tokens == [len(p) for p in pool.prompts]  # each prompt prefilled once
    assert sum(expected_tokens) < sum(cons.tokens())


def test_shared_pool_every_method_draws_the_same_samples(lm, pool, cons):
    assert len({len(ids(c)) for row in cons.completions for c in row}) > 1  # lengths vary
    generations = [
        think_at_n(pool, PrefixSelfCertainty(lm), prefix=3, keep_ratio=0.5),
        think_at_n(pool, PresetScore(list(range(2 * N))), prefix=5, keep_ratio=0.34),
        deepconf_online(pool, warmup=2, eta=0.5, window=3),
    ]
    for gen in generations:
        assert pool_mismatches(gen, cons) == [0, 0]
        for q in range(2):
            for k in gen.voters[q]:
                assert ids(gen.completions[q][k]) == ids(cons.completions[q][k])
    assert cons_at_n(make_pool(lm, seed=1)).completions != cons.completions  # seeds matter


def test_self_certainty_matches_a_teacher_forced_reference(lm, pool, cons):
    prefix = 4
    score = PrefixSelfCertainty(lm)
    gen = think_at_n(pool, score, prefix=prefix, keep_ratio=0.5)
    for q in range(2):
        reference = []
        for k in range(N):
            tokens = ids(cons.completions[q][k])[:prefix]
            logits = teacher_forced(lm, pool.prompts[q], tokens)[-1]  # final layer [T, V]
            logp = torch.log_softmax(logits, dim=-1)
            reference.append(float((-logp.mean(-1) - math.log(logp.shape[-1])).mean()))
            assert score.score(q * N + k) == pytest.approx(reference[-1], abs=1e-4)
        assert gen.voters[q] == top_k(reference, kept_count(N, 0.5))


# -- Think@n with the lens: DTR against a plain reference ------------------------------------
def teacher_forced(lm, prompt, tokens) -> list[torch.Tensor]:
    """Each layer's logit-lens logits ``[T, V]`` at the positions ``tokens`` were sampled from."""
    at = slice(len(prompt) - 1, len(prompt) - 1 + len(tokens))
    with torch.no_grad(), lm.record_blocks() as states:
        lm.model(input_ids=torch.tensor([prompt + tokens[:-1]]))
        return [lm.head(s[0, at]).float() for s in states]


def reference_dtr(lm, prompt, tokens, g, rho) -> float:
    """Plain DTR: per layer softmax(head(h_l)), JSD (nats) to layer L, settling, deep share."""
    probs = [torch.softmax(z.double(), dim=-1) for z in teacher_forced(lm, prompt, tokens)]
    final = probs[-1]

    def jsd(p, q):
        m = (p + q) / 2
        return 0.5 * ((p * (p / m).log()).nansum(-1) + (q * (q / m).log()).nansum(-1))

    jsds = torch.stack([jsd(final, p) for p in probs], dim=1)  # [T, L]
    settled = jsds.cummin(dim=1).values <= g
    depth = settled.float().argmax(dim=1) + 1  # first settled layer, 1-indexed
    return float((depth >= math.ceil(rho * lm.n_layers)).double().mean())


def test_think_at_n_dtr_prunes_as_the_reference_ranks(lm, pool, cons):
    prefix, g, rho = 5, 0.0013, 0.75  # tiny random models: JSDs of 0.001-0.003 nats
    score = PrefixDTR(lm, g=g, rho=rho)
    gen = think_at_n(pool, score, prefix=prefix, keep_ratio=0.5)
    seen = set()
    for q in range(2):
        reference = [
            reference_dtr(lm, pool.prompts[q], ids(cons.completions[q][k])[:prefix], g, rho)
            for k in range(N)
        ]
        mine = [score.score(q * N + k) for k in range(N)]
        assert mine == pytest.approx(reference)
        assert gen.voters[q] == top_k(reference, kept_count(N, 0.5))
        seen.update(reference)
    assert len(seen) > 2  # the ranking is not all ties


def test_prefix_scores_equal_the_scored_metrics_of_the_same_prefix_tokens(lm, pool, cons):
    """Think@n's prefix DTR / mean settling depth are the registry's ``dtr`` /
    ``mean-settling-depth`` of the prefix tokens, teacher-forced by the scoring pass."""
    prefix, g, rho = 5, 0.0013, 0.75
    for score, metric in (
        (PrefixDTR(lm, g=g, rho=rho), spec("dtr", g=g, rho=rho)),
        (PrefixSettlingDepth(lm, g=g), spec("mean-settling-depth", g=g)),
    ):
        think_at_n(pool, score, prefix=prefix, keep_ratio=0.5)
        tokens = [ids(cons.completions[q][k])[:prefix] for q in range(2) for k in range(N)]
        prompts = [pool.prompts[q] for q in range(2) for _ in range(N)]
        scored = [r[metric.column].value for r in measure(lm, prompts, tokens, [metric])]
        mine = [score.score(row) for row in range(2 * N)]
        assert mine == pytest.approx(scored)
        assert len(set(scored)) > 2  # not all ties


def test_dtr_tie_break_ranks_equal_dtr_by_depth_only(lm, pool, cons):
    prefix, g, rho = 5, 0.0013, 0.75
    plain, tied = PrefixDTR(lm, g=g, rho=rho), PrefixDTR(lm, g=g, rho=rho, tie_break=True)
    depth = PrefixSettlingDepth(lm, g=g)
    for score in (plain, tied, depth):
        think_at_n(pool, score, prefix=prefix, keep_ratio=0.5)
    rows = range(2 * N)
    for a in rows:
        assert tied.score(a) == pytest.approx(
            plain.score(a) + 1e-6 * depth.score(a) / lm.n_layers, abs=1e-12
        )
        for b in rows:  # lexicographic: DTR first, then mean settling depth
            if plain.score(a) != plain.score(b):
                assert (tied.score(a) > tied.score(b)) == (plain.score(a) > plain.score(b))
            elif depth.score(a) != depth.score(b):
                assert (tied.score(a) > tied.score(b)) == (depth.score(a) > depth.score(b))


def test_lens_cost_counts_the_unembedding_rows_the_lens_ran(lm, pool, monkeypatch):
    """``flops`` = 2 d V x the rows the lens really sent through the head (counted by a spy)."""
    real, rows = Head.raw, []

    def spy(self, hidden, out):
        rows.append(hidden.shape[0])
        return real(self, hidden, out)

    monkeypatch.setattr(Head, "raw", spy)
    score = PrefixDTR(lm, g=0.0013, rho=0.75)
    gen = think_at_n(pool, score, prefix=4, keep_ratio=0.5)
    vocab, d = lm.anatomy.unembed.weight.shape
    assert score.flops == 2 * d * vocab * sum(rows)
    assert sum(rows) > 2 * N * 4  # the final layer for every prefix token, and more
    assert gen.lens_flops == score.flops and gen.lens_s == score.seconds > 0


def test_deep_layer_survives_float_noise_where_a_plain_ceil_fails():
    assert math.ceil(0.56 * 25) == 15  # 0.56 * 25 = 14.000000000000002
    assert deep_layer(25, 0.56) == 14
    assert deep_layer(30, 0.9) == 27 and deep_layer(30, 0.85) == 26 and deep_layer(4, 0.75) == 3
    assert deep_thinking_ratio(torch.tensor([14, 13, 25]), 25, 0.56) == pytest.approx(2 / 3)


# -- DeepConf --------------------------------------------------------------------------------
def lowest(completion, window):
    return float(group_confidences(token_confidences(completion), window).min())


def test_deepconf_offline_keeps_the_most_confident_and_costs_what_cons_cost(cons):
    gen = deepconf_offline(cons, eta=0.5, window=4)
    assert gen.tokens() == cons.tokens() and gen.prefill_tokens == cons.prefill_tokens
    for q in range(2):
        conf = [lowest(c, 4) for c in cons.completions[q]]
        assert gen.voters[q] == top_k(conf, 3)
        assert gen.weights[q] == [conf[k] for k in gen.voters[q]]


def test_deepconf_online_stops_exactly_where_the_window_drops(pool, cons):
    warmup, eta, window = 2, 0.5, 3
    gen = deepconf_online(pool, warmup=warmup, eta=eta, window=window)
    stopped = 0
    for q in range(2):
        bar = np.percentile(
            [lowest(cons.completions[q][k], window) for k in range(warmup)], 100 * (1 - eta)
        )
        for k in range(N):
            mine, full = gen.completions[q][k], cons.completions[q][k]
            conf = token_confidences(full).tolist()
            means = [np.mean(conf[t - window : t]) for t in range(window, len(conf) + 1)]
            if k < warmup or all(m >= bar for m in means):
                assert ids(mine) == ids(full) and mine.finish_reason != "pruned"
                continue
            cut = window + next(i for i, m in enumerate(means) if m < bar)
            if cut == len(ids(full)):  # it drops on its last token: the sample ends anyway
                assert ids(mine) == ids(full) and mine.finish_reason != "pruned"
                continue
            assert mine.finish_reason == "pruned" and ids(mine) == ids(full)[:cut]
            stopped += 1
        voters = [
            k
            for k in range(N)
            if gen.completions[q][k].finish_reason != "pruned"
            and lowest(gen.completions[q][k], window) >= bar
        ]
        assert gen.voters[q] == voters
    assert stopped > 0
    assert sum(gen.tokens()) < sum(cons.tokens())
    assert gen.prefill_tokens == [2 * len(p) for p in pool.prompts]  # two samplers


# -- the experiment: table, errors, resume ---------------------------------------------------
def test_summarize_averages_repeats_and_divides_by_cons_tokens():
    rows = []
    for repeat, (cons_ok, think_ok) in enumerate([(1.0, 1.0), (0.0, 1.0)]):
        for question in ("a", "b"):
            for method, ok, tokens in (("cons@n", cons_ok, 100), ("think@n", think_ok, 40)):
                lens = (1.0 + repeat, 3.0) if method == "think@n" else (0.0, 0.0)
                rows.append(
                    dict(
                        repeat=repeat,
                        question_id=question,
                        method=method,
                        answer="1",
                        correct=ok,
                        tokens=tokens,
                        prefill_tokens=10,
                        voters=4,
                        pool_mismatches=0,
                        wall_s=1.0,
                        lens_s=lens[0],
                        lens_gflop=lens[1],
                    )
                )
    table = summarize(pd.DataFrame(rows)).set_index("method")
    assert table.loc["cons@n", "accuracy"] == 0.5
    assert table.loc["cons@n", "accuracy_std"] == pytest.approx(np.std([1, 0], ddof=1), abs=1e-4)
    assert table.loc["think@n", "accuracy"] == 1.0 and table.loc["think@n", "accuracy_std"] == 0
    assert table.loc["think@n", "tokens"] == 80 and table.loc["cons@n", "tokens"] == 200
    assert table.loc["think@n", "relative_cost"] == 0.4
    assert table.loc["think@n", "prefill_tokens"] == 20
    # lens cost: summed over questions, averaged over repeats ((2 + 4) / 2 s, 2 x 3 GFLOP)
    assert table.loc["think@n", "lens_s"] == 3.0 and table.loc["think@n", "lens_gflop"] == 6.0
    assert table.loc["cons@n", "lens_s"] == 0.0


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(keep_ratio=1.5), "--keep-ratio"),
        (dict(keep_ratio=0), "--keep-ratio"),
        (dict(prefix_tokens=0), "--prefix-tokens"),
        (dict(repeats=0), "--repeats"),
        (dict(base="x"), "--base"),
    ],
)
def test_bad_arguments_are_one_line_user_errors(bad, message):
    with pytest.raises(UserError, match=message):
        SelectConfig.parse(**bad)
    with pytest.raises(UserError, match="--warmup"):
        _ = SelectConfig.parse(n=4, warmup=5).warmup_samples


@pytest.fixture
def task_file(tmp_path):
    return arithmetic_task(tmp_path)


def test_a_killed_run_resumes_to_the_same_table(lm, task_file, tmp_path, monkeypatch):
    config = small_config(task_file)
    whole = run_selection(config, tmp_path / "whole", lm=lm, show_progress=False)
    assert list(whole["method"]) == list(experiment.METHODS)
    assert (tmp_path / "whole" / "selection.png").stat().st_size > 0

    real, calls = experiment.run_methods, []

    def dies_after_one(pool, cfg, done, engine):
        calls.append(pool.questions)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(pool, cfg, done, engine)

    monkeypatch.setattr(experiment, "run_methods", dies_after_one)
    out = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        run_selection(config, out, lm=lm, show_progress=False)
    assert len(list((out / "shards").glob("*.parquet"))) == 1
    assert not (out / "selection.csv").exists()
    with pytest.raises(UserError, match="--resume"):
        run_selection(config, out, lm=lm, show_progress=False)
    resumed = run_selection(config, out, resume=True, lm=lm, show_progress=False)
    assert len(calls) == 2 + 3  # 2 repeats x 2 units: one written, one killed, three resumed
    timed = ["wall_s", "lens_s"]
    pd.testing.assert_frame_equal(resumed.drop(columns=timed), whole.drop(columns=timed))
    assert (resumed["pool_mismatches"] == 0).all()
    # resuming a finished run is idempotent; only another config or no --resume is an error
    again = run_selection(config, out, resume=True, lm=lm, show_progress=False)
    assert len(calls) == 5
    pd.testing.assert_frame_equal(
        again.drop(columns=timed), whole.drop(columns=timed), check_exact=False
    )
    with pytest.raises(UserError, match="finished selection"):
        run_selection(config, out, lm=lm, show_progress=False)
    with pytest.raises(UserError, match="differs in repeats"):
        run_selection(
            config.model_copy(update={"repeats": 3}), out, resume=True, lm=lm, show_progress=False
        )


@pytest.mark.integration
def test_think_at_n_command_on_the_bundled_model(bundled_lm, tmp_path, monkeypatch):
    import typer
    from typer.testing import CliRunner

    from thinkscope.cli.think_at_n import think_at_n_command

    monkeypatch.setattr(experiment, "load_model", lambda spec, **loading: bundled_lm)
    app = typer.Typer()
    app.command("think-at-n")(think_at_n_command)
    app.command("unused")(lambda: None)  # two commands: keep the subcommand name
    out = tmp_path / "sel"
    result = CliRunner().invoke(
        app,
        [
            "think-at-n",
            "--task",
            "gym:basic_arithmetic?min_terms=2&max_terms=2&min_digits=1&max_digits=1",
            "--questions",
            "2",
            "--n",
            "4",
            "--prefix-tokens",
            "4",
            "--keep-ratio",
            "0.5",
            "--repeats",
            "1",
            "--max-new-tokens",
            "10",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "selection.csv")
    assert set(experiment.METHODS) == set(table["method"])
    assert table["accuracy_std"].isna().all()  # one repeat: no spread to report
    for column in ("accuracy", "tokens", "prefill_tokens", "relative_cost"):
        assert table[column].notna().all()
    row = table.set_index("method")
    assert row.loc["cons@n", "relative_cost"] == 1.0
    assert row.loc["think@n", "tokens"] < row.loc["cons@n", "tokens"]
    assert (table["pool_mismatches"] == 0).all()
    assert "selection.csv" in result.output and (out / "selection.png").is_file()
