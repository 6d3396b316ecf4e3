"""Out-of-core video features in HDF5 files (dataset ``feats``, [videos, frames, dim]).

A split may span several files (YFCC's training set is nine), read as their concatenation in order. Nothing
is loaded whole: ``read`` fetches the asked videos, sorted into contiguous runs under the hood, and
``iter_batches`` walks an epoch in an order that is shuffled yet stays near-sequential on disk, with a
bounded read-ahead thread.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import os

import h5py
import numpy as np

from ..errors import DataError
from .features import VideoFeatures
from .readahead import ReadAhead

FEATURES_KEY = "feats"
FLOAT16_SUFFIX = ".f16.h5"


def float16_sibling(path: Path) -> Path:
    """Where the float16 copy of a feature file lives: ``x.h5`` -> ``x.f16.h5``."""
    path = Path(path)
    return path.with_name(path.name.removesuffix(".h5") + FLOAT16_SUFFIX)


def open_features(path: Path, key: str = FEATURES_KEY) -> tuple[h5py.File, h5py.Dataset]:
    """Open ``path`` and return its feature dataset, or raise a DataError naming the file and the fix."""
    if Path(path).exists() and not os.access(path, os.R_OK):
        raise DataError(f"cannot open {path}: permission denied (make it readable: chmod a+r)")
    try:
        handle = h5py.File(path, "r")
    except FileNotFoundError:
        raise DataError(f"{path} does not exist") from None
    except OSError as error:
        raise DataError(f"cannot open {path}: it is truncated or not an HDF5 file ({error}); "
                        "download or convert it again") from None
    try:
        if key not in handle or not isinstance(handle[key], h5py.Dataset):
            found = ", ".join(sorted(handle)) or "nothing"
            raise DataError(f"{path} has no dataset {key!r} (found: {found}); is this the right feature file?")
        dataset = handle[key]
        if dataset.ndim != 3:
            raise DataError(f"{path}: {key!r} has shape {dataset.shape}, expected 3-D [videos, frames, dim]")
        if not np.issubdtype(dataset.dtype, np.floating):
            raise DataError(f"{path}: {key!r} has dtype {dataset.dtype}, expected floating point features")
        if 0 in dataset.shape:
            raise DataError(f"{path}: {key!r} has shape {dataset.shape}: no videos, frames or features; "
                            "re-download or re-extract the file")
    except BaseException:
        handle.close()
        raise
    return handle, dataset


class HDF5Features(VideoFeatures):
    """The concatenation, in order, of the ``feats`` datasets of ``paths``, read lazily as float32.

    Iteration knobs: a shuffled epoch visits chunk-aligned blocks of about ``block_videos`` videos in random
    order and shuffles videos within a window of ``window_blocks`` consecutive blocks; ``read_ahead`` is the
    number of finished batches the background reader may hold. ``check_finite`` looks at ``sample_blocks``
    evenly spaced blocks of ``sample_videos`` videos.
    """

    def __init__(
        self,
        paths: Sequence[Path] | Path,
        *,
        key: str = FEATURES_KEY,
        block_videos: int = 2048,
        window_blocks: int = 4,
        read_ahead: int = 2,
        sample_blocks: int = 8,
        sample_videos: int = 64,
    ) -> None:
        self.paths = [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
        if not self.paths:
            raise DataError("a feature split needs at least one file")
        self.key = key
        self.window_blocks, self.read_ahead = window_blocks, read_ahead
        self.sample_blocks, self.sample_videos = sample_blocks, sample_videos
        self._handles: list[h5py.File] = []
        self._datasets: list[h5py.Dataset] = []
        try:
            for path in self.paths:
                handle, dataset = open_features(path, key)
                self._handles.append(handle)
                self._datasets.append(dataset)
        except BaseException:
            self.close()
            raise
        first = self._datasets[0]
        for path, dataset in zip(self.paths[1:], self._datasets[1:]):
            if dataset.shape[1:] != first.shape[1:]:
                raise DataError(f"{path} has [frames, dim] = {list(dataset.shape[1:])} but {self.paths[0]} has "
                                f"{list(first.shape[1:])}; files of one split must match")
        self.file_dtypes = [dataset.dtype for dataset in self._datasets]
        self.offsets = np.cumsum([0] + [len(dataset) for dataset in self._datasets])
        chunk_rows = max((dataset.chunks or (1,))[0] for dataset in self._datasets)
        self.block_videos = chunk_rows * max(1, math.ceil(block_videos / chunk_rows))
        self._finite_checked = False

    @property
    def shape(self) -> tuple[int, int, int]:
        first = self._datasets[0]
        return int(self.offsets[-1]), int(first.shape[1]), int(first.shape[2])

    def close(self) -> None:
        for handle in self._handles:
            handle.close()
        self._handles, self._datasets = [], []

    def locate(self, video: int) -> tuple[Path, int]:
        """The file holding ``video`` and its row there."""
        file = int(np.searchsorted(self.offsets, video, side="right")) - 1
        return self.paths[file], video - int(self.offsets[file])

    def read(self, indices: np.ndarray | slice) -> np.ndarray:
        if isinstance(indices, slice):
            indices = np.arange(*indices.indices(len(self)))
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = len(self)
        if indices.size and (indices.min() < -n or indices.max() >= n):
            raise IndexError(f"video index out of range for {n} videos")
        indices = np.where(indices < 0, indices + n, indices)
        _, frames, dim = self.shape
        out = np.empty((len(indices), frames, dim), dtype=np.float32)
        if not indices.size:
            return out
        if np.all(indices[1:] > indices[:-1]):  # already strictly increasing: read straight into the result
            self._read_sorted(indices, out)
            return out
        order = np.argsort(indices, kind="stable")
        wanted = indices[order]
        unique = np.unique(wanted)
        rows = np.empty((len(unique), frames, dim), dtype=np.float32)
        self._read_sorted(unique, rows)
        # each asked position takes the row of its (possibly repeated) video
        out[order] = rows[np.searchsorted(unique, wanted)]
        return out

    def _read_sorted(self, videos: np.ndarray, out: np.ndarray) -> None:
        """Fill ``out`` with strictly increasing ``videos``, one HDF5 read per contiguous run."""
        breaks = np.flatnonzero(np.diff(videos) != 1) + 1
        starts = np.concatenate([[0], breaks])
        stops = np.concatenate([breaks, [len(videos)]])
        for start, stop in zip(starts, stops):
            first, last = int(videos[start]), int(videos[stop - 1]) + 1
            position = start
            while first < last:  # a run may cross a file boundary
                file = int(np.searchsorted(self.offsets, first, side="right")) - 1
                end = min(last, int(self.offsets[file + 1]))
                local = first - int(self.offsets[file])
                count = end - first
                try:
                    self._datasets[file].read_direct(out, np.s_[local : local + count],
                                                     np.s_[position : position + count])
                except OSError as error:
                    raise DataError(f"reading {self.paths[file]} failed ({error}); the file is probably "
                                    "truncated or corrupt: download or convert it again") from None
                position += count
                first = end

    def epoch_order(self, *, shuffle: bool, seed: int | None) -> np.ndarray:
        """The video order of one epoch: blocks in random order, videos shuffled within windows of blocks."""
        n = len(self)
        if not shuffle:
            return np.arange(n)
        rng = np.random.default_rng(seed)
        n_blocks = math.ceil(n / self.block_videos)
        block_order = rng.permutation(n_blocks)
        pieces = []
        for start in range(0, n_blocks, self.window_blocks):
            window = np.concatenate([
                np.arange(block * self.block_videos, min(n, (block + 1) * self.block_videos))
                for block in block_order[start : start + self.window_blocks]
            ])
            pieces.append(rng.permutation(window))
        return np.concatenate(pieces) if pieces else np.arange(0)

    def batch_order(self, batch_size: int, *, shuffle: bool = False, seed: int | None = None,
                    drop_last: bool = False) -> Iterator[np.ndarray]:
        """Consecutive slices of ``epoch_order``; within a batch the indices come sorted."""
        order = self.epoch_order(shuffle=shuffle, seed=seed)
        stop = len(order) - len(order) % batch_size if drop_last else len(order)
        # a batch's members are random, their order within it is not: sorted, they are read in one pass
        return (np.sort(order[start : start + batch_size]) for start in range(0, stop, batch_size))

    def iter_batches(
        self,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int | None = None,
        drop_last: bool = False,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (indices, features) batches read by a background thread at most ``read_ahead`` batches ahead."""
        batches = self.batch_order(batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last)
        reader = ReadAhead(((index, self.read(index)) for index in batches), depth=self.read_ahead)
        try:
            yield from reader
        finally:
            reader.close()

    def sample_ranges(self) -> list[tuple[int, int]]:
        """The [start, stop) video ranges that ``check_finite`` reads: evenly spaced, first and last included."""
        n = len(self)
        size = min(self.sample_videos, n)
        starts = np.unique(np.linspace(0, n - size, num=max(1, self.sample_blocks), dtype=np.int64))
        return [(int(s), int(s) + size) for s in starts]

    def check_finite(self, what: str, batch_size: int = 1024) -> None:
        """Raise DataError on NaN or inf in a sample of blocks (reading every video would cost a full pass)."""
        if self._finite_checked:
            return
        ranges = self.sample_ranges()
        checked = len(np.unique(np.concatenate([np.arange(start, stop) for start, stop in ranges])))
        for start, stop in ranges:
            block = self.read(slice(start, stop))
            finite = np.isfinite(block).reshape(len(block), -1).all(axis=1)
            if not finite.all():
                bad = start + int(np.flatnonzero(~finite)[0])
                path, row = self.locate(bad)
                raise DataError(f"{what} contain NaN or inf: {path} video {row} (checked a sample of "
                                f"{len(ranges)} block(s), {checked} of {len(self)} videos); repair or "
                                "re-download the file")
        self._finite_checked = True

    def pooled(self, batch_size: int = 256) -> np.ndarray:
        """Frame-mean features [N, D], read sequentially with read-ahead."""
        out = np.empty((len(self), self.feature_dim), dtype=np.float32)
        for index, batch in self.iter_batches(batch_size):
            out[index] = batch.mean(axis=1)
        return out


def convert_to_float16(source: Path, target: Path, *, key: str = FEATURES_KEY, batch_videos: int = 256,
                       progress: bool = False) -> None:
    """Write a float16 copy of ``source``'s features to ``target`` (atomically: complete or absent)."""
    from ..io import atomic_path

    handle, dataset = open_features(Path(source), key)
    with handle, atomic_path(Path(target)) as tmp:
        n, frames, dim = dataset.shape
        with h5py.File(tmp, "w") as out:
            copy = out.create_dataset(key, shape=dataset.shape, dtype=np.float16,
                                      chunks=(min(n, 64), frames, dim) if n else None)
            starts = range(0, n, batch_videos)
            if progress:
                from tqdm import tqdm

                starts = tqdm(starts, desc=Path(source).name, unit="block")
            for start in starts:
                block = dataset[start : start + batch_videos]
                if np.abs(block).max(initial=0) > np.finfo(np.float16).max:
                    raise DataError(f"{source} has inf or values beyond float16's range (65504); keep it as float32")
                copy[start : start + batch_videos] = block.astype(np.float16)
