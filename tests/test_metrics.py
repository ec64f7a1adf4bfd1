"""Every metric against a plain per-token reference, and the registry's names and parameters."""

import math
import statistics

import pytest
import torch

from test_lens import random_ids, reference
from thinkscope.core.errors import UserError
from thinkscope.lens import sampled_states, settle, token_profile
from thinkscope.metrics import (
    REGISTRY,
    deep_thinking_ratio,
    lens_views,
    measure,
    parse_metrics,
    settling_depth,
    spec,
)
from thinkscope.metrics.confidence import group_confidences
from thinkscope.metrics.dtr import deep_layer
from thinkscope.metrics.layers import agreement_depth
from tiny import tiny_lm


def test_settling_depth_is_the_first_layer_at_or_below_g():
    jsd = torch.tensor(
        [
            [0.6, 0.4, 0.55, 0.0],  # dips to 0.4 at layer 2, then rises: still 2
            [0.6, 0.6, 0.5, 0.0],  # exactly g counts
            [0.7, 0.7, 0.7, 0.0],  # only the last layer
            [0.1, 0.6, 0.6, 0.0],
        ]
    )
    assert settling_depth(jsd, 0.5).tolist() == [2, 3, 4, 1]
    assert settling_depth(jsd, 0.5 / math.log(2), base=2).tolist() == [2, 3, 4, 1]  # same, in bits
    assert settling_depth(jsd[:, :3], 0.3).tolist() == [3, 3, 3, 1]  # no layer qualifies -> L


def test_deep_thinking_ratio():
    assert deep_layer(30, 0.85) == 26 and deep_layer(30, 0.9) == 27 and deep_layer(10, 0.85) == 9
    depths = torch.tensor([30, 26, 25, 1])
    assert deep_thinking_ratio(depths, 30, 0.85) == 0.5
    with pytest.warns(UserWarning, match="undefined"):
        assert math.isnan(deep_thinking_ratio(torch.tensor([], dtype=torch.long), 30))


