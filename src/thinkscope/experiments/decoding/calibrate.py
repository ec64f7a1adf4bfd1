"""``thinkscope calibrate``: how often the token at each rank is right, by model confidence.

Teacher-force reference solutions (prompt + reference response, one forward pass), and at
every reference position record the top-k ids and probabilities of the distribution the
reference token would have been sampled from (the position before it). From those:

- the calibration grid (``stats.calibration_grid``): 10 bins of ``pmax`` (bin 0 holds
  ``pmax >= 0.9``) x rank 1..k, how often the token at that rank is the reference token;
- beside it the unconditional means (``unconditional``): how often the token at rank r is
  the reference token over all positions, not conditioned on the ``pmax`` bin (the grid's
  rows averaged with their counts as weights);
- the power law ``log10 c = A + B log10 p``: every top-k entry is a (probability p, correct
  c in {0, 1}) pair; pairs are binned by log10 p (bins of 0.25 decades), c is the share of
  correct pairs in a bin, and ``stats.fit_power_law`` fits the bins' (mean p, c) by least
  squares (bins with fewer than ``min_pairs`` pairs, or no correct pair, are left out).
  ``--cal-acc-from DIR/calibration.json`` reads ``A`` and ``B`` from it.

Files in ``OUT``: ``config.yaml``, ``env.json``, ``positions.parquet`` (per problem: reference
ids, top ids/probs, reference rank), ``calibration.json`` (written last: its presence marks a
finished calibration), ``figures/calibration_heatmap.png`` and ``figures/calibration_fit.png``
(and ``.pdf`` beside them with ``pdf=True``; asked of a finished calibration, they are drawn
from its ``calibration.json``). A killed calibration resumes from its last finished batch
(``shards/``).
"""

from __future__ import annotations

import inspect
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from thinkscope.core.atomic import write_json, write_parquet
from thinkscope.core.errors import UserError
from thinkscope.core.progress import progress_bar
from thinkscope.experiments.decoding.figures import draw_calibration
from thinkscope.models import LM, load_model
from thinkscope.models.spec import ModelSpec
from thinkscope.runstore.folder import Run, now
from thinkscope.runstore.header import register
from thinkscope.stats import calibration_grid, fit_power_law
from thinkscope.tasks.loaders import fewshot_examples, load_problems
from thinkscope.tasks.problem import Problem
from thinkscope.tasks.prompts import render_prompt, worked_answer

FIT_BIN_DECADES = 0.25


@dataclass(frozen=True)
class CalibrationConfig:
    """What to teacher-force: ``task``'s problems, answered by their reference solutions.

    ``reference_field`` names the JSONL field holding the reference response (for ``jsonl:``
    tasks); tasks with worked solutions (``gsm8k:train``) use ``solution`` + "The answer is N."
    """

    model_spec: ModelSpec = field(default_factory=ModelSpec)  # the model and how to load it
    task: str = "gsm8k:train"
    questions: int = 200
    seed: int = 0
    top_k: int = 20
    n_bins: int = 10
    prompt_style: str = "cot"
    template: str = "auto"
    fewshot: int = 0
    reference_field: str | None = None
    batch_size: int = 4
    min_pairs: int = 20
    fields: dict[str, str] = field(default_factory=dict)


def reference_response(problem: Problem, reference_field: str | None) -> str:
    """The text to teacher-force for ``problem``."""
    if reference_field:
        if reference_field not in problem.meta:
            raise UserError(f"problem {problem.id} has no reference field {reference_field!r}")
        return str(problem.meta[reference_field]).strip()
    if not problem.solution:
        raise UserError(
            f"task problems have no reference solutions (problem {problem.id}); "
            "use a task with solutions such as gsm8k:train, or --reference-field KEY"
        )
    return worked_answer(problem)


def encode_references(lm: LM, config: CalibrationConfig, problems: list[Problem]) -> list[tuple]:
    """``(id, prompt_ids, ref_ids)`` of each problem: its prompt and its reference response."""
    shots = fewshot_examples(config.task, config.fewshot, config.seed)
    rows = []
    for problem in problems:
        prompt = render_prompt(lm.tokenizer, problem, config.prompt_style, config.template, shots)
        prompt_ids = lm.tokenizer(prompt.text, add_special_tokens=not prompt.chat)["input_ids"]
        response = " " + reference_response(problem, config.reference_field)
        ref_ids = lm.tokenizer(response, add_special_tokens=False)["input_ids"]
        if not ref_ids:
            raise UserError(f"problem {problem.id} has an empty reference solution")
        rows.append((problem.id, list(prompt_ids), list(ref_ids)))
    return rows


