"""``backend=vllm`` in the ``thinkscope`` model's ``model_args``: the evaluation runs on
lm-eval's own ``vllm`` model, for models that need vLLM's tensor parallelism.

The thinkscope model's ``model_args`` become the vLLM model's: ``model`` (any spec
``load_model`` takes, resolved to the directory vLLM loads) is ``pretrained``; ``dtype``,
``revision``, ``trust_remote_code`` and ``attn_implementation`` map as for the ``vllm``
generation backend (:meth:`~thinkscope.models.spec.LoadingSpec.vllm_args`);
``tensor_parallel_size``, ``gpu_memory_utilization`` and ``max_model_len`` are
:class:`~thinkscope.models.spec.EngineSpec`'s, validated as on ``generate``; ``batch_size``,
``seed`` and ``max_length`` pass on. thinkscope's decoding knobs (every DecodingConfig field,
``cal_acc_from``/``cal_acc_threshold``) switch to ``thinkscope-vllm``, lm-eval's vllm model with
thinkscope's vLLM logits processor (:mod:`thinkscope.lmeval.vllm_model`); as on ``hf``, they
then decide sampling. Per-step logs (``log_steps``) need thinkscope's sampler and are refused
on vLLM, as are the engine options on ``hf``.
"""

from __future__ import annotations

from argparse import Namespace

from pydantic import ValidationError

from thinkscope.core.errors import UserError
from thinkscope.decoding import DecodingConfig
from thinkscope.decoding.batch import processor_kwargs
from thinkscope.models.spec import EngineSpec, LoadingSpec, ModelSpec

EVAL_BACKENDS = ("hf", "vllm")
VLLM_MODEL = "thinkscope-vllm"
_PASSED = ("batch_size", "seed", "max_length")
_TASK_SAMPLING = ("temperature", "top_p", "top_k", "min_p")


def on_backend(parsed: Namespace) -> Namespace:
    """lm-eval's parsed arguments with the thinkscope model on its ``backend``: unchanged but
    for ``backend`` on ``hf``; lm-eval's ``vllm`` model and its ``model_args`` on ``vllm``."""
    args = dict(parsed.model_args or {})
    if parsed.model != "thinkscope":
        return parsed
    backend = args.pop("backend", "hf")
    if backend not in EVAL_BACKENDS:
        raise UserError(f"model_args backend must be hf or vllm, got {backend!r}")
    engine = {k: args.pop(k) for k in EngineSpec.model_fields if k in args}
    if backend == "hf":
        if engine:
            raise UserError(
                f"model_args {'/'.join(engine)} places the model on vLLM's engine: add "
                "backend=vllm or drop it"
            )
        return Namespace(**{**vars(parsed), "model_args": args})
    model_args = vllm_model_args(args, engine)
    model = VLLM_MODEL if set(model_args) & set(DecodingConfig.model_fields) else "vllm"
    return Namespace(**{**vars(parsed), "model": model, "model_args": model_args})


def vllm_model_args(args: dict, engine: dict) -> dict:
    """lm-eval's ``vllm`` model_args for the thinkscope model_args ``args`` (``backend``
    and the ``engine`` options taken out), with the DecodingConfig's fields when it sets any."""
    from thinkscope.generation.backends import cuda_available, vllm_installed
    from thinkscope.lmeval.model import decoding_from_args
    from thinkscope.lmeval.steps import StepLogArgs
    from thinkscope.models.lm import resolve_source

    steps = sorted(k for k in args if k in StepLogArgs.model_fields)
    if steps:
        raise UserError(
            f"model_args {', '.join(steps)}: per-step logs need thinkscope's own sampler; drop "
            "them or use backend=hf"
        )
    decoding = decoding_from_args(args)
    loading = {k: args.pop(k) for k in (*LoadingSpec.model_fields, "model") if k in args}
    passed = {k: args.pop(k) for k in _PASSED if k in args}
    if args:
        raise UserError(f"unknown thinkscope model_args: {', '.join(sorted(args))}")
    try:
        placement = EngineSpec(**engine)
    except ValidationError as err:
        first = err.errors()[0]
        raise UserError(f"model_args {first['loc'][0]}: {first['msg']}") from None
    spec = ModelSpec.parse(**loading)
    missing = "vLLM is not installed" if not vllm_installed() else ""
    missing = missing or ("no CUDA device" if not cuda_available() else "")
    if missing:
        raise UserError(
            f"model_args backend=vllm: {missing}; install thinkscope[gpu] on a CUDA machine "
            "or use backend=hf"
        )
    return {
        "pretrained": str(resolve_source(spec.model)),
        **spec.vllm_args(),
        **placement.vllm_args(),
        **passed,
        **(decoding.model_dump(exclude_none=True) if decoding else {}),
    }


def with_decoding(kwargs: dict, decoding: DecodingConfig | None) -> dict:
    """lm-eval's ``SamplingParams`` keyword arguments for one request, with ``decoding``
    (when set) in place of the task's temperature/top-p/top-k/min-p, for thinkscope's vLLM
    processor (:func:`~thinkscope.decoding.batch.processor_kwargs`)."""
    if decoding is None:
        return kwargs
    own = processor_kwargs(decoding)
    own["extra_args"] = {**kwargs.get("extra_args", {}), **own["extra_args"]}
    rest = {k: v for k, v in kwargs.items() if k not in (*_TASK_SAMPLING, "extra_args")}
    return {**rest, **own}


__all__ = ["EVAL_BACKENDS", "VLLM_MODEL", "on_backend", "vllm_model_args", "with_decoding"]
