"""The command line this process was started with, as the CLI saw it, for run headers."""

from __future__ import annotations

_command: list[str] | None = None


def set_command(argv: list[str] | None) -> None:
    """Record ``thinkscope``'s arguments (by the CLI's entry point, and by ``runs reproduce``
    around the command it reruns); ``None``: no command."""
    global _command
    _command = None if argv is None else list(argv)


def command() -> list[str] | None:
    """The recorded arguments, or ``None`` when the library was called from Python."""
    return None if _command is None else list(_command)
