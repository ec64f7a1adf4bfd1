"""load_model's loading options, LM.device under accelerate dispatch, the CLI option block."""

import pickle

import pytest
import torch
import typer
from typer.testing import CliRunner

from thinkscope.cli.loading import loading_options
from thinkscope.core.errors import UserError
from thinkscope.models import load_model
from thinkscope.models.loading import Loading
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
        ({"dtype": "float8"}, "dtype must be auto or one of"),
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


def test_option_block_reaches_the_command():
    app, seen = typer.Typer(), {}

    @app.command()
    @loading_options
    def load(spec: str, loading: Loading | None = None) -> None:
        seen.update(spec=spec, loading=loading)

    @app.command()
    @loading_options
    def other(device: str = typer.Option("cpu"), loading: Loading | None = None) -> None:
        seen.update(own_device=device, loading=loading)

    args = ["load", "m", "--dtype", "bfloat16", "--device-map", "auto", "--revision", "v2"]
    args += ["--attn-implementation", "sdpa", "--trust-remote-code"]
    assert CliRunner().invoke(app, args).exit_code == 0
    assert seen == {
        "spec": "m",
        "loading": Loading(
            dtype="bfloat16",
            device_map="auto",
            attn_implementation="sdpa",
            revision="v2",
            trust_remote_code=True,
        ),
    }
    # one object that unpacks into load_model's keywords: the options that were set
    assert dict(**seen["loading"]) == {
        "dtype": "bfloat16",
        "device_map": "auto",
        "attn_implementation": "sdpa",
        "revision": "v2",
        "trust_remote_code": True,
    }
    assert CliRunner().invoke(app, ["other", "--device", "cuda"]).exit_code == 0
    assert seen["own_device"] == "cuda" and "device" not in seen["loading"]  # its own wins
    assert dict(seen["loading"]) == {"dtype": "auto"}


def test_loading_unpacks_into_load_model_and_survives_pickling(tiny_model_dir):
    loading = Loading(dtype="bfloat16", attn_implementation="eager")
    lm = load_model(str(tiny_model_dir), **pickle.loads(pickle.dumps(loading)))
    assert lm.dtype == torch.bfloat16 and lm.model.config._attn_implementation == "eager"
    assert Loading.of({"dtype": "bfloat16", "attn_implementation": "eager"}) == loading
    assert Loading.of(None) == Loading() and not Loading() and Loading.of(loading) is loading
    with pytest.raises(TypeError, match="unknown loading options: dytpe"):
        Loading.of({"dytpe": "bfloat16"})


def test_vllm_engine_arguments_of_the_loading_options():
    loading = Loading(
        dtype="bfloat16",
        revision="abc123",
        trust_remote_code=True,
        attn_implementation="flash_attention_2",
    )
    assert loading.vllm_args() == {
        "dtype": "bfloat16",
        "revision": "abc123",
        "tokenizer_revision": "abc123",
        "trust_remote_code": True,
        "attention_backend": "FLASH_ATTN",
    }
    assert Loading().vllm_args() == {"dtype": "auto", "trust_remote_code": False}
    assert "attention_backend" not in Loading(attn_implementation="sdpa").vllm_args()
    assert Loading(device="cuda", device_map="auto").vllm_args()["dtype"] == "auto"
    for placed in (Loading(device="cpu"), Loading(device="cuda:1"), Loading(device_map="cpu")):
        with pytest.raises(UserError, match="CUDA_VISIBLE_DEVICES"):
            placed.vllm_args()


def test_the_tokenizer_follows_revision_and_trust_remote_code(tiny_model_dir, monkeypatch):
    """``load_tokenizer(spec, **loading)`` loads the tokenizer of the revision the weights come
    from (and may run its remote code), ignoring the options that only concern the weights."""
    import transformers

    from thinkscope.models import load_tokenizer

    calls = []
    monkeypatch.setattr(
        transformers.AutoTokenizer,
        "from_pretrained",
        lambda source, **options: calls.append(options) or "tokenizer",
    )
    loading = Loading(dtype="bfloat16", device="cpu", revision="v2", trust_remote_code=True)
    assert load_tokenizer(str(tiny_model_dir), **loading) == "tokenizer"
    assert calls[0]["revision"] == "v2" and calls[0]["trust_remote_code"] is True
    assert "dtype" not in calls[0] and "device" not in calls[0]
    load_tokenizer(str(tiny_model_dir))
    assert calls[1]["revision"] is None and calls[1]["trust_remote_code"] is False
