"""Run folders: the exact config, the environment, timing, a log, and the traces.

Layout::

    DIR/config.yaml     the exact config (written first; a run is resumed only with the same one)
    DIR/env.json        git commit, package versions, torch/CUDA, CPU/GPU, host
    DIR/log.txt         what the run said, appended across resumes
    DIR/shards/*.parquet  finished units of work while the run is going (atomic, one per unit)
    DIR/traces.parquet  all traces, once the run has finished
    DIR/timing.json     wall time and token counts per session; ``finished_at`` marks completion

A finished run folder is never written again by a new run.
"""

from __future__ import annotations

import json
import logging
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import yaml

from thinkscope.core.atomic import write_json, write_parquet, write_yaml
from thinkscope.core.errors import UserError
from thinkscope.runstore.environment import environment


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Run:
    """A run folder on disk."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    config_path = property(lambda self: self.path / "config.yaml")
    traces_path = property(lambda self: self.path / "traces.parquet")
    timing_path = property(lambda self: self.path / "timing.json")
    shards_dir = property(lambda self: self.path / "shards")

    @classmethod
    def open(cls, path: Path | str) -> Run:
        """An existing finished run (for scoring, analysis and reports)."""
        run = cls(path)
        if not run.path.is_dir():
            raise UserError(f"run folder not found: {run.path}")
        if not run.traces_path.is_file():
            raise UserError(f"{run.path} holds no traces.parquet: not a finished run folder")
        return run

    @classmethod
    def start(cls, path: Path | str, config: dict, resume: bool = False) -> Run:
        """Create a run folder for ``config``, or reopen an unfinished one when ``resume``."""
        run = cls.check_start(path, config, resume)
        if not run.config_path.is_file():
            run.path.mkdir(parents=True, exist_ok=True)
            write_yaml(run.config_path, config)
        write_json(run.path / "env.json", environment())
        return run

    @classmethod
    def check_start(cls, path: Path | str, config: dict, resume: bool = False) -> Run:
        """Raise the error :meth:`start` would raise, without writing anything."""
        run = cls(path)
        if run.config_path.is_file():
            if run.finished:
                raise UserError(f"{run.path} holds a finished run; choose another --out")
            if not resume:
                raise UserError(
                    f"{run.path} holds an unfinished run; pass --resume or choose another --out"
                )
            stored = run.config
            changed = sorted(
                k for k in config.keys() | stored.keys() if config.get(k) != stored.get(k)
            )
            if changed:
                raise UserError(
                    f"cannot resume {run.path}: its config differs in {', '.join(changed)}"
                )
        elif run.path.exists() and any(run.path.iterdir()):
            raise UserError(f"{run.path} exists and is not a run folder; choose another --out")
        return run

    @property
    def config(self) -> dict:
        return yaml.safe_load(self.config_path.read_text())

    @property
    def timing(self) -> dict:
        if not self.timing_path.is_file():
            return {"sessions": []}
        return json.loads(self.timing_path.read_text())

    @property
    def finished(self) -> bool:
        return "finished_at" in self.timing and self.traces_path.is_file()

    def logger(self) -> logging.Logger:
        """A logger that appends to ``log.txt``."""
        log = logging.getLogger(f"thinkscope.run.{self.path.resolve()}")
        if not log.handlers:
            handler = logging.FileHandler(self.path / "log.txt")
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            log.addHandler(handler)
            log.setLevel(logging.INFO)
            log.propagate = False
        return log

    def done_units(self) -> set[str]:
        return {p.stem for p in self.shards_dir.glob("*.parquet")}

    def write_unit(self, unit: str, frame: pd.DataFrame) -> None:
        write_parquet(self.shards_dir / f"{unit}.parquet", frame)

    def add_session(self, session: dict) -> None:
        timing = self.timing
        timing["sessions"] = [*timing.get("sessions", []), session]
        write_json(self.timing_path, timing)

    def finish(self, order: list[str]) -> pd.DataFrame:
        """Merge the unit shards (in ``order``) into ``traces.parquet`` and mark the run done."""
        frame = pd.concat(
            [pd.read_parquet(self.shards_dir / f"{unit}.parquet") for unit in order],
            ignore_index=True,
        )
        write_parquet(self.traces_path, frame)
        timing = self.timing
        sessions = timing.get("sessions", [])
        timing.update(
            finished_at=now(),
            wall_s=round(sum(s.get("wall_s", 0) for s in sessions), 3),
            generated_tokens=sum(s.get("generated_tokens", 0) for s in sessions),
            prefill_tokens=sum(s.get("prefill_tokens", 0) for s in sessions),
        )
        timing["tokens_per_s"] = round(timing["generated_tokens"] / max(timing["wall_s"], 1e-9), 2)
        write_json(self.timing_path, timing)
        shutil.rmtree(self.shards_dir, ignore_errors=True)
        return frame

    def traces(self) -> pd.DataFrame:
        return pd.read_parquet(self.traces_path)

    def write_traces(self, frame: pd.DataFrame) -> None:
        """Replace ``traces.parquet`` atomically (used by stages that add columns)."""
        write_parquet(self.traces_path, frame)
