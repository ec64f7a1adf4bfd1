"""Seed 004's experiment in one command: which traces make the best SFT data?

Four datasets from the same training problems, one LoRA adapter each with the same budget,
every adapter compared with the base model on the same held-out problems and seeds:

- ``reference``: the task's reference solutions (the seed's "original" baseline);
- ``correct``: the model's own R1 traces that grade correct (the seed's "R1 correct");
- ``all``: every trace, right or wrong (the seed's "R1 all", expert iteration's unfiltered arm);
- ``dtr-filtered``: correct traces with DTR >= ``min_dtr``, best ``keep_per_question`` per
  question, a question with none above the threshold keeping its best correct one.

Result folder: ``traces/`` (scored run), ``data/<name>/``, ``train/<name>/`` (adapter, merged
model, loss curve), ``compare/<name>/`` (one ``thinkscope compare`` folder each, the base runs
shared in ``compare/base-runs``), ``results.csv`` and ``figures/sft_filtering.png``. Every stage
is skipped when its output is already there, so a rerun resumes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field, field_validator

from thinkscope.core.atomic import atomic_write, write_text
from thinkscope.core.errors import UserError
from thinkscope.core.spec import with_default
from thinkscope.generation.spec import SamplingSpec
from thinkscope.models.spec import ModelSpec
from thinkscope.tasks.spec import TaskSpec

if TYPE_CHECKING:
    import pandas as pd

ARMS = ("reference", "correct", "all", "dtr-filtered")


class SftFilteringConfig(ModelSpec, SamplingSpec):
    """The model, the traces, the datasets' filters, the shared training budget and the
    evaluation."""

    task: str = with_default(TaskSpec, "task", "gsm8k")  # held-out evaluation problems
    train_task: str = Field("gsm8k:train", description="Problems the training data comes from.")
    questions: int = with_default(TaskSpec, "questions", 32)  # training problems
    min_dtr: float = Field(0.3, ge=0, le=1, description="DTR threshold of the filtered arm.")
    keep_per_question: int = Field(2, ge=1, description="Traces kept per question (filtered arm).")
    max_steps: int = Field(20, ge=1, description="Optimizer steps per adapter (the shared budget).")
    batch_size: int = Field(4, ge=1, description="Training examples per optimizer step.")
    learning_rate: float = Field(2e-4, gt=0)
    lora_rank: int = Field(16, ge=1)
    max_length: int = Field(512, ge=8)
    eval_questions: int = Field(20, ge=1, description="Held-out problems of the evaluation.")
    eval_n: int = Field(4, ge=1, description="Samples per held-out problem.")
    batch_tokens: int = Field(4096, ge=1, description="Padded tokens per scoring pass.")

    @field_validator("temperature")
    @classmethod
    def _sampled(cls, temperature: float) -> float:
        if temperature <= 0:
            raise ValueError("must be > 0 (the traces are sampled)")
        return temperature

    def sampling(self) -> dict:
        """The sampling settings of the traces and of the evaluation (whose ``n`` is
        ``eval_n``)."""
        return {name: getattr(self, name) for name in SamplingSpec.model_fields}


def _traces(config: SftFilteringConfig, out: Path) -> Path:
    from thinkscope.experiments.compare.core import ensure_run
    from thinkscope.generation.pipeline import GenerateConfig
    from thinkscope.metrics import parse_metrics
    from thinkscope.models import load_model
    from thinkscope.scoring import score_run

    generation = GenerateConfig.parse(
        **ModelSpec.of(config).model_dump(),
        task=config.train_task,
        questions=config.questions,
        **config.sampling(),
        prompt_style="r1",
        template="plain",
    )
    lm = load_model(ModelSpec.of(config))
    run = ensure_run(generation, out / "traces", lm)
    score_run(lm, run.path, parse_metrics("dtr"), config.batch_tokens)
    return run.path


def build_datasets(config: SftFilteringConfig, out: Path) -> dict[str, Path | str]:
    """The JSONL file of each arm, or why it has none (built once; a finished build is reused)."""
    from thinkscope.sft import DatasetFilters, build_dataset, reference_dataset

    traces = _traces(config, out)
    data = out / "data"
    dtr = DatasetFilters(
        require_correct=True,
        min_dtr=config.min_dtr,
        fallback_best_correct=True,
        keep_per_question=config.keep_per_question,
    )
    builds = {
        "reference": lambda d: reference_dataset(config.train_task, d, config.questions),
        "traces": lambda d: build_dataset(traces, d, resume=True, show_progress=False),
        "dtr-filtered": lambda d: build_dataset(traces, d, dtr, resume=True, show_progress=False),
    }
    failed = {}
    for name, build in builds.items():
        if not (data / name / "dataset.json").is_file():
            try:
                build(data / name)
            except UserError as err:  # e.g. no correct trace passes the filters
                failed[name] = str(err)
    files = {
        "reference": data / "reference" / "sft_correct.jsonl",
        "correct": data / "traces" / "sft_correct.jsonl",
        "all": data / "traces" / "sft_all.jsonl",
        "dtr-filtered": data / "dtr-filtered" / "sft_correct.jsonl",
    }
    source = {"correct": "traces", "all": "traces"}
    return {
        arm: failed.get(source.get(arm, arm)) or (path if _rows(path) else "empty dataset")
        for arm, path in files.items()
    }


def _rows(path: Path) -> int:
    return sum(1 for line in path.read_text().splitlines() if line.strip()) if path.is_file() else 0


def train_arm(config: SftFilteringConfig, dataset: Path, out: Path) -> Path:
    """One adapter with the shared budget, merged; returns the training folder."""
    from thinkscope.sft import TrainConfig, merge_adapter, train

    train_config = TrainConfig(
        **ModelSpec.of(config).model_dump(),
        dataset=str(dataset),
        max_steps=config.max_steps,
        batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        lora_rank=config.lora_rank,
        lora_alpha=2.0 * config.lora_rank,
        max_length=config.max_length,
        seed=config.seed,
        save_steps=max(1, config.max_steps // 2),
    )
    result = train(train_config, out, resume=True)
    if not (out / "merged" / "config.json").is_file():
        merge_adapter(out)
    return result.path


def run_sft_filtering(config: SftFilteringConfig, out: Path | str) -> pd.DataFrame:
    """Run the whole experiment into ``out`` and return its table (one row per model)."""
    import pandas as pd

    from thinkscope.experiments.compare import CompareConfig, compare_models
    from thinkscope.runstore.folder import now
    from thinkscope.runstore.header import register

    out, started = Path(out), now()
    files = build_datasets(config, out)
    rows, base_row = [], None
    for arm in ARMS:
        if isinstance(files[arm], str):
            rows.append({"model": arm, "train_rows": 0, "note": f"not trained: {files[arm]}"})
            continue
        n_rows = _rows(files[arm])
        trained = train_arm(config, files[arm], out / "train" / arm)
        compare = CompareConfig(
            **ModelSpec.of(config).loading(),
            base=config.model,
            tuned=str(trained),
            task=config.task,
            questions=config.eval_questions,
            **{**config.sampling(), "n": config.eval_n},
            batch_size=64,
            metrics="dtr,confidence",
        )
        result = compare_models(
            compare, out / "compare" / arm, base_runs=out / "compare" / "base-runs"
        )
        summary = result.summary.set_index("model")
        base_row = {"model": "base", "train_rows": 0, **summary.loc["base"].drop("spec")}
        wins = result.questions["winner"].value_counts()
        rows.append(
            {
                "model": arm,
                "train_rows": n_rows,
                **summary.loc["tuned"].drop("spec"),
                "wins": int(wins.get("tuned", 0)),
                "losses": int(wins.get("base", 0)),
                "mcnemar_p": result.mcnemar.pvalue,
            }
        )
    if base_row is None:
        raise UserError("every dataset came out empty: nothing was trained")
    table = pd.DataFrame([base_row, *rows])
    write_text(out / "results.csv", table.to_csv(index=False))
    _figure(table, out / "figures" / "sft_filtering.png")
    summary = {row.model: row.mean_sample_accuracy for row in table.itertuples()}
    register(out, "experiment sft-filtering", config.resolved().model_dump(), summary, started)
    return table


def _figure(table: pd.DataFrame, path: Path) -> None:
    import matplotlib
    from matplotlib.figure import Figure

    from thinkscope.core.figures import CORRECT, NEUTRAL, STYLE

    trained = table.dropna(subset=["mean_sample_accuracy"])
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(7, 3.6), layout="constrained")
        ax = fig.subplots()
        x = range(len(trained))
        ax.bar(
            [i - 0.2 for i in x],
            trained["mean_sample_accuracy"],
            0.4,
            color=NEUTRAL,
            label="mean sample accuracy",
        )
        ax.bar(
            [i + 0.2 for i in x],
            trained["greedy_accuracy"],
            0.4,
            color=CORRECT,
            label="greedy accuracy",
        )
        ax.set_xticks(list(x), trained["model"])
        ax.set_ylabel("fraction correct (held-out)")
        ax.set_title("SFT data: reference vs own traces vs DTR-filtered")
        ax.legend()
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
