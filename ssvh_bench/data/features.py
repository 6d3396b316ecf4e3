"""VideoFeatures: the one way methods see videos (N videos x T frames x D features, float32).

Methods never open files: they read batches through this interface, so the same method code works on an
in-memory synthetic array and on an out-of-core HDF5 file.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterator

import numpy as np

from ..errors import DataError


class VideoFeatures(ABC):
    """A read-only collection of frame-feature sequences of equal length."""

    @property
    @abstractmethod
    def shape(self) -> tuple[int, int, int]:
        """(n_videos, n_frames, feature_dim)."""

    @abstractmethod
    def read(self, indices: np.ndarray | slice) -> np.ndarray:
        """Features of the given videos as float32 [n, T, D], in the order asked for."""

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def n_frames(self) -> int:
        return self.shape[1]

    @property
    def feature_dim(self) -> int:
        return self.shape[2]

    def iter_batches(
        self,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int | None = None,
        drop_last: bool = False,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (indices, features[n, T, D]) batches in ``batch_order``."""
        for index in self.batch_order(batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last):
            yield index, self.read(index)

    def batch_order(self, batch_size: int, *, shuffle: bool = False, seed: int | None = None,
                    drop_last: bool = False) -> Iterator[np.ndarray]:
        """The video positions of each batch ``iter_batches`` yields, without reading them; a shuffled order is
        a function of ``seed`` (here a uniform permutation; file-backed splits keep reads near-sequential)."""
        n = len(self)
        order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
        stop = n - n % batch_size if drop_last else n
        for start in range(0, stop, batch_size):
            yield order[start : start + batch_size]

    def fingerprint(self, n_samples: int = 16) -> str:
        """A short content hash (shape plus evenly spaced videos), so cached artefacts follow their inputs."""
        digest = hashlib.sha1(repr(self.shape).encode())
        for index in np.unique(np.linspace(0, len(self) - 1, num=min(n_samples, len(self)), dtype=np.int64)):
            digest.update(np.ascontiguousarray(self.read(np.array([index])), dtype=np.float32).tobytes())
        return digest.hexdigest()[:16]

    def check_finite(self, what: str, batch_size: int = 1024) -> None:
        """Raise DataError if any feature is NaN or infinite (file-backed splits may check a sample)."""
        for start in range(0, len(self), batch_size):
            block = self.read(slice(start, start + batch_size))
            if not np.isfinite(block).all():
                bad = start + int(np.flatnonzero(~np.isfinite(block).reshape(len(block), -1).all(axis=1))[0])
                raise DataError(f"{what} contain NaN or inf (first at video {bad})")

    def pooled(self, batch_size: int = 1024) -> np.ndarray:
        """Frame-mean features [N, D] (float32), computed a batch at a time."""
        out = np.empty((len(self), self.feature_dim), dtype=np.float32)
        for start in range(0, len(self), batch_size):
            out[start : start + batch_size] = self.read(slice(start, start + batch_size)).mean(axis=1)
        return out


def require_finite(features: np.ndarray, indices: np.ndarray | None, what: str) -> None:
    """DataError naming the first video with a NaN or inf among ``features`` [n, ...] (positions ``indices``
    in their split; None: 0..n-1). Methods call it where they meet features, so a value that a sampled check
    missed ends the run with one line instead of a garbage result."""
    finite = np.isfinite(features).reshape(len(features), -1).all(axis=1)
    if not finite.all():
        first = int(np.flatnonzero(~finite)[0])
        video = first if indices is None else int(np.asarray(indices)[first])
        raise DataError(f"{what}: video {video} has NaN or inf features")


class ArrayFeatures(VideoFeatures):
    """Features held in memory as a float32 array [N, T, D]."""

    def __init__(self, array: np.ndarray) -> None:
        array = np.asarray(array)
        if array.ndim != 3:
            raise DataError(f"video features must be 3-D [videos, frames, dim], got shape {array.shape}")
        if 0 in array.shape:
            raise DataError(f"video features of shape {array.shape} are empty: every split needs videos, frames "
                            "and features")
        self.array = np.ascontiguousarray(array, dtype=np.float32)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.array.shape)  # type: ignore[return-value]

    def read(self, indices: np.ndarray | slice) -> np.ndarray:
        return self.array[indices]


def as_video_features(videos: VideoFeatures | np.ndarray) -> VideoFeatures:
    return videos if isinstance(videos, VideoFeatures) else ArrayFeatures(videos)
