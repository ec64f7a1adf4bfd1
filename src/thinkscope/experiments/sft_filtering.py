"""Seed 004's experiment in one command: which traces make the best SFT data?

Four datasets from the same training problems, one LoRA adapter each with the same budget,
every adapter compared with the base model on the same held-out problems and seeds:

- ``reference``: the task's reference solutions (the seed's "original" baseline);
- ``correct``: the model's own R1 traces that grade correct (the seed's "R1 correct");
- ``all``: every trace, right or wrong, cut off or not (the seed's "R1 all", expert
  iteration's unfiltered arm);
- ``dtr-filtered``: correct traces with DTR >= ``min_dtr``, best ``keep_per_question`` per
  question, a question with none above the threshold keeping its best correct one.

With ``teacher`` the traces come from the teacher and the student (``model``) is trained and
evaluated. With ``rounds`` K > 1 each trace arm is an expert-iteration chain: round r generates
with the model that arm trained in round r - 1 (merged LoRA, or the whole model with ``full``),
filters, and trains that model further; the reference arm is round 1's baseline. With ``sizes``
every arm trains on nested subsets of its rows (:mod:`thinkscope.experiments.distill`); the
largest carries the chain.

Result folder: ``traces/`` (scored run), ``data/<name>/``, ``train/<name>/`` (adapter, merged
model, loss curve), ``compare/<name>/`` (one ``thinkscope compare`` folder each, the base runs
shared in ``compare/base-runs``), ``round-<r>/`` for later rounds, ``results.csv`` and
``results.json`` (one row per round, arm and size, with the model that generated its traces)
and ``figures/``. Every stage is skipped when its output is already there, so a rerun resumes
at the round and stage it reached.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field, field_validator, model_validator

from thinkscope.core.atomic import atomic_write, write_text
from thinkscope.core.errors import UserError
from thinkscope.core.spec import with_default
from thinkscope.experiments.distill import (
    check_sizes,
    jsonl_rows,
    nested_subset,
    round_folder,
    rounds_figure,
)
from thinkscope.generation.spec import SamplingSpec
from thinkscope.models.spec import ModelSpec
from thinkscope.tasks.spec import TaskSpec

if TYPE_CHECKING:
    import pandas as pd

ARMS = ("reference", "correct", "all", "dtr-filtered")
TRACE_ARMS = ARMS[1:]  # trained on generated traces: each one an expert-iteration chain
#: Each arm's dataset: (build folder under ``data/``, file).
DATASETS = {
    "reference": ("reference", "sft_correct.jsonl"),
    "correct": ("traces", "sft_correct.jsonl"),
    "all": ("traces", "sft_all.jsonl"),
    "dtr-filtered": ("dtr-filtered", "sft_correct.jsonl"),
}


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
    teacher: str | None = Field(
        None, description="Model whose traces train the student --model (default: --model)."
    )
    rounds: int = Field(
        1, ge=1, description="Expert-iteration rounds: generate, filter, train, repeat."
    )
    sizes: list[int] | None = Field(
        None,
        description="Dataset sizes, a comma list: each arm trains on nested subsets.",
        json_schema_extra={"cli": "text"},
    )
    full: bool = Field(False, description="Full fine-tuning of every weight instead of LoRA.")

    @field_validator("sizes", mode="before")
    @classmethod
    def _comma_list(cls, sizes):
        if isinstance(sizes, str):
            try:
                return [int(part) for part in sizes.split(",")]
            except ValueError:
                raise ValueError(f"takes comma-separated row counts, got {sizes!r}") from None
        return sizes

    @field_validator("sizes")
    @classmethod
    def _sizes(cls, sizes: list[int] | None) -> list[int] | None:
        if sizes is not None and (not sizes or min(sizes) < 1 or len(set(sizes)) < len(sizes)):
            raise ValueError(f"takes distinct row counts >= 1, got {sizes}")
        return sorted(sizes) if sizes else sizes

    @field_validator("teacher")
    @classmethod
    def _teacher_path(cls, teacher: str | None) -> str | None:
        """A local teacher as an absolute path, as ``model`` is."""
        path = Path(teacher).expanduser() if teacher else None
        return str(path.resolve()) if path and path.exists() else teacher

    @model_validator(mode="after")
    def _consistent(self) -> SftFilteringConfig:
        if self.full and self.lora_rank != type(self).model_fields["lora_rank"].default:
            raise ValueError("--lora-rank shapes a LoRA adapter; --full trains every weight")
        most = self.questions * self.n
        if self.sizes and max(self.sizes) > most:
            raise ValueError(
                f"--sizes {max(self.sizes)} is more than the {most} traces of "
                f"--questions {self.questions} x --n {self.n}"
            )
        return self

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

    def spec(self, model: str | None = None) -> ModelSpec:
        """The spec of ``model`` (default: the student) with this config's loading options;
        only the student's spec carries its recorded weights."""
        model = model or self.model
        weights = self.weights if model == self.model else None
        return ModelSpec.of(self, model=model, weights=weights)


