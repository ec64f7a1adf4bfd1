"""The model-loading options as one reusable block for any Typer command that loads a model.

``@loading_options`` under ``@app.command()`` adds ``--dtype``, ``--device``, ``--device-map``,
``--attn-implementation``, ``--revision`` and ``--trust-remote-code`` to a command; the command
receives them as one keyword, ``loading``: a :class:`~thinkscope.models.loading.Loading`, which
unpacks into :func:`thinkscope.models.load_model` (``load_model(spec, **loading)``) and travels
as one object to Ray workers and the vLLM engine. A command that already has its own
``--device`` keeps it (and passes it on itself).
"""

from __future__ import annotations

from thinkscope.cli.options import option_block
from thinkscope.models.loading import Loading

_OPTIONS = {  # name: (annotation, default, help)
    "dtype": (str, "auto", "auto (fp32 on CPU, bf16 on CUDA), float32, bfloat16 or float16."),
    "device": (str, None, "cpu, cuda or cuda:N for the whole model (default: cuda if present)."),
    "device_map": (str, None, "Spread the model over devices with accelerate, e.g. auto."),
    "attn_implementation": (str, None, "eager, sdpa or flash_attention_2 (default: the model's)."),
    "revision": (str, None, "Hub branch, tag or commit of the model."),
    "trust_remote_code": (bool, False, "Run the model repository's own code (hub models)."),
}

#: ``command`` with the loading options added; it gets them as ``loading=Loading(...)``.
loading_options = option_block(_OPTIONS, "loading", "Model loading", build=Loading)
