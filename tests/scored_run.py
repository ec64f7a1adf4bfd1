"""A fake scored run folder, random but plausible, so analysis/report tests need no model.

Traces follow the real schema (thinkscope.runstore.trace.TRACE_COLUMNS); ``scores.json`` and
``token_metrics.parquet`` follow thinkscope.scoring's layout (``layout="flat"``: the older
``{column: entry}`` scores.json). Deeper-thinking traces are
more often correct, so AUROCs and figures look like a real run's.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

VOCAB = [
    "<|im_end|>",
    " The",
    " answer",
    " is",
    " so",
    " we",
    " add",
    " =",
    " +",
    " -",
    ".",
    ",",
    "\n",
    " step",
    " First",
    " then",
    " 3",
    " 5",
    " 8",
    " 12",
    " 7",
    " total",
    " <b>&amp;</b>",
    "</script>",
]
EOS = 0


class VocabTokenizer:
    """Decodes the fixture's token ids (stand-in for ``thinkscope.models.load_tokenizer``)."""

    def decode(self, ids, **_) -> str:
        return "".join(VOCAB[i] for i in ids)

    def convert_ids_to_tokens(self, i: int) -> str:
        return VOCAB[i]


def _jsd_rows(depths: np.ndarray, n_layers: int, rng: np.random.Generator) -> np.ndarray:
    """``[T, L]`` JSD curves that fall from ~ln 2 and cross g = 0.5 at each token's depth."""
    layers = np.arange(1, n_layers + 1)
    jsd = math.log(2) / (1 + np.exp(2.5 * (layers[None, :] - depths[:, None] + 0.5)))
    jsd = np.clip(jsd + rng.normal(0, 0.01, jsd.shape), 0, math.log(2))
    jsd[:, -1] = 0.0
    return jsd.astype(np.float32)


def make_scored_run(
    path: Path,
    problems: int = 4,
    n: int = 4,
    n_layers: int = 8,
    seed: int = 0,
    outcome: str = "mixed",
    nan_rows: int = 0,
    tokens: tuple[int, int] = (8, 40),
    token_metrics: bool = True,
    jsd: str | None = "jsd_profile",
    layout: str = "nested",
) -> Path:
    """Write a finished, scored run to ``path``; ``outcome`` is mixed, correct or wrong.

    ``jsd`` names the per-token JSD column of token_metrics.parquet (None: leave it out).
    """
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    deep = math.ceil(0.85 * n_layers)
    rows, token_rows = [], []
    for p in range(problems):
        difficulty = rng.normal()
        for k in range(n):
            t = int(rng.integers(*tokens))
            ids = [*rng.integers(1, len(VOCAB), t - 1).tolist(), EOS]
            depth_bias = rng.normal(0.55, 0.12)
            depths = np.clip(
                np.round(rng.normal(depth_bias * n_layers, n_layers / 5, t)), 1, n_layers
            ).astype(int)
            dtr = float(np.mean(depths >= deep))
            logprobs = -rng.gamma(1.5, 0.4, t)
            p_correct = 1 / (1 + np.exp(-(8 * (dtr - 0.12) - 0.7 * difficulty - 0.005 * (t - 60))))
            correct = {"mixed": rng.random() < p_correct, "correct": True, "wrong": False}[outcome]
            rows.append(
                {
                    "problem_id": f"demo-{p:03d}",
                    "sample_idx": k,
                    "question": f"What is {p} + {k}?",
                    "gold": str(p + k),
                    "prompt": f"Q: What is {p} + {k}?\nA:",
                    "completion": "".join(VOCAB[i] for i in ids[:-1]),
                    "prompt_ids": [1, 2, 3],
                    "token_ids": ids,
                    "token_logprobs": logprobs.tolist(),
                    "finish_reason": "stop",
                    "pred": str(p + k) if correct else str(p + k + 1),
                    "correct": bool(correct),
                    "sample_seed": int(rng.integers(2**62)),
                    "top_ids": [],
                    "top_logprobs": [],
                    "n_tokens": t,
                    "dtr": dtr,
                    "dtr[g=0.6]": float(np.mean(depths >= deep - 1)),
                    "length": float(t),
                    "logprob": float(logprobs.mean()),
                    "neg-entropy": float(logprobs.mean() * 1.3 + rng.normal(0, 0.1)),
                    "self-certainty": float(2 + 3 * dtr + rng.normal(0, 0.4)),
                    "mean-settling-depth": float(depths.mean()),
                }
            )
            token_rows.append((depths, _jsd_rows(depths, n_layers, rng)))
    traces = pd.DataFrame(rows)
    if nan_rows:
        traces.loc[: nan_rows - 1, "self-certainty"] = np.nan
    traces.to_parquet(path / "traces.parquet", index=False)
    metrics = {
        "dtr": ("dtr", {"g": 0.5, "rho": 0.85, "base": "e"}),
        "dtr[g=0.6]": ("dtr", {"g": 0.6, "rho": 0.85, "base": "e"}),
        "length": ("length", {}),
        "logprob": ("logprob", {}),
        "neg-entropy": ("neg-entropy", {}),
        "self-certainty": ("self-certainty", {}),
        "mean-settling-depth": ("mean-settling-depth", {}),
    }
    columns = {
        c: {"metric": m, "params": p, "model": "fake-model"} for c, (m, p) in metrics.items()
    }
    record = columns if layout == "flat" else {"columns": columns, "arrays": {}, "vectors": {}}
    (path / "scores.json").write_text(json.dumps(record))
    (path / "config.yaml").write_text(
        yaml.safe_dump(
            {
                "model": "fake-model",
                "task": "demo-arith",
                "questions": problems,
                "n": n,
                "seed": seed,
                "max_new_tokens": tokens[1],
                "temperature": 0.7,
                "prompt_style": "fewshot",
            }
        )
    )
    generated = int(traces["n_tokens"].sum())
    (path / "timing.json").write_text(
        json.dumps(
            {
                "sessions": [],
                "finished_at": "2025-01-01T00:00:00+00:00",
                "wall_s": generated / 100,
                "generated_tokens": generated,
                "tokens_per_s": 100.0,
            }
        )
    )
    if token_metrics:
        _write_token_metrics(path / "token_metrics.parquet", traces, token_rows, jsd)
    return path


def _write_token_metrics(path: Path, traces: pd.DataFrame, rows: list, jsd: str | None) -> None:
    lengths = np.array([len(d) for d, _ in rows])
    outer = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    columns = {
        "problem_id": traces["problem_id"],
        "sample_idx": traces["sample_idx"],
        "settling_depth": pa.ListArray.from_arrays(
            outer, pa.array(np.concatenate([d for d, _ in rows]))
        ),
    }
    if jsd:
        values = np.concatenate([j for _, j in rows])
        step = np.arange(0, values.size + 1, values.shape[1], dtype=np.int32)
        inner = pa.ListArray.from_arrays(step, pa.array(values.ravel()))
        columns[jsd] = pa.ListArray.from_arrays(outer, inner)
    pq.write_table(pa.table(columns), path)
