"""vLLM's engine options (``--tensor-parallel-size``, ``--gpu-memory-utilization``,
``--max-model-len``): validated in one line, refused with ``--backend hf``, passed to the
engine's constructor and recorded in the run's config; an engine that cannot start fails the
run in one line (exit 1, nothing written), or with ``--backend auto`` leaves it to ``hf``."""

import pytest
import yaml

import fake_vllm
from thinkscope.cli.app import main
from thinkscope.core.errors import RunFailure
from thinkscope.generation.backends import start_vllm
from thinkscope.generation.pipeline import GenerateConfig
from thinkscope.models import load_model
from thinkscope.models.spec import VLLM_SHARED_MEMORY, EngineSpec

ENGINE = ["--tensor-parallel-size", "2", "--gpu-memory-utilization", "0.5", "--max-model-len", "64"]
#: the fake engine reports top log-probs, so they are asked for
SMALL = ["--task", "demo-arith", "--questions", "2", "--n", "2", "--max-new-tokens", "4"]
SMALL += ["--top-logprobs", "2"]
THINK = [*SMALL, "--prefix-tokens", "2", "--repeats", "1"]
COMMANDS = {"generate": SMALL, "think-at-n": THINK}


@pytest.fixture(scope="module")
def lm(tiny_model_dir):
    return load_model(str(tiny_model_dir))


@pytest.fixture
def vllm(monkeypatch, lm):
    """The fake vLLM (CPU) sampling with the tiny model, on a machine pretending to have CUDA."""
    fake_vllm.install(monkeypatch, lm)
    return fake_vllm.FakeLLM


class Refusing(fake_vllm.FakeLLM):
    def __init__(self, **engine) -> None:
        fake_vllm.FakeLLM.made.append(engine)
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore detail")


def thinkscope(capsys, *args) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    return exit_info.value.code, capsys.readouterr().err.strip()


@pytest.mark.parametrize("command", list(COMMANDS))
def test_the_options_reach_the_engine_and_the_config(
    command, vllm, tiny_model_dir, tmp_path, capsys
):
    out = tmp_path / "run"
    args = [command, "--out", str(out), "--model", str(tiny_model_dir), *COMMANDS[command]]
    code, err = thinkscope(capsys, *args, "--backend", "vllm", *ENGINE)
    assert code == 0, err
    (made,) = vllm.made
    engine = {k: made[k] for k in EngineSpec.model_fields}
    assert engine == {"tensor_parallel_size": 2, "gpu_memory_utilization": 0.5, "max_model_len": 64}
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert {k: config[k] for k in engine} == engine and config["backend"] == "vllm"


@pytest.mark.parametrize(
    ("command", "memory"), [("generate", 0.85), ("think-at-n", VLLM_SHARED_MEMORY)]
)
def test_defaults_leave_the_context_length_to_vllm(
    command, memory, vllm, tiny_model_dir, tmp_path, capsys
):
    args = [command, "--out", str(tmp_path / "run"), "--model", str(tiny_model_dir)]
    code, err = thinkscope(capsys, *args, *COMMANDS[command], "--backend", "vllm")
    assert code == 0, err
    (made,) = vllm.made
    assert made["tensor_parallel_size"] == 1 and made["gpu_memory_utilization"] == memory
    assert "max_model_len" not in made


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        (
            "--tensor-parallel-size",
            "0",
            "--tensor-parallel-size: Input should be greater than or equal to 1",
        ),
        (
            "--gpu-memory-utilization",
            "0",
            "--gpu-memory-utilization: Input should be greater than 0",
        ),
        (
            "--gpu-memory-utilization",
            "1.5",
            "--gpu-memory-utilization: Input should be less than or equal to 1",
        ),
        ("--max-model-len", "0", "--max-model-len: Input should be greater than or equal to 1"),
    ],
)
@pytest.mark.parametrize("command", list(COMMANDS))
def test_bad_values_are_one_line_before_anything_runs(
    command, option, value, message, vllm, tmp_path, capsys
):
    out = tmp_path / "run"
    code, err = thinkscope(capsys, command, "--out", str(out), option, value)
    assert (code, err) == (2, f"error: {message}")
    assert not out.exists() and vllm.made == []


@pytest.mark.parametrize("command", list(COMMANDS))
def test_engine_options_with_the_hf_backend_are_refused(
    command, vllm, tiny_model_dir, tmp_path, capsys
):
    out = tmp_path / "run"
    args = [command, "--out", str(out), "--model", str(tiny_model_dir), *COMMANDS[command]]
    code, err = thinkscope(capsys, *args, "--backend", "hf", "--max-model-len", "64")
    assert code == 2
    assert err == (
        "error: --max-model-len places the model on vLLM's engine, which --backend hf does not "
        "use: drop it or use --backend vllm"
    )
    assert not out.exists() and vllm.made == []


