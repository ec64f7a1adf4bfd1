"""``thinkscope profile MODEL``: a model's thinking card; ``thinkscope profile diff A B``: two
cards side by side, with the deltas and a verdict per section."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from thinkscope.cli.loading import model_options
from thinkscope.models.spec import BUNDLED, ModelSpec

CARD = "card"


class ProfileGroup(TyperGroup):
    """``profile MODEL ...`` runs the card command; ``profile diff ...`` the diff."""

    default_command = CARD

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        if not args or args[0] not in (*self.commands, "--help", "-h"):
            args = [CARD, *args]
        return super().parse_args(ctx, args)


profile_app = typer.Typer(cls=ProfileGroup, add_completion=False)


@profile_app.callback()
def profile_group() -> None:
    """A model's thinking card, and the difference between two.

    thinkscope profile MODEL --out DIR [--budget quick|standard|full] [--resume]

    thinkscope profile diff A B --out DIR
    """


def _headlines(card: dict) -> list[str]:
    from thinkscope.profile.page import number

    lines = []
    for entry in card["sections"].values():
        if entry["skipped"]:
            lines.append(f"{entry['title']}: not measured ({entry['skipped']})")
            continue
        parts = []
        for name in entry["headline"]:
            stat = entry["stats"][name]
            if stat["value"] is None:
                parts.append(f"{name} undefined ({stat['note']})")
            else:
                ci = (
                    f" [{number(stat['lo'])}, {number(stat['hi'])}]"
                    if stat["lo"] is not None
                    else ""
                )
                parts.append(f"{name} {number(stat['value'])}{ci}")
        lines.append(f"{entry['title']}: {'; '.join(parts) or 'see the page'}")
    return lines


@profile_app.command(CARD, hidden=True)
@model_options  # but --model: MODEL is an argument
def card_command(
    model: str = typer.Argument(
        BUNDLED, metavar="MODEL", help=ModelSpec.model_fields["model"].description
    ),
    out: Path = typer.Option(..., "--out", help="The profile folder to write."),
    budget: str = typer.Option(
        "quick",
        "--budget",
        help="quick (10 minutes for the bundled 135M model on 2 CPU cores), standard or full.",
    ),
    resume: bool = typer.Option(False, "--resume", help="Finish a killed profile in --out."),
    model_spec: ModelSpec | None = None,
) -> None:
    """Run the profile protocol on MODEL: profile.json (every number with its CI) and
    profile.html (one page, a section per question) in --out."""
    from thinkscope.profile.protocol import Protocol
    from thinkscope.profile.runner import run_profile

    protocol = Protocol.of(budget)
    spec = ModelSpec.of(model_spec, model=model)
    console = Console(stderr=True)
    path = run_profile(spec, out, protocol, resume=resume, console=console)
    card = json.loads(path.read_text(encoding="utf-8"))
    for line in _headlines(card):
        console.print(escape(line), soft_wrap=True)
    console.print(f"card: {path}\npage: {path.parent / 'profile.html'}", soft_wrap=True)


@profile_app.command("diff")
def diff_command(
    a: Path = typer.Argument(..., metavar="A", help="The first profile folder (the baseline)."),
    b: Path = typer.Argument(..., metavar="B", help="The second profile folder."),
    out: Path = typer.Option(..., "--out", help="The folder to write diff.json and diff.html."),
    cka: bool = typer.Option(
        True, "--cka/--no-cka", help="Load both models for the cross-model CKA map."
    ),
) -> None:
    """The cards of A and B side by side: the deltas (B - A) with CIs, paired by question where
    the protocol pairs samples, and one verdict per section."""
    from thinkscope.profile.diff import diff_profiles

    console = Console(stderr=True)
    path = diff_profiles(a, b, out, cka=cka)
    diff = json.loads(path.read_text(encoding="utf-8"))
    for entry in diff["sections"].values():
        console.print(f"{escape(entry['title'])}: {escape(entry['verdict'])}", soft_wrap=True)
    console.print(f"diff: {path}\npage: {path.parent / 'diff.html'}", soft_wrap=True)
