"""``runs reproduce`` of any run kind but ``generate``: rerun the command its header records,
in this process, with the run folder replaced by a new one, then compare the two folders
(:func:`thinkscope.experiments.reproduce.compare_folders`)."""

from __future__ import annotations

import shlex
from pathlib import Path

from thinkscope.core.errors import UserError


def rerun_args(header: dict, out: Path, overrides: dict) -> list[str]:
    """The header's command with the run folder's argument replaced by ``out`` (``--out OUT``
    added when the folder was a default, as ``merge`` makes it), ``overrides`` appended."""
    args, original, new = header["command"], header["path"], str(out.resolve())
    if args is None:
        raise UserError(
            f"{original} was made from Python, not by a thinkscope command: its header "
            "records no command to rerun"
        )

    def names_run(token: str) -> bool:  # the folder, perhaps through a symlink
        return token == original or (token[:1] == "/" and str(Path(token).resolve()) == original)

    replaced = []
    for arg in args:
        option, equals, value = arg.partition("=")
        if names_run(arg):
            replaced.append(new)
        elif equals and arg.startswith("--") and names_run(value):
            replaced.append(f"{option}={new}")
        else:
            replaced.append(arg)
    if replaced == args:
        if any(a == "--out" or a.startswith("--out=") for a in args):
            raise UserError(
                f"{original} was made inside another run, by `thinkscope {shlex.join(args)}`: "
                "reproduce that run"
            )
        replaced += ["--out", new]
    for name, value in overrides.items():
        flag = name.replace("_", "-")
        if isinstance(value, bool):
            replaced.append(f"--{flag}" if value else f"--no-{flag}")
        else:
            replaced += [f"--{flag}", str(value)]
    return replaced


def check_weights(header: dict, overrides: dict) -> None:
    """Refuse when the weights the header records are not the ones its model names now
    (unless ``overrides`` name another model)."""
    from thinkscope.models.identity import identify
    from thinkscope.models.spec import ModelSpec

    model = header["model"]
    if "weights" not in model or model.get("weights") is None or "model" in overrides:
        return
    found = identify(ModelSpec.of({k: v for k, v in model.items() if k != "weights"}))
    if found != model["weights"]:
        raise UserError(
            f"the weights of {model['model']!r} changed: {model['weights']} was recorded, "
            f"{found} is there now; restore the original weights to reproduce"
        )


def rerun(path: Path, header: dict, out: Path, overrides: dict) -> dict:
    """Rerun the run ``path`` (its ``header``) into ``out``; compare; write and return
    ``out/reproduce.json``."""
    import typer

    from thinkscope.cli.app import app
    from thinkscope.core.atomic import write_json
    from thinkscope.core.invocation import command, set_command
    from thinkscope.experiments.reproduce import compare_folders

    if out.resolve() == path.resolve():
        raise UserError("--out must be a new folder, not the run being reproduced")
    args = rerun_args(header, out, overrides)
    check_weights(header, overrides)
    outer = command()
    set_command(args)
    try:
        typer.main.get_command(app).main(args, prog_name="thinkscope", standalone_mode=False)
    finally:
        set_command(outer)
    report = {"command": args, **compare_folders(path, out)}
    write_json(out / "reproduce.json", report)
    return report
