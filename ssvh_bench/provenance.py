"""What a run's ``config.json`` records besides its spec, so a result can be traced to its environment."""

from __future__ import annotations

import platform
import subprocess
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from .config import RunSpec


def now() -> str:
    """The current UTC time, to the second, as ISO 8601."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def run_config(spec: RunSpec, device: str, data_root: Path | None) -> dict[str, Any]:
    """The resolved configuration plus everything needed to trace the run back to its environment."""
    return {
        **spec.to_dict(),
        "device": device,
        "data_root": None if data_root is None else str(data_root),
        "started_at": now(),
        "git_commit": git_commit(),
        "versions": versions(),
        "host": platform.node(),
    }


def versions() -> dict[str, str | None]:
    """Python's and the installed versions of the packages that decide a run's numbers."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for package in ("ssvh-bench", "numpy", "torch", "scikit-learn", "faiss-cpu"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = None
    return out


def git_commit() -> str | None:
    """The source's commit (``-dirty`` with uncommitted changes to tracked files); None outside a checkout."""
    source = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=source, capture_output=True,
            text=True, timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if dirty else commit
