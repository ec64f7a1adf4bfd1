"""lm-evaluation-harness's own command line, with the ``thinkscope`` model registered.

lm-eval 0.4 finds models only in its registry (no plugin entry points; ``--include_path``
adds tasks, not models), so the plain ``lm_eval`` command cannot load an out-of-tree model.
:func:`run_harness` registers it, puts :data:`~thinkscope.lmeval.TASKS_DIR` on the task
include path and hands every other argument to lm-eval unchanged, but ``backend=vllm`` in the
thinkscope model's ``model_args``, which runs lm-eval's ``vllm`` model instead, or
``thinkscope-vllm`` with the decoding knobs (:mod:`thinkscope.lmeval.backend`). With
``log_steps=true`` in the thinkscope model's ``model_args`` the harness builds the model
itself (as lm-eval would), and after the evaluation writes its per-step rank logs beside
lm-eval's samples files (:mod:`thinkscope.lmeval.steps`); that needs ``--output_path`` and
``--log_samples``.

At the boundary lm-eval's failures become thinkscope's one-line errors: a bad argument, an
unknown task or another mistake lm-eval finds before it loads the model is a
:class:`~thinkscope.core.errors.UserError`; a failure after that is a
:class:`~thinkscope.core.errors.RunFailure` (the original exception is its cause, shown with
``thinkscope --debug``). lm-eval's git hash of the working directory runs ``git`` with the
terminal's stderr, which prints "fatal: not a git repository" outside a checkout; it runs
quietly here.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from thinkscope.core.errors import RunFailure, UserError
from thinkscope.lmeval import TASKS_DIR
from thinkscope.lmeval.backend import VLLM_MODEL, on_backend
from thinkscope.lmeval.record import record_eval
from thinkscope.lmeval.steps import write_step_logs
from thinkscope.runstore.folder import now

LIST_TASKS = f"list them with `lm-eval ls tasks --include_path {TASKS_DIR}`"


def harness_argv(args: Sequence[str]) -> list[str]:
    """lm-eval arguments: ``--model thinkscope`` unless given, and the bundled tasks' path."""
    argv = list(args)
    if not any(a == "--model" or a.startswith("--model=") for a in argv):
        argv = ["--model", "thinkscope", *argv]
    if not any(a == "--include_path" or a.startswith("--include_path=") for a in argv):
        argv += ["--include_path", str(TASKS_DIR)]
    return argv


def run_harness(args: Sequence[str]) -> None:
    """Run ``lm_eval run ARGS`` in this process with the thinkscope model registered."""
    import lm_eval.models  # noqa: F401  (lm-eval's own; get_model imports them into an empty registry only)
    from lm_eval._cli import HarnessCLI
    from lm_eval.utils import setup_logging

    import thinkscope.lmeval.model  # noqa: F401  (registers "thinkscope")

    saved, argv, started = sys.argv, harness_argv(args), now()
    sys.argv = ["lm-eval", "run", *argv]
    try:
        setup_logging()
        cli = HarnessCLI()
        parsed = _parse(cli)
        if not parsed.tasks and not parsed.config:
            raise UserError(f"--tasks is required, e.g. --tasks gsm8k_cot_thinkscope; {LIST_TASKS}")
        run = on_backend(parsed)
        if run.model == VLLM_MODEL:
            _register_vllm_model()
        kept: list = []
        logging_steps = _logs_steps(run)
        with _boundary(), _model_kept(kept) if logging_steps else contextlib.nullcontext():
            cli.execute(run)
        for model, tracker in kept:
            _write_steps(model, tracker)
        record_eval(parsed, started)
    finally:
        sys.argv = saved


def _register_vllm_model() -> None:
    """Register ``thinkscope-vllm`` (importing lm-eval's vllm model, hence vLLM)."""
    try:
        import thinkscope.lmeval.vllm_model  # noqa: F401
    except ImportError as err:
        raise UserError(
            f"model_args backend=vllm: lm-eval's vllm model does not load with this vLLM "
            f"({type(err).__name__}: {err}); install thinkscope[gpu]"
        ) from err


