"""``thinkscope interp run``: seed 002's pipeline on one model (and optionally a second).

Stages, each writing into ``--out``:

1. reasoning-vs-control directions on ``--contrast`` bundled contrast prompts per class (last
   token), their cosine across layers and their logit-lens reading (``directions/reasoning.*``);
2. a correctness run (sampled answers of ``--task``, graded) and per-layer probes (``--probe``
   logistic or mlp) for correct vs wrong on completion-mean states (``traces.parquet``,
   ``rows.npy``, ``probes.csv``), and the correct-minus-wrong direction (``directions/correct.*``);
3. with ``--model-b``: layer-by-layer CKA between the two models on the contrast prompts,
   direction cosine across models (same width) and transplantation A -> B (``cross_model.json``);
4. the intervention sweep: greedy accuracy and DTR versus ``--strengths`` (both signs) for the
   reasoning direction at the steering layer, plus the direction ablated from every layer
   (``sweep.csv``), and the generated texts (``texts/steer_{strength:+g}.jsonl``, ``ablate.jsonl``);
5. ``summary.json``, ``figures/*.png`` and ``interp.html``.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from rich.console import Console

from thinkscope.core.atomic import atomic_dir, atomic_write, write_json, write_parquet
from thinkscope.core.errors import UserError
from thinkscope.experiments.interp.presets import (
    InterpConfig,
    InterpSizes,
    contrast_prompts,
    parse_layers,
)
from thinkscope.generation.pipeline import GenerateConfig, generate_unit, question_units
from thinkscope.interp.activations import RunningStats, TokenSeq, collect, load_rows
from thinkscope.interp.cka import cka_matrix
from thinkscope.interp.directions import Directions, cosine_matrix, decode, diff_in_means
from thinkscope.interp.probes import probe_layers
from thinkscope.interp.sweep import steering_sweep
from thinkscope.interp.transplant import fit_map, transplant
from thinkscope.models import LM, load_model
from thinkscope.models.adapter import _n_layers
from thinkscope.models.lm import resolve_source
from thinkscope.models.spec import ModelSpec
from thinkscope.runstore.folder import now
from thinkscope.runstore.header import register
from thinkscope.tasks.loaders import load_problems

console = Console(stderr=True)


def model_layers(spec: ModelSpec) -> int:
    """How many decoder blocks ``spec``'s model has, from its config (no weights loaded)."""
    from transformers import AutoConfig

    source = resolve_source(spec.model)
    kwargs = {"revision": spec.revision, "trust_remote_code": spec.trust_remote_code}
    try:
        config = AutoConfig.from_pretrained(source, local_files_only=True, **kwargs)
    except OSError:
        config = AutoConfig.from_pretrained(source, **kwargs)
    return _n_layers(config)


