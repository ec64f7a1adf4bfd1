"""What every experiment shares: its config, its scored runs, its tables and figures.

An experiment is a function from an :class:`ExperimentConfig` to a result folder::

    OUT/experiment.yaml   the experiment's name and config
    OUT/runs/<variant>/   one scored run folder per variant (reused when already finished)
                          or, with ``--run DIR``, that finished run (one-run experiments)
    OUT/results.csv       the experiment's table (also printed)
    OUT/figures/*.png     its figures (``--plot-out`` copies the main one elsewhere)
"""

from __future__ import annotations

import shutil
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import torch
from pydantic import ConfigDict, Field, ValidationError, model_validator

from thinkscope.core.atomic import write_yaml
from thinkscope.core.errors import UserError
from thinkscope.core.spec import with_default
from thinkscope.generation.pipeline import GenerateConfig, generate_run
from thinkscope.generation.spec import SamplingSpec
from thinkscope.metrics.dtr import deep_thinking_ratio, settling_depth
from thinkscope.metrics.dtr_spec import BASE_DEFAULT, DTRSpec, check_g
from thinkscope.models import LM, load_model, load_tokenizer
from thinkscope.models.spec import ModelSpec
from thinkscope.runstore.folder import Run, now
from thinkscope.runstore.header import register
from thinkscope.scoring import score
from thinkscope.tasks.spec import TaskSpec

matplotlib.use("Agg")
SCORED_METRICS = "dtr,length,jsd-profile"
THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)  # threshold-sweep: g < ln 2 (nats)
TEMPERATURES = (0.0, 0.4, 0.8)  # temperature-sweep's default grid
CONTRAST_TASKS = ("gsm8k", "demo-arith")  # contrast: math against easy arithmetic
import matplotlib.pyplot as plt  # noqa: E402


class ExperimentConfig(TaskSpec, SamplingSpec, DTRSpec):
    """The knobs the experiments share (each uses the ones that make sense for it): the task
    and sampling of the runs they generate, the DTR parameters, and their own grids. The
    defaults are short arithmetic a small model answers in 64 tokens, 12 problems per run."""

    model_config = ConfigDict(frozen=True)

    out: Path
    model_spec: ModelSpec = Field(default_factory=ModelSpec)  # the model and how to load it
    task: str = with_default(TaskSpec, "task", "demo-arith")
    questions: int = with_default(TaskSpec, "questions", 12)
    max_new_tokens: int = with_default(SamplingSpec, "max_new_tokens", 64)
    prompt_style: str = with_default(TaskSpec, "prompt_style", "fewshot")
    plot_out: Path | None = None
    run: Path | None = None  # a finished run to reuse instead of generating ("main" only)
    thresholds: tuple[float, ...] = THRESHOLDS  # threshold-sweep: the g grid (``--g``)
    temperatures: tuple[float, ...] = TEMPERATURES  # temperature-sweep: ``--temperatures``
    traces: tuple[str, ...] = ()  # jsd-diagnostic: PROBLEM_ID:SAMPLE (empty: the first four)
    tasks: tuple[str, ...] = CONTRAST_TASKS  # contrast: the two tasks compared (``--tasks``)

    @model_validator(mode="after")
    def _check(self) -> ExperimentConfig:
        _check_grid("--g", self.thresholds, positive=True)
        for g in self.thresholds:
            try:
                check_g(g, self.base, f"--g {g}")
            except ValueError as err:
                raise UserError(str(err)) from None
        _check_grid("--temperatures", self.temperatures, positive=False)
        if 0 in self.temperatures:  # that run is greedy: nothing it would ignore may be set
            greedy = {**self.model_dump(include=set(SamplingSpec.model_fields)), "temperature": 0}
            try:
                SamplingSpec(**greedy)
            except ValidationError as err:
                message = err.errors()[0]["msg"].removeprefix("Value error, ")
                raise UserError(f"--temperatures has 0: {message}") from None
        if len(self.tasks) != 2 or self.tasks[0] == self.tasks[1]:
            raise UserError(f"--tasks takes two different tasks, got {','.join(self.tasks)!r}")
        for trace in self.traces:
            problem, sep, sample = trace.rpartition(":")
            if not (sep and problem and sample.isdigit()):
                raise UserError(f"--traces takes PROBLEM_ID:SAMPLE,..., got {trace!r}")
        return self

    @property
    def model(self) -> str:
        return self.model_spec.model

    def generation(self, **overrides) -> GenerateConfig:
        names = (*TaskSpec.model_fields, *SamplingSpec.model_fields)
        values = {name: getattr(self, name) for name in names}
        return GenerateConfig.parse(**{**self.model_spec.model_dump(), **values, **overrides})


