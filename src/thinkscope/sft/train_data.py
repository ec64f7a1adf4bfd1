"""SFT rows from a ``dataset build`` folder or a JSONL file, in the formats TRL's SFTTrainer reads.

Accepted rows (one JSON object per line):

- ``prompt`` + ``response`` (the seed's ``sft_correct.jsonl``) or ``prompt`` + ``completion``:
  prompt-completion text, so the loss falls on the completion only;
- ``messages`` (``[{"role", "content"}, ...]`` ending with the assistant turn): split into a
  conversational prompt (every turn but the last) and completion (the last assistant turn), so
  the chat template renders it and the loss again falls on the completion only.

A row with ``"truncated": true`` (a trace cut at ``--max-new-tokens``, kept by ``dataset build
--truncated keep``) is tokenized without the end-of-sequence token (plain rows) or the end of
the assistant turn (chat rows), so the model does not learn to stop mid-thought.
"""

from __future__ import annotations

from pathlib import Path

from thinkscope.core.errors import UserError
from thinkscope.core.jsonl import read_objects

DEFAULT_FILE = "sft_correct.jsonl"


def resolve_dataset(path: Path | str, file: str | None = None) -> Path:
    """The JSONL file ``path`` names: itself, or ``path/file`` (default ``sft_correct.jsonl``)."""
    path = Path(path)
    if path.is_dir():
        target = path / (file or DEFAULT_FILE)
        if not target.is_file():
            raise UserError(f"dataset folder {path} has no {target.name} (name one with --file)")
        return target
    if file:
        raise UserError(f"--file names a file inside a dataset folder, but {path} is not a folder")
    if not path.is_file():
        raise UserError(f"dataset not found: {path}")
    return path


def _row(raw: dict, where: str) -> dict:
    truncated = raw.get("truncated", False)
    if not isinstance(truncated, bool):
        raise UserError(f"{where}: 'truncated' must be true or false, not {truncated!r}")
    if isinstance(raw.get("prompt"), str):
        completion = raw.get("response", raw.get("completion"))
        if isinstance(completion, str):
            return {"prompt": raw["prompt"], "completion": completion, "truncated": truncated}
    messages = raw.get("messages")
    if isinstance(messages, list) and messages:
        if not all(isinstance(m, dict) and {"role", "content"} <= set(m) for m in messages):
            raise UserError(f"{where}: every message needs a 'role' and a 'content'")
        if messages[-1]["role"] != "assistant" or len(messages) < 2:
            raise UserError(f"{where}: 'messages' must end with an assistant turn after a prompt")
        return {"prompt": messages[:-1], "completion": messages[-1:], "truncated": truncated}
    raise UserError(
        f"{where}: expected string columns 'prompt' and 'response' (or 'completion'), or "
        f"'messages'; found {sorted(raw)}"
    )


def load_sft_rows(path: Path) -> list[dict]:
    """Rows ``{"prompt", "completion", "truncated"}`` of ``path`` (prompt and completion:
    strings, or message lists for chat data)."""
    rows = []
    for number, raw in read_objects(path):
        rows.append(_row(raw, f"{path}:{number}"))
    if not rows:
        raise UserError(f"dataset {path} holds no rows")
    if len({isinstance(r["prompt"], str) for r in rows}) > 1:
        raise UserError(f"dataset {path} mixes prompt/response rows with messages rows")
    return rows


def tokenize_row(tokenizer, row: dict) -> dict:
    """``input_ids`` and ``completion_mask`` (1 on the completion) of one row, as TRL's
    ``SFTTrainer`` tokenizes prompt-completion rows, with no end-of-sequence token after a
    truncated completion (TRL appends one to every plain completion)."""
    from trl.data_utils import common_prefix_length

    if isinstance(row["prompt"], str):
        prompt = tokenizer(row["prompt"])["input_ids"]
        text, eos = row["prompt"] + row["completion"], tokenizer.eos_token
        full = tokenizer(text if row["truncated"] or text.endswith(eos) else text + eos)[
            "input_ids"
        ]
    else:
        prompt = _chat_ids(tokenizer, row["prompt"], add_generation_prompt=True)
        messages = row["prompt"] + row["completion"]
        full = _chat_ids(tokenizer, messages, continue_final_message=row["truncated"])
    start = common_prefix_length(prompt, full)
    return {"input_ids": full, "completion_mask": [0] * start + [1] * (len(full) - start)}


def _chat_ids(tokenizer, messages: list[dict], **kwargs) -> list[int]:
    return tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, **kwargs)[
        "input_ids"
    ]
