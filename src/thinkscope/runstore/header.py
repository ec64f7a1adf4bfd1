"""The run header: what every run kind writes when it finishes, and how it enters the registry.

``DIR/run.json`` holds the command that made the run (its arguments with every existing path
made absolute, the run folder's own included, as it exists by then), the working directory,
the resolved config (paths absolute), the model's identity (name, weights, dtype), the seed,
and the code version (package version and git commit); ``stages`` lists what changed the run
in place afterwards (``score``: its command and config). :func:`register` writes it and adds
the registry row; ``runs reproduce`` reruns the command from it with the run folder replaced
by a new one.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
from pathlib import Path

from thinkscope.core.atomic import write_json
from thinkscope.core.errors import UserError
from thinkscope.core.invocation import command
from thinkscope.runstore import registry

HEADER = "run.json"

#: Config keys that name the model a run used, in the order a header records them.
MODEL_KEYS = ("model", "revision", "weights", "dtype")


def absolute(token: str, cwd: Path) -> str:
    """``token`` made absolute when it names an existing path relative to ``cwd``."""
    path = Path(token).expanduser()
    if not token or token.startswith("-") or path.is_absolute() or not (cwd / path).exists():
        return token
    return str((cwd / path).resolve())


def absolute_value(value: str, cwd: Path) -> str:
    """``value`` with its paths made absolute: itself, or each ``KEY=PATH`` of a comma-separated
    list (lm-eval's ``--model_args pretrained=models/x,dtype=float32``)."""
    if "=" not in value:
        return absolute(value, cwd)
    pairs = (piece.partition("=") for piece in value.split(","))
    return ",".join(f"{key}{eq}{absolute(path, cwd)}" for key, eq, path in pairs)


def absolute_args(args: list[str], cwd: Path) -> list[str]:
    """``args`` with each argument (or ``--option=value`` value) that names an existing path
    relative to ``cwd`` made absolute, so the command means the same from any directory."""
    out = []
    for arg in args:
        option, equals, value = arg.partition("=")
        if equals and arg.startswith("--"):
            out.append(f"{option}={absolute_value(value, cwd)}")
        else:
            out.append(absolute_value(arg, cwd))
    return out


def absolute_config(config: dict, cwd: Path) -> dict:
    """``config`` with each string value (or list item) that names an existing path relative
    to ``cwd`` made absolute."""

    def value(v):
        if isinstance(v, str):
            return absolute(v, cwd)
        if isinstance(v, list | tuple):
            return [value(item) for item in v]
        return v

    return {k: value(v) for k, v in config.items()}


def code_version() -> dict:
    """The installed thinkscope version and the git commit of its checkout (when it is one)."""
    from thinkscope.runstore.environment import git_commit

    return {"thinkscope": importlib.metadata.version("thinkscope"), "git_commit": git_commit()}


def invocation(kind: str, config: dict, created: str) -> dict:
    """What made a run or a stage of it: its kind, when, the command (paths absolute; ``None``
    from Python) and the config (paths absolute)."""
    cwd, args = Path.cwd(), command()
    return {
        "kind": kind,
        "created": created,
        "command": None if args is None else absolute_args(args, cwd),
        "config": absolute_config(config, cwd),
    }


def header(path: Path, kind: str, config: dict, created: str) -> dict:
    """The header of the run at ``path`` (see the module docstring)."""
    made = invocation(kind, config, created)
    config = made["config"]
    return {
        **made,
        "path": str(path.resolve()),
        "cwd": os.fspath(Path.cwd()),
        "model": {k: config[k] for k in MODEL_KEYS if k in config},
        "seed": config.get("seed"),
        "code": code_version(),
    }


def register(path: Path | str, kind: str, config: dict, summary: dict, created: str) -> dict:
    """Write ``path/run.json`` and enter the run in the registry; return the header. Called
    once a run kind's outputs are complete, so a failed or interrupted run is never listed."""
    path = Path(path)
    written = header(path, kind, config, created)
    write_json(path / HEADER, written)
    registry.record(path, kind, created, "finished", written["config"], summary)
    return written


def add_stage(path: Path | str, kind: str, config: dict, summary: dict, created: str) -> None:
    """Record a stage that changed the finished run ``path`` in place (``score``): appended to
    its header's ``stages`` (command, config, time), its summary merged into the registry row.
    A run without a header (made before headers, or by hand) is not registered: nothing to do."""
    path = Path(path)
    if not (path / HEADER).is_file():
        return
    written = read_header(path)
    stage = invocation(kind, config, created)
    write_json(path / HEADER, {**written, "stages": [*written.get("stages", []), stage]})
    registry.add_summary(path, summary)


def read_header(path: Path | str) -> dict:
    """The header of the run folder ``path``; a :class:`UserError` when it has none."""
    file = Path(path) / HEADER
    if not file.is_file():
        raise UserError(f"{path} has no {HEADER}: not a finished thinkscope run folder")
    return json.loads(file.read_text())
