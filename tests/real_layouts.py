"""Miniature copies of the real dataset files, in their exact layouts (names, HDF5 and .mat keys, dtypes).

Reusable by any test that needs FCVID / ActivityNet / YFCC on disk: ``write_fcvid(tmp_path)`` etc. return
the folder, ready for ``--data-root``. Videos carry multi-hot labels and class-dependent frame trajectories,
so a shallow method on pooled features clearly beats chance.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import scipy.io

MATLAB_V73_HEADER = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."


class VideoFactory:
    """Labelled videos: each has a main class and sometimes a second one; frames drift along a class path."""

    def __init__(self, frames: int, dim: int, classes: int, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.frames, self.dim, self.classes = frames, dim, classes
        self.centres = 3.0 * self.rng.normal(size=(classes, dim))
        self.drifts = self.rng.normal(size=(classes, dim))

    def make(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        main = np.arange(n) % self.classes
        labels = np.zeros((n, self.classes), dtype=np.uint8)
        labels[np.arange(n), main] = 1
        second = self.rng.random(n) < 0.3
        labels[np.flatnonzero(second), self.rng.integers(0, self.classes, second.sum())] = 1
        time = np.linspace(-1, 1, self.frames)[None, :, None]
        features = (self.centres[main][:, None, :] + time * self.drifts[main][:, None, :]
                    + 0.5 * (labels @ self.centres)[:, None, :] / self.classes
                    + self.rng.normal(scale=0.8, size=(n, self.frames, self.dim)))
        return features.astype(np.float32), labels


def write_features(path: Path, features: np.ndarray, *, chunks: tuple[int, int, int] | None = None,
                   key: str = "feats") -> Path:
    with h5py.File(path, "w") as handle:
        handle.create_dataset(key, data=features, chunks=chunks)
    return path


def write_labels(path: Path, key: str, labels: np.ndarray, *, matlab_v73: bool = False) -> Path:
    """A .mat file holding ``labels`` under ``key``: classic (scipy) or v7.3 (HDF5, column-major)."""
    if not matlab_v73:
        scipy.io.savemat(path, {key: labels})
        return path
    with h5py.File(path, "w", userblock_size=512) as handle:
        handle.create_dataset(key, data=np.asarray(labels, dtype=np.float64).T)  # MATLAB is column-major
    header = MATLAB_V73_HEADER.ljust(116, b" ") + bytes(8) + b"\x00\x02IM"
    with open(path, "r+b") as raw:
        raw.write(header.ljust(512, b"\x00"))
    return path


def write_fcvid(root: Path, *, n_train: int = 30, n_database: int = 30, frames: int = 5, dim: int = 16,
                classes: int = 4, seed: int = 0, matlab_v73: bool = False) -> Path:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    factory = VideoFactory(frames, dim, classes, seed)
    write_features(root / "fcv_train_feats.h5", factory.make(n_train)[0])
    database, labels = factory.make(n_database)
    write_features(root / "fcv_test_feats.h5", database)
    write_labels(root / "fcv_test_labels.mat", "labels", labels, matlab_v73=matlab_v73)
    return root


def write_activitynet(root: Path, *, n_train: int = 30, n_database: int = 24, n_query: int = 8, frames: int = 6,
                      dim: int = 16, classes: int = 4, seed: int = 0, matlab_v73: bool = False) -> Path:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    factory = VideoFactory(frames, dim, classes, seed)
    write_features(root / "train_feats.h5", factory.make(n_train)[0])
    database, database_labels = factory.make(n_database)
    write_features(root / "test_feats.h5", database)
    write_labels(root / "re_label.mat", "re_label", database_labels, matlab_v73=matlab_v73)
    query, query_labels = factory.make(n_query)
    write_features(root / "query_feats.h5", query)
    write_labels(root / "q_label.mat", "q_label", query_labels, matlab_v73=matlab_v73)
    return root


def write_yfcc(root: Path, *, train_per_file: tuple[int, ...] = (3, 4, 5, 3, 4, 5, 3, 4, 5),
               database_per_file: tuple[int, int] = (14, 10), n_query: int = 8, frames: int = 5, dim: int = 16,
               classes: int = 4, seed: int = 0, matlab_v73: bool = False) -> Path:
    """Nine training files and two database files, of unequal sizes so concatenation order is visible."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    factory = VideoFactory(frames, dim, classes, seed)
    for part, n in enumerate(train_per_file, 1):
        write_features(root / f"yfcc_train_feats_{part}.h5", factory.make(n)[0])
    for part, n in enumerate(database_per_file, 1):
        database, labels = factory.make(n)
        write_features(root / f"yfcc_test_feats_{part}.h5", database)
        write_labels(root / f"yfcc_test_labels_{part}.mat", "labels", labels, matlab_v73=matlab_v73)
    query, query_labels = factory.make(n_query)
    write_features(root / "query1000_feats.h5", query)
    write_labels(root / "query1000_labels.mat", "labels", query_labels, matlab_v73=matlab_v73)
    return root


WRITERS = {"fcvid": write_fcvid, "activitynet": write_activitynet, "yfcc": write_yfcc}
