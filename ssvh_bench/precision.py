"""Training precision (``--precision``) and ``torch.compile`` (``--compile``): how the loop computes a step.

Both change the codes, so both are fields of a run (``RunSpec``), recorded in ``config.json`` and part of the
run id unless left at their defaults (``auto``, no compile), which keeps the ids of runs made before they
existed. Codes are always encoded in full precision and by the eager model: only training steps change.

- ``auto``: bf16 autocast on GPUs that support it, fp16 with a gradient scaler on older GPUs, fp32 on the CPU
  (when the method's ``amp`` is off: fp32 everywhere);
- ``fp32``: no autocast;
- ``bf16``: bf16 autocast on any device (recent CPUs run it natively);
- ``fp16``: fp16 autocast and a gradient scaler on any device (on the CPU too, so CI runs the scaler).
"""

from __future__ import annotations

import shutil
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:
    import torch
    from torch import nn

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; use {', '.join(PRECISIONS)}")
    return precision


def autocast_dtype(device: "torch.device", precision: str = "auto", amp: bool = True) -> "torch.dtype | None":
    """The autocast dtype of a training step (None: full precision); see the module docstring."""
    import torch

    check_precision(precision)
    if precision == "auto":
        if not amp or device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def autocast(device: "torch.device", dtype: "torch.dtype | None") -> AbstractContextManager[Any]:
    import torch

    return nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def grad_scaler(device: "torch.device", dtype: "torch.dtype | None") -> "torch.amp.GradScaler | None":
    """A gradient scaler for fp16 steps (their small gradients would underflow), else None."""
    import torch

    return torch.amp.GradScaler(device.type) if dtype == torch.float16 else None


def check_compile_available(device: str) -> None:
    """A one-line ConfigError when ``torch.compile`` cannot run here (checked before any run starts)."""
    import torch

    if not torch._dynamo.is_dynamo_supported():  # e.g. a Python version dynamo does not support yet
        raise ConfigError("--compile: torch.compile is not supported with this Python and torch")
    if not str(device).startswith("cuda") and not any(shutil.which(cc) for cc in ("cc", "gcc", "clang", "c++")):
        raise ConfigError("--compile: torch.compile on the CPU needs a C++ compiler (cc, gcc or clang), none found")


def compiled(model: "nn.Module") -> "nn.Module":
    """``model`` compiled for training steps (sharing its parameters: checkpoints and encoding use ``model``)."""
    import torch

    return torch.compile(model)
