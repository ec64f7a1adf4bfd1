"""CKA against a plain numpy implementation with an explicit centring matrix, its invariances,
the minibatch estimator converging to it, probes on planted signals, and transplantation."""

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoModelForCausalLM
from typer.testing import CliRunner

from thinkscope.cli.app import app
from thinkscope.core.errors import UserError
from thinkscope.interp import steer
from thinkscope.interp.activations import batch_rows, collect, sequences_from_texts
from thinkscope.interp.cka import cka_matrix, cka_table, linear_cka, unbiased_hsic
from thinkscope.interp.directions import diff_in_means
from thinkscope.interp.probes import probe_layers
from thinkscope.interp.transplant import fit_map, transplant
from tiny import tiny_lm, tiny_model, tiny_tokenizer

RNG = np.random.default_rng(0)


def numpy_cka(x, y):
    """Kornblith et al. eq. (3) written out: H = I - 11^T/n, HSIC = tr(KHLH)/(n-1)^2."""
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n
    k, l_ = x @ x.T, y @ y.T

    def hsic(a, b):
        return np.trace(a @ h @ b @ h) / (n - 1) ** 2

    return hsic(k, l_) / np.sqrt(hsic(k, k) * hsic(l_, l_))


def test_linear_cka_matches_numpy_and_its_invariances():
    x = RNG.normal(size=(40, 12))
    y = np.tanh(x @ RNG.normal(size=(12, 7))) + 0.3 * RNG.normal(size=(40, 7))
    value = linear_cka(x, y)
    assert 0.2 < value < 0.98  # not a trivial case
    assert value == pytest.approx(numpy_cka(x, y), abs=1e-12)
    q, _ = np.linalg.qr(RNG.normal(size=(12, 12)))
    assert linear_cka(x @ q, y) == pytest.approx(value, abs=1e-10)
    assert linear_cka(3.7 * x, 0.2 * y) == pytest.approx(value, abs=1e-10)
    assert linear_cka(x + 5.0, y) == pytest.approx(value, abs=1e-10)  # centring
    assert linear_cka(x, x) == pytest.approx(1.0)
    assert linear_cka(x, RNG.normal(size=(40, 7))) < value
    # not invariant to a non-isotropic scaling: the test can tell the two apart
    assert abs(linear_cka(x * np.linspace(0.1, 5, 12), y) - value) > 1e-3


def test_unbiased_hsic_matches_the_formula_with_loops():
    x, y = RNG.normal(size=(9, 3)), RNG.normal(size=(9, 2))
    k, l_ = x @ x.T, y @ y.T
    n = 9
    kt, lt = k - np.diag(np.diag(k)), l_ - np.diag(np.diag(l_))
    tr = sum(kt[i, j] * lt[j, i] for i in range(n) for j in range(n))
    cross = sum(kt[i, j] * lt[j, m] for i in range(n) for j in range(n) for m in range(n))
    want = (tr + kt.sum() * lt.sum() / ((n - 1) * (n - 2)) - 2 * cross / (n - 2)) / (n * (n - 3))
    assert unbiased_hsic(k, l_) == pytest.approx(want, rel=1e-10)


def test_minibatch_estimator_converges_to_full_cka():
    n = 1200
    x = RNG.normal(size=(n, 2, 10))
    y = np.stack([x[:, 0] @ RNG.normal(size=(10, 6)), np.abs(x[:, 1, :6])], axis=1)
    y += 0.5 * RNG.normal(size=y.shape)
    full = cka_matrix(x, y)
    assert abs(full[0, 1] - full[0, 0]) > 0.3
    errors = [np.abs(cka_matrix(x, y, batch_size=b) - full).max() for b in (8, 64, 400)]
    assert errors[2] < 0.02 and errors[2] < errors[0]


def test_cka_table_labels_rows_and_columns_with_each_models_layers(tmp_path):
    rows_a, rows_b = RNG.normal(size=(30, 2, 5)), RNG.normal(size=(30, 3, 4))
    rows_b[:, 2] = rows_a[:, 0, :4]  # B's third layer copies part of A's first
    cka = cka_matrix(rows_a, rows_b)
    table = cka_table(cka, [4, 9], [1, 5, 7])
    table.to_csv(tmp_path / "cka.csv", float_format="%.6f")
    back = pd.read_csv(tmp_path / "cka.csv", index_col="layer_a")
    assert list(back.index) == [4, 9] and list(back.columns) == ["1", "5", "7"]
    assert back.loc[4, "7"] == pytest.approx(linear_cka(rows_a[:, 0], rows_a[:, 0, :4]), abs=1e-6)
    assert back.loc[4, "7"] > 0.5 > back.loc[9, "7"]  # the copy is found at (A 4, B 7) only
    with pytest.raises(UserError):
        cka_table(cka, [4, 9], [1, 5])


