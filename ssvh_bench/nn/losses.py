"""Hashing losses shared by several methods: pairwise similarity, quantization, anchor regression."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pairwise_similarity_loss(codes1: torch.Tensor, codes2: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``mean_i (target_i - codes1_i . codes2_i / bits)^2`` over pairs of codes [B, bits]; the target is +1
    for a similar pair and -1 for a dissimilar one (BTH, MCMSH)."""
    similarity = (codes1 * codes2).sum(dim=1) / codes1.shape[1]
    return ((target - similarity) ** 2).mean()


def quantization_loss(codes: torch.Tensor, reduction: str = "mean", *, straight_through: bool = False) -> torch.Tensor:
    """``||codes - sign(codes)||^2``, averaged over every entry (``"mean"``) or summed (``"sum"``).

    By default the sign target carries no gradient, so the term pulls relaxed codes towards +-1. With
    ``straight_through`` the target passes the gradient straight through, as MCMSH's released code does
    (``LBSign``): the two paths cancel, so the term keeps its value but has exactly zero gradient.
    """
    target = codes + (torch.sign(codes) - codes).detach() if straight_through else torch.sign(codes).detach()
    squared = (codes - target) ** 2
    if reduction == "mean":
        return squared.mean()
    if reduction == "sum":
        return squared.sum()
    raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")


def anchor_loss(mean_hidden: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """``sum ||mean_hidden_i - centre_i||^2 / (B * H)``: frame-mean hidden states [B, H] regress the centres
    [B, H] of their videos' stage-1 anchors (BTH's anchor term, MCMSH's cluster term)."""
    return F.mse_loss(mean_hidden, centres)
