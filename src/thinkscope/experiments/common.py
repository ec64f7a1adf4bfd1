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
from dataclasses import asdict, dataclass, field
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import torch

from thinkscope.core.atomic import write_yaml
from thinkscope.core.errors import UserError
from thinkscope.generation.pipeline import GenerateConfig, generate_run
from thinkscope.metrics.dtr import deep_thinking_ratio, settling_depth
from thinkscope.models import LM, load_model, load_tokenizer
from thinkscope.runs.folder import Run
from thinkscope.scoring import score

matplotlib.use("Agg")
SCORED_METRICS = "dtr,length,jsd-profile"
import matplotlib.pyplot as plt  # noqa: E402


@dataclass(frozen=True)
class ExperimentConfig:
    """The knobs the experiments share (each uses the ones that make sense for it)."""

    out: Path
    model: str = "smollm2-135m"
    task: str = "demo-arith"
    questions: int = 12
    samples_per_question: int = 4
    max_new_tokens: int = 64
    temperature: float = 0.7
    prompt_style: str = "fewshot"
    seed: int = 0
    g: float = 0.5
    rho: float = 0.85
    plot_out: Path | None = None
    run: Path | None = None  # a finished run to reuse instead of generating ("main" only)
    loading: dict = field(default_factory=dict)  # load_model options (dtype, device, ...)

    def generation(self, **overrides) -> GenerateConfig:
        values = dict(
            model=self.model,
            task=self.task,
            questions=self.questions,
            n=self.samples_per_question,
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            prompt_style=self.prompt_style,
            seed=self.seed,
        )
        return GenerateConfig.parse(**{**values, **overrides})


class Experiment:
    """One experiment's folder, model and scored runs."""

    def __init__(self, name: str, config: ExperimentConfig, lm: LM | None = None) -> None:
        self.name, self.config = name, config
        self.out = Path(config.out)
        if (self.out / "results.csv").is_file():
            raise UserError(f"{self.out} holds a finished experiment; choose another --out")
        self.out.mkdir(parents=True, exist_ok=True)
        write_yaml(self.out / "experiment.yaml", {"experiment": name, **_plain(asdict(config))})
        self._lm = lm

    @property
    def model(self) -> str:
        """The model of the traces: ``--run``'s own, else ``--model``."""
        if self.config.run is not None:
            return Run.open(self.config.run).config.get("model", self.config.model)
        return self.config.model

    @property
    def lm(self) -> LM:
        if self._lm is None:
            self._lm = load_model(self.model, **self.config.loading)
        return self._lm

    def tokenizer(self):
        return self._lm.tokenizer if self._lm is not None else load_tokenizer(self.model)

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
        return table


def jsd_matrix(token_metrics: pd.DataFrame) -> list[np.ndarray]:
    """Per trace, the JSD profile ``[T, L]`` (nats) as a float array."""
    return [
        np.asarray(list(profile), dtype=np.float64).reshape(len(profile), -1)
        for profile in token_metrics["jsd_profile"]
    ]


def settling_depths(jsd: np.ndarray, g: float) -> np.ndarray:
    """``[T]`` settling depths (1-indexed) of a JSD profile ``[T, L]`` in nats."""
    return settling_depth(torch.from_numpy(jsd), g).numpy()


def dtr(depths: np.ndarray, n_layers: int, rho: float) -> float:
    """:func:`thinkscope.metrics.dtr.deep_thinking_ratio` of ``[T]`` depths (NaN when T = 0)."""
    return (
        deep_thinking_ratio(torch.from_numpy(depths), n_layers, rho)
        if len(depths)
        else float("nan")
    )


def _plain(values: dict) -> dict:
    return {k: str(v) if isinstance(v, Path) else v for k, v in values.items()}
