"""collect and directions against numpy on rows taken from plain one-by-one forward passes."""

import numpy as np
import pandas as pd
import pytest
import torch

from thinkscope.core.atomic import write_parquet
from thinkscope.core.errors import UserError
from thinkscope.interp.activations import collect, load_rows, sequences_from_run
from thinkscope.interp.directions import Directions, cosine_matrix, decode, diff_in_means
from tiny import tiny_lm

TEXTS = [
    "What is 3 + 5?",
    "Calculate 12 - 7. 12 - 7 = 5.",
    "Janet has 16 eggs",
    "The answer is 8.",
    "Think step by step, then finish",
    "<think> reasoning </think>",
    "Question: Answer: A: B:",
]


@pytest.fixture(scope="module")
def lm():
    return tiny_lm("qwen2", n_layers=4)


def reference_rows(lm, seqs, layers, how, starts=None):
    """[N, n_layers, d] float64: each sequence alone, reduced in numpy."""
    out = []
    for i, ids in enumerate(seqs):
        with torch.no_grad(), lm.record_blocks() as states:
            lm.model(input_ids=torch.tensor([ids]))
        per_layer = []
        for layer in layers:
            h = states[layer - 1][0].double().numpy()
            start = 0 if starts is None else starts[i]
            per_layer.append(h[-1] if how == "last" else h[start:].mean(axis=0))
        out.append(per_layer)
    return np.array(out)


@pytest.mark.parametrize("how", ["last", "mean"])
def test_collect_matches_numpy_on_padded_batches(lm, tmp_path, how):
    seqs = [lm.tokenizer(t)["input_ids"] for t in TEXTS]
    assert len({len(s) for s in seqs}) > 3  # batches really are padded
    want = reference_rows(lm, seqs, [2, 4], how)
    rows = tmp_path / "rows.npy"
    stats = collect(
        lm, TEXTS, layers=[4, 2], positions=how, covariance=True, rows=rows, batch_size=3
    )
    assert stats.layers == [2, 4] and stats.count == len(TEXTS)
    assert np.allclose(load_rows(rows), want, atol=1e-5)
    assert np.allclose(stats.mean, want.mean(axis=0), atol=1e-6)
    for k in range(2):
        assert np.allclose(stats.covariance[k], np.cov(want[:, k].T), atol=1e-5)
    assert not list(tmp_path.glob("*partial*"))


def make_run(path, lm):
    prompts = [lm.tokenizer(t)["input_ids"] for t in TEXTS[:4]]
    completions = [lm.tokenizer(t)["input_ids"] for t in TEXTS[3:]]
    path.mkdir()
    frame = pd.DataFrame(
        {"prompt_ids": prompts, "token_ids": completions, "correct": [True, False, True, False]}
    )
    write_parquet(path / "traces.parquet", frame)
    return prompts, completions


def test_completion_positions_from_a_run_folder(lm, tmp_path):
    prompts, completions = make_run(tmp_path / "run", lm)
    seqs, correct = sequences_from_run(tmp_path / "run")
    assert correct.tolist() == [True, False, True, False]
    want = reference_rows(
        lm,
        [p + c for p, c in zip(prompts, completions, strict=True)],
        [3],
        "completion",
        [len(p) for p in prompts],
    )
    stats = collect(lm, tmp_path / "run", layers=[3], positions="completion", batch_size=4)
    assert np.allclose(stats.mean, want.mean(axis=0), atol=1e-6)


def test_diff_in_means_equals_numpy_on_the_rows_and_round_trips(lm, tmp_path):
    a = collect(lm, TEXTS[:4], rows=tmp_path / "a.npy")
    b = collect(lm, TEXTS[4:], rows=tmp_path / "b.npy")
    found = diff_in_means(a, b, model=lm.name, sets=("r", "c"))
    want = load_rows(tmp_path / "a.npy").astype(np.float64).mean(0) - load_rows(
        tmp_path / "b.npy"
    ).astype(np.float64).mean(0)
    assert np.allclose(found.raw, want, atol=1e-6)
    assert np.allclose(np.linalg.norm(found.unit, axis=1), 1.0)
    found.save(tmp_path / "dirs")
    back = Directions.load(tmp_path / "dirs.json")
    assert np.array_equal(back.raw, found.raw) and back.counts == (4, 3) and back.sets == ("r", "c")
    cos = cosine_matrix(found)
    loops = [[float(x @ y / np.linalg.norm(x) / np.linalg.norm(y)) for y in want] for x in want]
    assert np.allclose(cos, loops) and np.allclose(np.diag(cos), 1.0)


def test_decode_reads_the_direction_through_norm_and_unembedding(lm):
    v = torch.randn(64)
    got = decode(lm, v, k=5)
    norm = lm.model.model.norm
    x = v.double()
    normed = x / torch.sqrt((x**2).mean() + norm.variance_epsilon) * norm.weight.double()
    logits = lm.model.lm_head.weight.double() @ normed
    order = torch.argsort(logits, descending=True)
    assert [t for t, _ in got["top"]] == [lm.tokenizer.decode([int(i)]) for i in order[:5]]
    assert [t for t, _ in got["bottom"]] == [
        lm.tokenizer.decode([int(i)]) for i in order[-5:].flip(0)
    ]


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(texts=[]),
        dict(texts=["a"], positions="first"),
        dict(texts=["a"], layers=[9]),
        dict(texts="no/such/run"),
        dict(texts=["ab"], positions="completion"),
    ],
)
def test_bad_inputs_are_user_errors(lm, kwargs):
    texts = kwargs.pop("texts")
    with pytest.raises(UserError):
        collect(lm, texts, **kwargs)
