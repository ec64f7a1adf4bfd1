"""No flag is ignored: every option of every command changes what reaches the library, or is
listed in PASS_THROUGH / BEHAVIOUR with the reason it cannot be seen there.

For each command of ``thinkscope.cli.app.COMMANDS`` (groups walked), the library functions it
hands its work to are replaced by stubs (STUBS) that record their arguments; the last one stops
the command. The command runs once with its required arguments and default options, then once
per option with that option alone set to a non-default value derived from the option's type and
default (:func:`other_value`); the recorded arguments must differ. A new option that the
command drops fails here; a new command fails until it has a STUBS entry.
"""

from __future__ import annotations

import re
import typing
from contextlib import nullcontext
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from typer.core import TyperArgument, TyperGroup

from thinkscope.cli.app import COMMANDS, load
from thinkscope.cli.tables import Format
from thinkscope.experiments import EXPERIMENTS


class Stop(Exception):
    """Raised by the last stub: the command reached the library."""


STOP = object()  # a stub's return value meaning "raise Stop"

# Options no command can be expected to pass on, with the reason.
PASS_THROUGH = {"help": "Click's own"}
# Commands whose arguments all pass through to another program, unparsed.
PASS_THROUGH_COMMANDS = {"eval": "every argument goes to lm_eval's own parser (tests/test_lmeval*)"}

# (command, option): why the option cannot be seen in a stub's arguments.
_CAL = "a pair needing a calibration.json (tests/test_decoding_cli.py::test_cal_acc_from_*)"
BEHAVIOUR = {
    **{
        (command, option): _CAL
        for command in ("generate", "traces", "think-at-n")
        for option in ("cal_acc_from", "cal_acc_threshold")
    },
    ("interp directions", "decode_layer"): "read after the directions are computed, to print "
    "the logit-lens words (tests/test_interp_command.py)",
    ("interp patch", "k"): "how many next tokens are printed after real forward passes",
    ("dataset build", "from_hub"): "replaces the run folder argument the walk gives "
    "(tests/test_hub.py::test_dataset_build_from_the_hub)",
    **{
        ("decoding-report", option): "a --samples report, instead of the RUN the walk gives "
        "(tests/test_decoding_samples.py)"
        for option in ("samples", "ranks", "filter_name", "out")
    },
}

# (command, option): the options it needs beside it (in both runs compared).
NEEDS = {("dataset build", "fallback_best_correct"): ["--min-dtr", "0.5"]}
# (command, option): the tokens to try where the option's name means other values elsewhere.
CHOICES = {
    ("dataset build", "preset"): ["--preset", "dtr-explorer"],
    ("experiment sft-filtering", "sizes"): ["--sizes", "1"],
    ("decoding-report", "threshold"): ["--threshold", "0.3"],  # unset means 0.5 on a RUN
}
# (command, argument): optional arguments the walk gives anyway (another option can replace
# them, tested on its own).
ARGUMENTS = {("dataset build", "run_dir"), ("decoding-report", "run")}
OUTPUTS = {"out", "plot_out", "root"}  # path options that name something to create: a fresh path

# Text options: valid values, the first that differs from the default is used.
TEXT = {
    "model": ("other-model", "smollm2-135m"),
    "backend": ("hf", "vllm"),
    "model_b": ("other-model",),
    "budget": ("standard",),
    "truncated": ("keep",),
    "task": ("gsm8k", "demo-arith"),
    "train_task": ("gsm8k", "demo-arith"),
    "prompt_style": ("direct", "cot"),
    "template": ("chat", "plain"),
    "dtype": ("float32", "bfloat16"),
    "device": ("cpu",),
    "device_map": ("auto",),
    "attn_implementation": ("eager",),
    "revision": ("main",),
    "dynamic_top_k": ("1,1,1,1,1,1,1,1,1,1",),
    "edt_var": ("1,0.5,1",),
    "cal_acc": ("0,1,0.5",),
    "ray_address": ("ray://head:10001",),
    "metrics": ("dtr", "length"),
    "continuous": ("dtr+depth",),
    "base": ("2",),
    "reference_field": ("solution",),
    "file": ("sft_all.jsonl",),
    "dtr_column": ("dtr_2",),
    "push_to_hub": ("user/repo",),
    "format": ("messages",),
    "layers": ("1-2",),
    "positions": ("mean", "last"),
    "preset": ("full",),
    "tasks": ("demo-arith,gsm8k",),
    "strengths": ("1,2",),
    "probe": ("mlp",),
    "stop": ("###",),
    "field": ("question=problem",),
    "fields": ("question=problem",),
    "target_modules": ("q_proj",),
    "g": ("0.3,0.6",),  # threshold-sweep's grid (a float elsewhere)
    "temperatures": ("0,1",),
    "traces": ("demo-000:0",),
    "figure_format": ("pdf",),
}