def _logs_steps(run) -> bool:
    """Whether the thinkscope model is asked for per-step logs (its args checked, and the
    lm-eval options the logs need, before anything loads)."""
    from thinkscope.lmeval.model import step_args_from

    if run.model != "thinkscope" or not step_args_from(dict(run.model_args or {})).log_steps:
        return False
    if not run.output_path or not run.log_samples:
        raise UserError(
            "model_args log_steps=true writes the rank logs beside lm-eval's samples: add "
            "--output_path DIR --log_samples"
        )
    return True


@contextlib.contextmanager
def _model_kept(kept: list) -> Iterator[None]:
    """lm-eval's ``simple_evaluate`` on a thinkscope model built here (as lm-eval builds it),
    kept in ``kept`` with the evaluation tracker, so that its step log can be written."""
    import lm_eval.evaluator as evaluator
    from lm_eval.api.registry import get_model

    inner = evaluator.simple_evaluate

    def simple_evaluate(*args, **kwargs):
        extra = {k: kwargs.get(k) for k in ("batch_size", "max_batch_size", "device")}
        model_args, model_class = kwargs.get("model_args") or {}, get_model("thinkscope")
        if isinstance(model_args, str):
            model = model_class.create_from_arg_string(model_args, extra)
        else:
            model = model_class.create_from_arg_obj(model_args, extra)
        tracker = kwargs.get("evaluation_tracker")
        kept.append((model, tracker))
        results = inner(*args, **{**kwargs, "model": model})
        if results is not None:  # as if lm-eval had built it
            results["config"]["model"] = "thinkscope"
        if tracker is not None:
            tracker.general_config_tracker.model_source = "thinkscope"
        return results

    evaluator.simple_evaluate = simple_evaluate
    try:
        yield
    finally:
        evaluator.simple_evaluate = inner


def _write_steps(model, tracker) -> None:
    """The model's step logs beside the samples files ``tracker`` wrote."""
    if not model.step_log:
        print("log_steps: no generated responses to log (the tasks only score likelihoods)")
        return
    folder = Path(tracker.output_path)
    if folder.suffix == ".json":
        folder = folder.parent
    else:
        folder = folder / str(tracker.general_config_tracker.model_name_sanitized)
    paths = write_step_logs(model.step_log, folder, tracker.date_id, model.steps.low_conf_threshold)
    print("per-step rank logs:", *map(str, paths), sep="\n  ")


def _parse(cli):
    """lm-eval's parsed arguments; its usage error (printed by argparse with the usage, then an
    exit) as a one-line UserError."""
    printed = io.StringIO()
    try:
        with contextlib.redirect_stderr(printed):
            return cli.parse_args()
    except SystemExit as err:
        if not err.code:  # -h: the help went to stdout
            raise
        lines = printed.getvalue().strip().splitlines() or [f"exit {err.code}"]
        reason = lines[-1].split("error: ", 1)[-1]
        raise UserError(f"{reason} (see `lm-eval run --help`)") from None


@contextlib.contextmanager
def _boundary() -> Iterator[None]:
    """lm-eval's failures as UserError (before the evaluation starts) or RunFailure, and its git
    hash without git's complaint on stderr."""
    import lm_eval.evaluator as evaluator

    original_evaluate, original_hash = evaluator.simple_evaluate, evaluator.get_git_commit_hash
    started = []

    def simple_evaluate(*args, **kwargs):
        started.append(True)
        return original_evaluate(*args, **kwargs)

    evaluator.simple_evaluate, evaluator.get_git_commit_hash = simple_evaluate, _git_hash
    try:
        yield
    except (UserError, RunFailure):
        raise
    except ValueError as err:
        if started:
            raise RunFailure(f"lm-eval failed: {err}") from err
        if str(err).startswith("Tasks not found"):
            raise UserError(f"--tasks: {err}; {LIST_TASKS}") from err
        raise UserError(f"lm-eval: {err}") from err
    except Exception as err:
        raise RunFailure(f"lm-eval failed: {type(err).__name__}: {err}") from err
    finally:
        evaluator.simple_evaluate, evaluator.get_git_commit_hash = original_evaluate, original_hash


def _git_hash() -> str | None:
    """What lm-eval's ``get_git_commit_hash`` returns, with git's stderr captured."""
    from lm_eval.loggers.utils import get_commit_from_path

    try:
        done = subprocess.run(
            ["git", "describe", "--always"], capture_output=True, text=True, check=True
        )
    except (subprocess.CalledProcessError, FileNotFoundError):
        return get_commit_from_path(os.getcwd())
    return done.stdout.strip()
