"""The exception types the CLI turns into one line on stderr.

:class:`UserError` (exit 2) is a mistake in the user's input; :class:`RunFailure` (exit 1) is
work that could not be done although the input was valid (a backend that cannot start, an
evaluation harness that failed). Anything else is a bug: one line too, and the traceback with
``thinkscope --debug``.
"""


class UserError(Exception):
    """Bad input from the user: a missing file, an unknown name, a malformed record, two options
    that contradict each other.

    The message is one sentence that says what was wrong and, where it helps, what to do.
    """


class RunFailure(Exception):
    """Valid input whose work failed; the message says what failed and, where it helps, why."""
