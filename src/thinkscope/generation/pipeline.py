"""``thinkscope generate``: problems in, a run folder of graded traces out, resumable."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import Field
from rich.console import Console

from thinkscope.cluster import Cluster
from thinkscope.core.errors import UserError
from thinkscope.core.progress import progress_bar
from thinkscope.decoding import DecodingConfig
from thinkscope.decoding.config import DecodingKnobs, Knobs
from thinkscope.generation.backends import choose_backend, make_backend, start_vllm
from thinkscope.generation.backends.hf import HFBackend
from thinkscope.generation.sampler import BatchSampler, SamplingParams
from thinkscope.generation.seeds import sample_seed
from thinkscope.generation.spec import SamplingSpec
from thinkscope.models import LM, load_model, load_tokenizer
from thinkscope.models.spec import EngineSpec, ModelSpec
from thinkscope.runstore.folder import Run, now
from thinkscope.runstore.header import register
from thinkscope.runstore.trace import Trace
from thinkscope.tasks.answers import grade
from thinkscope.tasks.loaders import fewshot_examples, load_problems
from thinkscope.tasks.problem import Problem
from thinkscope.tasks.prompts import render_prompt
from thinkscope.tasks.spec import TaskSpec


class GenerateConfig(ModelSpec, EngineSpec, TaskSpec, SamplingSpec, DecodingKnobs):
    """Everything that decides which traces a run holds (saved flat as ``config.yaml``): the
    model (resolved: the dtype used and the weights' identity), vLLM's placement of it, the
    task, the sampling, the decoding knobs, and how the batches are run."""

    batch_size: int = Field(64, ge=1, description="Sequences decoded at once.")
    backend: Literal["auto", "hf", "vllm"] = "auto"  # stored resolved: hf or vllm

    def decoding(self) -> DecodingConfig:
        """The decoding rule of this run: temperature, top-k/p, min-p and the extra knobs."""
        names = ["temperature", "top_k", "top_p", "min_p", *Knobs.model_fields]
        return DecodingConfig(**{name: getattr(self, name) for name in names})

    def sampling(self, stop: tuple[str, ...] = ()) -> SamplingParams:
        return SamplingParams(
            decoding=self.decoding(),
            max_new_tokens=self.max_new_tokens,
            stop=(*stop, *self.stop),
            top_logprobs=self.top_logprobs,
            log_steps=self.log_steps,
        )

    @property
    def unit_questions(self) -> int:
        """Questions per unit of work (one batch, one shard): as many whole questions of ``n``
        samples as ``batch_size`` sequences hold, at least one."""
        return max(1, self.batch_size // self.n)


def question_units(problems: list[Problem], per_unit: int) -> Iterator[tuple[str, list[Problem]]]:
    """``(name, problems)`` units of ``per_unit`` consecutive problems, named by their index
    (``00000``, ``00001``, ...): the shard names of a resumable run."""
    for start in range(0, len(problems), per_unit):
        yield f"{start // per_unit:05d}", problems[start : start + per_unit]


def generate_unit(
    lm: LM | None, problems: list[Problem], config: GenerateConfig, backend=None
) -> tuple[list[Trace], BatchSampler]:
    """Sample ``config.n`` completions of each problem in one batch and grade them, with
    ``backend`` (see :mod:`thinkscope.generation.backends`; default: the sampler on ``lm``)."""
    backend = backend or HFBackend(lm)
    tokenizer = backend.tokenizer
    shots = fewshot_examples(config.task, config.shots, config.seed)
    prompts = [
        render_prompt(tokenizer, p, config.prompt_style, config.template, shots) for p in problems
    ]
    prompt_ids = [tokenizer(p.text, add_special_tokens=not p.chat)["input_ids"] for p in prompts]
    rows = [(i, k) for i in range(len(problems)) for k in range(config.n)]
    seeds = [sample_seed(config.seed, problems[i].id, k) for i, k in rows]
    sampler = backend.complete(
        [prompt_ids[i] for i, _ in rows], seeds, config.sampling(prompts[0].stop)
    )
    traces = []
    for (i, k), seed, done in zip(rows, seeds, sampler.completions, strict=True):
        problem = problems[i]
        text = tokenizer.decode(done.token_ids, skip_special_tokens=True)
        graded = grade(text, problem.answer)
        traces.append(
            Trace(
                problem_id=problem.id,
                sample_idx=k,
                question=problem.question,
                gold=problem.answer,
                prompt=prompts[i].text,
                completion=text,
                prompt_ids=prompt_ids[i],
                token_ids=done.token_ids,
                token_logprobs=done.logprobs,
                finish_reason=done.finish_reason,
                pred=graded.pred,
                correct=graded.correct,
                sample_seed=seed,
                top_ids=done.top_ids,
                top_logprobs=done.top_logprobs,
                step_pmax=done.step_pmax,
                step_rank=done.step_rank,
                step_prob=done.step_prob,
                step_kept=done.step_kept,
            )
        )
    return traces, sampler


def summarize(frame: pd.DataFrame, timing: dict) -> dict:
    return {
        "samples": len(frame),
        "accuracy": round(float(frame["correct"].mean()), 4) if len(frame) else None,
        "mean_tokens": round(float(frame["n_tokens"].mean()), 2) if len(frame) else None,
        "tokens_per_s": timing.get("tokens_per_s"),
    }


def _unit_worker(config: GenerateConfig, path: Path, lm: LM | None = None, backend=None):
    """``work(unit name) -> counts``: generates one unit into the run folder's shards with
    ``backend`` (default: ``config``'s, loaded on the first call; a Ray worker builds one of
    these)."""
    problems = load_problems(config.task, config.questions, config.seed, config.fields)
    units = dict(question_units(problems, config.unit_questions))
    run = Run(path)

    def work(name: str) -> dict:
        nonlocal backend
        backend = backend or make_backend(config.backend, config, lm, config.seed)
        traces, sampler = generate_unit(None, units[name], config, backend)
        run.write_unit(name, pd.DataFrame([t.row() for t in traces]))
        return dict(
            unit=name,
            samples=len(traces),
            generated=sampler.generated_tokens,
            prefill=sampler.prefill_tokens,
        )

    return work


def already_finished(run: Run, config: dict, show_progress: bool = True) -> Run:
    """``--resume`` on a finished run: nothing to do with the same config, an error with
    another one."""
    stored = run.config
    changed = sorted(k for k in config.keys() | stored.keys() if config.get(k) != stored.get(k))
    if changed:
        raise UserError(
            f"{run.path} holds a finished run whose config differs in "
            f"{', '.join(changed)}; choose another --out"
        )
    run.logger().info("resume: the run is complete; nothing to do")
    if show_progress:
        Console(stderr=True).print(f"{run.path} is complete (same config): nothing to do")
    return run


def generate_run(
    config: GenerateConfig,
    out,
    resume: bool = False,
    lm: LM | None = None,
    show_progress: bool = True,
    cluster: Cluster | None = None,
) -> Run:
    """Generate and grade ``config.n`` samples per problem into the run folder ``out``; with
    ``cluster``, units are shared among Ray workers that each write their shards. The model is
    ``lm`` or the one ``config`` specifies; ``config.yaml`` records the resolved spec (the
    dtype used, the weights' identity; a recorded identity must match). A vLLM engine that
    cannot start fails the run before anything is written, or with ``backend="auto"`` leaves
    it to ``hf`` (the reason is printed and logged)."""
    name, why = choose_backend(config.backend, model_loaded=lm is not None, loading=config)
    requested = config.backend
    config = config.model_copy(update={"backend": name}).resolved(lm)
    if resume and Run(out).finished:
        return already_finished(Run(out), config.model_dump(), show_progress)
    problems = load_problems(config.task, config.questions, config.seed, config.fields)
    tokenizer = lm.tokenizer if lm else load_tokenizer(config)
    render_prompt(tokenizer, problems[0], config.prompt_style, config.template)  # fail early
    Run.check_start(out, config.model_dump(), resume=resume)
    engine = None
    if name == "vllm" and cluster is None:
        engine, fallback = start_vllm(requested, config, config.seed)
        if engine is None:
            name, why, config = "hf", fallback, config.model_copy(update={"backend": "hf"})
    if name == "hf" and cluster is None:
        lm = lm or load_model(ModelSpec.of(config))
    run = Run.start(out, config.model_dump(), resume=resume)
    log = run.logger()
    log.info("backend: %s (%s)", name, why)
    if show_progress:
        Console(stderr=True).print(f"backend: {name} ({why})", soft_wrap=True, markup=False)
    units = list(question_units(problems, config.unit_questions))
    done = run.done_units()
    log.info(
        "generate: %d problems x %d samples, %d units, %d already done",
        len(problems),
        config.n,
        len(units),
        len(done),
    )
    started, wall, generated, prefill = now(), time.perf_counter(), 0, 0
    with progress_bar("generate", "samples", show_progress) as progress:
        bar = progress.add_task("generate", total=len(problems) * config.n, rate="")
        progress.advance(bar, sum(len(u) for name, u in units if name in done) * config.n)
        todo = [name for name, _ in units if name not in done]
        if cluster is None:
            work = _unit_worker(config, run.path, lm, engine)
            results = map(work, todo)
        else:
            factory = functools.partial(_unit_worker, config, run.path, None)
            results = cluster.map(factory, todo)
        for result in results:
            generated += result["generated"]
            prefill += result["prefill"]
            rate = generated / (time.perf_counter() - wall)
            progress.update(bar, advance=result["samples"], rate=f"{rate:.1f} tok/s")
            log.info(
                "unit %s: %d samples, %d tokens",
                result["unit"],
                result["samples"],
                result["generated"],
            )
    run.add_session(
        {
            "started_at": started,
            "ended_at": now(),
            "wall_s": round(time.perf_counter() - wall, 3),
            "generated_tokens": generated,
            "prefill_tokens": prefill,
        }
    )
    frame = run.finish([name for name, _ in units])
    summary = summarize(frame, run.timing)
    log.info("finished: %s", summary)
    register(run.path, "generate", run.config, summary, started)
    return run
