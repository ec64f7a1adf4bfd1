"""``build_dataset``: a run folder's traces, re-graded and filtered, as SFT files with a card.

Output folder::

    OUT/sft_correct.jsonl   kept traces that the grader marks correct (prompt, response;
                            ``truncated`` with ``--truncated keep``)
    OUT/sft_all.jsonl       every kept trace with its labels (see export.py)
    OUT/README.md           the dataset card; OUT/*.png its histograms
    OUT/hf/                 ``datasets.DatasetDict`` ("correct", "all") from ``save_to_disk``
    OUT/dataset.json        counts and paths, written last: its presence marks a finished build
    OUT/.build/             while building: the request and one parquet shard per graded chunk

The filter counts and histograms also become a section of the run's HTML report
(``RUN/report_sections/dataset-<OUT name>``, rendered by ``thinkscope report``).

Every trace is graded again with :func:`thinkscope.tasks.answers.grade`, so ``is_correct``
always agrees with the grader. Grading is the slow part and is checkpointed per chunk: a
killed build continues with ``resume=True`` and never grades or writes a trace twice.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from thinkscope.core.atomic import write_json, write_parquet
from thinkscope.core.errors import UserError
from thinkscope.core.progress import progress_bar
from thinkscope.runstore.folder import Run, now
from thinkscope.runstore.header import register
from thinkscope.runstore.sections import FOLDER, add_section
from thinkscope.sft import card, export, hub
from thinkscope.sft.filters import (
    DatasetFilters,
    FilterStep,
    apply_filters,
    check_scored,
    has_answer_tag,
)
from thinkscope.sft.filters import truncation as filter_truncation
from thinkscope.tasks.answers import grade

NEEDED = ["problem_id", "sample_idx", "question", "gold", "prompt", "completion"]


@dataclass(frozen=True)
class DatasetResult:
    """What a build wrote: row counts, the per-filter steps, and where the files are."""

    out_dir: Path
    format: str
    n_all: int
    n_correct: int
    accuracy: float
    steps: list[FilterStep] = field(default_factory=list)
    hf_dir: Path | None = None
    figures: list[Path] = field(default_factory=list)

    sft_correct = property(lambda self: self.out_dir / "sft_correct.jsonl")
    sft_all = property(lambda self: self.out_dir / "sft_all.jsonl")
    card = property(lambda self: self.out_dir / "README.md")


def check_out(out: Path, resume: bool) -> None:
    """Raise if ``out`` cannot take a new (or, with ``resume``, a continued) build."""
    if (out / "dataset.json").is_file():
        raise UserError(f"{out} holds a finished dataset; choose another --out")
    if (out / ".build").is_dir():
        if not resume:
            raise UserError(
                f"{out} holds an unfinished build; pass --resume or choose another --out"
            )
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} exists and is not a dataset folder; choose another --out")


def _table(run: Run) -> pd.DataFrame:
    """The run's traces with the columns a dataset needs (``_logprob`` for ranking)."""
    frame = run.traces()
    missing = [c for c in NEEDED if c not in frame]
    if missing:
        raise UserError(
            f"{run.traces_path} lacks the column(s) {', '.join(missing)}: not a thinkscope run"
        )
    if frame.empty:
        raise UserError(f"{run.path} holds no traces; nothing to build a dataset from")
    frame = frame.rename(columns={"completion": "response", "gold": "ground_truth"})
    frame["response"] = frame["response"].fillna("")
    if "finish_reason" not in frame:
        frame["finish_reason"] = "stop"
    if "n_tokens" not in frame:
        frame["n_tokens"] = frame["token_ids"].map(len) if "token_ids" in frame else np.nan
    if "logprob" in frame:
        frame["_logprob"] = frame["logprob"]
    elif "token_logprobs" in frame:
        frame["_logprob"] = frame["token_logprobs"].map(lambda v: np.mean(v) if len(v) else np.nan)
    else:
        frame["_logprob"] = np.nan
    return frame.reset_index(drop=True)


