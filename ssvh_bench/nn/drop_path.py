"""Stochastic depth ("DropPath", timm's ``drop_path``): drop a residual branch for whole samples."""

from __future__ import annotations

import torch
from torch import nn


class DropPath(nn.Module):
    """In training, zero the branch of each sample with probability ``rate`` and scale the rest by 1/(1 - rate).

    One Bernoulli draw per sample (from the global RNG, like ``nn.Dropout``); the identity in eval mode or
    at rate 0.
    """

    def __init__(self, rate: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"drop-path rate must be in [0, 1), got {rate}")
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        mask = torch.rand((x.shape[0],) + (1,) * (x.ndim - 1), device=x.device) < keep
        return x * mask.to(x.dtype) / keep

    def extra_repr(self) -> str:
        return f"rate={self.rate}"
