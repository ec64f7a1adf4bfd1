"""Generation backends behind one interface: thinkscope's sampler (``hf``) or vLLM (``vllm``).

A backend has a ``tokenizer`` and ``complete(prompts, seeds, params)``, which returns an object
with ``completions`` (one :class:`~thinkscope.generation.sampler.Completion` per prompt, in
order), ``generated_tokens`` and ``prefill_tokens``. Both backends fill the same run-folder
columns; the tokens differ between backends (each has its own random streams), never within one.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping

from thinkscope.core.errors import RunFailure, UserError
from thinkscope.models.spec import EngineSpec, ModelSpec

BACKENDS = ("auto", "hf", "vllm")


def vllm_installed() -> bool:
    return importlib.util.find_spec("vllm") is not None


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def choose_backend(
    requested: str,
    installed: bool | None = None,
    cuda: bool | None = None,
    model_loaded: bool = False,
    loading: ModelSpec | Mapping | None = None,
) -> tuple[str, str]:
    """``(backend, why)`` for ``--backend requested``; ``auto`` is vLLM when it is installed and
    CUDA is present, else ``hf``, and always ``hf`` when the caller passes a loaded model
    (``model_loaded``) or ``loading`` (a :class:`ModelSpec`) sets a device or device map that
    vLLM does not take (vLLM places the model itself). ``--backend vllm`` with such a device,
    and ``--backend hf`` with vLLM's engine options (:class:`EngineSpec`) set, are refused
    here, before anything loads. ``installed``/``cuda`` default to probing this machine."""
    if requested not in BACKENDS:
        raise UserError(f"--backend must be one of {', '.join(BACKENDS)}, got {requested!r}")
    if requested == "hf":
        given = EngineSpec.given(loading)
        if given:
            raise UserError(
                f"{'/'.join(given)} places the model on vLLM's engine, which --backend hf does "
                "not use: drop it or use --backend vllm"
            )
        return "hf", "requested with --backend hf"
    if requested == "auto" and model_loaded:
        return "hf", "auto: a loaded model was passed"
    placed = ModelSpec.of(loading).vllm_places
    if requested == "vllm" and not placed:
        ModelSpec.of(loading).vllm_args()  # raises the one-line refusal
    if requested == "auto" and not placed:
        return "hf", "auto: vLLM places the model itself and --device/--device-map is set"
    installed = vllm_installed() if installed is None else installed
    cuda = cuda_available() if cuda is None else cuda
    missing = "vLLM is not installed" if not installed else "no CUDA device" if not cuda else ""
    if requested == "vllm":
        if missing:
            raise UserError(
                f"--backend vllm: {missing}; install thinkscope[gpu] on a CUDA machine "
                "or use --backend hf"
            )
        return "vllm", "requested with --backend vllm"
    if missing:
        return "hf", f"auto: {missing}"
    return "vllm", "auto: vLLM is installed and CUDA is present"


def make_backend(name: str, config: ModelSpec | str, lm=None, seed: int = 0, **engine):
    """The backend ``name`` (``hf`` or ``vllm``) for the model of ``config`` (a
    :class:`~thinkscope.models.ModelSpec`, a config that composes it, or a model name), which
    loads the HF model or starts the vLLM engine with ``config``'s :class:`EngineSpec`; ``lm``
    is reused by ``hf``; ``engine``: more ``vllm.LLM`` arguments. A vLLM engine that cannot
    start is a one-line :class:`RunFailure`."""
    spec = ModelSpec.of(config)
    if name == "vllm":
        from thinkscope.generation.backends.vllm import VLLMBackend

        placement = EngineSpec.of(None if isinstance(config, str) else config)
        return VLLMBackend(spec, seed=seed, placement=placement, **engine)
    from thinkscope.generation.backends.hf import HFBackend
    from thinkscope.models import load_model

    return HFBackend(lm or load_model(spec))


def start_vllm(requested: str, config: ModelSpec, seed: int = 0, **engine):
    """``(backend, None)``: the vLLM backend for ``config`` (see :func:`make_backend`); or,
    when its engine cannot start and ``requested`` is ``auto``, ``(None, why)``: the one-line
    reason to continue on ``hf``. Otherwise the failure is a :class:`RunFailure` naming
    ``--backend vllm``."""
    try:
        return make_backend("vllm", config, seed=seed, **engine), None
    except RunFailure as err:
        if requested != "auto":
            raise RunFailure(f"--backend vllm: {err}; use --backend hf") from err
        return None, f"auto: {err}"


__all__ = [
    "BACKENDS",
    "choose_backend",
    "cuda_available",
    "make_backend",
    "start_vllm",
    "vllm_installed",
]
