"""``python -m thinkscope``: the ``thinkscope`` command."""

from thinkscope.cli.app import main

if __name__ == "__main__":
    main()
