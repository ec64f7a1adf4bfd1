"""The trace viewer's data: per-trace token strings, settling depths and JSD profiles.

Compact, so that 1,000 traces of ~150 tokens and 30 layers make ~7 MB of inline JSON: token
texts are indexes into one shared ``vocab`` list, settling depths are base64 ``uint8`` ``[T]``,
and JSD is base64 ``uint8`` ``[T * L]`` quantised to ln 2 / 255 nats (0.0027: ample for a
hover profile).
"""

from __future__ import annotations

import base64
import math

import numpy as np

from thinkscope.analysis.load import ScoredRun, TokenMetrics
from thinkscope.core.errors import UserError


def load_run_tokenizer(spec: str):
    """The run model's tokenizer, or None (the viewer then shows token ids) if unavailable."""
    from thinkscope import models

    try:
        return models.load_tokenizer(spec)
    except (UserError, OSError, ValueError):
        return None


def token_text(tokenizer, token_id: int) -> str:
    """One token's text; SentencePiece's ``▁`` word-start marker becomes a leading space."""
    text = tokenizer.decode(
        [token_id], skip_special_tokens=False, clean_up_tokenization_spaces=False
    )
    piece = tokenizer.convert_ids_to_tokens(token_id)
    if isinstance(piece, str) and piece.startswith("▁") and not text.startswith(" "):
        text = " " + text
    return text


def _b64(values: np.ndarray) -> str:
    return base64.b64encode(values.astype(np.uint8).tobytes()).decode("ascii")


def _number(value) -> float | None:
    value = float(value)
    return None if math.isnan(value) else round(value, 6)


def viewer_data(
    scored: ScoredRun, tokens: TokenMetrics | None, tokenizer, max_traces: int = 2000, seed: int = 0
) -> dict:
    """Everything the page's trace viewer needs, for at most ``max_traces`` traces.

    Larger runs are subsampled (seeded, run order kept); ``total`` says how many there were.
    """
    traces = scored.traces
    rows = np.arange(len(traces))
    if len(rows) > max_traces:
        rows = np.sort(np.random.default_rng(seed).choice(rows, max_traces, replace=False))
    ids = [np.asarray(traces.at[i, "token_ids"], dtype=np.int64) for i in rows]
    vocab_ids = np.unique(np.concatenate(ids)) if ids else np.zeros(0, np.int64)
    if tokenizer is None:
        vocab = [f"⟨{i}⟩" for i in vocab_ids.tolist()]
    else:
        vocab = [token_text(tokenizer, i) for i in vocab_ids.tolist()]
    n_layers = tokens.n_layers if tokens is not None else None
    out = []
    for i, token_ids in zip(rows.tolist(), ids, strict=True):
        row = traces.iloc[i]
        entry = {
            "p": str(row["problem_id"]),
            "s": int(row["sample_idx"]),
            "ok": bool(scored.correct[i]),
            "pred": None if row["pred"] is None else str(row["pred"]),
            "finish": str(row["finish_reason"]),
            "n": int(row["n_tokens"]),
            "m": [_number(row[c]) for c in scored.columns],
            "t": np.searchsorted(vocab_ids, token_ids).tolist(),
        }
        if tokens is not None:
            depth, jsd = tokens.of(i)
            entry["d"] = _b64(np.clip(depth, 0, 255))
            if jsd is not None:
                entry["j"] = _b64(np.rint(np.clip(jsd / math.log(2), 0, 1) * 255))
        out.append(entry)
    questions = traces.drop_duplicates("problem_id").set_index("problem_id")
    return {
        "metrics": scored.columns,
        "dtr": scored.columns.index(scored.dtr_column) if scored.dtr_column else None,
        "n_layers": n_layers,
        "deep_layer": scored.deep_layer(n_layers) if n_layers else None,
        "g": round(scored.g_nats, 6),
        "decoded": tokenizer is not None,
        "vocab": vocab,
        "questions": {
            str(p): [str(q["question"]), str(q["gold"])] for p, q in questions.iterrows()
        },
        "traces": out,
        "total": len(traces),
    }