def _traces(config: SftFilteringConfig, out: Path, generator: str | None = None) -> Path:
    """The scored R1 traces of ``generator`` (default: the teacher, else the student)."""
    from thinkscope.experiments.compare.core import ensure_run
    from thinkscope.generation.pipeline import GenerateConfig
    from thinkscope.metrics import parse_metrics
    from thinkscope.models import load_model
    from thinkscope.scoring import score_run

    spec = config.spec(generator or config.teacher)
    generation = GenerateConfig.parse(
        **spec.model_dump(),
        task=config.train_task,
        questions=config.questions,
        **config.sampling(),
        prompt_style="r1",
        template="plain",
    )
    lm = load_model(spec)
    run = ensure_run(generation, out / "traces", lm)
    score_run(lm, run.path, parse_metrics("dtr"), config.batch_tokens)
    return run.path


def build_datasets(
    config: SftFilteringConfig,
    out: Path,
    generator: str | None = None,
    arms: tuple[str, ...] = ARMS,
) -> dict[str, Path | str]:
    """The JSONL file of each of ``arms``, or why it has none, from the traces of ``generator``
    (built once; a finished build is reused)."""
    from thinkscope.sft import DatasetFilters, build_dataset, reference_dataset

    needed = {DATASETS[arm][0] for arm in arms}
    traces = _traces(config, out, generator) if needed - {"reference"} else None
    data = out / "data"
    every = DatasetFilters(truncated="keep")  # "all": every trace, cut off or not
    dtr = DatasetFilters(
        require_correct=True,
        min_dtr=config.min_dtr,
        fallback_best_correct=True,
        keep_per_question=config.keep_per_question,
    )
    builds = {
        "reference": lambda d: reference_dataset(config.train_task, d, config.questions),
        "traces": lambda d: build_dataset(traces, d, every, resume=True, show_progress=False),
        "dtr-filtered": lambda d: build_dataset(traces, d, dtr, resume=True, show_progress=False),
    }
    failed = {}
    for name in sorted(needed, key=list(builds).index):
        if not (data / name / "dataset.json").is_file():
            try:
                builds[name](data / name)
            except UserError as err:  # e.g. no correct trace passes the filters
                failed[name] = str(err)
    files = {}
    for arm in arms:
        build, file = DATASETS[arm]
        path = data / build / file
        files[arm] = failed.get(build) or (path if jsonl_rows(path) else "empty dataset")
    return files


