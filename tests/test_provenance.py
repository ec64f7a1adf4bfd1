"""Full provenance: config.yaml records the resolved model spec and the weights' identity;
``runs reproduce`` reloads exactly that model; scores are keyed on the weights, not the name."""

import json
import shutil

import pytest
import yaml
from typer.testing import CliRunner

from thinkscope.cli.app import app
from thinkscope.core.errors import UserError
from thinkscope.experiments.reproduce import reproduce
from thinkscope.generation.pipeline import GenerateConfig, generate_run
from thinkscope.metrics import parse_metrics
from thinkscope.models import LM, load_model
from thinkscope.models.identity import folder_hash, identify
from thinkscope.models.spec import ModelSpec
from thinkscope.scoring import score_run
from tiny import tiny_model, tiny_tokenizer

GYM = "gym:basic_arithmetic?min_terms=2&max_terms=2&min_digits=1&max_digits=1"
SMALL = ["--task", GYM, "--questions", "2", "--n", "4", "--max-new-tokens", "8"]


def _cli(*args: str):
    result = CliRunner().invoke(app, list(args), terminal_width=200)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def _flip_last_byte(path):
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # the last byte of the last tensor: same size, other weights
    path.write_bytes(bytes(data))


def test_a_bf16_run_reproduces_exactly_and_an_fp32_reload_does_not(tiny_model_dir, tmp_path):
    run, same, fp32 = tmp_path / "run", tmp_path / "same", tmp_path / "fp32"
    _cli(
        "generate",
        "--model",
        str(tiny_model_dir),
        "--dtype",
        "bfloat16",
        *SMALL,
        "--temperature",
        "1.0",
        "--out",
        str(run),
    )
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["dtype"] == "bfloat16"
    assert config["weights"] == f"sha256:{folder_hash(tiny_model_dir)}"
    assert {"revision", "device", "device_map", "attn_implementation", "trust_remote_code"} <= set(
        config
    )

    _cli("runs", "reproduce", str(run), "--out", str(same))
    report = json.loads((same / "reproduce.json").read_text())
    assert report["identical"] and report["samples"]["n"] == 8
    assert yaml.safe_load((same / "config.yaml").read_text()) == config

    # the test can fail: the same run reloaded in fp32 samples other completions
    _cli("runs", "reproduce", str(run), "--out", str(fp32), "--dtype", "float32")
    report = json.loads((fp32 / "reproduce.json").read_text())
    assert not report["identical"] and report["samples"]["differing"]["completion"] > 0
    assert yaml.safe_load((fp32 / "config.yaml").read_text())["dtype"] == "float32"


def test_one_changed_weight_byte_changes_the_identity_and_reproduce_refuses(
    tiny_model_dir, tmp_path
):
    model = shutil.copytree(tiny_model_dir, tmp_path / "model")
    spec = ModelSpec(model=str(model))
    before = identify(spec)
    config = GenerateConfig(model=str(model), task=GYM, questions=1, n=1, max_new_tokens=2)
    run = generate_run(config, tmp_path / "run", show_progress=False)
    _flip_last_byte(model / "model.safetensors")
    after = identify(spec)
    assert before.startswith("sha256:") and after.startswith("sha256:") and after != before
    (model / "README.md").write_text("not a model file")  # only model files count
    assert identify(spec) == after
    with pytest.raises(UserError, match="weights of .* changed") as err:
        reproduce(run.path, tmp_path / "again", show_progress=False)
    assert "\n" not in str(err.value) and not (tmp_path / "again").exists()


def test_scoring_again_with_other_weights_under_the_same_name_rescores(tmp_path):
    model = tmp_path / "model"
    tiny_model("llama", seed=0).save_pretrained(model)
    tiny_tokenizer().save_pretrained(model)
    config = GenerateConfig(model=str(model), task=GYM, questions=2, n=2, max_new_tokens=4)
    run = generate_run(config, tmp_path / "run", show_progress=False)
    specs = parse_metrics("logprob")
    first = score_run(load_model(str(model)), run.path, specs, show_progress=False)["logprob"]
    tiny_model("llama", seed=1).save_pretrained(model)  # same name, other weights
    lm = load_model(str(model))
    second = score_run(lm, run.path, specs, show_progress=False)["logprob"]
    assert (first != second).all()  # rescored, not reused by name
    record = json.loads((run.path / "scores.json").read_text())
    assert record["weights"] == lm.weights and record["columns"]["logprob"]["dtype"] == "float32"
    assert record["columns"]["logprob"]["weights"] == lm.weights != run.config["weights"]


def test_a_hub_model_is_identified_by_its_commit(tmp_path, monkeypatch):
    import huggingface_hub.constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--org--tiny"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "snapshots" / commit / "config.json").write_text("{}")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    assert identify(ModelSpec(model="org/tiny")) == f"hub:org/tiny@{commit}"


def test_a_wrapped_model_is_identified_by_its_parameters():
    one, other = tiny_model("llama", seed=0), tiny_model("llama", seed=1)
    weights = LM.wrap(one, tiny_tokenizer(), "m").weights
    assert weights.startswith("state:") and weights == LM.wrap(one, tiny_tokenizer(), "m").weights
    assert weights != LM.wrap(other, tiny_tokenizer(), "m").weights


def test_a_recorded_spec_matches_what_asked_for_it():
    recorded = ModelSpec(model="m", dtype="bfloat16", weights="sha256:ab").model_dump()
    assert ModelSpec(model="m").matches(recorded)  # auto: any dtype; no weights: any weights
    assert ModelSpec(model="m", dtype="bf16", weights="sha256:ab").matches(recorded)
    assert not ModelSpec(model="m", dtype="float32").matches(recorded)
    assert not ModelSpec(model="m", weights="sha256:cd").matches(recorded)
    assert not ModelSpec(model="m", revision="v2").matches(recorded)
