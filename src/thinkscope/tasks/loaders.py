"""Task specs to problems: ``gsm8k``, ``gym:<name>[?k=v&...]``, ``jsonl:<path>``, ``<path>.jsonl``.

A task is a string, not a class; the demo mix and other presets live in ``data/tasks.yaml``.
"""

from __future__ import annotations

import gzip
import json
import re
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qsl

import yaml

from thinkscope.core.errors import UserError
from thinkscope.core.jsonl import read_objects
from thinkscope.tasks.hub import hub_rows
from thinkscope.tasks.math_problems import MATH_HUB, load_math_fixture, load_math_online
from thinkscope.tasks.problem import Problem
from thinkscope.tasks.strategyqa import (
    STRATEGYQA_HUB,
    load_strategyqa_fixture,
    load_strategyqa_online,
)

_DATA = resources.files("thinkscope.tasks") / "data"


def presets() -> dict[str, dict]:
    """Named task presets (``demo-arith`` and friends) from ``data/tasks.yaml``."""
    return yaml.safe_load((_DATA / "tasks.yaml").read_text())


def load_problems(
    task: str, questions: int | None = None, seed: int = 0, fields: dict[str, str] | None = None
) -> list[Problem]:
    """The first ``questions`` problems of ``task`` (all of them when ``None``)."""
    if questions is not None and questions < 1:
        raise UserError(f"--questions must be at least 1, got {questions}")
    if task in presets():
        return _load_preset(task, questions, seed)
    if task in ("gsm8k", "gsm8k:test", "gsm8k:train"):
        problems = _load_gsm8k(task.partition(":")[2] or "test", questions)
    elif task.startswith("openai/gsm8k"):
        problems = load_gsm8k_online(task.partition(":")[2] or "test")
    elif task == "math":
        problems = load_math_fixture()
    elif task.startswith(MATH_HUB):
        problems = load_math_online(task)
    elif task == "strategyqa":
        problems = load_strategyqa_fixture()
    elif task.startswith(STRATEGYQA_HUB):
        problems = load_strategyqa_online(task)
    elif task.startswith("gym:"):
        problems = _load_gym(task[4:], questions or 50, seed)
    elif task.startswith("jsonl:") or task.endswith(".jsonl"):
        problems = load_jsonl(Path(task.removeprefix("jsonl:")), fields or {})
    else:
        known = ", ".join(
            [
                "gsm8k[:test|:train]",
                "openai/gsm8k[:split]",
                "gym:<name>",
                "math",
                f"{MATH_HUB}[:split]",
                "strategyqa",
                f"{STRATEGYQA_HUB}[:split]",
                "jsonl:<path>",
                *presets(),
            ]
        )
        raise UserError(f"unknown task {task!r}; known: {known}")
    return problems[:questions] if questions else problems


def fewshot_examples(task: str, k: int, seed: int = 0) -> list[Problem]:
    """``k`` solved examples for ``task``, never drawn from its evaluation problems."""
    if k == 0:
        return []
    if task in presets():
        task = presets()[task]["tasks"][0]
    if task.startswith("gsm8k"):
        rows = (_DATA / "gsm8k_fewshot.jsonl").read_text().splitlines()[:k]
        return [_gsm8k_problem(f"gsm8k-train-{i}", json.loads(r)) for i, r in enumerate(rows)]
    if task.startswith("gym:"):
        return _load_gym(task[4:], k, seed + 1_000_003)
    return []


def _load_preset(name: str, questions: int | None, seed: int) -> list[Problem]:
    """Interleave the preset's tasks so any prefix of the list is a balanced mix."""
    specs = presets()[name]["tasks"]
    per_task = -(-(questions or 50) // len(specs))
    pools = [load_problems(spec, per_task, seed) for spec in specs]
    mixed = [p for group in zip(*pools, strict=False) for p in group]
    return mixed[:questions] if questions else mixed


_CALCULATOR = re.compile(r"<<[^>]*>>")


def _gsm8k_problem(problem_id: str, row: dict) -> Problem:
    if "solution" in row:
        return Problem(problem_id, row["question"], row["answer"], solution=row["solution"])
    solution, _, answer = row["answer"].rpartition("####")
    solution = _CALCULATOR.sub("", solution).strip()  # GSM8K's <<48/2=24>> annotations
    return Problem(problem_id, row["question"], answer.strip().replace(",", ""), solution=solution)


def _load_gsm8k(split: str, questions: int | None) -> list[Problem]:
    """The bundled GSM8K split (test: 1,319 rows; train: 7,473, gzipped); solutions included."""
    if split == "train":
        text = gzip.decompress((_DATA / "gsm8k_train.jsonl.gz").read_bytes()).decode()
    else:
        text = (_DATA / "gsm8k_test.jsonl").read_text()
    rows = text.splitlines()[:questions]
    return [_gsm8k_problem(f"gsm8k-{split}-{i}", json.loads(r)) for i, r in enumerate(rows)]


def load_gsm8k_online(split: str = "test") -> list[Problem]:
    """GSM8K from the Hugging Face hub through ``datasets`` (``openai/gsm8k[:split]``)."""
    rows = hub_rows("openai/gsm8k", split, "use --task gsm8k", name="main")
    return [_gsm8k_problem(f"gsm8k-{split}-{i}", row) for i, row in enumerate(rows)]


def _load_gym(spec: str, size: int, seed: int) -> list[Problem]:
    import reasoning_gym

    name, _, query = spec.partition("?")
    kwargs = {key: yaml.safe_load(value) for key, value in parse_qsl(query)}
    try:
        dataset = reasoning_gym.create_dataset(name, size=size, seed=seed, **kwargs)
    except (ValueError, KeyError, TypeError) as err:
        raise UserError(f"unknown or misconfigured reasoning-gym task {spec!r}: {err}") from err
    return [
        Problem(
            id=f"{name}-s{seed}-{i}",
            question=item["question"],
            answer=str(item["answer"]),
            meta={"source": f"gym:{name}", **_jsonable(item.get("metadata", {}))},
        )
        for i, item in enumerate(dataset)
    ]


def _jsonable(meta: dict) -> dict:
    return json.loads(json.dumps(meta, default=str))


def load_jsonl(path: Path, fields: dict[str, str]) -> list[Problem]:
    """Problems from a JSONL file; ``fields`` maps ``question``/``answer``/``id`` to its keys."""
    if not path.is_file():
        raise UserError(f"task file not found: {path}")
    names = {"question": "question", "answer": "answer", "id": "id", **fields}
    problems = []
    for number, row in read_objects(path):
        for key in ("question", "answer"):
            if names[key] not in row:
                raise UserError(f"{path}:{number}: no field {names[key]!r} (map it with --field)")
        problems.append(
            Problem(
                id=str(row.get(names["id"], f"{path.stem}-{number}")),
                question=str(row[names["question"]]),
                answer=str(row[names["answer"]]),
                meta={k: v for k, v in row.items() if k not in names.values()},
            )
        )
    if not problems:
        raise UserError(f"task file {path} holds no problems")
    return problems
