"""load_model's loading options (ModelSpec), LM.device under accelerate dispatch, the CLI's
model options."""

import pickle

import pytest
import torch
import typer
from typer.testing import CliRunner

from thinkscope.cli.loading import model_options, model_overrides
from thinkscope.core.errors import UserError
from thinkscope.models import load_model
from thinkscope.models.spec import ModelSpec
from tiny import tiny_lm


def test_dtype_and_attention_reach_the_model(tiny_model_dir):
    lm = load_model(str(tiny_model_dir), dtype="bfloat16", attn_implementation="eager")
    assert lm.dtype == torch.bfloat16 and lm.device == torch.device("cpu")
    assert lm.model.config._attn_implementation == "eager"
    assert load_model(str(tiny_model_dir), dtype="auto").dtype == torch.float32  # CPU default


def test_device_map_loads_through_accelerate(tiny_model_dir):
    lm = load_model(str(tiny_model_dir), device_map="auto")  # CPU only here: all on cpu
    assert lm.device == torch.device("cpu")
    ids = torch.tensor([[5, 6, 7]], device=lm.device)
    assert lm.model(input_ids=ids).logits.shape == (1, 3, lm.vocab_size)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"dtype": "float8"}, "--dtype: dtype must be one of auto, float32"),
        ({"device": "cpu", "device_map": "auto"}, "not both"),
        ({"attn_implementation": "no-such-attention"}, "cannot load model"),
    ],
)
def test_bad_loading_options_are_user_errors(tiny_model_dir, options, message):
    with pytest.raises(UserError, match=message):
        load_model(str(tiny_model_dir), **options)


def test_device_is_where_inputs_go_when_weights_are_offloaded():
    """accelerate's offload leaves parameters on ``meta``; inputs still go to the hook's device."""
    from accelerate import cpu_offload

    lm = tiny_lm("llama")
    cpu_offload(lm.model, execution_device=torch.device("cpu"))
    assert next(lm.model.parameters()).device.type == "meta"  # what LM.device used to report
    assert lm.device == torch.device("cpu")
    ids = torch.tensor([[5, 6, 7]], device=lm.device)
    assert lm.model(input_ids=ids).logits.shape == (1, 3, lm.vocab_size)


def test_model_options_reach_the_command():
    app, seen = typer.Typer(), {}

    @app.command()
    @model_options
    def load(model_spec: ModelSpec | None = None) -> None:
        seen.update(spec=model_spec)

    @app.command()
    @model_overrides
    def again(model_overrides: dict | None = None) -> None:
        seen.update(overrides=model_overrides)

    args = ["load", "--model", "m", "--dtype", "bf16", "--device-map", "auto"]
    args += ["--revision", "v2", "--attn-implementation", "sdpa", "--trust-remote-code"]
    assert CliRunner().invoke(app, args).exit_code == 0
    assert seen["spec"] == ModelSpec(
        model="m",
        dtype="bfloat16",  # an alias, stored by its canonical name
        device_map="auto",
        attn_implementation="sdpa",
        revision="v2",
        trust_remote_code=True,
    )
    assert "--weights" not in CliRunner().invoke(app, ["load", "--help"]).output  # recorded only
    bad = CliRunner().invoke(app, ["load", "--dtype", "float8"])
    assert bad.exit_code != 0 and "--dtype: dtype must be one of" in str(bad.exception)
    assert CliRunner().invoke(app, ["again", "--dtype", "float32"]).exit_code == 0
    assert seen["overrides"] == {"dtype": "float32"}  # what is not given stays the run's
    assert CliRunner().invoke(app, ["again"]).exit_code == 0 and seen["overrides"] == {}


def test_a_spec_loads_the_model_and_survives_pickling(tiny_model_dir):
    spec = ModelSpec(model=str(tiny_model_dir), dtype="bfloat16", attn_implementation="eager")
    lm = load_model(pickle.loads(pickle.dumps(spec)))
    assert lm.dtype == torch.bfloat16 and lm.model.config._attn_implementation == "eager"
    assert lm.spec.dtype == "bfloat16" and lm.spec.weights.startswith("sha256:")
    again = load_model(str(tiny_model_dir), dtype=torch.bfloat16, attn_implementation="eager")
    assert again.spec == lm.spec  # keywords (a torch dtype too) make the same spec
    assert load_model(str(tiny_model_dir)).spec.dtype == "float32"  # auto, resolved on CPU
    assert ModelSpec.of(str(tiny_model_dir), dtype="bfloat16").loading()["dtype"] == "bfloat16"
    with pytest.raises(UserError, match="dytpe"):
        ModelSpec.of(spec, dytpe="bfloat16")


def test_vllm_engine_arguments_of_the_loading_options():
    spec = ModelSpec(
        dtype="bfloat16",
        revision="abc123",
        trust_remote_code=True,
        attn_implementation="flash_attention_2",
    )
    assert spec.vllm_args() == {
        "dtype": "bfloat16",
        "revision": "abc123",
        "tokenizer_revision": "abc123",
        "trust_remote_code": True,
        "attention_backend": "FLASH_ATTN",
    }
    assert ModelSpec().vllm_args() == {"dtype": "auto", "trust_remote_code": False}
    assert "attention_backend" not in ModelSpec(attn_implementation="sdpa").vllm_args()
    assert ModelSpec(device="cuda", device_map="auto").vllm_args()["dtype"] == "auto"
    for placed in (
        ModelSpec(device="cpu"),
        ModelSpec(device="cuda:1"),
        ModelSpec(device_map="cpu"),
    ):
        with pytest.raises(UserError, match="CUDA_VISIBLE_DEVICES"):
            placed.vllm_args()


def test_the_tokenizer_follows_revision_and_trust_remote_code(tiny_model_dir, monkeypatch):
    """``load_tokenizer(spec)`` loads the tokenizer of the revision the weights come from (and
    may run its remote code), ignoring the options that only concern the weights."""
    import transformers

    from thinkscope.models import load_tokenizer

    calls = []
    monkeypatch.setattr(
        transformers.AutoTokenizer,
        "from_pretrained",
        lambda source, **options: calls.append(options) or "tokenizer",
    )
    spec = ModelSpec(
        model=str(tiny_model_dir),
        dtype="bfloat16",
        device="cpu",
        revision="v2",
        trust_remote_code=True,
    )
    assert load_tokenizer(spec) == "tokenizer"
    assert calls[0]["revision"] == "v2" and calls[0]["trust_remote_code"] is True
    assert "dtype" not in calls[0] and "device" not in calls[0]
    load_tokenizer(str(tiny_model_dir))
    assert calls[1]["revision"] is None and calls[1]["trust_remote_code"] is False