def test_group_confidences_match_deepconfs_loop():
    conf = torch.rand(50, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    loop = [sum(conf[i : i + 8].tolist()) / 8 for i in range(50 - 8 + 1)]
    torch.testing.assert_close(group_confidences(conf, 8), torch.tensor(loop, dtype=torch.float64))
    assert group_confidences(conf, 64).tolist() == [pytest.approx(float(conf.mean()))]


def plain_metrics(lm, ids, prompt_len, g, window):
    """Each metric computed the obvious way from the float64 per-token, per-layer reference."""
    ref = reference(lm, ids, prompt_len, k=10)
    final, T, L = ref["final"], len(ids) - prompt_len, lm.n_layers
    targets = torch.tensor(ids[prompt_len:])
    depths = [next(k + 1 for k in range(L) if min(ref["jsd"][t, : k + 1]) <= g) for t in range(T)]
    conf = [-float(final[t].topk(20).values.mean()) for t in range(T)]
    groups = [sum(conf[i : i + window]) / window for i in range(T - window + 1)] or [sum(conf) / T]
    agree = [
        next(
            k + 1
            for k in range(L)
            if len(set(ref["topk"][t, k].tolist()) & set(ref["topk"][t, -1].tolist())) >= 9
        )
        for t in range(T)
    ]
    return {
        "length": T,
        f"dtr[g={g!r}]": sum(d >= math.ceil(0.85 * L) for d in depths) / T,
        f"mean-settling-depth[g={g!r}]": sum(depths) / T,
        f"median-settling-depth[g={g!r}]": statistics.median(depths),
        "logprob": float(final.gather(1, targets[:, None]).mean()),
        "neg-entropy": float((final.exp() * final).sum(-1).mean()),
        "self-certainty": float((-math.log(final.shape[1]) - final.mean(-1)).mean()),
        "token-conf": sum(conf) / T,
        f"group-conf-lowest[window={window}]": min(groups),
        f"bottom10-conf[window={window}]": sum(sorted(groups)[: max(1, int(len(groups) * 0.1))])
        / max(1, int(len(groups) * 0.1)),
        f"tail-conf[window={window}]": sum(conf[-window:]) / len(conf[-window:]),
        "topk-agreement": sum(agree) / T,
        "jsd-profile": ref["jsd"].mean(0).tolist(),
    }, depths


def threshold_between_values(jsd: torch.Tensor) -> float:
    """A g in the widest gap between mid-range JSD values, so float32 vs float64 cannot flip it."""
    values = jsd[:, :-1].flatten().double().sort().values
    mid = values[len(values) // 4 : 3 * len(values) // 4]
    gap = int((mid[1:] - mid[:-1]).argmax())
    return round(float(mid[gap] + mid[gap + 1]) / 2, 8)


@pytest.mark.parametrize("family", ["llama", "gemma2", "gpt2"])
def test_every_metric_matches_the_plain_reference(family):
    lm = tiny_lm(family, n_layers=6)
    ids, prompt_len, window = random_ids(40, seed=21), 6, 8
    g = threshold_between_values(token_profile(lm, ids, prompt_len).jsd)
    expected, depths = plain_metrics(lm, ids, prompt_len, g, window)
    specs = parse_metrics(
        f"length,dtr[g={g!r}],mean-settling-depth[g={g!r}],"
        f"median-settling-depth[g={g!r}],logprob,neg-entropy,self-certainty,token-conf,"
        f"group-conf-lowest[window={window}],bottom10-conf[window={window}],"
        f"tail-conf[window={window}],topk-agreement,jsd-profile"
    )
    assert sorted(s.column for s in specs) == sorted(expected)
    (got,) = measure(lm, [ids[:prompt_len]], [ids[prompt_len:]], specs)
    for column, value in expected.items():
        assert got[column].value == pytest.approx(value, abs=1e-5), column
    assert got[f"dtr[g={g!r}]"].arrays[f"settling_depth[g={g!r}]"].tolist() == depths
    # without full-profile metrics the fast path runs, with the same depths
    fast_specs = [s for s in specs if not s.needs().full]
    (fast,) = measure(lm, [ids[:prompt_len]], [ids[prompt_len:]], fast_specs)
    for s in fast_specs:
        assert fast[s.column].value == pytest.approx(got[s.column].value, abs=1e-6), s.column


def test_agreement_depth_counts_shared_ids():
    ids = torch.tensor([[[7, 8, 9], [1, 2, 9], [3, 2, 1]], [[2, 1, 3], [0, 0, 0], [3, 2, 1]]])
    assert agreement_depth(ids, k=3, alpha=0.6).tolist() == [2, 1]  # [T=2, L=3, K=3]
    assert agreement_depth(ids, k=3, alpha=1.0).tolist() == [3, 1]
    assert agreement_depth(ids, k=1, alpha=1.0).tolist() == [3, 3]  # top-1 only: 3 at the end


def test_lens_views_run_only_what_the_metrics_need():
    lm = tiny_lm("llama")
    prompts, completions = [random_ids(4, 1)], [random_ids(6, 2)]
    (view,) = lens_views(lm, prompts, completions, parse_metrics("length")[0].needs())
    assert view.final is None and view.n_tokens == 6  # no forward pass at all
    (view,) = lens_views(lm, prompts, completions, parse_metrics("logprob")[0].needs())
    assert view.jsd is None and not view.depths and len(view.final.entropy) == 6  # final layer only
    states, _ = sampled_states(lm, prompts, completions)
    assert settle(lm, states, []).layer_rows == 6


def test_empty_completion_gives_nan_not_a_crash():
    lm = tiny_lm("llama")
    with pytest.warns(UserWarning, match="DTR is undefined"):
        (got,) = measure(lm, [random_ids(4)], [[]], parse_metrics("all"))
    assert got["length"].value == 0
    for column, result in got.items():
        if column not in ("length", "jsd-profile"):
            assert math.isnan(result.value), column


def test_names_parameters_and_groups():
    columns = [s.column for s in parse_metrics("dtr,confidence,dtr[g=0.6, rho=0.9],dtr[base=2]")]
    assert columns == [
        "dtr",
        "logprob",
        "neg-entropy",
        "self-certainty",
        "token-conf",
        "group-conf-lowest",
        "bottom10-conf",
        "tail-conf",
        "dtr[g=0.6,rho=0.9]",
        "dtr[base=2]",
    ]
    assert {s.column for s in parse_metrics("all")} == {n for n, m in REGISTRY.items() if m.in_all}
    assert spec("dtr", g=0.5).column == "dtr"  # defaults given explicitly keep the bare name
    assert spec("dtr", g="0.60").params == {"g": 0.6, "rho": 0.85, "base": "e"}
    assert spec("dtr", g=0.6, base=2).array_name("deep") == "deep[base=2,g=0.6]"
    assert spec("tail-conf", window=512).column == "tail-conf[window=512]"
    for bad, message in (
        ("nope", "unknown metric"),
        ("dtr[h=1]", "no parameter"),
        ("dtr[g=x]", "not a number"),
        ("dtr[base=1]", "log base"),
        ("confidence[window=4]", "group"),
        ("dtr[g]", "cannot parse"),
    ):
        with pytest.raises(UserError, match=message):
            parse_metrics(bad)
