"""``python -m thinkscope.cli``: the ``thinkscope`` command."""

from thinkscope.cli.app import main

main()
