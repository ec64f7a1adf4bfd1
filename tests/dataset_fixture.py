"""A hand-built finished run folder with known correctness, tags, lengths and DTR values.

The expected count of each dataset filter on it is worked out by hand in test_datasets.py.
Row (problem, sample): completion, gold, finish_reason, n_tokens, dtr, logprob, stored correct.
``stored`` is what generate once wrote; q2/s1 is deliberately stale (says True, grades False).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import yaml

TAG = " work </think> <answer>{}</answer>"
ROWS = [
    ("q0", 0, TAG.format(12), "12", "stop", 10, 0.50, -0.5, True),
    ("q0", 1, TAG.format(12), "12", "stop", 10, 0.50, -0.5, True),
    ("q0", 2, " 5 + 7 makes 12", "12", "stop", 30, 0.10, -0.2, True),
    ("q0", 3, TAG.format(13), "12", "stop", 5, 0.70, -0.9, False),
    ("q1", 0, " so \\boxed{7}", "7", "length", 64, 0.30, -1.0, True),
    ("q1", 1, TAG.format(8), "7", "stop", 12, 0.40, -0.7, False),
    ("q1", 2, " first " + TAG.format(7), "7", "stop", 20, 0.15, -0.3, True),
    ("q1", 3, " second " + TAG.format(7), "7", "stop", 25, 0.15, -0.1, True),
    ("q2", 0, " The answer is 3.", "3", "stop", 8, 0.05, -0.4, True),
    ("q2", 1, " <answer>4</answer>", "3", "stop", 9, 0.60, -0.6, True),
    ("q3", 0, "", "100", "length", 0, math.nan, math.nan, False),
]
CORRECT = {(p, k) for p, k, *_ in ROWS[:3]} | {("q1", 0), ("q1", 2), ("q1", 3), ("q2", 0)}


def make_run(path: Path, scored: bool = True, drop: tuple[str, ...] = ()) -> Path:
    """Write the fixture run to ``path`` (``scored``: with ``dtr`` and ``logprob`` columns)."""
    path.mkdir(parents=True, exist_ok=True)
    rows = []
    for pid, k, completion, gold, finish, n, dtr, logprob, stored in ROWS:
        row = {
            "problem_id": pid,
            "sample_idx": k,
            "question": f"Question {pid}?",
            "gold": gold,
            "prompt": f"A conversation ...\nUser: Question {pid}?\nAssistant: <think>",
            "completion": completion,
            "prompt_ids": [1, 2],
            "token_ids": list(range(n)),
            "token_logprobs": [logprob] * n,
            "finish_reason": finish,
            "pred": None,
            "correct": stored,
            "sample_seed": k,
            "n_tokens": n,
        }
        if scored:
            row.update(dtr=dtr, logprob=logprob)
        rows.append(row)
    pd.DataFrame(rows).drop(columns=list(drop)).to_parquet(path / "traces.parquet", index=False)
    config = {"model": "fake-model", "task": "fixture", "n": 4, "prompt_style": "r1"}
    (path / "config.yaml").write_text(yaml.safe_dump(config))
    (path / "timing.json").write_text('{"sessions": [], "finished_at": "2026-01-01"}')
    return path


def make_big_run(path: Path, problems: int) -> Path:
    """``problems`` x 2 traces with LaTeX answers (math-verify makes grading ~10 ms each);
    sample 0 is right, sample 1 wrong."""
    path.mkdir(parents=True, exist_ok=True)
    rows = [
        {
            "problem_id": f"p{i:05d}",
            "sample_idx": k,
            "question": f"What is {i} doubled?",
            "gold": str(2 * i),
            "prompt": f"User: What is {i} doubled?\nAssistant: <think>",
            "completion": f" {i} + {i} </think> <answer>\\frac{{{2 * i + k}}}{{1}}</answer>",
            "finish_reason": "stop",
            "n_tokens": 12,
            "token_logprobs": [-0.5] * 12,
        }
        for i in range(problems)
        for k in range(2)
    ]
    pd.DataFrame(rows).to_parquet(path / "traces.parquet", index=False)
    (path / "config.yaml").write_text(yaml.safe_dump({"model": "fake", "prompt_style": "r1"}))
    return path
