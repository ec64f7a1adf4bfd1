"""The Typer commands ``thinkscope train`` and ``thinkscope merge``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from thinkscope.cli.loading import model_options, own_model_options, with_own_model
from thinkscope.cli.options import spec_options
from thinkscope.cli.tables import Format, format_option, print_mapping
from thinkscope.models.spec import ModelSpec
from thinkscope.sft.hub import HubSpec
from thinkscope.sft.quant import QuantSpec


@format_option
@spec_options(HubSpec, "hub", "Hub", exclude=("from_hub",))
@spec_options(QuantSpec, "quant", "QLoRA")
@model_options
def train_command(
    dataset: Path = typer.Option(
        ..., help="A `dataset build` folder (its sft_correct.jsonl) or a JSONL file."
    ),
    out: Path = typer.Option(..., help="Training folder to create (or to resume)."),
    file: str = typer.Option(None, help="Which file of the dataset folder (e.g. sft_all.jsonl)."),
    eval_file: Path = typer.Option(None, help="Held-out JSONL: its loss before and after."),
    lora_rank: int = typer.Option(16),
    lora_alpha: float = typer.Option(32.0),
    lora_dropout: float = typer.Option(0.05),
    target_modules: list[str] = typer.Option(
        [],
        help="Module name to adapt (repeatable; default: the projections of each block's "
        "attention, linear attention, SSM, feed-forward part and experts).",
    ),
    learning_rate: float = typer.Option(2e-4),
    epochs: float = typer.Option(1.0),
    max_steps: int = typer.Option(-1, help="Optimizer steps (-1: --epochs decides)."),
    batch_size: int = typer.Option(4),
    grad_accum: int = typer.Option(1),
    max_length: int = typer.Option(1024, help="Longest prompt+response in tokens."),
    seed: int = typer.Option(0),
    save_steps: int = typer.Option(50, help="Checkpoint every N steps (for --resume)."),
    resume: bool = typer.Option(False, help="Continue a killed run from its last checkpoint."),
    merge: bool = typer.Option(False, help="Also write OUT/merged, a standalone model."),
    full: bool = typer.Option(
        False, help="Full fine-tuning: every weight, saved as OUT/model (no LoRA options)."
    ),
    model_spec: ModelSpec | None = None,
    quant: QuantSpec = QuantSpec(),
    hub: HubSpec = HubSpec(),
    fmt: Format = Format.table,
) -> None:
    """LoRA SFT (TRL + PEFT) on prompt/response rows, loss on the response only; --full
    fine-tunes every weight instead."""
    from thinkscope.core.errors import UserError
    from thinkscope.sft.hub import push_folder
    from thinkscope.sft.merge import merge_adapter
    from thinkscope.sft.quant import check_4bit
    from thinkscope.sft.trainer import TrainConfig, train

    if full and merge:
        raise UserError("--merge folds a LoRA adapter; --full saves the whole model: drop --merge")
    config = TrainConfig.parse(
        **model_spec.model_dump(),
        dataset=str(dataset.resolve()) if dataset.exists() else str(dataset),
        file=file,
        eval_file=str(eval_file.resolve()) if eval_file else None,
        lora_rank=lora_rank,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        target_modules=target_modules,
        learning_rate=learning_rate,
        epochs=epochs,
        max_steps=max_steps,
        batch_size=batch_size,
        grad_accum=grad_accum,
        max_length=max_length,
        seed=seed,
        save_steps=save_steps,
        full=full,
        **quant.model_dump(),
    )
    if config.load_in_4bit:
        check_4bit()
    hub.check()
    result = train(config, out, resume=resume)
    if result.finished_before:
        return  # train said so in one line
    paths = {"model" if full else "adapter": result.adapter, "loss_curve": result.path / "loss.png"}
    if merge:
        paths["merged"] = merge_adapter(result.path)
    if hub.push_to_hub:
        paths["hub"] = push_folder(result.adapter, hub.push_to_hub)
    print_mapping({**result.summary, **{k: str(v) for k, v in paths.items()}}, fmt)


@spec_options(HubSpec, "hub", "Hub", exclude=("from_hub",))
@own_model_options("Base model (default: the one it was trained from, same weights).")
def merge_command(
    path: Path = typer.Argument(..., help="A `thinkscope train` folder or an adapter folder."),
    out: Path = typer.Option(None, help="Merged model directory (default: PATH/merged)."),
    model_spec: ModelSpec | None = None,
    hub: HubSpec = HubSpec(),
) -> None:
    """Merge a LoRA adapter into its base model: a directory `thinkscope.load_model` reads."""
    from thinkscope.sft.merge import base_model_of, find_adapter, merge_adapter

    find_adapter(path)  # no adapter: say so first
    hub.check()
    keep = ("revision", "trust_remote_code", "weights")
    recorded = base_model_of(path) if model_spec.model is None else {}
    base = with_own_model(model_spec, recorded, keep)
    merged = merge_adapter(path, base, out, push_to_hub=hub.push_to_hub)
    pushed = f" (pushed to {hub.push_to_hub})" if hub.push_to_hub else ""
    Console().print(f"merged model: {escape(str(merged))}{pushed}")
