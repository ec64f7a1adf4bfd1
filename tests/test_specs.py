"""Each setting is declared once: a field name means one setting in every spec of the package
(inherited, or borrowed with another default through ``with_default``), and every command that
takes one of the shared settings (task, sampling, decoding knobs, DTR parameters, vLLM's
engine placement) shows its spec's help and default, except where a command's own default is
listed below with its reason."""

import importlib
import pkgutil

import pytest
from typer.core import TyperGroup, TyperOption

import thinkscope
from thinkscope.cli.app import COMMANDS, load
from thinkscope.core.spec import Spec
from thinkscope.decoding.config import DecodingKnobs
from thinkscope.experiments import EXPERIMENTS
from thinkscope.generation.spec import SamplingSpec
from thinkscope.metrics.dtr_spec import DTRSpec
from thinkscope.models.spec import EngineSpec
from thinkscope.tasks.spec import TaskSpec

GROUPS = (TaskSpec, SamplingSpec, DecodingKnobs, DTRSpec, EngineSpec)

#: Field names that two specs use for different settings: name -> what each one is.
HOMONYMS = {
    "base": "compare's base model; DTR's log base",
    "batch_size": "sequences decoded at once; training examples per optimizer step",
    "folds": "interp's probe folds; REV's folds of its logistic models",
    "keep_per_question": "sft-filtering's filtered arm always applies it; a dataset filter may not",
    "min_dtr": "sft-filtering's filtered arm always applies it; a dataset filter may not",
    "max_steps": "sft-filtering's shared budget is finite; train also takes -1 (epochs)",
    "max_tokens": "score's first N tokens scored per trace; a dataset filter's longest response",
    "model": "the model to load; train's base model; score's optional override",
    "preset": "dataset build's named filters; interp run's named sizes",
    "run": "a finished run folder an experiment reuses; the profile protocol's base-run settings",
    "seed": "the sampling seed; train's shuffling seed",
    "temperature": "DecodingConfig, one decoding step: no-op default, so DecodingConfig() is "
    "the identity",
    "top_k": "DecodingConfig: unset is None",
    "top_p": "DecodingConfig: unset is None",
    "min_p": "DecodingConfig: unset is None",
}

#: Per command, the shared settings it gives its own default, and why (also in its help).
OWN_DEFAULTS = {
    "think-at-n": {
        "task": "short arithmetic a small model answers in 48 tokens",
        "prompt_style": "worked examples for that arithmetic",
        "n": "8 samples to select from",
        "max_new_tokens": "48 tokens: the answer of the arithmetic",
        "top_logprobs": "DeepConf's k (20)",
        "gpu_memory_utilization": "vLLM shares the GPU with the HF model that scores",
    },
    "traces": {
        "task": "SFT data from the training split",
        "prompt_style": "R1 traces",
        "template": "R1 traces",
    },
    "compare": {"prompt_style": "the prompt of traces", "template": "the prompt of traces"},
    "calibrate": {"task": "needs reference solutions", "questions": "a calibration grid"},
    "decode-sweep": {
        "task": "short arithmetic, many decoding configs",
        "questions": "24 problems per config",
        "n": "k of maj@k and pass@k",
        "max_new_tokens": "the answer of the arithmetic",
        "prompt_style": "worked examples for that arithmetic",
    },
    "interp run": {
        "task": "a mix of right and wrong answers for the probes",
        "questions": "unset: the preset's value",
        "max_new_tokens": "unset: the preset's value",
    },
    "experiment rev": {"max_new_tokens": "the seed's evaluation default (64)"},
    "interp steer": {"max_new_tokens": "short greedy completions"},
    **{
        f"experiment {name}": {
            **({} if name == "contrast" else {"task": "short arithmetic a small model answers"}),
            "questions": "12 problems per variant",
            "max_new_tokens": "the answer of the arithmetic",
            **({} if name == "cot-vs-direct" else {"prompt_style": "worked examples"}),
        }
        for name in EXPERIMENTS
    },
}

#: Options that share a name with a shared setting but are another setting.
OTHER_SETTINGS = {
    ("analyze", "seed"): "the bootstrap's seed",
    ("train", "seed"): "the shuffling seed",
    ("calibrate", "top_k"): "ranks recorded per position",
    ("experiment threshold-sweep", "g"): "the grid of g to sweep",
    **{
        (f"experiment {name}", "g"): "g in nats: the DTR experiments take no --base"
        for name in EXPERIMENTS
        if name not in ("threshold-sweep", "jsd-diagnostic")
    },
    ("dataset reference", "task"): "a task with worked solutions",
    ("dataset reference", "questions"): "how many problems (default: all)",
    ("experiment sft-filtering", "task"): "the held-out evaluation problems",
    ("experiment sft-filtering", "questions"): "the training problems",
}


