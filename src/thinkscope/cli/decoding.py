"""The decoding options as one reusable block for any Typer command that samples.

``@decoding_options`` under ``@app.command()`` adds ``--greedy-threshold`` ... ``--log-steps``
(the fields of :class:`~thinkscope.decoding.config.DecodingKnobs`) to a command; the command
receives them validated as one keyword, ``decoding: DecodingKnobs``, whose ``model_dump()``
holds the config values to pass on (``GenerateConfig.parse(..., **decoding.model_dump())``).
Commands that copy another command's signature (``traces`` copies ``generate``) inherit it.
"""

from __future__ import annotations

from thinkscope.cli.options import spec_options
from thinkscope.decoding.config import DecodingKnobs

decoding_options = spec_options(DecodingKnobs, "decoding", "Decoding")
"""``command`` with the decoding options added; it gets them as ``decoding=DecodingKnobs``."""
