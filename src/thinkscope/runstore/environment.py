"""A snapshot of where a run ran: code version, packages, hardware."""

from __future__ import annotations

import importlib.metadata
import platform
import socket
import subprocess
import sys
from pathlib import Path

import torch

_PACKAGES = (
    "thinkscope",
    "torch",
    "transformers",
    "numpy",
    "pandas",
    "pyarrow",
    "scipy",
    "scikit-learn",
    "math-verify",
    "reasoning-gym",
    "gguf",
    "vllm",
    "peft",
    "trl",
)


def _git(*args: str) -> str:
    out = subprocess.run(
        ["git", *args],
        cwd=Path(__file__).parent,
        capture_output=True,
        text=True,
        timeout=5,
        check=True,
    )
    return out.stdout.strip()


def git_commit() -> str | None:
    """The commit of the thinkscope checkout, ``-dirty`` with uncommitted changes."""
    try:
        return _git("rev-parse", "HEAD") + ("-dirty" if _git("status", "--porcelain") else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict:
    """Git commit, package versions, torch and CUDA, CPU and GPU, host name."""
    cuda = torch.cuda.is_available()
    return {
        "git_commit": git_commit(),
        "python": sys.version.split()[0],
        "packages": {name: _version(name) for name in _PACKAGES},
        "torch": torch.__version__,
        "cuda": torch.version.cuda if cuda else None,
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "cpu": _cpu_model(),
        "cpu_count": torch.get_num_threads(),
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
    }
