"""Fixed sinusoidal position tables (the Transformer's sin/cos encoding)."""

from __future__ import annotations

import torch


def sinusoid_table(n_positions: int, dim: int) -> torch.Tensor:
    """float32 [n_positions, dim]: even columns sin(p / 10000^(2i/dim)), odd columns the matching cos."""
    positions = torch.arange(n_positions, dtype=torch.float64)[:, None]
    pair = torch.arange(dim, dtype=torch.float64) // 2  # columns 2i and 2i+1 share one frequency
    angles = positions / torch.pow(10000.0, 2 * pair / dim)
    table = torch.where(torch.arange(dim) % 2 == 0, torch.sin(angles), torch.cos(angles))
    return table.to(torch.float32)
