"""``folder``: your own features as a dataset, from a folder with a small layout (docs/own-data.md).

Files, where ``SPLIT`` is ``train``, ``database`` or ``query`` (``query`` optional: without it the database
queries itself, as FCVID):

- ``SPLIT.h5`` (HDF5 dataset ``key``) or ``SPLIT.npy``: features [videos, frames, dim], float32 or float16;
- ``SPLIT_labels.npy`` (multi-hot [videos, classes]), ``.mat`` (variable ``label_key``) or ``.csv`` (header
  ``video,labels``, labels separated by ``;``) for database and query; training labels are never read;
- ``SPLIT_ids.txt`` (optional; needed by CSV labels): one video id per line, in feature-row order;
- ``SPLIT_lengths.npy`` (optional): each video's number of real frames, when videos of different lengths are
  stored padded to the longest;
- ``classes.txt`` (optional): the class names, one per line, giving the columns of CSV labels.

Every split is sampled to ``n_frames`` frames (0: the training file's frame count) by the uniform rule of
``ssvh_bench.data.sampling``. Files are memory-mapped or read lazily, so memory stays flat in the number of
videos. Both formats train in one order (a uniform permutation per epoch), so a folder gives the same run in
either format, and the run id holds a fingerprint of the contents (shapes, sampled videos, labels).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from ssvh_bench import (ConfigError, DataError, Dataset, DatasetSplits, HDF5Features, NpyFeatures, SampledFeatures,
                        dataset_registry, read_csv_labels, read_ids, read_labels, register_dataset, resolve_data_root)

SPLITS = ("train", "database", "query")
FEATURE_SUFFIXES = (".h5", ".npy")
LABEL_SUFFIXES = (".npy", ".mat", ".csv")
# like=auto: whose method defaults fit a folder of this size (the published settings need the published sizes)
LARGE_TRAIN, PUBLISHED_TRAIN = 200_000, 5_000


@register_dataset("folder", description="Your own features: SPLIT.h5/.npy, SPLIT_labels.npy/.mat/.csv in a folder "
                                        "(docs/own-data.md); path relative to --data-root")
class FolderDataset(Dataset):
    """Features, labels and ids in one folder; see the module docstring for the layout."""

    needs_data_root = True

    def __init__(self, path: str = "", n_frames: int = 0, key: str = "feats", label_key: str = "labels",
                 like: str = "auto") -> None:
        self.path = path
        self.n_frames = n_frames
        self.key = key
        self.label_key = label_key
        self.like = like
        # folder -> its splits: making specs reads them for ``resolve`` and again for ``fingerprint``
        self._loaded: dict[Path, DatasetSplits] = {}
        if isinstance(n_frames, bool) or not isinstance(n_frames, int) or n_frames < 0:
            raise ConfigError(f"folder: n_frames must be an integer >= 0 (0: the files' frame count), got {n_frames!r}")

    def folder(self, data_root: Path | None) -> Path:
        """``path`` when absolute, else ``path`` under the data root (``--data-root``, SSVH_BENCH_DATA, config)."""
        path = Path(self.path).expanduser()
        folder = path if path.is_absolute() else resolve_data_root("folder", data_root) / path
        if not folder.is_dir():
            raise DataError(f"folder dataset: {folder} is not a folder (set --data-root and --dataset-param path=...)")
        return folder

    @property
    def method_defaults(self) -> str | None:
        return None if self.like == "auto" else self.like

    def resolve(self, data_root: Path | None = None) -> FolderDataset:
        """``like=auto`` decided from the counts: ``yfcc`` above 200,000 training videos, ``activitynet`` (separate
        queries) or ``fcvid`` from 5,000, else ``synthetic`` (small models and few epochs, minutes on a CPU)."""
        if self.like != "auto":
            known = [name for name in dataset_registry.names() if name != "folder"]
            if self.like not in known:
                raise ConfigError(f"folder: like must be auto or one of {', '.join(known)}, got {self.like!r}")
            return self
        splits = self.load(data_root)
        n_train = len(splits.train)
        like = ("yfcc" if n_train > LARGE_TRAIN else "synthetic" if n_train < PUBLISHED_TRAIN
                else "fcvid" if splits.query_is_database else "activitynet")
        resolved = FolderDataset(self.path, self.n_frames, self.key, self.label_key, like)
        resolved._loaded = self._loaded  # the same files: read once
        return resolved

    def fingerprint(self, data_root: Path | None = None) -> str | None:
        """Shapes, 16 evenly spaced videos of each split and every label: the same contents in another format
        (.npy or .h5, .npy, .mat or .csv labels) give the same fingerprint."""
        splits = self.load(data_root)
        digest = hashlib.sha1()
        for split in (splits.train, splits.database, splits.query):
            digest.update(b"none" if split is None else split.fingerprint().encode())
        for labels in (splits.database_labels, splits.query_labels):
            if labels is not None:
                digest.update(repr(labels.shape).encode() + np.packbits(labels).tobytes())
        return digest.hexdigest()[:16]

    def load(self, data_root: Path | None = None) -> DatasetSplits:
        folder = self.folder(data_root)
        if folder not in self._loaded:
            self._loaded[folder] = self._read(folder)
        return self._loaded[folder]

    def _read(self, folder: Path) -> DatasetSplits:
        raw = {split: self._features(folder, split) for split in SPLITS}
        for split in ("train", "database"):
            if raw[split] is None:
                raise DataError(f"folder dataset: {folder} has no {split}.h5 or {split}.npy (see docs/own-data.md)")
        n_frames = self.n_frames or raw["train"].n_frames
        features = {split: SampledFeatures(base, n_frames, self._lengths(folder, split, len(base)))
                    for split, base in raw.items() if base is not None}
        dims = {split: f.feature_dim for split, f in features.items()}
        if len(set(dims.values())) > 1:
            raise DataError(f"folder dataset: the splits' feature dimensions differ ({dims}); one extractor made them?")
        ids = {split: self._ids(folder, split, len(f)) for split, f in features.items()}
        classes = self._classes(folder)
        labels = {split: self._labels(folder, split, ids[split], classes, len(features[split]))
                  for split in ("database", "query") if split in features}
        return DatasetSplits("folder", features["train"], features["database"], labels["database"],
                             features.get("query"), labels.get("query"))

    def _features(self, folder: Path, split: str) -> Any:
        found = [folder / f"{split}{suffix}" for suffix in FEATURE_SUFFIXES if (folder / f"{split}{suffix}").is_file()]
        if len(found) > 1:
            raise DataError(f"folder dataset: both {found[0].name} and {found[1].name} in {folder}; keep one")
        if not found:
            return None
        return HDF5Features(found[0], key=self.key) if found[0].suffix == ".h5" else NpyFeatures(found[0])

    @staticmethod
    def _lengths(folder: Path, split: str, n: int) -> np.ndarray | None:
        path = folder / f"{split}_lengths.npy"
        if not path.is_file():
            return None
        try:
            lengths = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as error:
            raise DataError(f"cannot read {path}: {error}") from None
        if lengths.shape != (n,):
            raise DataError(f"{path} holds {lengths.shape} lengths but {split} has {n} videos")
        return lengths

    @staticmethod
    def _ids(folder: Path, split: str, n: int) -> list[str] | None:
        path = folder / f"{split}_ids.txt"
        if not path.is_file():
            return None
        ids = read_ids(path)
        if len(ids) != n:
            raise DataError(f"{path} holds {len(ids)} ids but the {split} features hold {n} videos")
        return ids

    @staticmethod
    def _label_file(folder: Path, split: str) -> Path | None:
        found = [folder / f"{split}_labels{s}" for s in LABEL_SUFFIXES if (folder / f"{split}_labels{s}").is_file()]
        if len(found) > 1:
            raise DataError(f"folder dataset: both {found[0].name} and {found[1].name} in {folder}; keep one")
        return found[0] if found else None

    def _classes(self, folder: Path) -> list[str] | None:
        """classes.txt, else the sorted label names of the CSV label files (None when no labels are CSV)."""
        listed = folder / "classes.txt"
        if listed.is_file():
            return read_ids(listed)
        csvs = [path for split in ("database", "query")
                if (path := self._label_file(folder, split)) is not None and path.suffix == ".csv"]
        if not csvs:
            return None
        return sorted({name for path in csvs for names in read_csv_labels(path).values() for name in names})

    def _labels(self, folder: Path, split: str, ids: list[str] | None, classes: list[str] | None, n: int) -> np.ndarray:
        path = self._label_file(folder, split)
        if path is None:
            raise DataError(f"folder dataset: {folder} has {split} features but no {split}_labels.npy, .mat or .csv")
        labels = read_labels(path, key=self.label_key, ids=ids, classes=classes)
        if len(labels) != n:
            raise DataError(f"{path} holds {len(labels)} label rows but the {split} features hold {n} videos")
        return labels