class FakeLM:
    """A loaded model as far as the commands look before their first library call."""

    n_layers, name, device = 4, "fake", "cpu"
    records: list = []

    def __init__(self, *args, **kwargs) -> None:
        self.spec = (args, kwargs)

    def __repr__(self) -> str:
        return f"FakeLM{self.spec}"

    def tokenizer(self, text: str) -> dict:
        self.records.append(("tokenizer", repr(text)))
        return {"input_ids": [1, 2]}

    def model(self, **inputs):
        raise Stop("model")

    def at(self, layer, unit=True):  # Directions.at
        self.records.append(("Directions.at", repr((layer, unit))))
        return "vector"


def fake_run(*args):
    return SimpleNamespace(
        path=Path("run"), config={}, traces=lambda: pd.DataFrame({"problem_id": []})
    )


def same_spec(spec, *args):
    """A model spec resolved to itself: the model names need not exist for this walk."""
    return spec


FACTORIES = (FakeLM, fake_run, same_spec)  # stubs returning these call them with their arguments
RESOLVE = ("thinkscope.models.spec.ModelSpec.resolved", same_spec)
LOAD = ("thinkscope.models.load_model", FakeLM)
# Per command: the library functions it calls, in order: (target, what the stub returns).
STUBS = {
    "demo": [("thinkscope.experiments.demo.run_demo", STOP)],
    "generate": [("thinkscope.generation.pipeline.generate_run", STOP)],
    "traces": [("thinkscope.generation.pipeline.generate_run", STOP)],
    "score": [
        ("thinkscope.runstore.folder.Run.open", fake_run),
        LOAD,
        ("thinkscope.scoring.stage.score_run", STOP),
    ],
    "analyze": [("thinkscope.analysis.run.analyze_run", STOP)],
    "report": [("thinkscope.analysis.report.build_report", STOP)],
    "think-at-n": [("thinkscope.select.experiment.run_selection", STOP)],
    "calibrate": [("thinkscope.experiments.decoding.calibrate.run_calibration", STOP)],
    "decoding-report": [("thinkscope.experiments.decoding.step_report.decoding_report", STOP)],
    "decode-sweep": [("thinkscope.experiments.decoding.sweep.decode_sweep", STOP)],
    "train": [
        ("thinkscope.sft.quant.check_4bit", None),
        ("thinkscope.sft.hub.check_hub", None),
        (
            "thinkscope.sft.trainer.train",
            SimpleNamespace(summary={}, adapter="a", path=Path("t"), finished_before=False),
        ),
        ("thinkscope.sft.merge.merge_adapter", STOP),
        ("thinkscope.sft.hub.push_folder", None),
    ],
    "merge": [
        ("thinkscope.sft.merge.find_adapter", Path("adapter")),
        ("thinkscope.sft.hub.check_hub", None),
        ("thinkscope.sft.merge.base_model_of", {"model": "base"}),
        ("thinkscope.sft.merge.merge_adapter", STOP),
    ],
    "compare": [("thinkscope.experiments.compare.core.compare_models", STOP)],
    "dataset build": [
        ("thinkscope.sft.hub.check_hub", None),
        ("thinkscope.sft.build_dataset", STOP),
    ],
    "dataset reference": [("thinkscope.sft.reference_dataset", STOP)],
    **{f"experiment {name}": [("thinkscope.experiments.Experiment", STOP)] for name in EXPERIMENTS},
    "experiment rev": [  # the grid (the default); RUN folders: tests/test_rev_experiment.py
        ("thinkscope.experiments.rev.spec.grid_config", SimpleNamespace(record=dict)),
        ("thinkscope.experiments.rev.grid.run_grid", STOP),
    ],
    "experiment sft-filtering": [("thinkscope.experiments.sft_filtering.run_sft_filtering", STOP)],
    "interp directions": [
        LOAD,
        ("thinkscope.interp.activations.sequences_from_run", (["a", "b"], np.array([1, 0]))),
        ("thinkscope.interp.activations.collect", None),
        ("thinkscope.interp.directions.diff_in_means", STOP),
    ],
    "interp probe": [
        LOAD,
        ("thinkscope.interp.activations.sequences_from_run", ([], [])),
        ("thinkscope.interp.activations.collect", None),
        ("thinkscope.interp.activations.load_rows", None),
        ("thinkscope.runstore.folder.Run.open", fake_run),
        ("thinkscope.interp.probes.check_labels", None),
        ("thinkscope.interp.probes.probe_layers", STOP),
    ],
    "interp cka": [
        RESOLVE,
        LOAD,
        ("thinkscope.interp.activations.collect", None),
        ("thinkscope.interp.activations.load_rows", None),
        ("thinkscope.interp.cka.cka_matrix", STOP),
    ],
    "interp steer": [
        LOAD,
        ("thinkscope.interp.directions.Directions.load", FakeLM),
        ("thinkscope.models.hooks.interventions.steer", nullcontext()),
        ("thinkscope.generation.sampler.BatchSampler", STOP),
    ],
    "interp patch": [LOAD, ("thinkscope.interp.activations.record", {})],
    "interp run": [RESOLVE, ("thinkscope.experiments.interp.pipeline.run_interp", STOP)],
    "models inspect": [("thinkscope.models.load_model", STOP)],
    "profile card": [("thinkscope.profile.runner.run_profile", STOP)],
    "profile diff": [("thinkscope.profile.diff.diff_profiles", STOP)],
    "runs export": [("thinkscope.runstore.registry.flat_runs", STOP)],
    "runs best": [("thinkscope.runstore.registry.best_run", STOP)],
    "runs reproduce": [
        ("thinkscope.runstore.registry.find_run", {"path": "run"}),
        ("thinkscope.experiments.reproduce.reproduce", STOP),
    ],
}


