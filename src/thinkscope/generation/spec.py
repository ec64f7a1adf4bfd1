"""How samples are drawn: the sampling settings every command that samples shares, declared
once (no torch here: the CLI builds its options from these fields)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator
from typing_extensions import Self

from thinkscope.core.spec import Spec
from thinkscope.decoding.config import Knobs

#: What each setting that greedy decoding ignores is when it is off (the correctness-first
#: knobs are off when unset): ``--temperature 0`` takes the argmax, so none of them can act.
GREEDY_IGNORES: dict[str, Any] = {
    "top_p": 1.0,
    "top_k": 0,
    "min_p": 0.0,
    **dict.fromkeys(Knobs.model_fields),
    "cal_acc_from": None,
    "cal_acc_threshold": None,
}


def greedy(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` (a flat config) made greedy: temperature 0, and every setting it ignores off."""
    return {
        **values,
        "temperature": 0.0,
        **{k: v for k, v in GREEDY_IGNORES.items() if k in values},
    }


class SamplingSpec(Spec):
    """Samples per problem, their seed, length, scale, truncation, stops and recorded top-k."""

    n: int = Field(4, ge=1, description="Samples per problem.")
    seed: int = Field(0, description="Seed of the problems' order and of every sample's stream.")
    max_new_tokens: int = Field(256, ge=1, description="Tokens generated at most per sample.")
    temperature: float = Field(0.7, ge=0, description="Sampling temperature; 0 is greedy.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling mass (1: off).")
    top_k: int = Field(0, ge=0, description="Keep the k most likely tokens (0: off).")
    min_p: float = Field(0.0, ge=0, lt=1, description="Keep p >= min_p * pmax (0: off).")
    stop: list[str] = Field([], description="Stop string (repeatable).")
    top_logprobs: int = Field(0, ge=0, description="Record the top-k log-probs of every step.")

    @model_validator(mode="after")
    def _greedy_alone(self) -> Self:
        """Refuse ``--temperature 0`` with a setting that greedy decoding ignores (in a config
        that composes this spec with the decoding knobs too)."""
        if self.temperature != 0:
            return self
        for name, off in GREEDY_IGNORES.items():
            value = getattr(self, name, off)
            if value != off and not (name == "cal_acc" and getattr(self, "cal_acc_from", None)):
                flag = "--" + name.replace("_", "-")
                shown = ",".join(map(str, value)) if isinstance(value, list) else value
                raise ValueError(
                    f"--temperature 0 is greedy decoding, which ignores {flag} {shown}; "
                    f"drop one of them"
                )
        return self