@torch.no_grad()
def teacher_force(lm: LM, rows: list[tuple], top_k: int) -> list[dict]:
    """Top-k ids/probs and the reference token's rank at every reference position.

    ``rows`` are ``(id, prompt_ids, ref_ids)``; one left-padded forward pass for all of them,
    keeping only the logits that predict reference tokens. Per row: ``top_probs`` ``[T, k]``,
    ``top_ids`` ``[T, k]``, ``ref_rank`` ``[T]`` (1-based rank among all V tokens, ties
    counted in the reference token's favour), ``ref_prob`` ``[T]``.
    """
    pad = lm.tokenizer.pad_token_id
    pad = pad if pad is not None else 0
    seqs = [p + r for _, p, r in rows]
    width = max(map(len, seqs))
    ids = torch.tensor([[pad] * (width - len(s)) + s for s in seqs], device=lm.device)
    mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs], device=lm.device)
    keep = max(len(r) for _, _, r in rows) + 1
    extra = {}
    if "logits_to_keep" in inspect.signature(lm.model.forward).parameters:
        extra["logits_to_keep"] = keep
    logits = lm.model(
        input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(1) - 1).clamp(min=0), **extra
    ).logits[:, -keep:]
    out = []
    for i, (pid, _, ref) in enumerate(rows):
        t = len(ref)
        probs = torch.softmax(logits[i, keep - 1 - t : keep - 1].float(), dim=-1)  # [T, V]
        target = torch.tensor(ref, device=probs.device)
        ref_prob = probs.gather(1, target[:, None])  # [T, 1]
        top = probs.topk(top_k, dim=-1)
        out.append(
            {
                "problem_id": pid,
                "ref_ids": ref,
                "top_ids": top.indices.cpu().numpy().tolist(),
                "top_probs": top.values.cpu().numpy().tolist(),
                "ref_rank": (1 + (probs > ref_prob).sum(dim=1)).cpu().numpy().tolist(),
                "ref_prob": ref_prob[:, 0].cpu().numpy().tolist(),
            }
        )
    return out


def power_law_points(top_probs: np.ndarray, top_correct: np.ndarray, min_pairs: int) -> dict:
    """(mean p, share correct, pairs) per 0.25-decade bin of p, over all top-k entries."""
    p, c = top_probs.ravel(), top_correct.ravel().astype(float)
    ok = p > 0
    p, c = p[ok], c[ok]
    bins = np.floor(np.log10(p) / FIT_BIN_DECADES).astype(int)
    frame = pd.DataFrame({"bin": bins, "p": p, "c": c}).groupby("bin")
    points = frame.agg(p=("p", "mean"), c=("c", "mean"), n=("c", "size")).reset_index()
    points = points[points["n"] >= min_pairs]
    return {k: points[k].tolist() for k in ("p", "c", "n")}


def _stack(positions: pd.DataFrame, column: str, dtype) -> np.ndarray:
    return np.concatenate([np.asarray(list(r), dtype=dtype) for r in positions[column]])


def grid_of(positions: pd.DataFrame, top_k: int = 20, n_bins: int = 10) -> dict:
    """The calibration grid of ``positions``: bin labels, P(rank r | bin), hits and counts."""
    top_probs = _stack(positions, "top_probs", float)
    grid = calibration_grid(
        top_probs[:, 0], _stack(positions, "ref_rank", np.int64), n_bins=n_bins, max_rank=top_k
    )
    hits = np.rint(np.nan_to_num(grid.prob) * grid.count[:, None]).astype(int)
    return {
        "bins": [
            f"{(n_bins - 1 - b) / n_bins:.1f}-{(n_bins - b) / n_bins:.1f}" for b in range(n_bins)
        ],
        "prob": np.where(np.isnan(grid.prob), None, grid.prob).tolist(),
        "hits": hits.tolist(),
        "count": grid.count.tolist(),
    }