def leaves(path: str, command):
    """``(path, command)`` of every runnable command under ``command``."""
    if isinstance(command, TyperGroup):
        for name, sub in command.commands.items():
            yield from leaves(f"{path} {name}", sub)
    else:
        yield path, command


def _number(kind: type, param, default):
    """int: default + 1 (within the option's bounds; 2 when unset); float: another valid value."""
    if kind is int:
        base = default if default is not None else max(param.min or 0, 1)
        value = base + 1
        return base - 1 if param.max is not None and value > param.max else value
    if default is None:
        return 0.5
    return 0.25 if default == 0 else default / 2 if 0 < default <= 1 else default + 1


def other_value(param, tmp: Path, default=None) -> list[str]:
    """The command-line tokens of a valid value of ``param`` other than ``default``."""
    kind = param.type_descriptor.annotation
    if typing.get_origin(kind) is list:
        kind = typing.get_args(kind)[0]
        default = None
    if typing.get_origin(kind) is typing.Literal:
        value = next(v for v in typing.get_args(kind) if v != default)
    elif kind is bool:
        return [param.opts[0] if not default else param.secondary_opts[0]]
    elif kind in (int, float):
        value = _number(kind, param, default)
    elif kind is Path and param.name in OUTPUTS:
        value = tmp / f"{param.name}-new"
    elif kind is Path:
        value = tmp / f"{param.name}.txt"
        value.write_text("2 + 2 = 4\n")
    else:
        value = next(v for v in TEXT.get(param.name, ("some text",)) if v != default)
    return [str(value)] if isinstance(param, TyperArgument) else [param.opts[0], str(value)]


