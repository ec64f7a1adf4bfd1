"""Reading JSONL input files: one JSON object per line, each problem a one-line user error."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from thinkscope.core.errors import UserError


def read_objects(path: Path) -> Iterator[tuple[int, dict]]:
    """``(line number, object)`` for every non-blank line of ``path``."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise UserError(f"{path}:{number}: malformed JSON ({err.msg})") from err
        if not isinstance(row, dict):
            raise UserError(f"{path}:{number}: expected a JSON object per line")
        yield number, row
