"""thinkscope as an lm-evaluation-harness model: ``generate_until`` through thinkscope's
sampler with a :class:`~thinkscope.decoding.DecodingConfig`, ``loglikelihood`` from one
forward pass per batch of requests.

``model_args`` (lm-eval's ``key=value,...``): ``model`` (any spec ``load_model`` takes),
``batch_size``, ``seed``, ``device``, ``dtype``, every DecodingConfig field (list values
separated by ``;`` or ``:``, since lm-eval splits model_args at commas: ``edt_var=0.8;1;1``)
and ``cal_acc_from=PATH`` with ``cal_acc_threshold=THR``. When model_args set any decoding
field, they decide sampling; otherwise a task's ``do_sample``/``temperature``/``top_p``/
``top_k``/``min_p`` do (``do_sample: false`` or no temperature is greedy). ``log_steps=true``
(with ``low_conf_threshold``, :class:`~thinkscope.lmeval.steps.StepLogArgs`) records each
response's per-step log in :attr:`ThinkscopeLM.step_log` (``thinkscope eval`` writes it beside
lm-eval's samples file: :mod:`thinkscope.lmeval.steps`).
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Sequence

import torch
from lm_eval.api.model import TemplateLM
from lm_eval.api.registry import register_model
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window
from pydantic import ValidationError

from thinkscope.core.errors import UserError
from thinkscope.decoding import DecodingConfig
from thinkscope.decoding.config import cal_acc_from_file
from thinkscope.generation.sampler import BatchSampler, SamplingParams
from thinkscope.generation.seeds import sample_seed
from thinkscope.lmeval.steps import StepLogArgs, step_record
from thinkscope.models import LM, load_model

_LISTS = ("dynamic_top_k", "edt_var", "cal_acc")
_TASK_SAMPLING = ("temperature", "top_p", "top_k", "min_p")


def decoding_from_args(args: dict) -> DecodingConfig | None:
    """The DecodingConfig that model_args ``args`` set (popped from it), or None if none."""
    values = {name: args.pop(name) for name in list(args) if name in DecodingConfig.model_fields}
    for name in _LISTS:
        if isinstance(values.get(name), str):
            values[name] = [float(v) for v in re.split(r"[;:]", values[name])]
        elif isinstance(values.get(name), (int, float)):
            values[name] = [values[name]]
    if "cal_acc_from" in args:
        values["cal_acc"] = cal_acc_from_file(
            args.pop("cal_acc_from"), args.pop("cal_acc_threshold", None)
        )
    if values.get("dynamic_top_k") is not None:
        values["dynamic_top_k"] = [int(k) for k in values["dynamic_top_k"]]
    if not values:
        return None
    try:
        return DecodingConfig(**values)
    except ValidationError as err:
        first = err.errors()[0]
        raise UserError(f"model_args {first['loc'][0]}: {first['msg']}") from None


@register_model("thinkscope")
class ThinkscopeLM(TemplateLM):
    """An lm-eval model over a thinkscope :class:`~thinkscope.models.LM`."""

    def __init__(
        self,
        model: str | LM = "smollm2-135m",
        batch_size: int | str = 16,
        seed: int = 0,
        device: str | None = None,
        dtype: str | None = None,
        max_length: int | None = None,
        processors: Sequence = (),
        **knobs,
    ) -> None:
        """``processors``: transformers logits processors run before the decoding rule
        (from Python only)."""
        super().__init__()
        self.processors = list(processors)
        self.decoding = decoding_from_args(knobs)
        self.steps = step_args_from(knobs)
        self.step_log: list[dict] = []
        self._answered: dict[tuple, int] = defaultdict(int)
        knobs.pop("max_batch_size", None)
        if knobs:
            raise UserError(f"unknown thinkscope model_args: {', '.join(sorted(knobs))}")
        if device and device.startswith("cuda") and not torch.cuda.is_available():
            device = None  # lm-eval's CLI asks for cuda by default; load_model picks the CPU
        self.lm = model if isinstance(model, LM) else load_model(model, device=device, dtype=dtype)
        self.tokenizer = self.lm.tokenizer
        self.batch_size = int(batch_size) if str(batch_size).isdigit() else 16
        self.seed = int(seed)
        config = self.lm.model.config
        self.max_length = max_length or getattr(config, "max_position_embeddings", 2048)

    # -- tokenization, as lm-eval's HFLM does it for causal models ------------------------
    @property
    def eot_token_id(self) -> int:
        return self.tokenizer.eos_token_id

    @property
    def tokenizer_name(self) -> str:
        return self.tokenizer.name_or_path.replace("/", "__")

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs):
        return self.tokenizer(string, add_special_tokens=bool(add_special_tokens))["input_ids"]

    def apply_chat_template(self, chat_history: list[dict], add_generation_prompt=True) -> str:
        return self.tokenizer.apply_chat_template(
            chat_history, tokenize=False, add_generation_prompt=add_generation_prompt
        )

    # -- scoring ---------------------------------------------------------------------------
    @torch.no_grad()
    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, **kwargs):
        """``(sum of log p(continuation | context), continuation is greedy)`` per request."""
        out = []
        for start in range(0, len(requests), self.batch_size):
            chunk = requests[start : start + self.batch_size]
            inputs = [(ctx + cont)[-(self.max_length + 1) : -1] for _, ctx, cont in chunk]
            width = max(len(i) for i in inputs)
            pad = self.tokenizer.pad_token_id or 0
            ids = torch.tensor([i + [pad] * (width - len(i)) for i in inputs])
            mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i in inputs])
            logits = self.lm.model(
                input_ids=ids.to(self.lm.device), attention_mask=mask.to(self.lm.device)
            ).logits
            logprobs = torch.log_softmax(logits.float(), dim=-1).cpu()
            for row, (inp, (_, _, cont)) in enumerate(zip(inputs, chunk, strict=True)):
                steps = logprobs[row, len(inp) - len(cont) : len(inp)]  # [len(cont), V]
                target = torch.tensor(cont)
                total = steps.gather(1, target.unsqueeze(1)).sum().item()
                out.append((total, bool((steps.argmax(-1) == target).all())))
        return out

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        totals = []
        for request in requests:
            windows = [
                (None, *make_disjoint_window(w))
                for w in get_rolling_token_windows(
                    token_list=self.tok_encode(request.args[0]),
                    prefix_token=self.prefix_token_id,
                    max_seq_len=self.max_length,
                    context_len=1,
                )
            ]
            totals.append(sum(lp for lp, _ in self._loglikelihood_tokens(windows)))
        return totals

    # -- generation ------------------------------------------------------------------------
    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """Each distinct gen_kwargs is one batch of samplers; text is cut at the first stop."""
        out: list[str | None] = [None] * len(requests)
        groups, seen = defaultdict(list), defaultdict(int)
        repeats = self._repeats(requests) if self.steps.log_steps else []
        for index, request in enumerate(requests):
            context, gen_kwargs = request.args
            groups[repr(sorted(gen_kwargs.items()))].append((index, context))
        for members in groups.values():
            params, until = self._params(requests[members[0][0]].args[1])
            for start in range(0, len(members), self.batch_size):
                chunk = members[start : start + self.batch_size]
                prompts = [self.tok_encode(context) for _, context in chunk]
                seeds = []
                for _, context in chunk:
                    key = hashlib.sha1(context.encode()).hexdigest()
                    seeds.append(sample_seed(self.seed, key, seen[key]))
                    seen[key] += 1
                sampler = BatchSampler(self.lm, prompts, seeds, params, self.processors)
                sampler.run()
                for (index, _), done in zip(chunk, sampler.completions, strict=True):
                    text = self.tokenizer.decode(done.token_ids, skip_special_tokens=True)
                    out[index] = cut_at_stop(text, until)
                    if self.steps.log_steps:
                        request = requests[index]
                        self.step_log.append(
                            step_record(request.task_name, request.doc_id, repeats[index], done)
                        )
        return out

    def _repeats(self, requests) -> list[int]:
        """Each request's repeat index among the requests of its doc (lm-eval lists a doc's
        request once per repeat, and its responses in that order); counted across calls."""
        out = []
        for request in requests:
            key = (request.task_name, request.doc_id)
            out.append(self._answered[key])
            self._answered[key] += 1
        return out

    def _params(self, gen_kwargs: dict) -> tuple[SamplingParams, list[str]]:
        kwargs = dict(gen_kwargs)
        until = kwargs.pop("until", None) or []
        until = [until] if isinstance(until, str) else list(until)
        max_new = int(kwargs.pop("max_gen_toks", 256))
        decoding = self.decoding
        if decoding is None:  # the task's own sampling: greedy unless it asks to sample
            sample = bool(kwargs.get("do_sample")) and kwargs.get("temperature", 1.0) > 0
            task = {k: kwargs[k] for k in _TASK_SAMPLING if k in kwargs}
            decoding = DecodingConfig(**task) if sample else DecodingConfig(temperature=0.0)
        params = SamplingParams(
            decoding=decoding,
            max_new_tokens=max_new,
            stop=tuple(until),
            log_steps=self.steps.log_steps,
        )
        return params, until


def step_args_from(args: dict) -> StepLogArgs:
    """The per-step log settings that model_args ``args`` set (popped from it)."""
    values = {name: args.pop(name) for name in StepLogArgs.model_fields if name in args}
    try:
        return StepLogArgs(**values)
    except ValidationError as err:
        first = err.errors()[0]
        raise UserError(f"model_args {first['loc'][0]}: {first['msg']}") from None


def cut_at_stop(text: str, until: list[str]) -> str:
    """``text`` up to the first occurrence of any stop string."""
    for stop in until:
        if stop:
            text = text.split(stop, 1)[0]
    return text
