"""SFT with TRL's ``SFTTrainer``: a LoRA adapter (PEFT) or, with ``full``, every weight; loss
on the completion only, resumable.

Rows are tokenized by :func:`~thinkscope.sft.train_data.tokenize_row` (as TRL would, but with
no end-of-sequence token after a row marked ``truncated``).

Files in the output folder ``OUT``::

    train_config.yaml       the :class:`TrainConfig` (a resume must match it)
    checkpoints/checkpoint-N  TRL/transformers checkpoints (adapter, optimizer, RNG, trainer state)
    adapter/                the final LoRA adapter in PEFT's format, with the tokenizer
    model/                  with ``full``: the whole fine-tuned model (``load_model`` reads it)
    trainer_state.json      the final trainer state (``log_history``: the loss at every step)
    eval_before.json        held-out loss before training (with ``--eval-file``)
    loss.png                the loss curve
    summary.json            steps, the step it resumed from, losses (over every step, those
                            before a resume included), held-out loss before and after, wall
                            time, and what LoRA adapted (``lora_target_modules``,
                            ``lora_target_parameters``)

By default LoRA adapts the projections inside the decoder blocks, found from the probed anatomy
(:func:`lora_targets`), so a hybrid, state-space or mixture-of-experts model trains like any
other.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import Field, model_validator

from thinkscope.core.atomic import write_json, write_yaml
from thinkscope.core.errors import UserError
from thinkscope.models.spec import ModelSpec
from thinkscope.runstore.folder import now
from thinkscope.runstore.header import register
from thinkscope.sft.export import quiet_datasets
from thinkscope.sft.quant import QuantSpec, load_4bit
from thinkscope.sft.train_data import load_sft_rows, resolve_dataset, tokenize_row
from thinkscope.sft.train_figure import save_loss_curve

CONFIG_NAME = "train_config.yaml"
#: The options that shape a LoRA adapter (``full`` refuses them).
LORA_OPTIONS = ("lora_rank", "lora_alpha", "lora_dropout", "target_modules", "load_in_4bit")


class TrainConfig(ModelSpec, QuantSpec):
    """Everything that decides what a training run learns (saved as ``train_config.yaml``,
    with the base model's spec resolved: the dtype used, the weights' identity)."""

    dataset: str
    file: str | None = None
    eval_file: str | None = None
    lora_rank: int = Field(16, ge=1)
    lora_alpha: float = Field(32.0, gt=0)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] = []  # empty: the blocks' projections (:func:`lora_targets`)
    learning_rate: float = Field(2e-4, gt=0)
    epochs: float = Field(1.0, gt=0)
    max_steps: int = Field(-1, ge=-1)  # -1: --epochs decides
    batch_size: int = Field(4, ge=1)
    grad_accum: int = Field(1, ge=1)
    max_length: int = Field(1024, ge=8)
    seed: int = 0
    save_steps: int = Field(50, ge=1)
    full: bool = Field(False, description="Full fine-tuning of every weight instead of LoRA.")

    @model_validator(mode="after")
    def _lora_only(self) -> TrainConfig:
        fields = type(self).model_fields
        if self.full:
            for name in LORA_OPTIONS:
                if getattr(self, name) != fields[name].default:
                    flag = f"--{name.replace('_', '-')}"
                    raise ValueError(f"{flag} shapes a LoRA adapter; --full trains every weight")
        return self


@dataclass
class TrainResult:
    """Where the adapter (with ``full``: the whole model) is and what the run measured."""

    path: Path
    adapter: Path  # OUT/adapter, or OUT/model with ``full``
    summary: dict
    finished_before: bool = False  # --resume found the run complete and did nothing


def require_train_extra():
    """``(trl, peft, datasets)``, or a one-line :class:`UserError` when the extra is missing."""
    try:
        import datasets
        import peft
        import trl
    except ImportError as err:
        raise UserError(
            f"training needs the 'train' extra ({err.name} is missing): "
            "pip install 'thinkscope[train]'"
        ) from err
    return trl, peft, datasets


def last_checkpoint(folder: Path) -> Path | None:
    """The newest checkpoint that was written completely (its ``trainer_state.json`` is there).

    transformers writes the trainer state last, so a checkpoint cut short by a kill lacks it.
    """
    done = [
        p
        for p in folder.glob("checkpoint-*")
        if p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").is_file()
    ]
    return max(done, key=lambda p: int(p.name.split("-")[-1]), default=None)


def _check_start(out: Path, config: TrainConfig, resume: bool) -> bool:
    """Raise if ``out`` cannot take this run (as :meth:`Run.check_start` does for ``generate``);
    True when ``out`` holds this very run, finished (``--resume`` has nothing to do)."""
    saved = out / CONFIG_NAME
    finished = (out / "summary.json").is_file()
    if saved.is_file():
        if not resume:
            state = "a finished" if finished else "an unfinished"
            hint = "choose another --out" if finished else "pass --resume or choose another --out"
            raise UserError(f"{out} holds {state} training run; {hint}")
        old, new = yaml.safe_load(saved.read_text()), config.model_dump()
        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        if changed:
            raise UserError(
                f"cannot resume {out}: its {CONFIG_NAME} differs in {', '.join(changed)}"
            )
    elif out.exists() and any(out.iterdir()):
        raise UserError(f"--out {out} exists and is not a training run folder")
    return finished


def _sft_config(trl, config: TrainConfig, out: Path, cuda: bool, bf16: bool, model_config):
    # TRL's MoE load-balancing loss reads ``num_experts``; a config that names its expert count
    # otherwise (Granite's ``num_local_experts``) trains without that auxiliary loss
    experts_unnamed = hasattr(model_config, "output_router_logits") and not hasattr(
        model_config, "num_experts"
    )
    return trl.SFTConfig(
        router_aux_loss_coef=0.0 if experts_unnamed else None,
        output_dir=str(out / "checkpoints"),
        completion_only_loss=True,
        max_length=config.max_length,
        packing=False,
        learning_rate=config.learning_rate,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        seed=config.seed,
        data_seed=config.seed,
        bf16=bf16,
        fp16=False,
        use_cpu=not cuda,
        activation_checkpointing=cuda,
        gradient_checkpointing=None,  # the deprecated alias; TRL defaults it to True
        logging_steps=1,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=2,
        eval_strategy="no",
        report_to="none",
        disable_tqdm=True,  # steps go through thinkscope's progress (sft/train_progress.py)
    )


def train_dtype(spec: ModelSpec) -> str:
    """The dtype a base model trains in: ``spec.dtype``; ``auto`` is bf16 on CUDA GPUs that
    have it and fp32 elsewhere (mixed precision needs bf16 weights or fp32 ones)."""
    import torch

    if spec.dtype != "auto":
        return spec.dtype
    bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return "bfloat16" if bf16 else "float32"


#: Names of linear layers whose weight a fused state-space kernel reads directly (Mamba-2's
#: ``mamba_split_conv1d_scan_combined`` takes ``out_proj.weight``): LoRA there would be skipped
#: on GPU, and PEFT refuses them on Mamba models.
FUSED_SSM_LINEARS = ("out_proj",)


def lora_targets(lm, experts: bool = True) -> tuple[list[str], list[str]]:
    """PEFT's ``target_modules`` and ``target_parameters`` for ``lm``, from its anatomy.

    Modules: every linear projection inside the decoder blocks, named relative to the block
    (``self_attn.q_proj``, ``linear_attn.in_proj_qkvz``, ``mamba.in_proj``, ``conv.in_proj``,
    ``feed_forward.w1``, ``mlp.shared_expert.up_proj``): attention, linear attention, SSM and
    convolution mixers and the feed-forward part, never the output head; an SSM mixer's
    :data:`FUSED_SSM_LINEARS` are left out. Parameters: the experts' fused 3-D weights
    (``mlp.experts.gate_up_proj``), which are no ``nn.Linear``. Without ``experts`` a
    feed-forward part holding fused experts is left out whole (its shared experts too: PEFT
    renames their ``gate_proj``/``up_proj``/``down_proj`` to the fused weights on Qwen2-MoE-like
    models, and a parameter LoRA takes no dropout).
    """
    from torch import nn
    from transformers.pytorch_utils import Conv1D

    modules: set[str] = set()
    parameters: set[str] = set()
    for block, mixers in zip(lm.anatomy.layers, lm.anatomy.token_mixers, strict=True):
        ssm = mixers.get("ssm")
        fused = [
            n for n, p in block.named_parameters() if p.ndim == 3 and "experts" in n.split(".")
        ]
        left_out = {
            f"{n}.{leaf}"
            for n, c in block.named_children()
            if c is ssm
            for leaf in FUSED_SSM_LINEARS
        }
        if not experts:
            left_out |= {name.split(".")[0] for name in fused}
        for name, module in block.named_modules():
            under = any(name == x or name.startswith(f"{x}.") for x in left_out)
            if isinstance(module, nn.Linear | Conv1D) and not under:
                modules.add(name)
        parameters.update(fused if experts else [])
    return sorted(modules), sorted(parameters)


def build_trainer(config: TrainConfig, out: Path, lm=None, callbacks=(), progress: bool = True):
    """The ``SFTTrainer`` for ``config`` (LoRA, or every weight with ``full``, on ``lm`` or on
    ``config.model``)."""
    import torch
    from transformers import PrinterCallback

    from thinkscope.models import load_model
    from thinkscope.sft.train_progress import StepProgress

    trl, peft, datasets = require_train_extra()

    rows = load_sft_rows(resolve_dataset(config.dataset, config.file))
    eval_rows = load_sft_rows(resolve_dataset(config.eval_file)) if config.eval_file else None
    cuda = torch.cuda.is_available()
    bf16 = cuda and torch.cuda.is_bf16_supported()
    if lm is None:
        spec = ModelSpec.of(config, dtype=train_dtype(config))
        lm = load_4bit(spec) if config.load_in_4bit else load_model(spec)
    lora = None if config.full else _lora_config(peft, config, lm)

    def tokenized(rows: list[dict]):
        return datasets.Dataset.from_list([tokenize_row(lm.tokenizer, row) for row in rows])

    try:
        with quiet_datasets():  # TRL's preprocessing bars; training shows thinkscope's own
            trainer = trl.SFTTrainer(
                model=lm.model,
                args=_sft_config(trl, config, out, cuda, bf16, lm.model.config.get_text_config()),
                train_dataset=tokenized(rows),
                eval_dataset=tokenized(eval_rows) if eval_rows else None,
                processing_class=lm.tokenizer,
                peft_config=lora,
                callbacks=[*callbacks, StepProgress(progress)],
            )
    except ValueError as err:
        if "Target modules" in str(err):
            raise UserError(f"--target-modules: {err}") from err
        raise
    trainer.remove_callback(PrinterCallback)  # its printed log dicts: StepProgress shows the loss
    kept = len(trainer.train_dataset)  # TRL drops rows whose response is cut off entirely
    if kept == 0:
        raise UserError(
            f"every row's prompt fills --max-length {config.max_length} tokens, leaving no "
            "response to train on: raise --max-length"
        )
    if kept < len(rows):
        warnings.warn(
            f"{len(rows) - kept} of {len(rows)} rows have no response token within "
            f"--max-length {config.max_length} and are left out",
            stacklevel=2,
        )
    return trainer


def _lora_config(peft, config: TrainConfig, lm):
    experts = not config.lora_dropout  # PEFT adapts fused expert weights only without dropout
    modules, parameters = lora_targets(lm, experts)
    if not experts and not config.target_modules and lora_targets(lm)[1]:
        warnings.warn(
            f"{lm.name}'s experts take LoRA only without dropout (PEFT adapts fused expert "
            "weights as parameters): they are left out; pass --lora-dropout 0 to adapt them too",
            stacklevel=2,
        )
    return peft.LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.target_modules or modules,
        target_parameters=None if config.target_modules else parameters or None,
        task_type="CAUSAL_LM",
    )


def _save(trainer, out: Path, name: str) -> Path:
    """The adapter (or the whole model) and the tokenizer, written to a temporary folder
    and renamed to ``out/name``."""
    target, tmp = out / name, out / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    trainer.model.save_pretrained(tmp)
    trainer.processing_class.save_pretrained(tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def train(
    config: TrainConfig,
    out: Path | str,
    resume: bool = False,
    lm=None,
    callbacks=(),
    progress: bool = True,
) -> TrainResult:
    """Train a LoRA adapter (or, with ``config.full``, every weight) on ``config.dataset``
    into ``out`` (see the module docstring).

    With ``resume`` a killed run continues from its last complete checkpoint (the summary's
    ``resumed_from_step``; its losses cover every step); a finished one is left as it is
    (``finished_before``).
    """
    out = Path(out)
    config = config.model_copy(update={"dtype": train_dtype(config)}).resolved(lm)
    if _check_start(out, config, resume):
        _say(progress, f"{out} is complete (same config): nothing to do")
        summary = json.loads((out / "summary.json").read_text())
        saved = out / ("model" if config.full else "adapter")
        return TrainResult(out, saved, summary, finished_before=True)
    started, wall = now(), time.perf_counter()
    trainer = build_trainer(config, out, lm, callbacks, progress)
    resuming = (out / CONFIG_NAME).is_file()
    out.mkdir(parents=True, exist_ok=True)
    write_yaml(out / CONFIG_NAME, config.model_dump())
    if config.eval_file and not (out / "eval_before.json").is_file():
        write_json(out / "eval_before.json", trainer.evaluate())
    checkpoint = last_checkpoint(out / "checkpoints")
    step = checkpoint_step(checkpoint) if checkpoint else 0
    if resuming:
        where = f"step {step} ({checkpoint.name})" if checkpoint else "step 0 (no checkpoint yet)"
        _say(progress, f"resuming {out} from {where}")
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    adapter = _save(trainer, out, "model" if config.full else "adapter")
    trainer.state.save_to_json(str(out / "trainer_state.json"))
    history = trainer.state.log_history  # every step's loss, those before a resume included
    summary = {
        "global_step": trainer.state.global_step,
        "train_rows": len(trainer.train_dataset),
        "final_loss": _last(history, "loss"),
        "mean_train_loss": mean_step_loss(history),
        "resumed_from_step": step,
        "wall_s_last_session": round(time.perf_counter() - wall, 2),
        **({"full": True} if config.full else adapted(trainer.model)),
    }
    if config.eval_file:
        before = json.loads((out / "eval_before.json").read_text())["eval_loss"]
        summary.update(eval_loss_before=before, eval_loss_after=trainer.evaluate()["eval_loss"])
    save_loss_curve(trainer.state.log_history, out / "loss.png", summary)
    write_json(out / "summary.json", summary)
    register(out, "train", config.model_dump(), summary, started)
    return TrainResult(out, adapter, summary)


def adapted(model) -> dict:
    """What the LoRA adapter of a PEFT ``model`` adapts: module names and expert weights."""
    lora = model.peft_config["default"]
    return {
        "lora_target_modules": sorted(lora.target_modules),
        "lora_target_parameters": sorted(lora.target_parameters or []),
    }


def checkpoint_step(checkpoint: Path) -> int:
    """The global step a checkpoint was saved at (from its ``trainer_state.json``)."""
    return json.loads((checkpoint / "trainer_state.json").read_text())["global_step"]


def mean_step_loss(history: list[dict]) -> float | None:
    """The mean training loss over every logged step (``logging_steps=1``: one entry per step).

    transformers' own ``training_loss`` averages only the steps of the last session.
    """
    losses = [entry["loss"] for entry in history if "loss" in entry]
    return sum(losses) / len(losses) if losses else None


def _say(progress: bool, line: str) -> None:
    """``line`` on stderr unless the caller is quiet (a status line, shown off a terminal too)."""
    if progress:
        print(line, file=sys.stderr)


def _last(history: list[dict], key: str) -> float | None:
    values = [entry[key] for entry in history if key in entry]
    return values[-1] if values else None
