"""BERT-style frame masking (BTH, MCMSH): the frames a model must restore or see through."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..errors import ConfigError
import torch.nn.functional as F

from .. import distributed

ZEROED_SHARE, REPLACED_SHARE = 0.8, 0.1  # of the selected frames; the rest are kept as they are
UNTOUCHED, ZEROED, REPLACED, KEPT = 0, 1, 2, 3


def bert_mask(frames: torch.Tensor, mask_prob: float, generator: torch.Generator,
              blocks: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking of frames [B, T, F], on their device; returns (masked copy, what happened to each frame).

    Each frame is selected with probability ``mask_prob``; a selected frame is zeroed (80%), replaced by a
    random frame of a random video of the batch (10%) or kept (10%). The second tensor [B, T] holds
    UNTOUCHED, ZEROED, REPLACED or KEPT. ``frames`` itself is not modified. Draws, in this order: the
    selection [B, T], the action [B, T], the source video [B, T] and the source frame [B, T].

    Under torchrun every draw is made for the global batch and each rank keeps its rows (``frames`` stacks
    ``blocks`` groups, e.g. videos then their partners), and replacement frames come from the global batch.
    """
    n_videos, n_frames, _ = frames.shape
    device = frames.device
    n_global, rows = distributed.batch_rows(n_videos, blocks)
    selected = torch.rand(n_global, n_frames, generator=generator, device=device)[rows] < mask_prob
    action = torch.rand(n_global, n_frames, generator=generator, device=device)[rows]
    kind = torch.full((n_videos, n_frames), UNTOUCHED, dtype=torch.int8, device=device)
    kind[selected & (action < ZEROED_SHARE)] = ZEROED
    kind[selected & (action >= ZEROED_SHARE) & (action < ZEROED_SHARE + REPLACED_SHARE)] = REPLACED
    kind[selected & (action >= ZEROED_SHARE + REPLACED_SHARE)] = KEPT
    source_video = torch.randint(0, n_global, (n_global, n_frames), generator=generator, device=device)[rows]
    source_frame = torch.randint(0, n_frames, (n_global, n_frames), generator=generator, device=device)[rows]
    masked = frames.masked_fill((kind == ZEROED)[..., None], 0)
    replaced = kind == REPLACED
    masked[replaced] = distributed.gather_blocks(frames, blocks)[source_video[replaced], source_frame[replaced]]
    return masked, kind


def n_visible_frames(n_frames: int, mask_ratio: float) -> int:
    """Frames each masked-autoencoder view keeps: ``T - int(mask_ratio * T)``."""
    return n_frames - int(mask_ratio * n_frames)


def check_visible_frames(n_visible: int, n_frames: int, mask_ratio: float, owner: str) -> int:
    """``n_visible`` if a view keeps at least one frame and masks at least one, else a ConfigError naming the
    method (``owner``) and its ``mask_ratio``."""
    if not 1 <= n_visible < n_frames:
        raise ConfigError(f"{owner}: mask_ratio {mask_ratio} leaves {n_visible} of {n_frames} frames visible; "
                          "it must mask at least one frame and keep at least one")
    return n_visible


def sample_views(n_videos: int, n_frames: int, mask_ratio: float, generator: torch.Generator,
                 device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Visible and masked frame positions of two views per video, built for the whole batch at once.

    Rows 0..B-1 are view 1 (the first ``n_visible`` frames of a random permutation), rows B..2B-1 view 2
    (its last ``n_visible``); positions within a row are in temporal order. Returns ([2B, v], [2B, T - v]).
    The views overlap when ``mask_ratio`` < 0.5.
    """
    n_visible = n_visible_frames(n_frames, mask_ratio)
    n_global, rows = distributed.batch_rows(n_videos)  # under torchrun: draw the global batch's, keep ours
    order = torch.rand(n_global, n_frames, generator=generator, device=device)[rows].argsort(dim=1)
    visible = torch.cat((order[:, :n_visible], order[:, n_frames - n_visible:]))
    masked = torch.cat((order[:, n_visible:], order[:, : n_frames - n_visible]))
    return visible.sort(dim=1).values, masked.sort(dim=1).values


def two_view_reconstruction(model: Callable[..., tuple[torch.Tensor, torch.Tensor]], frames: torch.Tensor,
                            mask_ratio: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The masked autoencoders' two-view step (ConMH, S5VH, AutoSSVH): two views per video
    (``sample_views``), ``model(visible frames, visible, masked) -> (reconstruction, visible codes)``.

    Returns the reconstruction loss and each view's mean code [2B, bits] (rows B.. are view 2). The reference
    sums one MSE per view; both views mask equally many frames, so that sum is twice the MSE over both
    (computed without slicing, whose backward would zero-fill the whole tensor).
    """
    n_videos, n_frames, _ = frames.shape
    visible, masked = sample_views(n_videos, n_frames, mask_ratio, generator, frames.device)
    video = torch.arange(n_videos, device=frames.device).repeat(2)[:, None]
    reconstruction, codes = model(frames[video, visible], visible, masked)
    return 2 * F.mse_loss(reconstruction.float(), frames[video, masked]), codes.float().mean(dim=1)

