"""``reference_dataset``: a task's reference solutions as SFT files, in the traces' R1 form.

Each problem becomes the R1 prompt (plain template, as ``thinkscope traces`` renders it) and
the response ``" <solution> </think> <answer>X</answer>"`` (the loader has already removed
GSM8K's ``<<48/2=24>>`` calculator annotations). Responses are graded like traces, so the
files compare one-to-one with a traces dataset.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from thinkscope.core.errors import UserError
from thinkscope.sft import export
from thinkscope.sft.builder import DatasetResult, check_out, grade_rows, write_dataset
from thinkscope.sft.filter_spec import DatasetFilters
from thinkscope.sft.filters import has_answer_tag
from thinkscope.tasks.loaders import load_problems
from thinkscope.tasks.problem import Problem
from thinkscope.tasks.prompts import render_prompt


def reference_response(problem: Problem) -> str:
    """The R1-form response of a worked solution: ``" steps </think> <answer>X</answer>"``."""
    return f" {problem.solution.strip()} </think> <answer>{problem.answer}</answer>"


def reference_dataset(
    task: str,
    out_dir: Path | str,
    questions: int | None = None,
    format: str = "prompt-response",
) -> DatasetResult:
    """Write ``sft_correct.jsonl``/``sft_all.jsonl``, card and HF export from ``task``'s solutions
    (for GSM8K training data use ``task="gsm8k:train"``)."""
    export.check_format(format)
    out = Path(out_dir)
    check_out(out, resume=False)
    problems = load_problems(task, questions)
    unsolved = [p.id for p in problems if not p.solution.strip()]
    if unsolved:
        raise UserError(
            f"task {task!r} has no reference solution for {len(unsolved)} problem(s) "
            f"(first: {unsolved[0]}); use a task with worked solutions such as gsm8k:train"
        )
    frame = pd.DataFrame(
        {
            "problem_id": [p.id for p in problems],
            "sample_idx": 0,
            "question": [p.question for p in problems],
            "ground_truth": [p.answer for p in problems],
            "prompt": [render_prompt(None, p, "r1", "plain").text for p in problems],
            "response": [reference_response(p) for p in problems],
            "finish_reason": "stop",
            "n_tokens": np.nan,
        }
    )
    frame = frame.join(grade_rows(frame))
    frame["has_tag"] = frame["response"].map(has_answer_tag)
    source = {"task": task, "reference solutions": len(problems), "format": format}
    return write_dataset(out, frame, frame, [], source, DatasetFilters(), format, r1=True)
