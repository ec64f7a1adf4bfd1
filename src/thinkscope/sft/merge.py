"""Fold a LoRA adapter into its base model: a standalone model directory ``load_model`` reads."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from thinkscope.core.errors import UserError
from thinkscope.models.spec import ModelSpec
from thinkscope.runstore.folder import now
from thinkscope.runstore.header import register
from thinkscope.sft.hub import check_hub, push_folder
from thinkscope.sft.trainer import CONFIG_NAME, require_train_extra, train_dtype


def find_adapter(path: Path) -> Path:
    """``path/adapter`` of a training folder, or ``path`` itself if it is an adapter."""
    for candidate in (path / "adapter", path):
        if (candidate / "adapter_config.json").is_file():
            return candidate
    raise UserError(
        f"no LoRA adapter in {path} (adapter/adapter_config.json is missing): "
        "train first, or resume the unfinished run with --resume"
    )


def base_model_of(path: Path) -> dict:
    """The spec of the model a training folder was trained from (its ``train_config.yaml``:
    model, loading options, the dtype it trained in, the weights' identity)."""
    saved = path / CONFIG_NAME
    if not saved.is_file():
        raise UserError(f"{path} has no {CONFIG_NAME}: name the base model with --model")
    return yaml.safe_load(saved.read_text())


def merge_adapter(
    path: Path | str,
    model: ModelSpec | str | None = None,
    out: Path | str | None = None,
    push_to_hub: str | None = None,
) -> Path:
    """Merge the adapter of ``path`` into ``model`` (default: the one it was trained from,
    refused if its weights changed since) and save model and tokenizer to ``out`` (default
    ``path/merged``); returns ``out``. It loads on the CPU unless the spec names a device.
    ``push_to_hub`` uploads the merged model as that Hub model repo (checked online first)."""
    from thinkscope.models import load_model

    path = Path(path)
    adapter = find_adapter(path)
    if push_to_hub:
        check_hub(push_to_hub, "--push-to-hub")
    target = Path(out) if out else path / "merged"
    _, peft, _ = require_train_extra()
    spec = ModelSpec.of(model if model is not None else base_model_of(path))
    spec = ModelSpec.of(spec, dtype=train_dtype(spec), device=spec.device or "cpu")
    lm, started = load_model(spec), now()
    merged = peft.PeftModel.from_pretrained(lm.model, str(adapter)).merge_and_unload()
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(tmp)
    lm.tokenizer.save_pretrained(tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    config = {"adapter": str(adapter.resolve()), **ModelSpec.of(lm.spec).model_dump()}
    summary = {"parameters": sum(p.numel() for p in merged.parameters())}
    register(target, "merge", config, summary, started)
    if push_to_hub:
        push_folder(target, push_to_hub)
    return target
