"""Metrics by name, their parameters, and the column names they write.

A metric maps one trace's lens results (:class:`TraceLens`) to a per-trace value and per-token
arrays. Column naming is deterministic: the bare metric name for default parameters
(``dtr``), else the name with the non-default parameters in sorted order (``dtr[g=0.6]``,
``dtr[base=2,g=0.5]`` when g=0.5 is not the default...). The same ``name[k=v,...]`` syntax is
what ``--metrics`` accepts. Per-token arrays are named the same way from the parameters they
depend on (``settling_depth[g=0.6]``).

A metric that reads more of the model than its block outputs declares it (``requires``:
``attention``, ``feed-forward``, from :data:`REQUIREMENTS`); :func:`check_applicable` refuses
such a metric, in one line, on a model none of whose blocks has the part, and
:meth:`MetricSpec.layers` names the layers it is measured on.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from thinkscope.core.errors import UserError
from thinkscope.lens import FinalStats, ln_base
from thinkscope.metrics.dtr_spec import check_g

if TYPE_CHECKING:
    from thinkscope.models import LM
    from thinkscope.models.adapter import Anatomy


@dataclass
class TraceLens:
    """One trace's lens results; T generated tokens, L layers."""

    n_layers: int
    vocab: int
    n_tokens: int
    final: FinalStats | None  # [T] statistics of the model's output distribution
    jsd: torch.Tensor | None = None  # [T, L] nats (full profile only)
    depths: dict[float, torch.Tensor] = field(default_factory=dict)  # g in nats -> [T] int64
    topk_ids: torch.Tensor | None = None  # [T, L, K]
    probes: dict[str, Any] = field(default_factory=dict)  # REV values (metrics/rev.py)


@dataclass
class Result:
    value: float | list[float]  # per trace: a scalar, or a per-layer vector (jsd-profile)
    arrays: dict[str, torch.Tensor] = field(default_factory=dict)  # per token: [T] or [T, L]


@dataclass(frozen=True)
class Needs:
    """What the lens must compute for a set of metrics."""

    lens: bool = False  # a scoring forward pass at all (``length`` needs none)
    full: bool = False  # every layer's JSD (else the fast path, for ``thresholds`` only)
    thresholds: frozenset[float] = frozenset()  # settling thresholds in nats
    topk: int = 0  # per-layer top-K ids
    probes: frozenset[str] = frozenset()  # REV measurements: ae, fl, ape, apl, cud, sib

    def __or__(self, other: Needs) -> Needs:
        return Needs(
            self.lens or other.lens,
            self.full or other.full,
            self.thresholds | other.thresholds,
            max(self.topk, other.topk),
            self.probes | other.probes,
        )


@dataclass(frozen=True)
class Metric:
    name: str
    compute: Callable[..., Result]  # (TraceLens, **params) -> Result
    needs: Callable[..., Needs]  # (**params) -> Needs
    defaults: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, tuple[str, ...]] = field(default_factory=dict)  # array -> params it uses
    scalar: bool = True  # False: the per-trace value is a vector (token_metrics.parquet only)
    doc: str = ""
    in_all: bool = True  # False: only by name or group (``rev``: ablation passes are costly)
    # run-level step: per-trace values [N, k] -> final column [N] (``rev`` z-scores over a run)
    finalize: Callable[[np.ndarray], np.ndarray] | None = None
    calibration: Callable[..., dict] | None = None  # (LM) -> what scores.json records with it
    requires: tuple[str, ...] = ()  # parts of the blocks it reads, from REQUIREMENTS


#: What a metric may need besides the blocks' outputs: per part, the layers (1..L) that have
#: it, and its name in a refusal.
REQUIREMENTS: dict[str, tuple[Callable[[Anatomy], list[int]], str]] = {
    "attention": (lambda anatomy: anatomy.attention_layers, "attention"),
    "feed-forward": (
        lambda anatomy: [i for i, m in enumerate(anatomy.mlps, start=1) if m is not None],
        "feed-forward parts",
    ),
}


REGISTRY: dict[str, Metric] = {}
GROUPS: dict[str, tuple[str, ...]] = {
    "confidence": (
        "logprob",
        "neg-entropy",
        "self-certainty",
        "token-conf",
        "group-conf-lowest",
        "bottom10-conf",
        "tail-conf",
    ),
}


def register(metric: Metric) -> Metric:
    REGISTRY[metric.name] = metric
    return metric


