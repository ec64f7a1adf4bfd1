"""``thinkscope models inspect MODEL``: a model's layers as thinkscope probes them."""

from __future__ import annotations

import typer
from rich.markup import escape

from thinkscope.cli.loading import model_options
from thinkscope.cli.tables import Col, Format, format_option, messages, print_table
from thinkscope.models.spec import BUNDLED, ModelSpec

models_app = typer.Typer(add_completion=False, no_args_is_help=True)


@models_app.callback()
def models_group() -> None:
    """What a model's layers are made of, and what thinkscope can measure on them."""


#: How the token mixers of :data:`thinkscope.models.adapter.MIXERS` read in the table.
MIXER_NAMES = {"linear_attention": "linear attention", "ssm": "SSM"}
COLUMNS = (
    Col("layer"),
    Col("block", role="name"),
    Col("mixers", role="name"),
    Col("experts", show=lambda has: "yes" if has else "no"),
)


def layer_rows(anatomy) -> list[dict]:
    """One row per layer (1..L): its block class, token mixers and whether it has experts."""
    return [
        {
            "layer": i,
            "block": type(block).__name__,
            "mixers": " + ".join(MIXER_NAMES.get(kind, kind) for kind in mixers) or "none found",
            "experts": experts,
        }
        for i, (block, mixers, experts) in enumerate(
            zip(anatomy.layers, anatomy.mixers, anatomy.experts, strict=True), start=1
        )
    ]


def summary(lm) -> list[str]:
    """The model in two lines: its shape, and which measurements apply to which layers."""
    config, attention = lm.model.config, lm.anatomy.attention_layers
    shape = (
        f"{config.model_type}: {lm.n_layers} layers, hidden size "
        f"{lm.anatomy.unembed.weight.shape[1]}, vocabulary {lm.vocab_size}"
    )
    if not attention:
        reach = "no layer has attention: APE and head ablation are refused"
    elif len(attention) == lm.n_layers:
        reach = "every layer has attention: APE and head ablation on every layer"
    else:
        listed = ", ".join(map(str, attention))
        reach = f"attention on layers {listed}: APE and head ablation on those layers only"
    return [shape, f"lens, DTR and settling depth on every layer; {reach}"]


@models_app.command("inspect")
@format_option
@model_options  # but --model: MODEL is an argument
def inspect_command(
    model: str = typer.Argument(
        BUNDLED,
        metavar="MODEL",
        help=ModelSpec.model_fields["model"].description,
    ),
    model_spec: ModelSpec | None = None,
    fmt: Format = Format.table,
) -> None:
    """Each layer of MODEL: its block, its token mixers and whether it has experts.

    Token mixers: attention, linear attention, convolution, state-space model (SSM).

    Below the table: the layers APE and head ablation can measure (those with attention)."""
    from thinkscope.models import load_model

    lm = load_model(ModelSpec.of(model_spec, model=model))
    print_table(layer_rows(lm.anatomy), fmt, COLUMNS)
    console = messages(fmt)
    for line in summary(lm):
        console.print(escape(line))