def grade_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """``predicted`` and ``is_correct`` of each row, from the grader."""
    grades = [grade(r, g) for r, g in zip(frame["response"], frame["ground_truth"], strict=True)]
    return pd.DataFrame(
        {"predicted": [g.pred for g in grades], "is_correct": [g.correct for g in grades]},
        index=frame.index,
    )


def _grade_resumably(
    frame: pd.DataFrame, staging: Path, shard_rows: int, show_progress: bool
) -> pd.DataFrame:
    """Grade ``frame`` in chunks of ``shard_rows``, one atomic shard per chunk in ``staging``."""
    shards = staging / "graded"
    starts = range(0, len(frame), shard_rows)
    done = {int(p.stem) for p in shards.glob("*.parquet")}
    with progress_bar("grade", "traces", show_progress) as progress:
        bar = progress.add_task("grade", total=len(frame), rate="")
        started, count = time.perf_counter(), 0
        progress.advance(bar, sum(min(shard_rows, len(frame) - s) for s in starts if s in done))
        for start in starts:
            if start in done:
                continue
            chunk = grade_rows(frame.iloc[start : start + shard_rows])
            write_parquet(shards / f"{start:09d}.parquet", chunk.reset_index(names="_row"))
            count += len(chunk)
            rate = f"{count / (time.perf_counter() - started):.0f}/s"
            progress.update(bar, advance=len(chunk), rate=rate)
    graded = pd.concat([pd.read_parquet(shards / f"{s:09d}.parquet") for s in starts])
    return graded.set_index("_row").sort_index()


def _request(run: Run) -> dict:
    stat = run.traces_path.stat()
    return {"run": str(run.path.resolve()), "traces_bytes": stat.st_size}


def _stage(out: Path, request: dict) -> Path:
    """Create or reopen ``out/.build`` for ``request`` (the same run, unchanged)."""
    staging = out / ".build"
    path = staging / "request.json"
    if path.is_file():
        if json.loads(path.read_text()) != request:
            raise UserError(
                f"cannot resume {out}: the run changed since the build began; use another --out"
            )
    else:
        write_json(path, request)
    return staging


def build_dataset(
    run_dir: Path | str,
    out_dir: Path | str,
    filters: DatasetFilters = DatasetFilters(),
    format: str = "prompt-response",
    resume: bool = False,
    push_to_hub: str | None = None,
    shard_rows: int = 512,
    show_progress: bool = True,
) -> DatasetResult:
    """Grade, filter and write the SFT dataset of the run in ``run_dir`` to ``out_dir``; with
    ``push_to_hub``, upload it (files, card; not ``hf/``) as that Hub dataset repo."""
    export.check_format(format)
    if push_to_hub:
        hub.check_hub(push_to_hub, "--push-to-hub")
    out = Path(out_dir)
    run, started = Run.open(run_dir), now()
    check_out(out, resume)
    frame = _table(run)
    scored = filters.dtr_column in frame
    check_scored(filters, scored)
    created = next((p for p in (*reversed(out.absolute().parents), out) if not p.exists()), None)
    staging = _stage(out, _request(run))
    graded = _grade_resumably(frame, staging, shard_rows, show_progress)
    frame["predicted"] = graded["predicted"].to_numpy()
    frame["is_correct"] = graded["is_correct"].to_numpy(dtype=bool)
    frame["has_tag"] = frame["response"].map(has_answer_tag)
    try:
        kept, steps = apply_filters(frame, filters, scored)
    except UserError:
        shutil.rmtree(staging)
        if created is not None:  # the first folder this build made: out, or a parent of it
            shutil.rmtree(created, ignore_errors=True)
        raise
    config = run.config if run.config_path.is_file() else {}
    source = {
        "run": str(run.path.resolve()),
        "model": config.get("model"),
        "task": config.get("task"),
        "prompt style": config.get("prompt_style"),
        "samples per question": config.get("n"),
        "temperature": config.get("temperature"),
        "seed": config.get("seed"),
        "DTR column": filters.dtr_column if scored else "(run not scored)",
        "format": format,
    }
    r1 = config.get("prompt_style") == "r1"
    dtr = filters.dtr_column if scored else None
    result = write_dataset(out, frame, kept, steps, source, filters, format, r1, dtr)
    shutil.rmtree(staging)
    _report_section(run, result)
    if push_to_hub:
        hub.push_folder(out, push_to_hub, "dataset", ignore=("hf/*",))
    config = {"run": str(run.path.resolve()), "format": format, **filters.model_dump()}
    config.update(push_to_hub=push_to_hub, shard_rows=shard_rows)
    headline = {"n_all": result.n_all, "n_correct": result.n_correct, "accuracy": result.accuracy}
    register(out, "dataset build", config, headline, started)
    return result


