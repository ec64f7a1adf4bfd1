"""The Hugging Face Hub round trip, tested at the ``huggingface_hub`` boundary: ``train``,
``merge`` and ``dataset build`` push with ``HfApi.create_repo``/``upload_folder`` (recorded
here, never sent), ``dataset build --from-hub`` reads through ``hf_hub_download`` (a fake that
serves a local run folder), and offline every one of them refuses in one line before any work."""

from __future__ import annotations

import json
import sys

import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import EntryNotFoundError

from dataset_fixture import make_run
from thinkscope.cli.app import main

pytest.importorskip("trl")


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """Online as far as thinkscope can tell; every call to the Hub recorded in ``calls``."""
    calls: list[tuple[str, dict]] = []

    def create_repo(self, repo_id, **kw):
        calls.append(("create_repo", {"repo_id": repo_id, **kw}))
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, **kw):
        files = sorted(p.name for p in __import__("pathlib").Path(kw["folder_path"]).iterdir())
        calls.append(("upload_folder", {**kw, "files": files}))

    monkeypatch.setattr("thinkscope.models.lm.hub_reachable", lambda: True)
    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    monkeypatch.setenv("THINKSCOPE_PROGRESS", "0")
    monkeypatch.setenv("THINKSCOPE_CACHE", str(tmp_path / "cache"))
    return calls


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("THINKSCOPE_PROGRESS", "0")

    def no_load(*args, **kwargs):
        raise AssertionError("a model was loaded before the refusal")

    monkeypatch.setattr("thinkscope.models.load_model", no_load)
    monkeypatch.setattr("thinkscope.models.lm.load_model", no_load)


def _run(capsys, *argv) -> tuple[int, str]:
    sys.argv = ["thinkscope", *map(str, argv)]
    with pytest.raises(SystemExit) as exit_:
        main()
    return exit_.value.code, capsys.readouterr().err.strip()


def test_dataset_build_pushes_the_dataset_folder(hub, tmp_path, capsys):
    out = tmp_path / "ds"
    code, err = _run(capsys, "dataset", "build", make_run(tmp_path / "run"), "--out", out,
                     "--push-to-hub", "me/dtr-sft")  # fmt: skip
    assert code == 0, err
    (_, create), (_, upload) = hub
    assert create == {"repo_id": "me/dtr-sft", "repo_type": "dataset", "exist_ok": True}
    assert upload["repo_id"] == "me/dtr-sft" and upload["repo_type"] == "dataset"
    assert upload["folder_path"] == str(out) and upload["ignore_patterns"] == ["hf/*"]
    assert {"README.md", "sft_all.jsonl", "sft_correct.jsonl", "dataset.json"} <= set(
        upload["files"]
    )


def test_dataset_build_from_the_hub(hub, tmp_path, capsys, monkeypatch):
    local = make_run(tmp_path / "remote")
    asked = []

    def download(repo_id, filename, repo_type=None, **kw):
        asked.append((repo_id, filename, repo_type))
        if not (local / filename).is_file():
            raise EntryNotFoundError(f"{filename} not found")
        return str(local / filename)

    monkeypatch.setattr("huggingface_hub.hf_hub_download", download)
    out = tmp_path / "ds"
    code, err = _run(capsys, "dataset", "build", "--from-hub", "me/traces", "--out", out,
                     "--require-correct")  # fmt: skip
    assert code == 0, err
    assert asked == [("me/traces", name, "dataset") for name in ("traces.parquet",
                     "config.yaml", "scores.json")]  # fmt: skip
    summary = json.loads((out / "dataset.json").read_text())
    # the fixture's 7 correct traces less its truncated one (q1/0), from the fetched config
    assert summary["n_all"] == 6 and summary["source"]["model"] == "fake-model"