def _specs() -> set[type[Spec]]:
    for module in pkgutil.walk_packages(thinkscope.__path__, "thinkscope."):
        if module.name.endswith("__main__") or "vllm" in module.name:
            continue
        importlib.import_module(module.name)
    found, todo = set(), [Spec]
    while todo:
        for sub in todo.pop().__subclasses__():
            found.add(sub)
            todo.append(sub)
    return found


def _declaration(spec: type[Spec], name: str) -> tuple:
    info = spec.model_fields[name]
    return str(info.annotation), info.description, repr(info.metadata)


def test_each_field_name_is_one_setting_across_every_spec():
    specs = _specs()
    names = {"GenerateConfig", "SelectConfig", "CompareConfig", "ExperimentConfig"}
    assert names <= {spec.__name__ for spec in specs}
    declared: dict[str, dict[tuple, list[str]]] = {}
    for spec in specs:
        for name in spec.__annotations__:
            if name in spec.model_fields:
                where = declared.setdefault(name, {}).setdefault(_declaration(spec, name), [])
                where.append(spec.__name__)
    twice = {name: ways for name, ways in declared.items() if len(ways) > 1}
    assert set(twice) == set(HOMONYMS), {n: w for n, w in twice.items() if n not in HOMONYMS}


def test_a_command_config_stays_flat_with_every_group_field():
    from thinkscope.generation.pipeline import GenerateConfig

    stored = GenerateConfig.parse(cal_acc_from=None, fields=["question=problem"]).model_dump()
    for group in (TaskSpec, SamplingSpec, DecodingKnobs):
        stored_fields = set(group.model_fields) - {"cal_acc_from", "cal_acc_threshold"}
        assert stored_fields <= set(stored)
    assert "cal_acc_from" not in stored and stored["fields"] == {"question": "problem"}
    assert GenerateConfig.parse(**stored).model_dump() == stored


def _commands():
    for name, entry in COMMANDS.items():
        command = load(name, entry)
        if isinstance(command, TyperGroup):
            for sub in command.list_commands(None):
                yield f"{name} {sub}", command.get_command(None, sub)
        else:
            yield name, command


COMMAND_OPTIONS = {
    path: {p.name: p for p in command.params if isinstance(p, TyperOption)}
    for path, command in _commands()
}
SHARED = {name: group for group in GROUPS for name in group.model_fields}


def _spec_default(info):
    default = info.get_default(call_default_factory=True)
    return [f"{k}={v}" for k, v in default.items()] if isinstance(default, dict) else default


@pytest.mark.parametrize("name", sorted(SHARED))
def test_a_shared_setting_has_one_help_and_one_default_on_every_command(name):
    info = SHARED[name].model_fields[name]
    taking = {
        path: options[name]
        for path, options in COMMAND_OPTIONS.items()
        if name in options and (path, name) not in OTHER_SETTINGS
    }
    assert taking, f"no command takes --{name}"
    for path, option in taking.items():
        assert option.help == info.description, (path, name)
        if name in OWN_DEFAULTS.get(path, {}):
            assert option.default != _spec_default(info), (path, name, "not its own default")
        else:
            assert option.default == _spec_default(info), (path, name)


def test_the_listed_exceptions_exist():
    for path, names in OWN_DEFAULTS.items():
        assert set(names) <= set(COMMAND_OPTIONS[path]), path
    for path, name in OTHER_SETTINGS:
        assert name in COMMAND_OPTIONS[path], (path, name)


@pytest.mark.parametrize(
    ("command", "config"),
    [
        ("generate", "thinkscope.generation.pipeline:GenerateConfig"),
        ("think-at-n", "thinkscope.select.experiment:SelectConfig"),
        ("compare", "thinkscope.experiments.compare.core:CompareConfig"),
    ],
)
def test_a_commands_defaults_are_its_configs(command, config):
    module, _, name = config.partition(":")
    fields = getattr(importlib.import_module(module), name).model_fields
    options = COMMAND_OPTIONS[command]
    shared = set(options) & set(fields)
    assert {"task", "n", "temperature"} <= shared
    for option in shared:
        assert options[option].default == _spec_default(fields[option]), (command, option)
