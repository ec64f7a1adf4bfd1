"""Representations: how well each layer's hidden states tell a correct answer from a wrong one
(cross-validated probes), what the correct-minus-wrong direction reads as through the logit
lens, and how alike the layers' representations are (linear CKA between every pair of layers).

Everything describes the base run's traces: each trace's block outputs at every layer, averaged
over its completion tokens (the interp library's ``completion`` pooling), kept in ``rows.npy``.
The direction is saved as ``direction.json`` + ``direction.safetensors`` for the control
section.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from thinkscope.core.spec import Spec, with_default
from thinkscope.experiments.interp.presets import InterpSizes
from thinkscope.profile.section import Context, Section, SectionResult, Stat
from thinkscope.tasks.spec import TaskSpec

NAME = "representations"
SEED = 0
BATCH = 16


class Sizes(Spec):
    """How many of the base run's traces the representations read, and the probes."""

    questions: int = with_default(TaskSpec, "questions", 32)  # the base run's first ones
    samples: int = with_default(InterpSizes, "samples", 8)  # the first of each question
    folds: int = with_default(InterpSizes, "folds", 4)
    probe: Literal["logistic", "mlp"] = with_default(InterpSizes, "probe", "logistic")
    lens_tokens: int = Field(
        5, ge=1, description="Tokens per layer and sign in the direction's logit-lens table."
    )


SIZES = {
    "quick": Sizes(),
    "standard": Sizes(questions=100),
    "full": Sizes(questions=200, samples=8, folds=5),
}
TOKEN_S = 1.8e-3  # one forward token of the bundled model, 2 CPU threads (measured)


def direction_path(profile: Path) -> Path:
    """Where the representations section of the profile in ``profile`` saves its direction."""
    return profile / "sections" / NAME / "direction.json"


def base_traces(base: Path, questions: int, samples: int):
    """The base run's first ``samples`` traces of each of its first ``questions`` questions,
    those with a completion, shortest first (batches of similar length waste less padding)."""
    from thinkscope.runstore.folder import Run

    traces = Run(base).traces()
    chosen = traces["problem_id"].drop_duplicates().iloc[:questions]
    keep = traces["problem_id"].isin(chosen) & (traces["sample_idx"] < samples)
    keep &= traces["token_ids"].map(len) > 0
    traces = traces[keep]
    length = traces["prompt_ids"].map(len) + traces["token_ids"].map(len)
    return traces.iloc[np.argsort(length.to_numpy(), kind="stable")].reset_index(drop=True)


def pooled_rows(ctx: Context, frame, layers: list[int]) -> np.ndarray:
    """Completion-mean block outputs ``[N, n_layers, d]`` of ``frame``'s traces (reused from
    ``rows.npy`` when a previous attempt wrote it: the file appears only when complete)."""
    from thinkscope.experiments.interp.pipeline import trace_sequences
    from thinkscope.interp.activations import collect, load_rows

    path = ctx.folder / "rows.npy"
    if not path.is_file():
        seqs = trace_sequences(frame)
        collect(ctx.lm(), seqs, layers, "completion", rows=path, batch_size=BATCH)
    return load_rows(path)


def lens_table(lm, direction, top_k: int) -> list[dict]:
    """Per layer, the direction's norm and the tokens whose logits its unit vector raises and
    lowers most through the final norm and the unembedding."""
    from thinkscope.interp.directions import decode

    norms = np.linalg.norm(direction.raw, axis=1)
    rows = []
    for layer, norm in zip(direction.layers, norms, strict=True):
        read = decode(lm, direction.at(layer), k=top_k)
        rows.append(
            {
                "layer": layer,
                "norm": float(norm),
                "raises": " ".join(repr(token) for token, _ in read["top"]),
                "lowers": " ".join(repr(token) for token, _ in read["bottom"]),
            }
        )
    return rows


