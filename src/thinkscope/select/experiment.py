"""The selection experiment: every method on one shared sample pool, honest token accounting.

For repeat r and question q, sample k has seed ``sample_seed(seed, q.id, k, r)`` under every
method. Per (repeat, unit of questions) one shard of outcome rows (one per question and method)
is written atomically, so a killed run resumes where it stopped. Layout of ``DIR``::

    config.yaml, env.json, log.txt, timing.json   as for any run folder
    shards/r{repeat}-q{first question}.parquet    outcome rows (kept: they are the data)
    outcomes.parquet                              all outcome rows
    selection.png                                 accuracy versus relative cost
    selection.csv                                 the table (written last: marks the run done)

Columns of the table, per method, averaged over repeats: ``accuracy`` (``accuracy_std``: std
over repeats; empty with one repeat), ``tokens`` (every sampled token summed over questions,
EOS and pruned prefixes included), ``prefill_tokens`` (prompt tokens run through the model:
each distinct prompt once per sampler, so DeepConf online, with two samplers, prefills twice),
``relative_cost`` (tokens over Cons@n's), ``voters`` (samples voting per question),
``pool_mismatches`` (samples whose tokens differ from Cons@n's, summed: non-zero only through
batch-shape float noise) and
``wall_s`` (the method's own seconds; Think@n's include the lens; noisy on a shared machine),
``lens_s`` and ``lens_gflop`` (of those, the seconds and the unembedding GFLOPs spent scoring
prefixes from hidden states: Think@n's lens, Self-Certainty@n's head; 0 for the others).
The ``one-sample`` row is one sample of Cons@n's pool in expectation: its accuracy is the
pool's mean sample accuracy (pass@1), its tokens and time a sample's mean.

Think@n runs twice: ``think@n`` by the thresholded prefix DTR, and ``think@n-depth`` by a
continuous prefix score (``continuous``: ``depth``, the mean settling depth, or ``dtr+depth``,
DTR with the mean settling depth as tie-break).

With ``backend="vllm"`` vLLM generates (:mod:`thinkscope.select.staged`) and the HF model
scores: ``prefill_tokens`` are then the prompt tokens vLLM reports it computed (its prefix
cache serves the rest), and ``pool_mismatches`` counts the kept samples whose continuation (a
fresh seeded stream after the prefix) differs from Cons@n's. With a Ray cluster each worker
runs whole units (:func:`unit_worker`) and writes their shards.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pandas as pd
from pydantic import field_validator, model_validator
from rich.console import Console
from typing_extensions import Self

from thinkscope.cluster import Cluster
from thinkscope.core.atomic import write_parquet, write_text
from thinkscope.core.errors import UserError
from thinkscope.core.progress import progress_bar
from thinkscope.core.spec import with_default
from thinkscope.generation.backends import choose_backend, start_vllm
from thinkscope.generation.pipeline import GenerateConfig
from thinkscope.generation.seeds import sample_seed
from thinkscope.generation.spec import SamplingSpec
from thinkscope.metrics.dtr_spec import DTRSpec
from thinkscope.models import LM, load_model, load_tokenizer
from thinkscope.models.spec import VLLM_SHARED_MEMORY, EngineSpec, ModelSpec
from thinkscope.runstore.folder import Run, now
from thinkscope.runstore.header import register
from thinkscope.select import staged
from thinkscope.select.deepconf import deepconf_offline, deepconf_online
from thinkscope.select.figure import plot_selection
from thinkscope.select.pool import Generation, Pool, cons_at_n, pool_mismatches
from thinkscope.select.spec import SelectKnobs
from thinkscope.select.think import (
    PrefixDTR,
    PrefixScore,
    PrefixSelfCertainty,
    PrefixSettlingDepth,
    think_at_n,
)
from thinkscope.select.vote import vote
from thinkscope.tasks.answers import Grade, grade
from thinkscope.tasks.loaders import fewshot_examples, load_problems
from thinkscope.tasks.problem import Problem
from thinkscope.tasks.prompts import render_prompt
from thinkscope.tasks.spec import TaskSpec

METHODS = (
    "one-sample",
    "cons@n",
    "think@n",
    "think@n-depth",
    "self-certainty@n",
    "deepconf-offline",
    "deepconf-online",
)


class SelectConfig(GenerateConfig, DTRSpec, SelectKnobs):
    """A selection experiment: the sampling of :class:`GenerateConfig`, the DTR parameters,
    and the methods' knobs. Its own defaults (short arithmetic a small model answers in 48
    tokens, 8 samples, the k of DeepConf) are ``think-at-n``'s."""

    task: str = with_default(TaskSpec, "task", "demo-arith")
    n: int = with_default(SamplingSpec, "n", 8)
    max_new_tokens: int = with_default(SamplingSpec, "max_new_tokens", 48)
    prompt_style: str = with_default(TaskSpec, "prompt_style", "fewshot")
    top_logprobs: int = with_default(SamplingSpec, "top_logprobs", 20)
    batch_size: int = with_default(GenerateConfig, "batch_size", 128)
    gpu_memory_utilization: float = with_default(
        EngineSpec, "gpu_memory_utilization", VLLM_SHARED_MEMORY
    )

    @field_validator("top_logprobs")
    @classmethod
    def _deepconf_k(cls, k: int) -> int:
        if k < 1:
            raise ValueError("must be >= 1: it is DeepConf's k")
        return k

    @model_validator(mode="after")
    def _prefix_within_sample(self) -> Self:
        if self.prefix_tokens > self.max_new_tokens:
            raise ValueError(
                f"--prefix-tokens {self.prefix_tokens} is longer than a whole sample "
                f"(--max-new-tokens {self.max_new_tokens}); lower it or raise --max-new-tokens"
            )
        return self

    def continuous_score(self, lm: LM) -> PrefixScore:
        """The continuous prefix score of ``think@n-depth``."""
        if self.continuous == "depth":
            return PrefixSettlingDepth(lm, self.g, self.base)
        return PrefixDTR(lm, self.g, self.rho, self.base, tie_break=True)

    @property
    def warmup_samples(self) -> int:
        warmup = self.warmup or max(1, self.n // 4)
        if warmup > self.n:
            raise UserError(f"--warmup must be at most --n ({self.n}), got {warmup}")
        return warmup


def run_methods(
    pool: Pool,
    config: SelectConfig,
    done: Callable[[str], None] = lambda method: None,
    engine=None,
) -> dict[str, tuple[Generation, float]]:
    """Each method's generation on ``pool`` and its wall time in seconds (DeepConf offline
    reuses Cons@n's generation, so it gets Cons@n's tokens and time); ``done(method)`` is
    called as each one finishes. ``engine``: a staged engine (the vLLM backend, see
    :mod:`thinkscope.select.staged`) that generates instead of the pool's HF sampler."""
    if engine is None:
        cons = partial(cons_at_n, pool)
        think = partial(think_at_n, pool)
        online = partial(deepconf_online, pool)
    else:
        cons = partial(staged.cons_at_n, pool, engine)
        think = partial(staged.think_at_n, pool, engine, batch_size=config.batch_size)
        online = partial(staged.deepconf_online, pool, engine)
    prefix, keep = config.prefix_tokens, config.keep_ratio
    methods = {
        "cons@n": cons,
        "think@n": lambda: think(
            PrefixDTR(pool.lm, config.g, config.rho, config.base), prefix, keep
        ),
        "think@n-depth": lambda: think(config.continuous_score(pool.lm), prefix, keep),
        "self-certainty@n": lambda: think(PrefixSelfCertainty(pool.lm), prefix, keep),
        "deepconf-online": lambda: online(config.warmup_samples, config.eta, config.window),
    }
    out = {}
    for name, method in methods.items():
        start = time.perf_counter()
        out[name] = (method(), time.perf_counter() - start)
        done(name)
    complete, wall = out["cons@n"]  # offline filtering needs Cons@n's complete pool: its cost
    out["deepconf-offline"] = (deepconf_offline(complete, config.eta, config.window), wall)
    return out


def outcome_rows(pool: Pool, problems: list[Problem], generations: dict, repeat: int) -> list[dict]:
    """One row per question and method (and one-sample), graded and voted; ``sample_scores`` are
    the method's selection scores of the n samples, ``sample_correct`` their grades (Cons@n)."""
    lm, cons = pool.lm, generations["cons@n"][0]
    cache: dict[tuple[int, tuple[int, ...]], Grade] = {}

    def graded(q: int, k: int, generation: Generation) -> Grade:
        ids = tuple(generation.completions[q][k].token_ids)
        if (q, ids) not in cache:
            text = lm.tokenizer.decode(list(ids), skip_special_tokens=True)
            cache[q, ids] = grade(text, problems[q].answer)
        return cache[q, ids]

    rows = []
    cons_correct = [
        [graded(q, k, cons).correct for k in range(pool.n)] for q in range(len(problems))
    ]
    for method, (gen, wall) in generations.items():
        tokens, mismatches = gen.tokens(), pool_mismatches(gen, cons)
        for q, problem in enumerate(problems):
            grades = [graded(q, k, gen) for k in gen.voters[q]]
            answer = vote([g.pred for g in grades], gen.weights[q])
            correct = any(g.correct for g in grades if g.pred == answer and answer is not None)
            rows.append(
                dict(
                    repeat=repeat,
                    question_id=problem.id,
                    gold=problem.answer,
                    method=method,
                    answer=answer,
                    correct=float(correct),
                    tokens=float(tokens[q]),
                    prefill_tokens=gen.prefill_tokens[q],
                    voters=len(grades),
                    pool_mismatches=mismatches[q],
                    wall_s=wall / len(problems),
                    lens_s=gen.lens_s / len(problems),
                    lens_gflop=gen.lens_flops / 1e9 / len(problems),
                    sample_scores=gen.scores[q],
                    sample_correct=cons_correct[q],
                )
            )
    cons_tokens, cons_wall = cons.tokens(), generations["cons@n"][1]
    for q, problem in enumerate(problems):  # one sample of the Cons@n pool, in expectation
        rows.append(
            dict(
                repeat=repeat,
                question_id=problem.id,
                gold=problem.answer,
                method="one-sample",
                answer=None,
                correct=sum(cons_correct[q]) / pool.n,
                tokens=cons_tokens[q] / pool.n,
                prefill_tokens=cons.prefill_tokens[q],
                voters=1,
                pool_mismatches=0,
                wall_s=cons_wall / len(problems) / pool.n,
                lens_s=0.0,
                lens_gflop=0.0,
                sample_scores=[math.nan] * pool.n,
                sample_correct=cons_correct[q],
            )
        )
    return rows


def summarize(outcomes: pd.DataFrame) -> pd.DataFrame:
    """The selection table: per method, accuracy (mean and std over repeats) and cost per
    repeat (summed over questions, averaged over repeats); ``relative_cost`` is tokens over
    Cons@n's."""
    per_repeat = outcomes.groupby(["method", "repeat"]).agg(
        accuracy=("correct", "mean"),
        tokens=("tokens", "sum"),
        prefill_tokens=("prefill_tokens", "sum"),
        voters=("voters", "mean"),
        pool_mismatches=("pool_mismatches", "sum"),
        wall_s=("wall_s", "sum"),
        lens_s=("lens_s", "sum"),
        lens_gflop=("lens_gflop", "sum"),
    )
    table = per_repeat.groupby("method").agg(
        accuracy=("accuracy", "mean"),
        accuracy_std=("accuracy", "std"),
        tokens=("tokens", "mean"),
        prefill_tokens=("prefill_tokens", "mean"),
        voters=("voters", "mean"),
        pool_mismatches=("pool_mismatches", "sum"),
        wall_s=("wall_s", "mean"),
        lens_s=("lens_s", "mean"),
        lens_gflop=("lens_gflop", "mean"),
    )
    table["relative_cost"] = table["tokens"] / table.loc["cons@n", "tokens"]
    table = table.reindex([m for m in METHODS if m in table.index]).reset_index()
    columns = [
        "method",
        "accuracy",
        "accuracy_std",
        "tokens",
        "prefill_tokens",
        "relative_cost",
        "voters",
        "pool_mismatches",
        "wall_s",
        "lens_s",
        "lens_gflop",
    ]
    return table[columns].round(4)


def unit_starts(config: SelectConfig, questions: int) -> dict[str, tuple[int, int]]:
    """Units of work: name -> (repeat, first question); ``config.unit_questions`` each."""
    return {
        f"r{r:03d}-q{s:05d}": (r, s)
        for r in range(config.repeats)
        for s in range(0, questions, config.unit_questions)
    }


def unit_worker(
    config: SelectConfig, path: Path, lm: LM | None = None, engine=None
) -> Callable[..., dict]:
    """``work(unit name, done=...) -> counts``: runs every method on one unit and writes its
    shard of outcome rows (a Ray worker builds one of these: the model, and on ``vllm`` the
    ``engine`` unless given, load once, as ``config`` says)."""
    problems = load_problems(config.task, config.questions, config.seed, config.fields)
    lm = lm or load_model(ModelSpec.of(config))
    if config.backend == "vllm" and engine is None:
        engine, _ = start_vllm("vllm", config, config.seed)
    shots = fewshot_examples(config.task, config.shots, config.seed)
    prompts = [
        render_prompt(lm.tokenizer, p, config.prompt_style, config.template, shots)
        for p in problems
    ]
    prompt_ids = [lm.tokenizer(p.text, add_special_tokens=not p.chat)["input_ids"] for p in prompts]
    params = config.sampling(prompts[0].stop)
    units, run = unit_starts(config, len(problems)), Run(path)

    def work(name: str, done: Callable[[str], None] = lambda method: None) -> dict:
        repeat, start = units[name]
        chunk = slice(start, start + config.unit_questions)
        seeds = [
            [sample_seed(config.seed, p.id, k, repeat) for k in range(config.n)]
            for p in problems[chunk]
        ]
        pool = Pool(lm, prompt_ids[chunk], seeds, params)
        generations = run_methods(pool, config, done, engine)
        run.write_unit(name, pd.DataFrame(outcome_rows(pool, problems[chunk], generations, repeat)))
        return dict(
            unit=name,
            samples=pool.questions * pool.n,
            dtype=str(lm.dtype),
            tokens={m: sum(g.tokens()) for m, (g, _) in generations.items()},
        )

    return work


def run_selection(
    config: SelectConfig,
    out: Path | str,
    resume: bool = False,
    lm: LM | None = None,
    show_progress: bool = True,
    cluster: Cluster | None = None,
) -> pd.DataFrame:
    """Run every method ``config.repeats`` times on ``config.questions`` problems into ``out``;
    return the selection table (also written to ``out/selection.csv``). Resuming a finished
    run with the same config returns its table; a different config is an error. The model is
    ``lm`` or ``config``'s (recorded resolved: dtype used, weights' identity). With
    ``cluster``, units are shared among Ray workers that each write their shards.
    ``config.backend``: ``hf``, ``vllm`` (generation on vLLM, scoring on the HF model) or
    ``auto`` (stored resolved; a vLLM engine that cannot start then leaves it to ``hf``, with
    the reason printed and logged; with ``vllm`` it fails the run before anything is written)."""
    out = Path(out)
    requested = config.backend
    backend, why = choose_backend(config.backend, model_loaded=lm is not None, loading=config)
    config = config.model_copy(update={"backend": backend}).resolved(lm)
    if (out / "selection.csv").is_file():
        if not resume:
            raise UserError(f"{out} holds a finished selection run; choose another --out")
        Run.check_start(out, config.model_dump(), resume=True)  # raises if the config differs
        return pd.read_csv(out / "selection.csv")
    warmup = config.warmup_samples  # fail early on a bad --warmup
    problems = load_problems(config.task, config.questions, config.seed, config.fields)
    tokenizer = lm.tokenizer if lm is not None else load_tokenizer(config)
    render_prompt(tokenizer, problems[0], config.prompt_style, config.template)  # fail early
    Run.check_start(out, config.model_dump(), resume=resume)
    engine = None
    if backend == "vllm" and cluster is None:
        engine, fallback = start_vllm(requested, config, config.seed)
        if engine is None:
            backend, why, config = "hf", fallback, config.model_copy(update={"backend": "hf"})
    if cluster is None:
        lm = lm or load_model(ModelSpec.of(config))
    run = Run.start(out, config.model_dump(), resume=resume)
    log, started, wall = run.logger(), now(), time.perf_counter()
    units = unit_starts(config, len(problems))
    names, done = list(units), run.done_units()
    log.info("backend: %s (%s)", backend, why)
    if show_progress:
        Console(stderr=True).print(f"backend: {backend} ({why})", soft_wrap=True, markup=False)
    log.info(
        "select: %d problems x %d samples x %d repeats (warm-up %d), %d units, %d done%s",
        len(problems),
        config.n,
        config.repeats,
        warmup,
        len(units),
        len(done),
        f", {cluster.workers} Ray workers" if cluster else "",
    )
    span = config.unit_questions
    sizes = {n: len(problems[s : s + span]) * config.n for n, (_, s) in units.items()}
    methods = len(METHODS) - 2  # one-sample and DeepConf offline generate nothing of their own
    todo = [n for n in names if n not in done]
    with progress_bar("select", "samples", show_progress) as progress:
        finished = sum(sizes[n] for n in names if n in done)
        bar = progress.add_task(
            "select", total=sum(sizes.values()) * methods, completed=finished * methods
        )
        sampled, clock = 0, time.perf_counter()

        def advance(size: int) -> None:
            nonlocal sampled
            sampled += size
            rate = sampled / (time.perf_counter() - clock)
            progress.update(bar, advance=size, rate=f"{rate:.2f}/s")

        if cluster is None:
            work = unit_worker(config, run.path, lm, engine)
            results = (work(n, lambda method, n=n: advance(sizes[n])) for n in todo)
        else:
            factory = partial(unit_worker, config, run.path, None)
            results = cluster.map(factory, todo)
        for result in results:
            if cluster is not None:
                advance(result["samples"] * methods)
            log.info(
                "unit %s (%s model): tokens %s", result["unit"], result["dtype"], result["tokens"]
            )
    outcomes = pd.concat(
        [pd.read_parquet(run.shards_dir / f"{n}.parquet") for n in names], ignore_index=True
    )
    table = summarize(outcomes)
    write_parquet(out / "outcomes.parquet", outcomes)
    plot_selection(
        table,
        out / "selection.png",
        title=f"{config.model} on {config.task}, "
        f"n={config.n}, prefix {config.prefix_tokens}, keep {config.keep_ratio}",
    )
    write_text(out / "selection.csv", table.to_csv(index=False))
    run.add_session(
        {"started_at": started, "ended_at": now(), "wall_s": round(time.perf_counter() - wall, 3)}
    )
    summary = {
        row.method: {"accuracy": row.accuracy, "relative_cost": row.relative_cost}
        for row in table.itertuples()
    }
    register(run.path, "think-at-n", run.config, summary, started)
    log.info("finished:\n%s", table.to_string(index=False))
    return table
