"""Rows of a dataset on the Hugging Face hub, through ``datasets``, with one-line errors."""

from __future__ import annotations

from thinkscope.core.errors import UserError


def hub_rows(repo: str, split: str, offline: str, name: str | None = None):
    """``load_dataset(repo, name, split=split)``; a missing ``datasets`` package or an
    unreachable hub is a :class:`UserError` whose offline advice is ``offline``."""
    try:
        from datasets import load_dataset

        return load_dataset(*([repo] if name is None else [repo, name]), split=split)
    except ImportError as err:
        raise UserError(
            f"{repo} needs the datasets package: pip install 'thinkscope[online]'"
        ) from err
    except (OSError, ValueError, ConnectionError) as err:
        failed = f"could not load {repo}:{split} from the hub (offline? {offline})"
        raise UserError(failed) from err