def unconditional_of(positions: pd.DataFrame, top_k: int = 20) -> dict:
    """P(reference token at rank r) for r = 1..top_k over every position, whatever its
    ``pmax`` bin: ``prob`` ``[top_k]``, ``hits`` ``[top_k]`` and ``count``."""
    rank = _stack(positions, "ref_rank", np.int64)
    hits = np.bincount(rank[rank <= top_k] - 1, minlength=top_k)
    return {"prob": (hits / len(rank)).tolist(), "hits": hits.tolist(), "count": int(len(rank))}


def summarize(positions: pd.DataFrame, config: CalibrationConfig) -> dict:
    """The grid, the power-law fit and their inputs, as written to ``calibration.json``."""
    top_probs = _stack(positions, "top_probs", float)
    top_ids = _stack(positions, "top_ids", np.int64)
    ref = _stack(positions, "ref_ids", np.int64)
    rank = _stack(positions, "ref_rank", np.int64)
    points = power_law_points(top_probs, top_ids == ref[:, None], config.min_pairs)
    try:
        a, b = fit_power_law(points["p"], points["c"])
    except ValueError as err:
        raise UserError(f"too few calibration tokens to fit the power law ({err})") from err
    return {
        "A": a,
        "B": b,
        "fit": "log10 c = A + B log10 p",
        "model": config.model_spec.model,
        "task": config.task,
        "problems": int(len(positions)),
        "tokens": int(len(ref)),
        "top1_accuracy": float((rank == 1).mean()),
        "top_k": config.top_k,
        "grid": grid_of(positions, config.top_k, config.n_bins),
        "unconditional": unconditional_of(positions, config.top_k),
        "fit_points": points,
        "created": now(),
    }


def _record(config: CalibrationConfig, spec: ModelSpec) -> dict:
    """``config.yaml``: the resolved model spec (dtype used, weights' identity), flat."""
    values = {k: v for k, v in asdict(config).items() if k != "model_spec"}
    return {**spec.model_dump(), **values}


def run_calibration(
    config: CalibrationConfig,
    out: Path | str,
    resume: bool = False,
    lm: LM | None = None,
    show_progress: bool = True,
    pdf: bool = False,
) -> dict:
    """Teacher-force ``config``'s references and write the calibration folder ``out``
    (``pdf``: each figure as PDF too)."""
    out = Path(out)
    if config.n_bins != 10:
        raise UserError("the confidence bins of the decoding knobs are tenths: n_bins must be 10")
    if (out / "calibration.json").is_file():  # reread without loading the model
        stored, spec = Run(out).config, config.model_spec
        same = _record(config, spec) | {k: stored.get(k) for k in ModelSpec.model_fields}
        if stored != same or not spec.matches(stored):
            raise UserError(f"{out} holds a calibration with another config; choose another --out")
        summary = json.loads((out / "calibration.json").read_text())
        if pdf and not (out / "figures" / "calibration_fit.pdf").is_file():
            draw_calibration(summary, out / "figures", pdf=True)
        return summary
    problems = load_problems(config.task, config.questions, config.seed, config.fields)
    for problem in problems:
        reference_response(problem, config.reference_field)  # fail before loading the model
    spec, started = config.model_spec.resolved(lm), now()
    run = Run.start(out, _record(config, spec), resume=resume)
    lm = lm or load_model(spec)
    size = config.batch_size
    units = [problems[i : i + size] for i in range(0, len(problems), size)]
    names = [f"{i:05d}" for i in range(len(units))]
    done = run.done_units()
    with progress_bar("calibrate", "problems", show_progress) as progress:
        bar = progress.add_task("calibrate", total=len(problems))
        for name, unit in zip(names, units, strict=True):
            if name not in done:
                rows = teacher_force(lm, encode_references(lm, config, unit), config.top_k)
                run.write_unit(name, pd.DataFrame(rows))
            progress.advance(bar, len(unit))
    positions = pd.concat([pd.read_parquet(run.shards_dir / f"{n}.parquet") for n in names])
    summary = summarize(positions.reset_index(drop=True), config)
    write_parquet(out / "positions.parquet", positions)
    draw_calibration(summary, out / "figures", pdf)
    write_json(out / "calibration.json", summary)
    for shard in run.shards_dir.glob("*.parquet"):
        shard.unlink()
    run.shards_dir.rmdir()
    headline = ("A", "B", "problems", "tokens", "top1_accuracy")
    register(out, "calibrate", run.config, {k: summary[k] for k in headline}, started)
    return summary
