"""vLLM places the model itself: ``--device``/``--device-map`` with ``--backend vllm`` are refused
in one line before anything loads or is written; ``--backend auto`` then resolves to ``hf``."""

import pytest
from click.testing import CliRunner

import fake_vllm
from thinkscope.cli.app import COMMANDS, load
from thinkscope.core.errors import UserError
from thinkscope.generation.backends import choose_backend
from thinkscope.models.spec import ModelSpec


@pytest.fixture
def nothing_loads(monkeypatch):
    """The fake vLLM on a machine that pretends to have CUDA; loading anything fails the test."""
    fake_vllm.install(monkeypatch, lm=None)

    def refuse(*args, **kwargs):
        raise AssertionError("a model or tokenizer was loaded before the refusal")

    for module in ("thinkscope.generation.pipeline", "thinkscope.select.experiment"):
        monkeypatch.setattr(f"{module}.load_model", refuse)
        monkeypatch.setattr(f"{module}.load_tokenizer", refuse)


@pytest.mark.parametrize("command", ["generate", "think-at-n"])
@pytest.mark.parametrize("device", [["--device", "cuda:1"], ["--device-map", "balanced"]])
def test_vllm_refuses_device_options_before_loading(command, device, nothing_loads, tmp_path):
    out = tmp_path / "out"
    args = ["--out", str(out), "--task", "demo-arith", "--backend", "vllm", *device]
    result = CliRunner().invoke(load(command, COMMANDS[command]), args)
    assert isinstance(result.exception, UserError), result.output
    message = str(result.exception)
    assert "\n" not in message and "--device/--device-map" in message and "--backend hf" in message
    assert not out.exists() and fake_vllm.FakeLLM.made == []


@pytest.mark.parametrize(
    ("loading", "backend"),
    [
        (ModelSpec(device="cpu"), "hf"),
        (ModelSpec(device_map="balanced"), "hf"),
        (ModelSpec(device="cuda", device_map=None), "vllm"),  # vLLM's own placement
        (ModelSpec(device_map="auto"), "vllm"),
        (ModelSpec(dtype="bfloat16"), "vllm"),
    ],
)
def test_auto_resolves_to_hf_when_a_device_is_set(loading, backend):
    name, why = choose_backend("auto", installed=True, cuda=True, loading=loading)
    assert name == backend
    if backend == "hf":
        assert why == "auto: vLLM places the model itself and --device/--device-map is set"


def test_vllm_accepts_its_own_placement():
    assert choose_backend("vllm", installed=True, cuda=True, loading=ModelSpec(device="cuda"))[
        0
    ] == ("vllm")
    with pytest.raises(UserError, match="drop --device/--device-map"):
        choose_backend("vllm", installed=True, cuda=True, loading=ModelSpec(device="cuda:0"))
