"""Uniform frame sampling: the one rule by which a video of any length becomes a fixed number of frames.

Frame ``j`` (0-based) of ``T`` sampled frames is frame ``floor((2j + 1) * L / (2T))`` of a video of ``L``
frames: the middle frame of the ``j``-th of ``T`` equal segments, as the field's feature files were made
(frames spread evenly over the clip). A video shorter than ``T`` repeats frames (never zeros): the same rule
then picks some frames twice. The ``extract`` command samples decoded frames and the folder dataset samples
feature rows by this rule, so both give the same frames.
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError
from .features import VideoFeatures


def uniform_frame_indices(lengths: np.ndarray | int, n_frames: int) -> np.ndarray:
    """Indices [..., n_frames] of the sampled frames of videos of ``lengths`` frames (an int gives one row)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    if n_frames < 1:
        raise DataError(f"cannot sample {n_frames} frames: at least 1 is needed")
    if np.any(lengths < 1):
        raise DataError("cannot sample frames from a video of 0 frames")
    positions = 2 * np.arange(n_frames, dtype=np.int64) + 1
    return (positions * lengths[..., None]) // (2 * n_frames)


class SampledFeatures(VideoFeatures):
    """``base`` [N, T_max, D] seen as [N, n_frames, D]: video ``i`` keeps its first ``lengths[i]`` rows (all
    when ``lengths`` is None) and is sampled to ``n_frames`` by ``uniform_frame_indices``."""

    def __init__(self, base: VideoFeatures, n_frames: int, lengths: np.ndarray | None = None) -> None:
        self.base = base
        self._n_frames = int(n_frames)
        n, stored, _ = base.shape
        if lengths is not None:
            lengths = np.asarray(lengths)
            if lengths.shape != (n,) or not np.issubdtype(lengths.dtype, np.integer):
                raise DataError(f"frame lengths must be {n} integers (one per video), got {lengths.dtype} "
                                f"{lengths.shape}")
            if lengths.size and (lengths.min() < 1 or lengths.max() > stored):
                raise DataError(f"frame lengths must lie in 1..{stored} (the stored frames), got "
                                f"{lengths.min()}..{lengths.max()}")
        self.lengths = lengths
        # identity: every video keeps all its stored frames, in order
        self._identity = lengths is None and self._n_frames == stored
        self._fixed = None if lengths is not None else uniform_frame_indices(stored, self._n_frames)

    @property
    def shape(self) -> tuple[int, int, int]:
        n, _, dim = self.base.shape
        return n, self._n_frames, dim

    def read(self, indices: np.ndarray | slice) -> np.ndarray:
        raw = self.base.read(indices)
        if self._identity:
            return raw
        if self.lengths is None:
            return np.ascontiguousarray(raw[:, self._fixed])
        if isinstance(indices, slice):
            indices = np.arange(*indices.indices(len(self)))
        frames = uniform_frame_indices(self.lengths[np.asarray(indices)], self._n_frames)
        return np.take_along_axis(raw, frames[:, :, None], axis=1)

    def check_finite(self, what: str, batch_size: int = 1024) -> None:
        self.base.check_finite(what, batch_size)