class Experiment:
    """One experiment's folder, model and scored runs."""

    def __init__(self, name: str, config: ExperimentConfig, lm: LM | None = None) -> None:
        self.name, self.config = name, config
        self.out = Path(config.out)
        if (self.out / "results.csv").is_file():
            raise UserError(f"{self.out} holds a finished experiment; choose another --out")
        if config.run is not None:  # a run to reuse, checked before anything is written
            Run.open(config.run)
        self.out.mkdir(parents=True, exist_ok=True)
        values = _plain(config.model_dump())
        write_yaml(self.out / "experiment.yaml", {"experiment": name, **values})
        self._lm, self.started = lm, now()

    @property
    def model(self) -> str:
        """The model of the traces: ``--run``'s own, else ``--model``."""
        if self.config.run is not None:
            return Run.open(self.config.run).config.get("model", self.config.model)
        return self.config.model

    @property
    def lm(self) -> LM:
        if self._lm is None:
            self._lm = load_model(ModelSpec.of(self.config.model_spec, model=self.model))
        return self._lm

    def tokenizer(self):
        if self._lm is not None:
            return self._lm.tokenizer
        return load_tokenizer(ModelSpec.of(self.config.model_spec, model=self.model))

    def scored_run(self, variant: str, **overrides) -> tuple[Run, pd.DataFrame, pd.DataFrame]:
        """Generate (or reuse) and score the run ``variant``; its traces and token metrics.
        With ``--run``, ``main`` is that run: its JSD profiles are reused when it has them
        (else it is scored, in place, as ``thinkscope score`` would)."""
        if self.config.run is not None:
            if variant != "main" or overrides:
                raise UserError(f"{self.name} generates its own runs; it does not take --run")
            path = Run.open(self.config.run).path
            tokens = path / "token_metrics.parquet"
            if not tokens.is_file() or "jsd_profile" not in pd.read_parquet(tokens).columns:
                score(self.lm, path, metrics=SCORED_METRICS)
            run = Run.open(path)
            return run, run.traces(), pd.read_parquet(tokens)
        path = self.out / "runs" / variant
        if not Run(path).finished:
            generate_run(self.config.generation(**overrides), path, resume=True, lm=self.lm)
        score(self.lm, path, metrics=SCORED_METRICS)
        run = Run.open(path)
        return run, run.traces(), pd.read_parquet(path / "token_metrics.parquet")

    def _model_record(self) -> dict:
        """The model's resolved spec (dtype used, weights): the loaded model's, else that of
        the reused run (``--run``), else the spec as asked."""
        if self._lm is not None and self._lm.spec is not None:
            return self._lm.spec.model_dump()
        if self.config.run is not None:
            stored = Run.open(self.config.run).config
            return {k: stored[k] for k in ModelSpec.model_fields if k in stored}
        return self.config.model_spec.model_dump()

    def figure(self, name: str, fig) -> Path:
        path = self.out / "figures" / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=130, bbox_inches="tight")
        plt.close(fig)
        return path

    def finish(self, table: pd.DataFrame, main_figure: Path) -> pd.DataFrame:
        """Write the table last (it marks the experiment finished) and copy the main figure."""
        if self.config.plot_out:
            Path(self.config.plot_out).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(main_figure, self.config.plot_out)
        from thinkscope.core.atomic import atomic_write

        atomic_write(self.out / "results.csv", lambda tmp: table.to_csv(tmp, index=False))
        values = _plain(self.config.model_dump())
        flat = {**self._model_record(), "experiment": self.name, **values}
        flat.pop("model_spec")
        register(self.out, f"experiment {self.name}", flat, {"rows": len(table)}, self.started)
        return table


def jsd_matrix(token_metrics: pd.DataFrame) -> list[np.ndarray]:
    """Per trace, the JSD profile ``[T, L]`` (nats) as a float array."""
    return [
        np.asarray(list(profile), dtype=np.float64).reshape(len(profile), -1)
        for profile in token_metrics["jsd_profile"]
    ]


def settling_depths(jsd: np.ndarray, g: float, base: str = BASE_DEFAULT) -> np.ndarray:
    """``[T]`` settling depths (1-indexed) of a JSD profile ``[T, L]`` in nats, g in ``base``
    units."""
    return settling_depth(torch.from_numpy(jsd), g, base).numpy()


def dtr(depths: np.ndarray, n_layers: int, rho: float) -> float:
    """:func:`thinkscope.metrics.dtr.deep_thinking_ratio` of ``[T]`` depths (NaN when T = 0)."""
    return (
        deep_thinking_ratio(torch.from_numpy(depths), n_layers, rho)
        if len(depths)
        else float("nan")
    )


def _check_grid(option: str, grid: tuple[float, ...], positive: bool) -> None:
    """A grid must be non-empty, without repeats, and > 0 (``positive``) or >= 0."""
    values = ", ".join(map(str, grid))
    if not grid:
        raise UserError(f"{option} needs at least one value")
    if len(set(grid)) < len(grid):
        raise UserError(f"{option} lists a value twice: {values}")
    if any(v < 0 or (positive and v == 0) for v in grid):
        raise UserError(f"{option} values must be {'>' if positive else '>='} 0, got {values}")


def _plain(values: dict) -> dict:
    return {
        k: str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v
        for k, v in values.items()
    }
