"""Dataset rows to SFT records, JSONL files and a Hugging Face ``datasets`` export.

Formats of a record:

- ``prompt-response`` (the seed's): ``{"prompt": str, "response": str}``; the prompt is the
  exact text the model saw (R1: ``"A conversation between User and Assistant ... Assistant:
  <think>"``), the response what it wrote (``"... </think> <answer>X</answer>"``).
- ``messages``: TRL's conversational language-modeling format, ``{"messages": [{"role":
  "system", ...}, {"role": "user", "content": question}, {"role": "assistant", "content":
  "<think>" + response}]}`` (the system turn and the ``<think>`` opener only for R1 prompts).
  Train on the assistant turn only with ``SFTConfig(assistant_only_loss=True)``.

With the ``keep`` policy for truncated traces every record has ``truncated`` (true for a trace
cut at ``--max-new-tokens``: training appends no end-of-sequence token to it).

``sft_all`` records add ``ground_truth``, ``predicted``, ``is_correct``, ``problem_id``,
``sample_idx`` and, when the run is scored, ``dtr`` and ``n_tokens``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from thinkscope.core.atomic import write_text
from thinkscope.core.errors import UserError
from thinkscope.tasks.prompts import R1_SYSTEM

FORMATS = ("prompt-response", "messages")
LABELS = ["ground_truth", "predicted", "is_correct", "problem_id", "sample_idx"]


def check_format(format: str) -> None:
    if format not in FORMATS:
        raise UserError(f"unknown --dataset-format {format!r}; choose one of {', '.join(FORMATS)}")


def messages(question: str, response: str, r1: bool) -> list[dict[str, str]]:
    """The chat form of one trace: [system (R1 only), user, assistant]."""
    turns = [{"role": "system", "content": R1_SYSTEM}] if r1 else []
    answer = f"<think>{response}" if r1 else response
    return [*turns, {"role": "user", "content": question}, {"role": "assistant", "content": answer}]


def _plain(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    return value.item() if hasattr(value, "item") else value


def records(
    frame: pd.DataFrame,
    format: str,
    r1: bool,
    labels: bool,
    extra: tuple[str, ...] = (),
    mark_truncated: bool = False,
) -> list[dict]:
    """One SFT record per row of ``frame`` (``labels``: add the sft_all columns and ``extra``;
    ``mark_truncated``: add ``truncated``)."""
    out = []
    for row in frame.to_dict("records"):
        if format == "messages":
            record: dict = {"messages": messages(row["question"], row["response"], r1)}
        else:
            record = {"prompt": row["prompt"], "response": row["response"]}
        if mark_truncated:
            record["truncated"] = row["finish_reason"] == "length"
        if labels:
            record.update({key: _plain(row[key]) for key in (*LABELS, *extra)})
        out.append(record)
    return out


def write_jsonl(path: Path, rows: list[dict]) -> None:
    """All of ``rows`` as JSON lines, written atomically."""
    write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


@contextmanager
def quiet_datasets() -> Iterator[None]:
    """``datasets`` without its tqdm bars (thinkscope shows its own progress)."""
    from datasets.utils import logging

    was_on = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            logging.enable_progress_bar()


def save_hf(out: Path, splits: dict[str, list[dict]]) -> Path | None:
    """``splits`` as a ``datasets.DatasetDict`` saved to ``out/hf`` (None without ``datasets``)."""
    try:
        from datasets import Dataset, DatasetDict
    except ImportError:
        return None
    target, tmp = out / "hf", out / f".hf.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    with quiet_datasets():
        saved = DatasetDict({name: Dataset.from_list(r) for name, r in splits.items()})
        saved.save_to_disk(str(tmp))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    return target
