"""The method contract every hashing method implements (sklearn-like), in one place.

``HashingMethod`` (the contract and its parameter rules) and ``ShallowMethod`` (closed-form methods on frame-mean
features) live in ``base``; ``DeepMethod`` (methods trained by the shared loop) in ``deep``, imported on first use
so that shallow runs never load torch.
"""

from __future__ import annotations

from typing import Any

from .base import HashingMethod, ShallowMethod

__all__ = ["DeepMethod", "HashingMethod", "ShallowMethod"]


def __getattr__(name: str) -> Any:
    if name == "DeepMethod":
        from .deep import DeepMethod

        return DeepMethod
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
