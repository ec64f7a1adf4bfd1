"""The ``thinkscope`` command line: a thin layer over the library, commands loaded lazily."""

from thinkscope.cli.app import app, main

__all__ = ["app", "main"]
