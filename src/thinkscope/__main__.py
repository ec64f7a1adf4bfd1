"""``python -m thinkscope``: the ``thinkscope`` command."""

from thinkscope.cli import main

if __name__ == "__main__":
    main()
