"""Binarisers with straight-through gradients.

``hash_binarize`` is the ConMH/BTH hash layer: ``2 * round(clamp((x + 1) / 2, 0, 1)) - 1``. Its forward
maps x > 0 to +1 and x <= 0 to -1 (x = 0 gives round(0.5) = 0 by round-half-to-even, so -1). Its gradient
is the identity for -1 < x <= 1 and zero elsewhere, as in the authors' code: their clamp assigns in place
(``y[y > 1] = 1``), which cuts the gradient above +1, and their rounding's backward zeroes it where the
clamped value is exactly 0 (x <= -1).

``sign_ste`` is a plain sign (``sign(0) = 0``) whose gradient passes where |x| <= 1 (MCMSH, SSVH).

Each binariser's gradient window is declared here, once: inside ``window_share()`` every value a binariser
reads is counted as inside or outside its window (the "in_window" code-health figure, ``ssvh_bench.health``),
so a method that binarises with these functions reports it without code of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
from torch import nn


class WindowShare:
    """Values read by the binarisers while recording, and how many of them lay inside the gradient window."""

    def __init__(self) -> None:
        self.inside: torch.Tensor | int = 0
        self.total = 0

    def add(self, inside: torch.Tensor) -> None:
        self.inside = self.inside + inside.sum()  # summed on the device: no sync per batch
        self.total += inside.numel()

    @property
    def share(self) -> float | None:
        """The share inside the window; None when no binariser of this module ran."""
        return float(self.inside) / self.total if self.total else None


_recording: ContextVar[WindowShare | None] = ContextVar("binariser_window", default=None)


@contextmanager
def window_share() -> Iterator[WindowShare]:
    """Count the values the binarisers read meanwhile, inside and outside their gradient windows."""
    share = WindowShare()
    token = _recording.set(share)
    try:
        yield share
    finally:
        _recording.reset(token)


def _record(inside: torch.Tensor) -> None:
    share = _recording.get()
    if share is not None:
        share.add(inside)


def hash_window(x: torch.Tensor) -> torch.Tensor:
    """Where ``hash_binarize`` passes a gradient: -1 < x <= 1, computed as its backward does."""
    half = (x + 1) / 2  # (x + 1) / 2 in (0, 1] exactly where the authors' clamped value is neither assigned nor 0
    return (half > 0) & (half <= 1)


def sign_window(x: torch.Tensor) -> torch.Tensor:
    """Where ``sign_ste`` passes a gradient: |x| <= 1."""
    return x.abs() <= 1


class HashBinarize(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        _record(hash_window(x))
        return 2 * torch.round(torch.clamp((x + 1) / 2, 0, 1)) - 1

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad * hash_window(x).to(grad.dtype)


class SignSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        _record(sign_window(x))
        return torch.sign(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad * sign_window(x).to(grad.dtype)


def hash_binarize(x: torch.Tensor) -> torch.Tensor:
    """±1 codes, straight-through gradient only for -1 < x <= 1 (see module docstring)."""
    return HashBinarize.apply(x)


def sign_ste(x: torch.Tensor) -> torch.Tensor:
    """sign(x) with a gradient clipped to |x| <= 1."""
    return SignSTE.apply(x)


class HashBinarizer(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return hash_binarize(x)


class SignBinarizer(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sign_ste(x)
