"""``thinkscope experiment rev RUN [RUN...]``: the seed-001 evaluation of REV beside DTR.

For each run (scored first with ``rev,dtr,length`` where those columns are missing):
AUROC of every REV metric, REV, DTR, length and perplexity with bootstrap CIs; logistic models
(length, perplexity) / +REV / +REV+DTR with cross-validated AUROC, delta-AUC and DeLong p;
partial r of REV; Cohen's d of every metric between the run's traces and the bundled control
set. Across the runs: the scaling figure (delta-AUC against log10 parameters), AUROC against
temperature, the head-ablation curve (greedy accuracy with the top share of heads zeroed, on
the first run), and the seed's success criteria as a computed pass/fail table.

``control`` (a file, :func:`~thinkscope.metrics.rev.control.read_control`) replaces the bundled
control set for the calibration and the separation; a run scored with another control set is
refused. A grid of models x temperatures that generates its runs: :mod:`.grid`.

On a hybrid stack APE and the head ablations (``cud``, the head-ablation curve) read the layers
with softmax attention only and ``apl`` those with a feed-forward part; ``runs.csv`` notes
which. A run whose model has no attention (Mamba2) is refused in one line before any work.

Result folder::

    OUT/experiment.yaml   the runs and options
    OUT/aurocs.csv        run, metric, auroc, lo, hi, n, n_nan
    OUT/models.csv        run, model (base, +rev, +rev+dtr), cv_auroc, lo, hi, delta_auc, delong_p
    OUT/runs.csv          per run: model, params, temperature, accuracy, delta-AUC, partial r,
                          and the layers measured: attention_layers (ape, cud's heads) and
                          feed_forward_layers (apl), 1-based, comma-separated
    OUT/separation.csv    run, metric, cohens_d (reasoning minus control)
    OUT/ablation.csv      share, heads, accuracy, delta_accuracy
    OUT/criteria.csv      criterion, scope, value, target, passed
    OUT/figures/{scaling,temperature,ablation}.png
    OUT/results.json      everything above (written last: it marks the experiment finished)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from thinkscope.analysis.load import load_scored
from thinkscope.analysis.table import covariates
from thinkscope.core.atomic import atomic_dir, atomic_write, write_json, write_yaml
from thinkscope.core.errors import UserError
from thinkscope.experiments.rev.checks import head_ablation_curve, success_criteria
from thinkscope.experiments.rev.figures import draw_ablation, draw_scaling, draw_temperature
from thinkscope.experiments.rev.stats import (
    metric_aurocs,
    model_comparison,
    rev_partial,
    separation,
)
from thinkscope.metrics import check_applicable, measure, parse_metrics
from thinkscope.metrics.rev import COMPONENTS, zscore_mean
from thinkscope.metrics.rev.control import control_texts, controls, read_control, using_control
from thinkscope.models import LM, load_model
from thinkscope.models.spec import LoadingSpec, ModelSpec
from thinkscope.runstore.folder import Run, now
from thinkscope.runstore.header import register
from thinkscope.scoring import score

REV_METRICS = ("ae", "ape", "apl", "cud", "fl", "sib", "rev", "rev-robust")
NEEDED = "rev,dtr,length"


@dataclass(frozen=True)
class RevConfig:
    runs: tuple[Path, ...]
    out: Path
    resamples: int = 10_000
    folds: int = 5
    seed: int = 0
    shares: tuple[float, ...] = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4)  # of heads, ablated
    ablation_questions: int = 16
    control_prefix: int = 4  # control sentence tokens that act as its prompt
    loading: LoadingSpec = field(default_factory=LoadingSpec)  # how each run's model loads
    control: Path | None = None  # a control file (read_control) instead of the bundled set


@dataclass
class RevResult:
    out: Path
    aurocs: pd.DataFrame
    models: pd.DataFrame
    runs: pd.DataFrame
    separation: pd.DataFrame
    ablation: pd.DataFrame
    criteria: pd.DataFrame
    figures: list[Path] = field(default_factory=list)


class ModelCache:
    """One loaded model per run model (name, revision, remote code), loaded with ``loading``
    and shared by the runs that use it."""

    def __init__(self, loading: LoadingSpec) -> None:
        self.loading, self.loaded = loading, {}

    def get(self, run_config: dict) -> LM:
        own = ("model", "revision", "trust_remote_code")
        spec = ModelSpec.of(self.loading, **{k: run_config[k] for k in own if k in run_config})
        key = spec.model_dump_json()
        if key not in self.loaded:
            self.loaded[key] = load_model(spec)
        return self.loaded[key]


def measured_layers(lm: LM) -> dict[str, str]:
    """The layers (1..L) each kind of REV measurement read on ``lm``: ``ape`` and the circuit
    heads of ``cud`` the layers with softmax attention, ``apl`` those with a feed-forward part
    (all of them on a plain transformer, fewer on a hybrid stack)."""
    ape, apl = parse_metrics("ape,apl")
    return {
        "attention_layers": ",".join(map(str, ape.layers(lm)["attention"])),
        "feed_forward_layers": ",".join(map(str, apl.layers(lm)["feed-forward"])),
    }


def control_components(lm: LM, prefix: int) -> pd.DataFrame:
    """The six REV components of each control sentence (its first ``prefix`` tokens as the
    prompt, the rest as the completion)."""
    ids = [lm.tokenizer(t)["input_ids"] for t in control_texts()]
    results = measure(
        lm,
        [i[:prefix] for i in ids],
        [i[prefix:] for i in ids],
        parse_metrics(",".join(COMPONENTS)),
    )
    return pd.DataFrame([{c: r[c].value for c in COMPONENTS} for r in results])


def _frame(path: Path, models: ModelCache) -> tuple[pd.DataFrame, dict]:
    run = Run.open(path)
    lm = models.get(run.config)
    if not {"rev", "dtr", "length"} <= set(run.traces().columns):
        score(lm, path, metrics=NEEDED)
    scores = (
        json.loads((path / "scores.json").read_text()) if (path / "scores.json").is_file() else {}
    )
    used = scores.get("columns", {}).get("apl", {}).get("calibration", {}).get("key")
    if used is not None and used != controls(lm).key:
        raise UserError(
            f"{path} was scored with another control set (calibration {used}); "
            "evaluate it with the control set it was scored with"
        )
    scored = load_scored(path)
    frame = scored.traces.reset_index(drop=True).copy()
    frame["correct"] = scored.correct
    cov = covariates(scored)
    frame["length"], frame["perplexity"] = cov["length"].to_numpy(), cov["perplexity"].to_numpy()
    return frame, scored.run.config


def evaluate(
    config: RevConfig, models: ModelCache | None = None, registered: bool = True
) -> RevResult:
    """Run the evaluation and write the result folder (see the module docstring); with
    ``registered`` also enter it in the run registry (a grid registers its own folder)."""
    if not config.runs:
        raise UserError("give at least one scored run folder")
    out = Path(config.out)
    if (out / "results.json").is_file():
        raise UserError(f"{out} holds a finished REV evaluation; choose another --out")
    texts = read_control(config.control) if config.control else None
    models = models or ModelCache(config.loading)
    for path in config.runs:  # every input is a run, whose model REV applies to, before any work
        check_applicable(models.get(Run.open(path).config), parse_metrics(NEEDED))
    started = now()
    with using_control(texts) if texts else nullcontext(), atomic_dir(out) as tmp:
        write_yaml(tmp / "experiment.yaml", {"experiment": "rev", **_plain(config)})
        result = _evaluate(config, tmp, models)
        _write(result, out)
    result.out = out
    result.figures = [out / f.relative_to(tmp) for f in result.figures]
    if registered:
        values = _plain(config)
        flat = {**values.pop("loading"), "experiment": "rev", **values}
        register(out, "experiment rev", flat, {"runs": len(config.runs)}, started)
    return result


def _evaluate(config: RevConfig, out: Path, models: ModelCache) -> RevResult:
    aurocs, comparisons, summaries, separations = [], [], [], []
    controls_of: dict[int, pd.DataFrame] = {}  # per loaded model: the runs of a model share it
    first_config = None
    for path in config.runs:
        frame, run_config = _frame(Path(path), models)
        first_config = first_config or run_config
        name = Path(path).name
        lm = models.get(run_config)
        columns = [c for c in (*REV_METRICS, "dtr", "length", "perplexity") if c in frame]
        table = metric_aurocs(frame, columns, config.resamples, config.seed)
        aurocs.append(table.assign(run=name))
        comparison, _ = model_comparison(frame, config.folds, config.resamples, config.seed)
        comparisons.append(comparison.assign(run=name))
        r, p = rev_partial(frame)
        plus = comparison.set_index("model")
        summaries.append(
            {
                "run": name,
                "model": run_config.get("model"),
                "params": int(sum(p.numel() for p in lm.model.parameters())),
                "temperature": float(run_config.get("temperature", np.nan)),
                "n": len(frame),
                "accuracy": float(frame["correct"].mean()),
                "rev_nan": int(frame["rev"].isna().sum()),
                "rev_auroc": float(table.set_index("metric").loc["rev", "auroc"]),
                "dtr_auroc": float(table.set_index("metric").loc["dtr", "auroc"]),
                "base_cv_auroc": float(plus.loc["base", "cv_auroc"]),
                "delta_auc": float(plus.loc["+rev", "delta_auc"]),
                "delong_p": float(plus.loc["+rev", "delong_p"]),
                "delta_auc_dtr": float(plus.loc["+rev+dtr", "delta_auc"]),
                "partial_r": r,
                "partial_p": p,
                **measured_layers(lm),
            }
        )
        if id(lm) not in controls_of:
            controls_of[id(lm)] = control_components(lm, config.control_prefix)
        control = controls_of[id(lm)]
        both = pd.concat([frame[list(COMPONENTS)], control], ignore_index=True)
        pooled = both.to_numpy(float)
        both["rev"], both["rev-robust"] = zscore_mean(pooled), zscore_mean(pooled, robust=True)
        d = separation(both.iloc[: len(frame)], both.iloc[len(frame) :], REV_METRICS)
        separations += [{"run": name, "metric": m, "cohens_d": v} for m, v in d.items()]
    runs = pd.DataFrame(summaries)
    ablation = head_ablation_curve(
        models.get(first_config),
        first_config,
        config.shares,
        config.ablation_questions,
    )
    result = RevResult(
        out,
        pd.concat(aurocs, ignore_index=True),
        pd.concat(comparisons, ignore_index=True),
        runs,
        pd.DataFrame(separations),
        ablation,
        success_criteria(runs),
    )
    return result


def _write(result: RevResult, final: Path) -> None:
    """Write ``result`` into ``result.out``, recording its figures under ``final``, the folder
    ``result.out`` becomes."""
    out = result.out
    tables = {
        "aurocs": result.aurocs,
        "models": result.models,
        "runs": result.runs,
        "separation": result.separation,
        "ablation": result.ablation,
        "criteria": result.criteria,
    }
    for name, table in tables.items():
        atomic_write(out / f"{name}.csv", lambda tmp, t=table: t.to_csv(tmp, index=False))
    figures = out / "figures"
    result.figures = [
        draw_scaling(result.runs, figures / "scaling.png"),
        draw_temperature(result.runs, figures / "temperature.png"),
        draw_ablation(result.ablation, figures / "ablation.png"),
    ]
    records = {k: json.loads(t.to_json(orient="records")) for k, t in tables.items()}
    figures = [str(final / f.relative_to(out)) for f in result.figures]
    write_json(out / "results.json", {**records, "figures": figures})


def _plain(config: RevConfig) -> dict:
    values = {k: getattr(config, k) for k in config.__dataclass_fields__}
    values["runs"] = [str(r) for r in config.runs]
    values["out"] = str(config.out)
    values["shares"] = list(config.shares)
    values["loading"] = config.loading.model_dump()
    values["control"] = None if config.control is None else str(config.control)
    return values


def run_rev(runs: Sequence[Path | str], out: Path | str, **options) -> RevResult:
    """Python entry point: ``run_rev(["runs/a", "runs/b"], "out/rev", resamples=2000)``."""
    return evaluate(RevConfig(tuple(Path(r) for r in runs), Path(out), **options))
