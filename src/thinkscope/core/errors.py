"""The one exception type for mistakes in user input.

The CLI turns a :class:`UserError` into a one-line message and exit code 2; anything else
is a bug and keeps its traceback.
"""


class UserError(Exception):
    """Bad input from the user: a missing file, an unknown name, a malformed record.

    The message is one sentence that says what was wrong and, where it helps, what to do.
    """
