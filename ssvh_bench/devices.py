"""Where a run computes: device names (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``) and torch's threads.

One parser for every caller: the pre-run checks and the runner use ``resolve_device`` (a name; torch loads only
when the name needs it), the training loop and tools use ``torch_device`` (a ``torch.device``).
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

from .errors import ConfigError

if TYPE_CHECKING:
    import torch

DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?|mps")


def resolve_device(device: str = "auto") -> str:
    """``auto`` picks CUDA when present, else the CPU; a malformed name or CUDA without CUDA is a ConfigError."""
    device = str(device)
    if not DEVICE_PATTERN.fullmatch(device):
        raise ConfigError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N")
    if device == "cpu":
        return device
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but CUDA is not available here")
    return device


def torch_device(device: "str | torch.device") -> "torch.device":
    """``resolve_device`` as a ``torch.device``."""
    import torch

    return device if isinstance(device, torch.device) else torch.device(resolve_device(device))


def search_device(device: str) -> str | None:
    """Where the evaluation's Hamming search runs: on the run's GPU, else the CPU's popcount path (None)."""
    return device if device.startswith("cuda") else None


def choose_threads(requested: int | None) -> int:
    """torch's intra-op threads: ``requested``, or 1 on small machines (up to 4 cores), where threads of tiny
    models mostly wait on each other and on other jobs (one thread made ConMH 2-3.5x faster on 2 shared
    cores), else torch's own default."""
    if requested is not None:
        if requested < 1:
            raise ConfigError(f"threads must be at least 1, got {requested}")
        return requested
    cores = os.cpu_count() or 1
    if cores <= 4:
        return 1
    import torch

    return torch.get_num_threads()