def test_probes_find_a_planted_signal_only_where_it_is():
    n = 120
    labels = np.repeat([0, 1], n // 2)
    rows = RNG.normal(size=(n, 2, 6))
    rows[:, 1, 0] += 3.0 * labels  # layer 2 carries the label, layer 1 does not
    table = probe_layers(rows, labels, layers=[1, 2], folds=5, n_resamples=500)
    noise, signal = table.iloc[0], table.iloc[1]
    assert signal.accuracy > 0.85 and signal.auroc > 0.9 and signal.acc_lo > 0.75
    assert noise.acc_lo < 0.5 < noise.acc_hi + 0.1 and noise.auroc < 0.75
    with pytest.raises(UserError):
        probe_layers(rows[:6], labels[:6], layers=[1, 2], folds=5)


def test_transplanted_direction_steers_a_second_tiny_model():
    """Two different tiny models: with fewer inputs than dimensions the least-squares map
    interpolates, so A's direction mapped into B equals B's own difference in means."""
    a, b = tiny_lm("llama", n_layers=3, seed=0), tiny_lm("qwen2", n_layers=3, seed=1)
    texts = ["What is 3 + 5?", "Janet has 16 eggs", "The answer is 8.", "Question: A: B:"]
    controls = ["<think> reasoning", "Calculate 12 - 7.", "Think step by step", "#### 42"]
    stats = {}
    for name, lm in (("a", a), ("b", b)):
        for part, inputs in (("r", texts), ("c", controls)):
            stats[name, part] = collect(lm, inputs, layers=[2], rows=None)
    rows = {}
    for name, lm in (("a", a), ("b", b)):
        rows[name] = batch_rows(lm, sequences_from_texts(lm, texts + controls), [2], "last")
    dir_a = diff_in_means(stats["a", "r"], stats["a", "c"], "a")
    dir_b = diff_in_means(stats["b", "r"], stats["b", "c"], "b")
    mapping = fit_map(rows["a"][:, 0].numpy(), rows["b"][:, 0].numpy())
    assert mapping.r2 == pytest.approx(1.0, abs=1e-6)
    moved = transplant(dir_a, {2: mapping}, "b")
    assert np.allclose(moved.raw, dir_b.raw, atol=1e-4)
    assert abs(float(dir_a.unit[0] @ dir_b.unit[0])) < 0.5  # the raw A direction is not B's
    ids = torch.tensor([b.tokenizer("What is 3 + 5?")["input_ids"]])
    with steer(b, {2: moved.at(2, unit=False)}, alpha=1.0):
        steered = b.model(input_ids=ids).logits
    assert not torch.allclose(steered, b.model(input_ids=ids).logits, atol=1e-3)


@torch.no_grad()
def block_outputs_last_token(path, texts) -> np.ndarray:
    """``[N, L, d]``: each block's output at each text's last token, from a float64 copy of the
    model saved at ``path``, one unpadded text at a time, read with plain forward hooks."""
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float64).eval()
    outs, rows = [], []

    def keep(_module, _args, output):
        outs.append(output[0] if isinstance(output, tuple) else output)

    hooks = [block.register_forward_hook(keep) for block in model.model.layers]
    try:
        for text in texts:
            outs.clear()
            model(input_ids=torch.tensor([tiny_tokenizer()(text)["input_ids"]]))
            rows.append(torch.stack([o[0, -1] for o in outs]).numpy())
    finally:
        for hook in hooks:
            hook.remove()
    return np.array(rows)


def test_cli_cka_of_two_models_matches_numpy_on_float64_activations(tiny_model_dir, tmp_path):
    """``interp cka`` between two different tiny llamas (seeds 0 and 1) against numpy_cka of
    float64 block outputs. Fails if the table is transposed (it is not symmetric here), a layer
    is off by one, another token than the last is read, or padding leaks into a short text."""
    other = tmp_path / "seed1"
    tiny_model("llama", seed=1).save_pretrained(other)
    tiny_tokenizer().save_pretrained(other)
    texts = [
        "What is 3 + 5?",
        "Janet has 16 eggs and eats 3.",
        "The answer is 8.",
        "Question: A: B:",
        "Calculate 12 - 7.",
        "Think step by step",
        "#### 42",
        "<think> reasoning </think> <answer> 7 </answer>",
    ]
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n")
    out = tmp_path / "cka"
    models = ["--model", str(tiny_model_dir), "--model-b", str(other)]
    args = ["interp", "cka", *models, "--texts", str(tmp_path / "texts.txt"), "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    got = pd.read_csv(out / "cka.csv", index_col="layer_a").to_numpy()
    ref = {
        tag: block_outputs_last_token(p, texts) for tag, p in (("a", tiny_model_dir), ("b", other))
    }
    n, n_layers, d = ref["a"].shape
    rho = {}  # relative error of the centred fp32 rows the command wrote
    for tag, want in ref.items():
        rows = np.load(out / f"rows_{tag}.npy").astype(np.float64)
        x, y = rows - rows.mean(0), want - want.mean(0)  # [N, L, d], centred over the inputs
        rho[tag] = max(
            np.linalg.norm(x[:, i] - y[:, i]) / np.linalg.norm(y[:, i]) for i in range(n_layers)
        )
        # fp32 forward bound: per block a few (<= 4) chained length-d reductions, gamma_d ~ d*u
        assert rho[tag] <= n_layers * 4 * d * 2**-24, (tag, rho[tag])
    want = np.array(
        [
            [numpy_cka(ref["a"][:, i], ref["b"][:, j]) for j in range(n_layers)]
            for i in range(n_layers)
        ]
    )
    # CKA is the cosine of the centred Grams K = XX^T: |dCKA| <= |dK|/|K| + |dL|/|L|, and
    # |dK|/|K| <= 2 sqrt(n) rho (|XX^T|_F >= |X|_F^2 / sqrt(n)); the csv keeps 6 decimals
    tol = 2 * np.sqrt(n) * (rho["a"] + rho["b"]) + 5e-7
    assert np.abs(got - want).max() <= tol, (got, want)
    assert np.abs(want - want.T).max() > 100 * tol  # a transposed table would fail