def _fmt(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def _suffix(params: dict[str, Any], defaults: dict[str, Any], keys: Iterable[str]) -> str:
    changed = [f"{k}={_fmt(params[k])}" for k in sorted(keys) if params[k] != defaults[k]]
    return f"[{','.join(changed)}]" if changed else ""


@dataclass(frozen=True)
class MetricSpec:
    """A metric with its full parameter dict."""

    metric: Metric
    params: dict[str, Any]

    @property
    def column(self) -> str:
        return self.metric.name + _suffix(self.params, self.metric.defaults, self.params)

    def array_name(self, array: str) -> str:
        return array + _suffix(self.params, self.metric.defaults, self.metric.arrays[array])

    def needs(self) -> Needs:
        return self.metric.needs(**self.params)

    def layers(self, lm: LM) -> dict[str, list[int]]:
        """Per part this metric requires, the layers (1..L) of ``lm`` that have it, which are
        the layers it measures (``{"attention": [2, 4]}`` for ``ape`` on a hybrid)."""
        return {part: REQUIREMENTS[part][0](lm.anatomy) for part in self.metric.requires}

    def compute(self, view: TraceLens) -> Result:
        result = self.metric.compute(view, **self.params)
        result.arrays = {self.array_name(k): v for k, v in result.arrays.items()}
        return result


def check_applicable(lm: LM, specs: Iterable[MetricSpec]) -> None:
    """Raise a one-line :class:`UserError` naming each metric of ``specs`` that needs a part
    (attention, feed-forward) no block of ``lm`` has, before any work starts."""
    missing: dict[str, dict[str, None]] = {}  # part -> metric names, in order
    for item in specs:
        for part in item.metric.requires:
            if not REQUIREMENTS[part][0](lm.anatomy):
                missing.setdefault(part, {})[item.metric.name] = None
    if not missing:
        return
    model = f"{lm.name} ({lm.model.config.model_type})"
    reasons = []
    for part, names in missing.items():
        many = len(names) > 1
        listed = ", ".join(repr(n) for n in names)
        need = f"need{'' if many else 's'} {REQUIREMENTS[part][1]}"
        reasons.append(f"metric{'s' * many} {listed} {need}, and {model} has none")
    mixers = sorted({m for block in lm.anatomy.mixers for m in block}) or ["nothing known"]
    count = sum(map(len, missing.values()))
    raise UserError(
        f"{'; '.join(reasons)} (its blocks mix tokens by {' and '.join(mixers)}): "
        f"leave {'them' if count > 1 else 'it'} out of --metrics"
    )


def _coerce(metric: Metric, key: str, raw: str) -> Any:
    if key not in metric.defaults:
        known = ", ".join(metric.defaults) or "none"
        raise UserError(f"metric {metric.name!r} has no parameter {key!r} (parameters: {known})")
    default = metric.defaults[key]
    try:
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
    except ValueError:
        raise UserError(f"{metric.name}: {key}={raw!r} is not a number") from None
    return raw


def _base(raw: str) -> str:
    """Canonical log base: ``"e"``, ``"2"``, ``"10"``, ``"1.5"``."""
    if raw in ("e", "E"):
        return "e"
    try:
        ln_base(raw)
    except ValueError:
        raise UserError(f"log base must be e or a number > 1, got {raw!r}") from None
    return f"{float(raw):g}"


#: The valid range of each metric parameter besides g (see :func:`check_g`) and base: rho a
#: share of layers; topk-agreement's K a count and alpha an overlap share (at 0 every token
#: agrees at layer 1); DeepConf's window a count of tokens.
RANGES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "rho": (lambda v: 0 < v <= 1, "in (0, 1]"),
    "k": (lambda v: v >= 1, ">= 1"),
    "alpha": (lambda v: 0 < v <= 1, "in (0, 1]"),
    "window": (lambda v: v >= 1, ">= 1"),
}


def _check_ranges(name: str, params: dict[str, Any]) -> None:
    for key, value in params.items():
        given = f"{name}[{key}={value}]"
        if key == "g":
            try:
                check_g(value, params["base"], given)
            except ValueError as err:
                raise UserError(str(err)) from None
        elif key in RANGES and not RANGES[key][0](value):
            raise UserError(f"{given} is out of range: {key} must be {RANGES[key][1]}")


def spec(name: str, **params: Any) -> MetricSpec:
    """``spec("dtr", g=0.6)``: a metric with parameters (defaults filled in, types checked)."""
    if name not in REGISTRY:
        known = ", ".join(dict.fromkeys([*REGISTRY, *GROUPS, "all"]))  # rev: metric and group
        raise UserError(f"unknown metric {name!r}; known: {known}")
    metric = REGISTRY[name]
    full = dict(metric.defaults)
    full.update({k: _coerce(metric, k, str(v)) for k, v in params.items()})
    if "base" in full:
        full["base"] = _base(full["base"])
    _check_ranges(name, full)
    return MetricSpec(metric, full)


_ITEM = re.compile(r"\s*([\w-]+)\s*(?:\[([^\]]*)\])?\s*(?:,|$)")


def parse_metrics(text: str | Iterable[str]) -> list[MetricSpec]:
    """``"dtr,confidence,dtr[g=0.6]"`` -> specs; groups ``confidence`` and ``all`` expand."""
    items = [text] if isinstance(text, str) else list(text)
    specs: list[MetricSpec] = []
    for item in items:
        pos = 0
        while pos < len(item):
            match = _ITEM.match(item, pos)
            if not match or match.end() == pos:
                raise UserError(
                    f"cannot parse metrics {item!r}: use name or name[k=v,...], comma-separated"
                )
            name, params, pos = match.group(1), match.group(2), match.end()
            kwargs = dict(p.split("=", 1) for p in params.split(",") if "=" in p) if params else {}
            if params and len(kwargs) != len([p for p in params.split(",") if p.strip()]):
                raise UserError(f"cannot parse parameters [{params}]: use [k=v,...]")
            kwargs = {k.strip(): v.strip() for k, v in kwargs.items()}
            names = (
                [n for n, m in REGISTRY.items() if m.in_all]
                if name == "all"
                else GROUPS.get(name, (name,))
            )
            if kwargs and len(names) > 1:
                raise UserError(f"group {name!r} takes no parameters; give them per metric")
            specs.extend(spec(n, **kwargs) for n in names)
    unique = {s.column: s for s in specs}
    if not unique:
        raise UserError("no metrics given")
    return list(unique.values())