def _report_section(run: Run, result: DatasetResult) -> None:
    """The dataset's filter counts and histograms as a section of the run's HTML report."""
    name = f"dataset-{re.sub(r'[^A-Za-z0-9_.-]+', '_', result.out_dir.resolve().name)}"
    folder = run.path / FOLDER / name
    folder.mkdir(parents=True, exist_ok=True)
    figures = []
    for figure in result.figures:
        shutil.copyfile(figure, folder / figure.name)
        figures.append((folder / figure.name, f"{figure.stem.replace('_', ' ')} of all and kept"))
    steps = pd.DataFrame(
        [(s.flag, s.before, s.kept, s.dropped, s.restored) for s in result.steps],
        columns=["filter", "before", "kept", "dropped", "restored"],
    )
    text = (
        f"SFT dataset in {result.out_dir}: {result.n_all} traces kept (accuracy "
        f"{result.accuracy:.3f}), {result.n_correct} in sft_correct.jsonl."
    )
    add_section(
        run.path, name, f"SFT dataset {result.out_dir.name}", figures, {"Filters": steps}, text
    )


def write_dataset(
    out: Path,
    graded: pd.DataFrame,
    kept: pd.DataFrame,
    steps: list[FilterStep],
    source: dict,
    filters: DatasetFilters,
    format: str,
    r1: bool,
    dtr: str | None = None,
) -> DatasetResult:
    """Write the JSONL files, the HF export, the figures, the card, then ``dataset.json``."""
    out.mkdir(parents=True, exist_ok=True)
    correct = kept[kept["is_correct"].to_numpy(dtype=bool)]
    extra = ("n_tokens", dtr) if dtr else ()
    mark = filters.truncated == "keep"
    all_rows = export.records(kept, format, r1, labels=True, extra=extra, mark_truncated=mark)
    correct_rows = export.records(correct, format, r1, labels=False, mark_truncated=mark)
    export.write_jsonl(out / "sft_all.jsonl", all_rows)
    export.write_jsonl(out / "sft_correct.jsonl", correct_rows)
    hf_dir = export.save_hf(out, {"correct": correct_rows, "all": all_rows})
    figures = card.draw(out, graded, kept, dtr, filters.min_dtr)
    files = {"sft_correct.jsonl": len(correct_rows), "sft_all.jsonl": len(all_rows)}
    if hf_dir is None:
        source = {**source, "hf export": "skipped: install the `datasets` package (extra train)"}
    truncation = filter_truncation(filters, steps, kept)
    text = card.card_text(
        source, filters.active(), truncation, steps, graded, kept, files, figures, dtr
    )
    card.write_card(out, text)
    result = DatasetResult(
        out_dir=out,
        format=format,
        n_all=len(all_rows),
        n_correct=len(correct_rows),
        accuracy=float(kept["is_correct"].mean()),
        steps=steps,
        hf_dir=hf_dir,
        figures=[out / name for name in figures],
    )
    summary = {
        "format": format,
        "n_all": result.n_all,
        "n_correct": result.n_correct,
        "accuracy": result.accuracy,
        "filters": filters.active(),
        "truncated": truncation,
        "steps": [{**s.__dict__, "dropped": s.dropped} for s in steps],
        "source": source,
    }
    write_json(out / "dataset.json", summary)
    return result
