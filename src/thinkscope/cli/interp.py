"""The Typer commands ``thinkscope interp directions | probe | cka | steer | patch | run``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from thinkscope.cli.loading import model_options
from thinkscope.cli.options import field_option, option_block
from thinkscope.cli.tables import Format, format_option, infer_columns, print_table
from thinkscope.core.errors import UserError
from thinkscope.core.spec import Spec
from thinkscope.experiments.interp.presets import (
    InterpConfig,
    InterpSizes,
    layer_syntax,
    parse_layers,
)
from thinkscope.generation.spec import SamplingSpec
from thinkscope.models.spec import ModelSpec

interp_app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Directions, probes, CKA, steering, ablation and patching.",
)
console = Console()
LAYERS_HELP = "Layers (1..L, l = output of block l): all, A-B, or a comma list."


def _help(spec: type[Spec], name: str) -> str | None:
    return spec.model_fields[name].description


def _check_positions(positions: str) -> None:
    from thinkscope.interp.activations import POSITIONS

    if positions not in POSITIONS:
        raise UserError(f"--positions must be one of {', '.join(POSITIONS)}, got {positions!r}")


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        raise UserError(f"prompt file not found: {path}")
    lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not lines:
        raise UserError(f"{path} holds no prompts (one per line)")
    return lines


@interp_app.command("directions")
@model_options
def directions_command(
    out: Path = typer.Option(..., help="Where to write NAME.safetensors + NAME.json."),
    model_spec: ModelSpec | None = None,
    run: Path = typer.Option(None, help="A run folder: correct minus wrong traces."),
    reasoning: Path = typer.Option(None, help="Prompts, one per line (default: bundled)."),
    control: Path = typer.Option(None, help="Control prompts, one per line (default: bundled)."),
    layers: str = typer.Option("all", help=LAYERS_HELP),
    positions: str = typer.Option("last", help="last | mean | completion (runs only)."),
    decode_layer: int = typer.Option(None, help="Logit-lens reading at this layer."),
) -> None:
    """Difference-in-means directions per layer (reasoning vs control, or correct vs wrong)."""
    from thinkscope.experiments.interp.presets import contrast_prompts
    from thinkscope.interp.activations import collect, sequences_from_run
    from thinkscope.interp.directions import cosine_matrix, decode, diff_in_means
    from thinkscope.models import load_model

    _check_positions(positions)
    layer_syntax(layers)
    if run is not None:
        seqs, correct = sequences_from_run(run)
        if correct.all() or not correct.any():
            raise UserError(f"{run} needs both correct and wrong traces for a direction")
    else:
        bundled_r, bundled_c, _ = contrast_prompts()
        texts_r = _lines(reasoning) if reasoning else bundled_r
        texts_c = _lines(control) if control else bundled_c
    lm = load_model(model_spec)
    chosen = parse_layers(layers, lm.n_layers)
    if run is not None:
        a = collect(lm, [s for s, c in zip(seqs, correct, strict=True) if c], chosen, positions)
        b = collect(lm, [s for s, c in zip(seqs, correct, strict=True) if not c], chosen, positions)
        names = ("correct", "wrong")
    else:
        a = collect(lm, texts_r, chosen, positions, show_progress=True)
        b = collect(lm, texts_c, chosen, positions, show_progress=True)
        names = ("reasoning", "control")
    dirs = diff_in_means(a, b, lm.name, names, positions=positions)
    path = dirs.save(out)
    cos = cosine_matrix(dirs)
    for k, layer in enumerate(chosen):
        nxt = f"{cos[k, k + 1]:.3f}" if k + 1 < len(chosen) else "-"
        console.print(
            f"layer {layer:3d}  norm {float(dirs.raw[k] @ dirs.raw[k]) ** 0.5:9.3f}  "
            f"cos(next) {nxt}"
        )
    layer = decode_layer or chosen[len(chosen) // 2]
    words = decode(lm, dirs.at(layer), k=10)
    console.print(f"logit lens at layer {layer}: top {escape(str([t for t, _ in words['top']]))}")
    console.print(f"directions: {path}")


@interp_app.command("probe")
@format_option
@model_options
def probe_command(
    run: Path = typer.Option(..., help="A run folder: probes predict its traces' correctness."),
    out: Path = typer.Option(..., help="Folder for probes.csv and probes.png."),
    model_spec: ModelSpec | None = None,
    layers: str = typer.Option("all", help=LAYERS_HELP),
    positions: str = typer.Option("completion", help="last | mean | completion."),
    folds: int = typer.Option(5),
    fmt: Format = Format.table,
) -> None:
    """Per-layer logistic probes (stratified k-fold, grouped by problem): accuracy and AUROC by
    layer with CIs."""
    from thinkscope.core.atomic import atomic_dir
    from thinkscope.interp.activations import collect, load_rows, sequences_from_run
    from thinkscope.interp.probes import check_labels, probe_figure, probe_layers
    from thinkscope.models import load_model
    from thinkscope.runstore.folder import Run, now
    from thinkscope.runstore.header import register

    seqs, correct = sequences_from_run(run)
    groups = Run.open(run).traces()["problem_id"].to_numpy()
    check_labels(correct, folds, groups)
    _check_positions(positions)
    layer_syntax(layers)
    lm = load_model(model_spec)
    chosen, started = parse_layers(layers, lm.n_layers), now()
    with atomic_dir(out) as tmp:
        collect(lm, seqs, chosen, positions, rows=tmp / "rows.npy", show_progress=True)
        table = probe_layers(load_rows(tmp / "rows.npy"), correct, chosen, folds, groups=groups)
        table.to_csv(tmp / "probes.csv", index=False)
        probe_figure(table, f"{lm.name}: correct vs wrong").savefig(tmp / "probes.png")
    config = {**lm.spec.model_dump(), "run": str(Path(run).resolve()), "layers": chosen}
    config.update(positions=positions, folds=folds)
    best = table.loc[table["auroc"].idxmax()] if table["auroc"].notna().any() else None
    summary = {} if best is None else {"best_layer": int(best["layer"]), "auroc": best["auroc"]}
    register(out, "interp probe", config, summary, started)
    print_table(table, fmt, infer_columns(table, ".3f"))


@interp_app.command("cka")
@model_options
def cka_command(
    out: Path = typer.Option(..., help="Folder for cka.csv and cka.png."),
    model_spec: ModelSpec | None = None,
    model_b: str = typer.Option(
        ..., help="The second model (e.g. a merged LoRA fine-tune), loaded with the same options."
    ),
    texts: Path = typer.Option(None, help="Inputs, one per line (default: bundled prompts)."),
    batch_size: int = typer.Option(
        None, min=4, help="Minibatch CKA (unbiased HSIC, n >= 4) with this size."
    ),
) -> None:
    """Layer-by-layer linear CKA between two models on the same inputs, and its heatmap."""
    import numpy as np

    from thinkscope.core.atomic import atomic_dir
    from thinkscope.experiments.interp.presets import contrast_prompts
    from thinkscope.interp.activations import collect, load_rows
    from thinkscope.interp.cka import cka_matrix, cka_table, heatmap
    from thinkscope.models import load_model
    from thinkscope.runstore.folder import now
    from thinkscope.runstore.header import register

    inputs = _lines(texts) if texts else sum(contrast_prompts()[:2], [])
    if batch_size is not None and batch_size > len(inputs):
        raise UserError(f"--batch-size {batch_size} is more than the {len(inputs)} inputs")
    specs = {"a": model_spec, "b": ModelSpec.of(model_spec, model=model_b)}
    for spec in specs.values():  # both models exist before either is loaded
        spec.resolved()
    names, started = [], now()
    with atomic_dir(out) as tmp:
        for tag, spec in specs.items():
            lm = load_model(spec)
            collect(lm, inputs, None, "last", rows=tmp / f"rows_{tag}.npy", show_progress=True)
            names.append(lm.name)
        rows_a, rows_b = load_rows(tmp / "rows_a.npy"), load_rows(tmp / "rows_b.npy")
        cka = cka_matrix(rows_a, rows_b, batch_size=batch_size)
        layers_a, layers_b = range(1, cka.shape[0] + 1), range(1, cka.shape[1] + 1)
        table = cka_table(cka, layers_a, layers_b)
        table.to_csv(tmp / "cka.csv", float_format="%.6f")
        heatmap(cka, layers_a, layers_b, *names).savefig(tmp / "cka.png", format="png")
    config = {**specs["a"].resolved().model_dump(), "model_b": model_b, "batch_size": batch_size}
    config["texts"] = str(texts.resolve()) if texts else None
    register(out, "interp cka", config, {"mean_cka": float(cka.mean())}, started)
    if cka.shape[0] == cka.shape[1]:
        console.print("same-layer CKA: " + " ".join(f"{x:.3f}" for x in np.diag(cka)))
    console.print(f"heatmap: {out / 'cka.png'}")


@interp_app.command("steer")
@model_options
def steer_command(
    directions: Path = typer.Option(..., help="A directions .json written by `directions`."),
    layer: int = typer.Option(..., help="Steer the output of this block."),
    prompt: str = typer.Option(..., help="Prompt text (the chat template is not applied)."),
    alpha: list[float] = typer.Option([-4.0, 0.0, 4.0], help="Repeatable; x the raw direction."),
    model_spec: ModelSpec | None = None,
    max_new_tokens: int = typer.Option(48, help=_help(SamplingSpec, "max_new_tokens")),
) -> None:
    """Greedy completions of a prompt with the direction added at several strengths."""
    from thinkscope.generation.sampler import BatchSampler, SamplingParams
    from thinkscope.interp.directions import Directions
    from thinkscope.models import load_model
    from thinkscope.models.hooks.interventions import steer

    vector = Directions.load(directions).at(layer, unit=False)
    lm = load_model(model_spec)
    ids = lm.tokenizer(prompt)["input_ids"]
    params = SamplingParams(temperature=0, max_new_tokens=max_new_tokens)
    for a in alpha:
        with steer(lm, {layer: vector}, alpha=a):
            sampler = BatchSampler(lm, [ids], [0], params)
            sampler.run()
        text = lm.tokenizer.decode(sampler.completions[0].token_ids, skip_special_tokens=True)
        console.print(f"[bold]alpha {a:+g}[/bold]: {escape(text)}")


@interp_app.command("patch")
@model_options
def patch_command(
    source: str = typer.Option(..., help="The prompt whose activations are patched in."),
    target: str = typer.Option(..., help="The prompt that receives them."),
    model_spec: ModelSpec | None = None,
    layers: str = typer.Option("all", help=LAYERS_HELP),
    k: int = typer.Option(5, help="Top next tokens to show."),
) -> None:
    """Patch the source's last-token state into the target's last position, layer by layer,
    and show how the target's next-token prediction moves toward the source's."""
    import torch

    from thinkscope.interp.activations import record
    from thinkscope.models import load_model
    from thinkscope.models.hooks.interventions import patch

    layer_syntax(layers)
    lm = load_model(model_spec)
    chosen = parse_layers(layers, lm.n_layers)
    src = record(lm, [source], chosen)
    ids = torch.tensor([lm.tokenizer(target)["input_ids"]], device=lm.device)
    src_ids = torch.tensor([lm.tokenizer(source)["input_ids"]], device=lm.device)

    def top(logits: torch.Tensor) -> str:
        probs = logits[0, -1].float().softmax(-1)
        values, index = probs.topk(k)
        return ", ".join(
            f"{lm.tokenizer.decode([int(i)])!r} {float(v):.2f}"
            for i, v in zip(index, values, strict=True)
        )

    with torch.no_grad():
        want = lm.model(input_ids=src_ids).logits[0, -1].float().softmax(-1)
        console.print(f"source: {escape(top(lm.model(input_ids=src_ids).logits))}")
        console.print(f"target: {escape(top(lm.model(input_ids=ids).logits))}")
        for layer in chosen:
            with patch(lm, {layer: src[layer][:, -1:]}, positions=[ids.shape[1] - 1]):
                logits = lm.model(input_ids=ids).logits
            p = logits[0, -1].float().softmax(-1)
            tv = 0.5 * float((p - want).abs().sum())
            console.print(f"layer {layer:3d}  TV to source {tv:.3f}  {escape(top(logits))}")


def _given(**values) -> dict:
    """The options set on the command line (``None``: the preset's value)."""
    return {name: value for name, value in values.items() if value is not None}


def _run_options(command):
    """``interp run``'s options from :class:`InterpConfig`'s fields (the model's come from
    :func:`model_options`): the sizes default to the preset's values, the rest to the spec's."""
    sizes = {name: field_option(InterpSizes, name, None) for name in InterpSizes.model_fields}
    sizes["preset"] = field_option(InterpSizes, "preset")
    own = ("model_b", "task", "steer_layer", "seed", "batch_size")
    block = {name: field_option(InterpConfig, name) for name in own}
    decorated = option_block(sizes, "sizes", "Sizes (unset: the preset's value)", build=_given)
    return model_options(option_block(block, "settings", build=_given)(decorated(command)))


@interp_app.command("run")
@_run_options
def run_command(
    out: Path = typer.Option(..., help="Result folder (interp.html, summary.json, ...)."),
    model_spec: ModelSpec | None = None,
    sizes: dict | None = None,
    settings: dict | None = None,
) -> None:
    """Seed 002's pipeline: directions, probes, logit lens, cross-model CKA, steering sweep.
    The task defaults to demo-arith, where a small model's answers mix right and wrong (the
    probes need both). A preset sets the sizes; each size option overrides its value."""
    from thinkscope.experiments.interp.pipeline import run_interp
    from thinkscope.tasks.loaders import load_problems

    config = InterpConfig.parse(out=out, **model_spec.model_dump(), **sizes, **settings)
    # the task and the models exist before anything heavy runs
    load_problems(config.task, config.questions + config.sweep_questions, config.seed)
    for model in filter(None, (config.model, config.model_b)):
        ModelSpec.of(model_spec, model=model).resolved()
    summary = run_interp(config)
    console.print(f"done in {summary['timing_s']['total']} s: {out / 'interp.html'}")