@pytest.mark.parametrize("command", list(COMMANDS))
def test_an_engine_that_cannot_start_fails_in_one_line_with_nothing_written(
    command, vllm, monkeypatch, tiny_model_dir, tmp_path, capsys
):
    monkeypatch.setattr("vllm.LLM", Refusing)
    out = tmp_path / "run"
    args = [command, "--out", str(out), "--model", str(tiny_model_dir), *COMMANDS[command]]
    code, err = thinkscope(capsys, *args, "--backend", "vllm", *ENGINE)
    assert code == 1
    assert err == (
        "error: --backend vllm: vLLM could not start: RuntimeError: CUDA out of memory. Tried "
        "to allocate 2.00 GiB; use --backend hf"
    )
    assert len(vllm.made) == 1 and not out.exists()


@pytest.mark.parametrize("command", list(COMMANDS))
def test_auto_continues_on_hf_when_the_engine_cannot_start(
    command, vllm, monkeypatch, tiny_model_dir, tmp_path, capsys
):
    monkeypatch.setattr("vllm.LLM", Refusing)
    out = tmp_path / "run"
    args = [command, "--out", str(out), "--model", str(tiny_model_dir), *COMMANDS[command]]
    code, err = thinkscope(capsys, *args, "--backend", "auto")
    assert code == 0, err
    notice = (
        "backend: hf (auto: vLLM could not start: RuntimeError: CUDA out of memory. Tried to "
        "allocate 2.00 GiB)"
    )
    assert notice in err.splitlines()
    assert notice in (out / "log.txt").read_text()
    assert yaml.safe_load((out / "config.yaml").read_text())["backend"] == "hf"
    assert len(vllm.made) == 1


def test_start_vllm_keeps_a_config_mistake_a_user_error(vllm, tiny_model_dir):
    config = GenerateConfig(model=str(tiny_model_dir), device="cuda:1")
    with pytest.raises(Exception, match="drop --device/--device-map") as caught:
        start_vllm("auto", config)
    assert not isinstance(caught.value, RunFailure) and vllm.made == []


def test_engine_spec_of_a_config_and_the_options_it_sets():
    config = GenerateConfig(tensor_parallel_size=4, max_model_len=4096)
    assert EngineSpec.of(config).vllm_args() == {
        "tensor_parallel_size": 4,
        "gpu_memory_utilization": 0.85,
        "max_model_len": 4096,
    }
    assert EngineSpec.given(config) == ["--tensor-parallel-size", "--max-model-len"]
    assert EngineSpec.given(GenerateConfig()) == [] and EngineSpec.given(None) == []


def _eval(model_args: dict, model: str = "thinkscope"):
    from argparse import Namespace

    from thinkscope.lmeval.backend import on_backend

    return on_backend(Namespace(model=model, model_args=model_args, tasks=["t"]))


def test_eval_backend_vllm_runs_lm_evals_vllm_model_with_the_engine_options(vllm, tiny_model_dir):
    engine = {"tensor_parallel_size": 2, "gpu_memory_utilization": 0.5, "max_model_len": 64}
    args = {"model": str(tiny_model_dir), "backend": "vllm", "dtype": "bf16", "seed": 3, **engine}
    run = _eval(args)
    assert run.model == "vllm" and run.tasks == ["t"]
    assert run.model_args == {
        "pretrained": str(tiny_model_dir),
        "dtype": "bfloat16",
        "trust_remote_code": False,
        **engine,
        "seed": 3,
    }
    assert _eval({"model": "m", "backend": "hf"}).model_args == {"model": "m"}
    assert _eval({"pretrained": "m"}, model="hf").model_args == {"pretrained": "m"}


@pytest.mark.parametrize(
    ("model_args", "message"),
    [
        (
            "model=m,max_model_len=64",
            "model_args max_model_len places the model on vLLM's engine: add backend=vllm or "
            "drop it",
        ),
        (
            "model=m,backend=vllm,tensor_parallel_size=0",
            "model_args tensor_parallel_size: Input should be greater than or equal to 1",
        ),
        (
            "model=m,backend=vllm,log_steps=true",
            "model_args log_steps: per-step logs need thinkscope's own sampler; drop them or use "
            "backend=hf",
        ),
        ("model=m,backend=tpu", "model_args backend must be hf or vllm, got 'tpu'"),
    ],
)
def test_eval_backend_mistakes_are_one_line(model_args, message, vllm, capsys):
    pytest.importorskip("lm_eval")  # the `eval` extra
    code, err = thinkscope(
        capsys, "eval", "--tasks", "gsm8k_cot_thinkscope", "--model_args", model_args
    )
    assert (code, err) == (2, f"error: {message}") and vllm.made == []


def test_eval_backend_vllm_without_vllm_says_why(monkeypatch, capsys):
    pytest.importorskip("lm_eval")
    monkeypatch.setattr("thinkscope.generation.backends.vllm_installed", lambda: False)
    args = ["eval", "--tasks", "gsm8k_cot_thinkscope", "--model_args", "model=m,backend=vllm"]
    code, err = thinkscope(capsys, *args)
    assert code == 2
    assert err == (
        "error: model_args backend=vllm: vLLM is not installed; install thinkscope[gpu] on a "
        "CUDA machine or use backend=hf"
    )
