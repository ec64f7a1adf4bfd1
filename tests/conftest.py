import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from chromium import artifacts, browser  # noqa: E402, F401 (the page tests' fixtures)

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """A fresh run registry per test; converted models stay shared in the real cache."""
    home = Path(os.environ.get("THINKSCOPE_CACHE", Path.home() / ".cache" / "thinkscope"))
    (home / "models").mkdir(parents=True, exist_ok=True)
    isolated = tmp_path / "thinkscope-home"
    isolated.mkdir()
    (isolated / "models").symlink_to(home / "models")
    monkeypatch.setenv("THINKSCOPE_CACHE", str(isolated))


@pytest.fixture(scope="session")
def bundled_lm():
    from thinkscope.models import load_model

    return load_model("smollm2-135m")


def _save_tiny(path: Path, chat: bool) -> Path:
    from tiny import tiny_model, tiny_tokenizer

    tiny_model("llama").save_pretrained(path)
    tokenizer = tiny_tokenizer(chat=chat)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random llama with a chat template, saved like a hub checkpoint."""
    return _save_tiny(tmp_path_factory.mktemp("tiny-llama"), chat=True)


@pytest.fixture(scope="session")
def tiny_model_dir_no_chat(tmp_path_factory) -> Path:
    """The same tiny llama whose tokenizer has no chat template."""
    return _save_tiny(tmp_path_factory.mktemp("tiny-llama-plain"), chat=False)
