"""BERT-style frame masking (BTH, MCMSH): the frames a model must restore or see through."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
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


ZEROED_SOURCE = -1  # ``InPlaceMasks.source`` of a zeroed frame
# a method's ``masking``: in the loader's copy of the training set, as released (``InPlaceMasks``), or a fresh
# copy of each batch (``bert_mask``)
MASKINGS = ("in_place", "fresh")


class InPlaceMasks:
    """BERT masking as the released BTH and MCMSH loaders do it: written into the loader's copy of the training set.

    A video read again before ``reset`` carries its earlier masks, and a replacement frame is any frame of the
    copy as it stands (itself zeroed or replaced, possibly). The released loaders keep the copy in their one
    worker process, forked afresh each epoch: call ``reset`` at each epoch start.

    The copy is held as ``source`` [N, T]: for each frame, the index ``n * T + t`` of the original frame it now
    shows, or ``ZEROED_SOURCE``. ``mask`` reads a batch of dataset items, each masking its first videos in order
    (BTH: the video, then its partner, which may be the video itself) and then reading all of its videos as
    they stand (MCMSH also reads a positive and two negatives unmasked); ``masked_frames`` does it for a
    training batch and returns the frames. ``read(sorted video indices)`` gives the training set's original
    frames (``VideoFeatures.read``).
    """

    def __init__(self, n_videos: int, n_frames: int, mask_prob: float,
                 read: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        self.n_videos, self.n_frames, self.mask_prob, self.read = n_videos, n_frames, mask_prob, read
        self.reset()

    def reset(self) -> None:
        """Every frame its original again (the loader's fresh copy)."""
        self.source = np.arange(self.n_videos * self.n_frames, dtype=np.int64).reshape(self.n_videos, self.n_frames)

    def mask(self, items: np.ndarray, generator: torch.Generator, n_masked: int | None = None) -> np.ndarray:
        """Read the items' videos ``items`` [B, R], masking the first ``n_masked`` (default all) of each item
        in order, with draws from ``generator``; the sources [B, R, T] each item's videos show once it is read.

        Draws, in this order: the selection, the action, the source video and the source frame, each
        [B, n_masked, T]."""
        n_masked = items.shape[1] if n_masked is None else n_masked
        shape = (len(items), n_masked, self.n_frames)
        device = generator.device
        selected = torch.rand(shape, generator=generator, device=device) < self.mask_prob
        action = torch.rand(shape, generator=generator, device=device)
        source_video = torch.randint(0, self.n_videos, shape, generator=generator, device=device)
        source_frame = torch.randint(0, self.n_frames, shape, generator=generator, device=device)
        return self.apply(items, *(t.cpu().numpy() for t in (selected, action, source_video, source_frame)))

    def masked_frames(self, videos: torch.Tensor, frames: torch.Tensor, reads: int, generator: torch.Generator,
                      n_masked: int | None = None) -> torch.Tensor:
        """A training batch's frames as the loader returns them: ``videos`` [reads * B] stacks ``reads`` blocks
        of B (each item's first video, then its second...) and ``frames`` [reads * B, T, F] their original frames;
        ``mask`` reads them item by item; the frames [reads * B, T, F] they show, in the same order.

        Under torchrun every rank masks the whole global batch in its order, in a copy of its own, so that each
        rank's copy stays the one-process run's, and keeps its rows."""
        assert self.read is not None, "InPlaceMasks needs read to show frames"
        n_local = len(videos) // reads
        every = distributed.gather_blocks(videos, reads).cpu().numpy()  # the global batch, block by block
        shown = self.mask(every.reshape(reads, -1).T, generator, n_masked)  # [B global, reads, T]
        shown = shown[distributed.batch_rows(n_local)[1]]
        indices = videos.cpu().numpy()
        return frames_shown(shown.transpose(1, 0, 2).reshape(len(indices), -1), indices, frames, self.read)

    def apply(self, items: np.ndarray, selected: np.ndarray, action: np.ndarray, source_video: np.ndarray,
              source_frame: np.ndarray) -> np.ndarray:
        """``mask`` with the draws given ([B, n_masked, T] each): frame by frame, as the loaders' loop runs."""
        shown = np.empty((*items.shape, self.n_frames), dtype=np.int64)
        for i, videos in enumerate(items):
            for g, video in enumerate(videos[: selected.shape[1]]):
                for t in np.flatnonzero(selected[i, g]):
                    if action[i, g, t] < ZEROED_SHARE:
                        self.source[video, t] = ZEROED_SOURCE
                    elif action[i, g, t] < ZEROED_SHARE + REPLACED_SHARE:
                        self.source[video, t] = self.source[source_video[i, g, t], source_frame[i, g, t]]
            shown[i] = self.source[videos]  # read once the item's videos are masked, as the loaders return them
        return shown


def frames_shown(sources: np.ndarray, videos: np.ndarray, frames: torch.Tensor,
                 read: Callable[[np.ndarray], np.ndarray]) -> torch.Tensor:
    """The frames [R, T, F] that ``sources`` [R, T] (``InPlaceMasks``) point to, zero where zeroed.

    ``frames`` [P, T, F] are the original frames of ``videos`` [P] (e.g. the batch's); any other video a
    source points to is read with ``read(sorted indices)`` and moved to ``frames``' device."""
    n_frames = frames.shape[1]
    needed = np.unique(sources[sources != ZEROED_SOURCE] // n_frames)
    missing = np.setdiff1d(needed, videos)
    pool_videos = np.concatenate((videos, missing))
    pool = frames if not len(missing) else torch.cat(
        (frames, torch.from_numpy(np.ascontiguousarray(read(missing))).to(frames.device, frames.dtype)))
    order = np.argsort(pool_videos, kind="stable")
    zeroed = sources == ZEROED_SOURCE
    kept = np.where(zeroed, 0, sources)
    row = order[np.searchsorted(pool_videos[order], kept // n_frames)]
    flat = torch.from_numpy(row * n_frames + kept % n_frames).to(frames.device)
    shown = pool.reshape(-1, frames.shape[2])[flat]
    return shown.masked_fill(torch.from_numpy(zeroed).to(frames.device)[..., None], 0)


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

