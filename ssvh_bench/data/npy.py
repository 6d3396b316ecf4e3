"""Features in a ``.npy`` file [videos, frames, dim] (float32 or float16), memory-mapped: read a batch at a time."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from .features import VideoFeatures

SAMPLE_BLOCKS, SAMPLE_VIDEOS = 8, 64  # what ``check_finite`` reads, as for HDF5 files


class NpyFeatures(VideoFeatures):
    """A memory-mapped ``.npy`` file of frame features; batches are read as float32."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.array = np.load(self.path, mmap_mode="r", allow_pickle=False)
        except FileNotFoundError:
            raise DataError(f"{self.path} does not exist") from None
        except (ValueError, OSError) as error:
            raise DataError(f"cannot read {self.path}: not a .npy file or truncated ({error})") from None
        if self.array.ndim != 3:
            raise DataError(f"{self.path} has shape {self.array.shape}, expected 3-D [videos, frames, dim]")
        if self.array.dtype not in (np.float32, np.float16):
            raise DataError(f"{self.path} has dtype {self.array.dtype}, expected float32 or float16")
        if 0 in self.array.shape:
            raise DataError(f"{self.path} has shape {self.array.shape}: no videos, frames or features")

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.array.shape)  # type: ignore[return-value]

    def read(self, indices: np.ndarray | slice) -> np.ndarray:
        return np.asarray(self.array[indices], dtype=np.float32)

    def check_finite(self, what: str, batch_size: int = 1024) -> None:
        """NaN or inf in evenly spaced blocks (first and last included): a full pass would read the whole file."""
        n = len(self)
        size = min(SAMPLE_VIDEOS, n)
        for start in np.unique(np.linspace(0, n - size, num=SAMPLE_BLOCKS, dtype=np.int64)):
            block = self.read(slice(int(start), int(start) + size))
            finite = np.isfinite(block).reshape(len(block), -1).all(axis=1)
            if not finite.all():
                raise DataError(f"{what} contain NaN or inf: {self.path} video {int(start) + int(np.argmin(finite))}")
