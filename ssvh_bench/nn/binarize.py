"""Binarisers with straight-through gradients.

``hash_binarize`` is the ConMH/BTH hash layer: ``2 * round(clamp((x + 1) / 2, 0, 1)) - 1``. Its forward
maps x > 0 to +1 and x <= 0 to -1 (x = 0 gives round(0.5) = 0 by round-half-to-even, so -1). Its gradient
is the identity for -1 < x <= 1 and zero elsewhere, as in the authors' code: their clamp assigns in place
(``y[y > 1] = 1``), which cuts the gradient above +1, and their rounding's backward zeroes it where the
clamped value is exactly 0 (x <= -1).

``sign_ste`` is a plain sign (``sign(0) = 0``) whose gradient passes where |x| <= 1 (MCMSH, SSVH).
"""

from __future__ import annotations

import torch
from torch import nn


class HashBinarize(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return 2 * torch.round(torch.clamp((x + 1) / 2, 0, 1)) - 1

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        # (x + 1) / 2 in (0, 1] exactly where the authors' clamped value is neither assigned nor 0
        half = (x + 1) / 2
        return grad * ((half > 0) & (half <= 1)).to(grad.dtype)


class SignSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return torch.sign(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype)


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
