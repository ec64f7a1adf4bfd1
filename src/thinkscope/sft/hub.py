"""The Hugging Face Hub round trip of ``train``, ``merge`` and ``dataset build``: push a folder
(an adapter, a merged model, a dataset export) with ``--push-to-hub REPO``, and fetch a run's
traces with ``dataset build --from-hub REPO``. Each refuses in one line, before any work, when
the repo id is malformed or the Hub cannot be reached (offline, ``HF_HUB_OFFLINE=1``)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from pydantic import Field, field_validator

from thinkscope.core.errors import UserError
from thinkscope.core.paths import cache_dir
from thinkscope.core.spec import Spec

#: The files of a run folder that ``--from-hub`` fetches (the first is required).
RUN_FILES = ("traces.parquet", "config.yaml", "scores.json")


class HubSpec(Spec):
    """Where a command's result goes on (or its input comes from) the Hugging Face Hub."""

    push_to_hub: str | None = Field(
        None, description="Also upload the result to this Hub repo (user/name; needs a token)."
    )
    from_hub: str | None = Field(
        None, description="Build from this Hub dataset repo (a pushed run folder's traces)."
    )

    @field_validator("push_to_hub", "from_hub")
    @classmethod
    def _repo_id(cls, repo: str | None) -> str | None:
        from huggingface_hub.utils import HFValidationError, validate_repo_id

        if repo is not None:
            try:
                validate_repo_id(repo)
            except HFValidationError as err:
                raise ValueError(f"{repo!r} is not a Hub repo id (like 'user/name')") from err
        return repo

    def check(self) -> None:
        """Refuse in one line when a repo is named and the Hub cannot be reached."""
        for flag, repo in (("--push-to-hub", self.push_to_hub), ("--from-hub", self.from_hub)):
            if repo is not None:
                check_hub(repo, flag)


def check_hub(repo: str, flag: str) -> None:
    """Raise a one-line :class:`UserError` if the Hub cannot be reached (offline)."""
    from thinkscope.models.lm import hub_reachable

    if not hub_reachable():
        raise UserError(
            f"{flag} {repo}: the Hugging Face Hub cannot be reached (offline or HF_HUB_OFFLINE=1)"
        )


def _reason(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def push_folder(
    folder: Path, repo: str, repo_type: str = "model", ignore: tuple[str, ...] = ()
) -> str:
    """Create ``repo`` (if new) and upload ``folder`` to it (less the ``ignore`` patterns);
    returns the repo's URL. Any failure (no token, no permission) is one :class:`UserError`."""
    from huggingface_hub import HfApi

    api = HfApi()
    try:
        url = api.create_repo(repo, repo_type=repo_type, exist_ok=True)
        api.upload_folder(
            repo_id=repo,
            folder_path=str(folder),
            repo_type=repo_type,
            ignore_patterns=list(ignore) or None,
            commit_message=f"thinkscope: upload {Path(folder).name}",
        )
    except Exception as err:  # the user's to fix: token, permission, network
        raise UserError(
            f"could not push {folder} to the Hugging Face Hub as {repo} ({_reason(err)}); "
            "it stays on disk, push it when online"
        ) from err
    return str(url)


def fetch_run(repo: str) -> Path:
    """The run-folder files of the dataset repo ``repo`` (``traces.parquet``, and
    ``config.yaml`` and ``scores.json`` when it has them), copied into a local run folder under
    the thinkscope cache; returns that folder."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    target = cache_dir() / "hub-runs" / re.sub(r"[^A-Za-z0-9_.-]+", "__", repo)
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in RUN_FILES:
        try:
            path = hf_hub_download(repo, name, repo_type="dataset")
        except EntryNotFoundError as err:
            if name == RUN_FILES[0]:
                shutil.rmtree(tmp)
                raise UserError(
                    f"--from-hub {repo}: the dataset has no {name}; push a thinkscope run folder"
                ) from err
            continue
        except Exception as err:
            shutil.rmtree(tmp)
            reason = _reason(err)
            raise UserError(f"--from-hub {repo}: could not download {name} ({reason})") from err
        shutil.copyfile(path, tmp / name)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target