def _probes(ctx: Context, rows, frame, layers: list[int], sizes: Sizes) -> SectionResult:
    """Probe AUROC by layer, the direction (saved) and its logit-lens table; undefined, with
    the reason, when a class is too small for the folds."""
    from thinkscope.experiments.interp.pipeline import correctness_direction, probe_note
    from thinkscope.interp.probes import probe_figure, probe_layers

    labels = frame["correct"].to_numpy(bool)
    groups = frame["problem_id"].astype(str).to_numpy()
    note = probe_note(labels, groups, sizes.folds)
    if note is not None:
        why = f"{note} ({sizes.folds} folds)"
        return SectionResult(
            stats={"probe.auroc": Stat.undefined(why, len(labels))},
            notes=[f"no probe and no correct-vs-wrong direction: {why}"],
        )
    table = probe_layers(
        rows, labels, layers, sizes.folds, seed=SEED, groups=groups, probe=sizes.probe
    )
    lm = ctx.lm()
    direction = correctness_direction(rows, labels, layers, lm.name)
    direction.save(ctx.folder / "direction")
    stats = {}
    if table["auroc"].notna().any():
        best = table.loc[table["auroc"].idxmax()]
        method = f"{sizes.folds}-fold CV grouped by question, bootstrap over samples"
        stats["probe.auroc"] = Stat(
            best["auroc"],
            best["auroc_lo"],
            best["auroc_hi"],
            n=len(labels),
            method=method,
            note=f"at layer {int(best['layer'])}, the best of {len(layers)} (a maximum: biased up)",
        )
        stats["probe.layer"] = Stat(int(best["layer"]), n=len(layers), method="argmax of AUROC")
    else:
        stats["probe.auroc"] = Stat.undefined("the probes' AUROC is undefined at every layer")
    figure = ctx.figure(
        probe_figure(table, f"correct vs wrong: {sizes.probe} probe by layer"),
        "probes",
        "Out-of-fold accuracy and AUROC of a probe for a correct answer, by layer (95% CIs).",
    )
    return SectionResult(
        stats=stats,
        tables={
            "probes": table.drop(columns="n").to_dict("records"),
            "direction": lens_table(lm, direction, sizes.lens_tokens),
        },
        figures=[figure],
    )


def _cka(ctx: Context, rows, layers: list[int]) -> SectionResult:
    """Linear CKA between every pair of layers over the traces (``cka.npy``), its heatmap and
    the mean CKA of adjacent layers."""
    from thinkscope.interp.cka import cka_matrix, heatmap

    cka = cka_matrix(np.asarray(rows, dtype=np.float64), np.asarray(rows, dtype=np.float64))
    np.save(ctx.folder / "cka.npy", cka)
    figure = ctx.figure(
        heatmap(cka, layers, layers, "", ""),
        "cka",
        f"Linear CKA between every pair of layers' completion-mean states ({len(rows)} traces).",
    )
    adjacent = Stat(
        float(np.mean(np.diag(cka, 1))),
        n=len(rows),
        method="linear CKA of layers l and l+1, mean over l",
    )
    return SectionResult(stats={"cka.adjacent": adjacent}, figures=[figure])


def measure(ctx: Context) -> SectionResult:
    sizes = ctx.protocol.sizes(NAME)
    frame = base_traces(ctx.base, sizes.questions, sizes.samples)
    if len(frame) < 4:
        return SectionResult(skipped=f"{len(frame)} base-run traces have a completion: too few")
    layers = list(range(1, ctx.lm().n_layers + 1))
    rows = pooled_rows(ctx, frame, layers)
    probes, cka = _probes(ctx, rows, frame, layers, sizes), _cka(ctx, rows, layers)
    return SectionResult(
        stats={**probes.stats, **cka.stats},
        headline=["probe.auroc"],
        tables=probes.tables,
        figures=probes.figures + cka.figures,
        notes=probes.notes,
    )


def estimate(protocol) -> float:
    """Seconds: one forward pass over the traces read (a fewshot prompt of ~110 tokens and a
    third of the token limit each), then the probes and CKA."""
    sizes, run = protocol.sizes(NAME), protocol.run
    traces = min(sizes.questions, run.questions) * min(sizes.samples, run.n)
    return traces * (110 + run.max_new_tokens / 3) * TOKEN_S + 5.0


SECTION = Section(NAME, "Representations", measure, estimate=estimate)