def _canon(value) -> str:
    return re.sub(r" at 0x[0-9a-f]+", "", repr(value))


def _install(monkeypatch, stubs, records: list) -> None:
    def make(target, returns):
        def stub(*args, **kwargs):
            records.append((target, _canon(args), _canon(kwargs)))
            if returns is STOP:
                raise Stop(target)
            return returns(*args, **kwargs) if returns in FACTORIES else returns

        return stub

    for target, returns in stubs:
        monkeypatch.setattr(target, make(target, returns))


def _walk_leaf(top: str, path: str, leaf, monkeypatch, tmp: Path) -> list[str]:
    """Problems with the options of the command ``path`` (``leaf``) under ``top``."""
    options = [
        p
        for p in leaf.params
        if p.param_type_name == "option"
        and p.name not in PASS_THROUGH
        and p.type_descriptor.annotation is not Format  # how the table prints (test_tables.py)
    ]
    if not options or path in PASS_THROUGH_COMMANDS:
        return []
    if path not in STUBS:
        return [f"{path}: no STUBS entry (the library call it hands its work to)"]
    records: list = []
    FakeLM.records = records
    _install(monkeypatch, STUBS[path], records)
    required = [
        token
        for p in leaf.params
        if p.required or (path, p.name) in ARGUMENTS
        for token in other_value(p, tmp / "required")
    ]

    def run(extra: list[str]) -> list | str:
        """What the stubs saw, or why the command stopped before its last stub."""
        records.clear()
        args = [*path.split()[1:], *required, *extra]
        result = CliRunner().invoke(load(top, COMMANDS[top]), args)
        if result.exit_code == 0 or isinstance(result.exception, Stop):
            return list(records)
        return f"{result.exception!r} {result.output[-300:]}"

    baseline = run([])
    if isinstance(baseline, str):
        return [f"{path}: the defaults never reached the library: {baseline}"]
    problems = []
    for param in options:
        if param.required or (path, param.name) in BEHAVIOUR:
            continue
        needs = NEEDS.get((path, param.name), [])
        reference = run(needs) if needs else baseline
        tokens = CHOICES.get((path, param.name)) or other_value(param, tmp, param.default)
        seen = run([*needs, *tokens])
        if isinstance(seen, str) or isinstance(reference, str):
            why = seen if isinstance(seen, str) else reference
            problems.append(f"{path} {' '.join(tokens)}: never reached the library: {why}")
        elif seen == reference:
            problems.append(f"{path} {' '.join(tokens)}: ignored (the library saw the same)")
    return problems


@pytest.mark.parametrize("top", sorted(COMMANDS))
def test_every_option_reaches_the_library(top, monkeypatch, tmp_path):
    (tmp_path / "required").mkdir()
    problems = [
        problem
        for path, leaf in leaves(top, load(top, COMMANDS[top]))
        for problem in _walk_leaf(top, path, leaf, monkeypatch, tmp_path)
    ]
    assert not problems, "\n".join(problems)


def test_the_tables_name_only_existing_commands_and_options():
    options: dict[str, set[str]] = {}
    for top, entry in COMMANDS.items():
        for path, leaf in leaves(top, load(top, entry)):
            options[path] = {p.name for p in leaf.params}
    assert set(STUBS) <= set(options)
    for command in PASS_THROUGH_COMMANDS:  # it takes what it does not know, and no option
        assert COMMANDS[command].context == {
            "allow_extra_args": True,
            "ignore_unknown_options": True,
        }
        assert options[command] <= set(PASS_THROUGH)
    stale = [key for key in BEHAVIOUR if key[1] not in options.get(key[0], ())]
    assert stale == []
