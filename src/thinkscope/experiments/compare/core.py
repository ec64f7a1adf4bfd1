"""``thinkscope compare BASE TUNED``: both models on the same problems and sample seeds.

Result folder ``OUT``::

    runs/{base,tuned}/          sampled run folders (``n`` per question), scored with DTR and
                                the confidence metrics (resumable like any run)
    runs/{base,tuned}-greedy/   one greedy sample per question, for McNemar's paired test
    summary.csv                 one row per model: mean sample accuracy, pass@k (k = 2, 4, ...
                                <= n), greedy accuracy, mean length, mean DTR and confidence
                                metrics
    per_question.csv            each question's accuracy under both models and its winner
    compare.json                config, wins/losses/ties and McNemar's test
    figures/compare.png, report.html
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from pydantic import field_validator

from thinkscope.core.atomic import write_json, write_text
from thinkscope.core.errors import UserError
from thinkscope.core.spec import with_default
from thinkscope.experiments.compare.stats import McNemar, mcnemar_paired, per_question
from thinkscope.generation.pipeline import GenerateConfig, generate_run
from thinkscope.generation.spec import SamplingSpec
from thinkscope.generation.spec import greedy as greedy_values
from thinkscope.models.bundled import BUNDLED_NAME
from thinkscope.models.spec import LoadingSpec, ModelSpec
from thinkscope.runstore.folder import Run, now
from thinkscope.runstore.header import register
from thinkscope.stats.passk import mean_pass_at_k
from thinkscope.tasks.spec import TaskSpec

MODELS = ("base", "tuned")


class CompareConfig(LoadingSpec, TaskSpec, SamplingSpec):
    """Two models, loaded the same way, and the one sampling setup both are run with."""

    base: str
    tuned: str
    prompt_style: str = with_default(TaskSpec, "prompt_style", "r1")
    template: str = with_default(TaskSpec, "template", "plain")
    batch_size: int = with_default(GenerateConfig, "batch_size", 64)
    metrics: str = "dtr,confidence"

    @field_validator("base", "tuned")
    @classmethod
    def _absolute(cls, model: str) -> str:
        """A local model (directory, .gguf file or train folder) as an absolute path, so that
        the comparison can be reproduced from another directory."""
        path = Path(model).expanduser()
        if model == BUNDLED_NAME or not path.exists():
            return model
        return str(path.resolve())

    @field_validator("temperature")
    @classmethod
    def _sampled(cls, temperature: float) -> float:
        if temperature <= 0:
            raise ValueError("must be > 0 (the greedy runs are made separately)")
        return temperature

    def generation(self, model: str, greedy: bool) -> GenerateConfig:
        values = {
            name: getattr(self, name)
            for name in (*TaskSpec.model_fields, *SamplingSpec.model_fields)
        }
        if greedy:
            values = greedy_values({**values, "n": 1})
        spec = ModelSpec.of(self, model=model).model_dump()
        return GenerateConfig.parse(**spec, batch_size=self.batch_size, **values)


@dataclass
class CompareResult:
    """The comparison's tables, test and where they were written."""

    path: Path
    summary: pd.DataFrame  # one row per model
    questions: pd.DataFrame  # one row per question
    mcnemar: McNemar


def resolve_model(spec: str) -> str:
    """``spec``, or the merged model of a ``thinkscope train`` folder."""
    path = Path(spec)
    if (path / "merged" / "config.json").is_file():
        return str(path / "merged")
    if (path / "adapter" / "adapter_config.json").is_file():
        raise UserError(f"{path} holds a LoRA adapter but no merged model: thinkscope merge {path}")
    return spec


def ensure_run(config: GenerateConfig, path: Path, lm, progress: bool = True) -> Run:
    """The finished run of ``config`` at ``path``: generated, resumed, or reused as it is
    (a finished run with other settings is a :class:`UserError`)."""
    return generate_run(config, path, resume=True, lm=lm, show_progress=progress)


def model_summary(traces: pd.DataFrame, greedy: pd.DataFrame, n: int, columns: list[str]) -> dict:
    """Mean sample accuracy (pass@1), pass@k (k = 2, 4, ... <= n), greedy accuracy, length and
    metric means."""
    row = {"mean_sample_accuracy": float(traces["correct"].mean())}
    k = 2
    while k <= n:
        row[f"pass@{k}"] = mean_pass_at_k(traces["problem_id"], traces["correct"], k)
        k *= 2
    row["greedy_accuracy"] = float(greedy["correct"].mean())
    row["mean_tokens"] = float(traces["n_tokens"].mean())
    for column in columns:
        row[column] = float(traces[column].mean())
    return row


def compare_models(
    config: CompareConfig, out: Path | str, progress: bool = True, base_runs: Path | None = None
) -> CompareResult:
    """Generate, grade and score both models on the same problems, then compare them.

    ``base_runs`` keeps the base model's runs in a folder shared by several comparisons.
    """
    from thinkscope.experiments.compare.report import add_report_section, write_figure, write_page
    from thinkscope.metrics import parse_metrics
    from thinkscope.models import load_model
    from thinkscope.scoring import score_run

    out = Path(out)
    specs = parse_metrics(config.metrics)
    columns = [s.column for s in specs if s.metric.scalar]
    models = {"base": resolve_model(config.base), "tuned": resolve_model(config.tuned)}
    for model in models.values():  # both models must exist before either is run
        ModelSpec.of(config, model=model).resolved()
    sampled, greedy, started = {}, {}, now()
    folders = {"base": Path(base_runs) if base_runs else out / "runs", "tuned": out / "runs"}
    for label in MODELS:
        lm = load_model(ModelSpec.of(config, model=models[label]))
        runs = folders[label]
        run = ensure_run(config.generation(models[label], False), runs / label, lm, progress)
        sampled[label] = score_run(lm, run.path, specs, show_progress=progress)
        greedy_run = ensure_run(
            config.generation(models[label], True), runs / f"{label}-greedy", lm, progress
        )
        greedy[label] = greedy_run.traces().set_index("problem_id")["correct"]
        del lm
    summary = pd.DataFrame(
        [
            {
                "model": label,
                "spec": models[label],
                **model_summary(sampled[label], greedy[label].to_frame(), config.n, columns),
            }
            for label in MODELS
        ]
    )
    questions = per_question(sampled["base"], sampled["tuned"])
    test = mcnemar_paired(greedy["base"], greedy["tuned"])
    write_text(out / "summary.csv", summary.to_csv(index=False))
    write_text(out / "per_question.csv", questions.to_csv(index=False))
    wins = questions["winner"].value_counts().reindex(["tuned", "base", "tie"], fill_value=0)
    write_json(
        out / "compare.json",
        {
            "config": config.model_dump(),
            "models": models,
            "wins": {
                "tuned": int(wins["tuned"]),
                "base": int(wins["base"]),
                "tie": int(wins["tie"]),
            },
            "mcnemar": test.__dict__,
        },
    )
    result = CompareResult(out, summary, questions, test)
    write_figure(result)
    write_page(result, config)
    add_report_section(result, config, folders["tuned"] / "tuned")
    headline = {
        f"{row.model}_{k}": getattr(row, k)
        for row in summary.itertuples()
        for k in ("mean_sample_accuracy", "greedy_accuracy")
    }
    register(out, "compare", {**config.model_dump(), **models}, headline, started)
    return result