def train_arm(
    config: SftFilteringConfig, dataset: Path, out: Path, start: str | None = None
) -> Path:
    """One model trained with the shared budget from ``start`` (default: the student); returns
    the trained model's folder (the merged LoRA model, or the whole model with ``full``)."""
    from thinkscope.sft import TrainConfig, merge_adapter, train

    lora = (
        {} if config.full else {"lora_rank": config.lora_rank, "lora_alpha": 2.0 * config.lora_rank}
    )
    train_config = TrainConfig(
        **config.spec(start).model_dump(),
        dataset=str(dataset),
        max_steps=config.max_steps,
        batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        max_length=config.max_length,
        seed=config.seed,
        save_steps=max(1, config.max_steps // 2),
        full=config.full,
        **lora,
    )
    result = train(train_config, out, resume=True)
    if config.full:
        return result.adapter
    if not (out / "merged" / "config.json").is_file():
        merge_adapter(out)
    return out / "merged"


def _evaluate(config: SftFilteringConfig, model: Path, out: Path, name: str, folder: Path):
    """``(base row, tuned row)``: the student against ``model`` on the held-out problems."""
    from thinkscope.experiments.compare import CompareConfig, compare_models

    compare = CompareConfig(
        **config.spec().loading(),
        base=config.model,
        tuned=str(model),
        task=config.task,
        questions=config.eval_questions,
        **{**config.sampling(), "n": config.eval_n},
        batch_size=64,
        metrics="dtr,confidence",
    )
    result = compare_models(
        compare, folder / "compare" / name, base_runs=out / "compare" / "base-runs"
    )
    summary = result.summary.set_index("model")
    wins = result.questions["winner"].value_counts()
    tuned = {
        **summary.loc["tuned"].drop("spec"),
        "wins": int(wins.get("tuned", 0)),
        "losses": int(wins.get("base", 0)),
        "mcnemar_p": result.mcnemar.pvalue,
    }
    return {"model": "base", "round": 0, **summary.loc["base"].drop("spec")}, tuned


def _say(line: str) -> None:
    import sys

    print(line, file=sys.stderr)


def run_sft_filtering(config: SftFilteringConfig, out: Path | str) -> pd.DataFrame:
    """Run the whole experiment into ``out`` and return its table (one row per round, arm and
    size, after the base model's)."""
    import pandas as pd

    from thinkscope.runstore.folder import now
    from thinkscope.runstore.header import register

    out, started = Path(out), now()
    rows, base_row = [], None
    generators = dict.fromkeys(TRACE_ARMS, config.teacher or config.model)
    for round_ in range(1, config.rounds + 1):
        if not generators:
            _say(f"round {round_}: no arm was trained in round {round_ - 1}; the chain ends")
            break
        folder = round_folder(out, round_)
        _say(f"round {round_}: traces from {', '.join(sorted(set(generators.values())))}")
        if round_ == 1:
            files = build_datasets(config, folder, next(iter(generators.values())))
        else:
            files = {
                arm: build_datasets(config, folder / arm, model, (arm,))[arm]
                for arm, model in generators.items()
            }
        check_sizes(config.sizes, files, f"round {round_}")
        trained = {}
        for arm, dataset in files.items():
            source = generators.get(arm, "reference solutions")
            where = {"round": round_, "model": arm, "generator": source}
            if isinstance(dataset, str):
                rows.append({**where, "train_rows": 0, "note": f"not trained: {dataset}"})
                continue
            start = None if round_ == 1 else generators[arm]
            for size in config.sizes or [None]:
                name = arm if size is None else f"{arm}-n{size}"
                data = dataset
                if size is not None:
                    data = nested_subset(
                        dataset, size, config.seed, folder / "data" / "sizes" / f"{name}.jsonl"
                    )
                model = train_arm(config, data, folder / "train" / name, start)
                base_row, tuned = _evaluate(config, model, out, name, folder)
                sized = {} if size is None else {"size": size}
                rows.append({**where, **sized, "train_rows": len(jsonl_rows(data)), **tuned})
                trained[arm] = str(model)  # sizes ascend: the largest carries the chain
        generators = {arm: model for arm, model in trained.items() if arm in TRACE_ARMS}
    if base_row is None:
        raise UserError("every dataset came out empty: nothing was trained")
    table = pd.DataFrame([base_row, *rows])
    front = [c for c in ("round", "model", "size", "generator", "train_rows") if c in table]
    table = table[front + [c for c in table if c not in front]]
    write_text(out / "results.csv", table.to_csv(index=False))
    write_text(out / "results.json", table.to_json(orient="records", indent=1))
    if config.rounds > 1 or config.sizes:
        rounds_figure(table, out / "figures" / "sft_rounds.png")
    else:
        _figure(table, out / "figures" / "sft_filtering.png")
    summary = {_key(row): row["mean_sample_accuracy"] for row in table.to_dict("records")}
    register(out, "experiment sft-filtering", config.resolved().model_dump(), summary, started)
    return table


def _key(row: dict) -> str:
    """A row's name in the registry summary: ``all``, ``r2:all``, ``all:n100``."""
    name = row["model"] if row["round"] <= 1 else f"r{row['round']}:{row['model']}"
    size = row.get("size")
    return name if size is None or size != size else f"{name}:n{int(size)}"


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