def test_a_repo_without_traces_is_one_line(hub, tmp_path, capsys, monkeypatch):
    def download(repo_id, filename, repo_type=None, **kw):
        raise EntryNotFoundError(f"{filename} not found")

    monkeypatch.setattr("huggingface_hub.hf_hub_download", download)
    code, err = _run(capsys, "dataset", "build", "--from-hub", "me/x", "--out", tmp_path / "d")
    assert code == 2
    assert err == (
        "error: --from-hub me/x: the dataset has no traces.parquet; push a thinkscope run folder"
    )


def test_train_and_merge_push_the_adapter_and_the_merged_model(
    hub, tiny_model_dir, tmp_path, capsys
):
    rows = [{"prompt": f"Q: {a} + {a}?\nA:", "response": f" {2 * a}."} for a in range(6)]
    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "lora"
    argv = ["train", "--model", tiny_model_dir, "--dataset", data, "--out", out]
    code, err = _run(
        capsys, *argv, "--max-steps", "1", "--batch-size", "2", "--push-to-hub", "me/lora"
    )
    assert code in (0, None), err
    code, err = _run(capsys, "merge", out, "--push-to-hub", "me/merged")
    assert code in (0, None), err
    uploads = [kw for name, kw in hub if name == "upload_folder"]
    assert [(u["repo_id"], u["repo_type"], u["folder_path"]) for u in uploads] == [
        ("me/lora", "model", str(out / "adapter")),
        ("me/merged", "model", str(out / "merged")),
    ]
    assert "adapter_config.json" in uploads[0]["files"]
    assert "config.json" in uploads[1]["files"] and "model.safetensors" in uploads[1]["files"]


@pytest.mark.parametrize(
    "argv",
    [
        ["dataset", "build", "{run}", "--out", "{tmp}/ds", "--push-to-hub", "me/x"],
        ["dataset", "build", "--from-hub", "me/x", "--out", "{tmp}/ds"],
        ["train", "--dataset", "{run}", "--out", "{tmp}/t", "--push-to-hub", "me/x"],
        ["merge", "{adapter}", "--push-to-hub", "me/x"],
    ],
    ids=["build-push", "build-from", "train-push", "merge-push"],
)
def test_offline_is_one_line_before_any_work(argv, offline, tmp_path, capsys):
    run = make_run(tmp_path / "run")
    adapter = tmp_path / "trained" / "adapter"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text("{}")
    before = sorted(tmp_path.rglob("*"))
    args = [a.format(run=run, tmp=tmp_path, adapter=adapter.parent) for a in argv]
    code, err = _run(capsys, *args)
    assert code == 2 and err.count("\n") == 0, err
    assert err.startswith("error: --") and "Hugging Face Hub cannot be reached" in err
    assert sorted(tmp_path.rglob("*")) == before  # nothing graded, trained or written


@pytest.mark.parametrize("command", [["dataset", "build", "x", "--out", "y"], ["merge", "x"]])
def test_a_malformed_repo_id_is_one_line(command, capsys):
    code, err = _run(capsys, *command, "--push-to-hub", "not a/repo id")
    assert code == 2
    assert err == "error: --push-to-hub: 'not a/repo id' is not a Hub repo id (like 'user/name')"


def test_a_refused_upload_is_one_line_and_keeps_the_folder(hub, tmp_path, capsys, monkeypatch):
    def unauthorized(self, repo_id, **kw):
        raise RuntimeError("401 Client Error: Unauthorized for url\nmore detail")

    monkeypatch.setattr(HfApi, "create_repo", unauthorized)
    out = tmp_path / "ds"
    code, err = _run(capsys, "dataset", "build", make_run(tmp_path / "run"), "--out", out,
                     "--push-to-hub", "me/x")  # fmt: skip
    assert code == 2 and err == (
        f"error: could not push {out} to the Hugging Face Hub as me/x (401 Client Error: "
        "Unauthorized for url); it stays on disk, push it when online"
    )
    assert (out / "sft_all.jsonl").is_file()