def run_layers(config: InterpConfig) -> tuple[list[int], int]:
    """The layers and the steering layer of a run, checked against the model's config."""
    layers = parse_layers(config.layers, model_layers(ModelSpec.of(config)))
    steer_layer = config.steer_layer or layers[len(layers) // 2]
    if steer_layer not in layers:
        raise UserError(f"--steer-layer {steer_layer} is outside the run's layers {layers}")
    return layers, steer_layer


def reasoning_directions(lm: LM, layers: list[int], batch_size: int, per_class: int) -> Directions:
    """Reasoning minus control on the first ``per_class`` bundled prompts of each class."""
    reasoning, control, origin = contrast_prompts()
    a = collect(lm, reasoning[:per_class], layers, "last", batch_size=batch_size)
    b = collect(lm, control[:per_class], layers, "last", batch_size=batch_size)
    return diff_in_means(a, b, lm.name, ("reasoning", "control"), positions="last", origin=origin)


def correctness_run(lm: LM, config: InterpConfig) -> pd.DataFrame:
    """Sampled, graded answers for the probes (written to ``traces.parquet``)."""
    gen = GenerateConfig(
        **ModelSpec.of(config).model_dump(),
        task=config.task,
        questions=config.questions,
        n=config.samples,
        seed=config.seed,
        max_new_tokens=config.max_new_tokens,
        temperature=0.7,
        prompt_style="fewshot",
        batch_size=config.batch_size,
    )
    problems = load_problems(config.task, config.questions, config.seed)
    traces = []
    for _, unit in question_units(problems, gen.unit_questions):
        traces += generate_unit(lm, unit, gen)[0]
    frame = pd.DataFrame([t.row() for t in traces])
    write_parquet(config.out / "traces.parquet", frame)
    return frame


def trace_sequences(frame: pd.DataFrame) -> list[TokenSeq]:
    """Prompt + completion token ids of each trace row, the completion starting after the prompt."""
    return [
        TokenSeq(tuple(map(int, p)) + tuple(map(int, t)), len(p))
        for p, t in zip(frame["prompt_ids"], frame["token_ids"], strict=True)
    ]


def probe_note(labels: np.ndarray, groups: np.ndarray | None, folds: int) -> str | None:
    """Why correct-vs-wrong probes (and the direction) cannot be fitted on ``labels`` ``[N]``
    bool split into ``folds`` folds grouped by ``groups``; ``None`` when they can."""
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if min(n_pos, n_neg) < folds:
        return f"{n_pos} correct and {n_neg} wrong traces: too few for probes"
    if groups is not None and len(set(groups)) < folds:
        return f"{len(set(groups))} problems: too few for grouped probe folds"
    return None


def correctness_direction(
    rows: np.ndarray, labels: np.ndarray, layers: list[int], model: str
) -> Directions:
    """Correct-minus-wrong difference of the means of ``rows`` ``[N, n_layers, d]`` (collected
    at ``layers``; a memory map is streamed chunk by chunk), labelled by ``labels`` ``[N]``."""
    good, bad = (RunningStats.empty(layers, rows.shape[2], False) for _ in range(2))
    for begin in range(0, len(rows), 256):
        chunk, ok = np.asarray(rows[begin : begin + 256]), labels[begin : begin + 256]
        good.update(chunk[ok])
        bad.update(chunk[~ok])
    return diff_in_means(good, bad, model, ("correct", "wrong"), positions="completion")


def correctness_probes(
    lm: LM, frame: pd.DataFrame, layers: list[int], config: InterpConfig
) -> tuple[pd.DataFrame | None, Directions | None, str | None]:
    """Probe table and correct-minus-wrong direction, or a note saying why there are none.
    The probe folds are grouped by ``problem_id`` when ``frame`` has one."""
    frame = frame[frame["token_ids"].map(len) > 0]
    labels = frame["correct"].to_numpy(dtype=bool)
    groups = frame["problem_id"].to_numpy() if "problem_id" in frame else None
    note = probe_note(labels, groups, config.folds)
    if note is not None:
        return None, None, note
    rows_path, seqs = config.out / "rows.npy", trace_sequences(frame)
    collect(lm, seqs, layers, "completion", rows=rows_path, batch_size=config.batch_size)
    rows = load_rows(rows_path)
    table = probe_layers(
        rows, labels, layers, config.folds, seed=config.seed, groups=groups, probe=config.probe
    )
    write_parquet(config.out / "probes.parquet", table)
    atomic_write(config.out / "probes.csv", lambda path: table.to_csv(path, index=False))
    return table, correctness_direction(rows, labels, layers, lm.name), None


def cross_model(lm_a: LM, lm_b: LM, dirs_a: Directions, config: InterpConfig) -> dict:
    """CKA heatmap data, direction cosines and transplantation between the two models."""
    reasoning, control, _ = contrast_prompts()
    texts = reasoning[: config.contrast] + control[: config.contrast]
    out = config.out / "cross"
    out.mkdir(exist_ok=True)
    collect(lm_a, texts, None, "last", rows=out / "rows_a.npy", batch_size=config.batch_size)
    collect(lm_b, texts, None, "last", rows=out / "rows_b.npy", batch_size=config.batch_size)
    rows_a, rows_b = load_rows(out / "rows_a.npy"), load_rows(out / "rows_b.npy")
    cka = cka_matrix(rows_a, rows_b)
    np.save(out / "cka.npy", cka)
    dirs_b = reasoning_directions(lm_b, dirs_a.layers, config.batch_size, config.contrast)
    dirs_b.save(config.out / "directions" / "reasoning_b")
    result = {"model_b": lm_b.name, "cka": cka.tolist(), "cka_diagonal": None}
    if lm_a.n_layers == lm_b.n_layers:
        result["cka_diagonal"] = np.diag(cka).tolist()
    if dirs_a.raw.shape[1] == dirs_b.raw.shape[1]:
        result["direction_cosine_same_layer"] = np.diag(cosine_matrix(dirs_a, dirs_b)).tolist()
    common = [layer for layer in dirs_a.layers if layer <= lm_b.n_layers]
    maps = {
        layer: fit_map(rows_a[:, layer - 1], rows_b[:, layer - 1], ridge=1e-3) for layer in common
    }
    moved = transplant(dirs_a, maps, lm_b.name)
    result["transplant_cosine"] = [
        float(moved.unit[k] @ dirs_b.unit[dirs_b.layers.index(layer)])
        for k, layer in enumerate(moved.layers)
    ]
    result["transplant_r2"] = [maps[layer].r2 for layer in moved.layers]
    moved.save(config.out / "directions" / "reasoning_a_to_b")
    return result


def run_interp(config: InterpConfig) -> dict:
    """Run every stage into a hidden sibling of ``config.out``, renamed to it once all are done
    (a failed or interrupted run leaves nothing), and register it; returns ``summary.json``."""
    out = config.out
    if (out / "summary.json").exists():
        raise UserError(f"{out} already holds an interp run; choose another --out")
    layers, steer_layer = run_layers(config)  # bad layers fail before any model loads
    started = now()
    with atomic_dir(out) as tmp:
        summary, values = _stages(config.model_copy(update={"out": tmp}), layers, steer_layer)
    values["out"] = str(out.resolve())
    headline = ("correctness_accuracy", "n_traces", "steer_layer")
    register(out, "interp", values, {k: summary[k] for k in headline}, started)
    return summary


def _stages(config: InterpConfig, layers: list[int], steer_layer: int) -> tuple[dict, dict]:
    """Every stage, written to ``config.out``: the summary and the config to register."""
    from thinkscope.experiments.interp.page import write_page

    out = config.out
    timing: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        timing[name] = round(time.perf_counter() - clock, 1)
        clock = time.perf_counter()
        console.print(f"[bold]interp[/bold] {name}: {timing[name]} s")

    lm = load_model(ModelSpec.of(config))
    lap("load")
    dirs = reasoning_directions(lm, layers, config.batch_size, config.contrast)
    dirs.save(out / "directions" / "reasoning")
    lens = {
        layer: decode(lm, dirs.at(layer), k=8) for layer in (layers[0], steer_layer, layers[-1])
    }
    lap("directions")
    frame = correctness_run(lm, config)
    lap("correctness_run")
    table, correct_dir, probe_note = correctness_probes(lm, frame, layers, config)
    if correct_dir is not None:
        correct_dir.save(out / "directions" / "correct")
    lap("probes")
    cross = None
    if config.model_b:
        model_b = load_model(ModelSpec.of(config, model=config.model_b, weights=None))
        cross = cross_model(lm, model_b, dirs, config)
        write_json(out / "cross_model.json", cross)
        lap("cross_model")
    gen = GenerateConfig(
        **ModelSpec.of(config).model_dump(),
        task=config.task,
        questions=config.sweep_questions,
        n=1,
        seed=config.seed + 1,
        max_new_tokens=config.max_new_tokens,
        temperature=0.0,
        prompt_style="fewshot",
        batch_size=config.batch_size,
    )
    problems = load_problems(config.task, config.questions + config.sweep_questions, config.seed)
    problems = problems[config.questions :]  # held out from the probe problems
    sweep = steering_sweep(
        lm,
        problems,
        gen,
        steer_layer,
        dirs.at(steer_layer, unit=False),
        config.strengths,
        ablate_layers=layers,
        texts=out / "texts",
    )
    sweep.to_csv(out / "sweep.csv", index=False)
    lap("sweep")
    summary = {
        "model": config.model,
        "model_spec": lm.spec.model_dump(),  # resolved: the dtype used, the weights' identity
        "model_b": config.model_b,
        "preset": config.preset,
        "sizes": config.model_dump(include=set(InterpSizes.model_fields)),
        "task": config.task,
        "layers": layers,
        "steer_layer": steer_layer,
        "direction_norms": np.linalg.norm(dirs.raw, axis=1).tolist(),
        "direction_cosine": cosine_matrix(dirs).tolist(),
        "logit_lens": {str(k): v for k, v in lens.items()},
        "correctness_accuracy": float(frame["correct"].mean()),
        "n_traces": len(frame),
        "probes": None if table is None else table.to_dict("records"),
        "probe_note": probe_note,
        "cross_model": cross,
        "sweep": sweep.to_dict("records"),
        "timing_s": timing,
    }
    write_page(out, summary)
    timing["report"] = round(time.perf_counter() - clock, 1)
    timing["total"] = round(sum(timing.values()), 1)
    write_json(out / "summary.json", summary)
    config_values = {
        **config.model_dump(mode="json", exclude={"out"}),
        **lm.spec.model_dump(),
        "steer_layer": steer_layer,
    }
    return summary, config_values
