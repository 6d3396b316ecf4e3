"""Debiased contrastive loss (Chuang et al., NeurIPS 2020) as used by ConMH."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .. import distributed


def debiased_contrastive_loss(view1: torch.Tensor, view2: torch.Tensor, *, temperature: float = 0.5,
                              tau_plus: float = 0.1) -> torch.Tensor:
    """Mean DCL over the 2B anchors of two [B, d] views (row i of each view is one video).

    Items are L2-normalised; an anchor's positive is the other view of its video and its N = 2B - 2
    negatives are every other item. The negative term ``(sum(neg) - tau_plus * N * pos) / (1 - tau_plus)``
    is clamped below at ``N * exp(-1 / temperature)``. Computed in float32 whatever the input dtype. Under
    torchrun the views are gathered from every rank first, so the negatives are the global batch's.
    """
    view1, view2 = distributed.gather_rows(view1), distributed.gather_rows(view2)  # the global batch
    batch = view1.shape[0]
    items = F.normalize(torch.cat((view1, view2)).float(), dim=1)
    similarity = torch.exp(items @ items.T / temperature)  # [2B, 2B]
    positive = torch.exp((items[:batch] * items[batch:]).sum(dim=1) / temperature).repeat(2)
    n_negatives = 2 * batch - 2
    index = torch.arange(2 * batch, device=items.device)
    not_negative = (index[:, None] == index[None, :]) | (index[:, None] == (index[None, :] + batch) % (2 * batch))
    negative_sum = similarity.masked_fill(not_negative, 0).sum(dim=1)
    negative = (negative_sum - tau_plus * n_negatives * positive) / (1 - tau_plus)
    negative = torch.clamp(negative, min=n_negatives * math.exp(-1 / temperature))
    return -torch.log(positive / (positive + negative)).mean()
