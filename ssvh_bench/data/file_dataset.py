"""Datasets read from the feature and label files the SSVH papers distribute.

A plugin declares its ``FileLayout`` (file names, label keys, which split queries which); this module finds
the files, validates them before any work starts and builds lazy ``HDF5Features`` splits.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..errors import ConfigError, DataError
from .dataset import Dataset
from .hdf5 import HDF5Features, float16_sibling
from .labels import read_label_matrix
from .splits import DatasetSplits

USER_CONFIG_NAME = Path("ssvh-bench") / "config.toml"
PAPERS_SOURCE = ("The SSVH papers' authors distribute the feature files; download links are in the READMEs of "
                 "https://github.com/huangmozhi9527/ConMH, https://github.com/Lily1994/BTH and "
                 "https://github.com/lixiangpengcs/Self-Supervised-Video-Hashing")


@dataclass(frozen=True)
class FileSplit:
    """One split: its feature files (concatenated in order) and its label files (same order) and key."""

    features: tuple[str, ...]
    labels: tuple[str, ...] = ()
    label_key: str = "labels"


@dataclass(frozen=True)
class FileLayout:
    """Where a dataset's splits live. ``query is None``: the database is also the query set (FCVID)."""

    name: str
    train: FileSplit
    database: FileSplit
    query: FileSplit | None
    disk_gb: float = 0.0  # the feature files as float32 (``data convert --float16`` halves it)
    source: str = PAPERS_SOURCE

    def splits(self) -> dict[str, FileSplit]:
        named = {"train": self.train, "database": self.database, "query": self.query}
        return {name: split for name, split in named.items() if split is not None}

    def file_names(self) -> list[str]:
        return [name for split in self.splits().values() for name in (*split.features, *split.labels)]


def user_config_path() -> Path:
    """``$XDG_CONFIG_HOME/ssvh-bench/config.toml``, by default ``~/.config/ssvh-bench/config.toml``."""
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / USER_CONFIG_NAME


def configured_data_root(dataset: str) -> Path | None:
    """The data root the user config gives ``dataset``: ``data_root = "/path"`` or ``[data_root] fcvid = ...``."""
    path = user_config_path()
    if not path.is_file():
        return None
    try:
        config = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from None
    value = config.get("data_root")
    if isinstance(value, dict):
        value = value.get(dataset)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{path}: data_root must be a path string or a table of dataset = path strings")
    return Path(value).expanduser()


def resolve_data_root(dataset: str, data_root: Path | None) -> Path:
    """``--data-root`` (or SSVH_BENCH_DATA, which the CLI maps onto it), else the user config, else an error."""
    root = data_root if data_root is not None else configured_data_root(dataset)
    if root is None:
        raise DataError(
            f"{dataset} is read from its feature files, and no data root is set: pass --data-root DIR, set "
            f"SSVH_BENCH_DATA, or put data_root in {user_config_path()} (see ssvh-bench data info)"
        )
    return Path(root).expanduser()


class FileDataset(Dataset):
    """A dataset plugin over distributed HDF5 features and .mat labels; subclasses set ``layout``.

    ``float16=True`` reads the float16 copies written by ``ssvh-bench data convert DATASET --float16``
    (half the disk traffic; methods still receive float32).
    """

    needs_data_root: ClassVar[bool] = True
    layout: ClassVar[FileLayout]

    def __init__(self, float16: bool = False) -> None:
        self.float16 = float16

    def folder(self, data_root: Path | None) -> Path:
        """The folder holding the files: the root itself or its subfolder named after the dataset."""
        root = resolve_data_root(self.layout.name, data_root)
        candidates = [root, root / self.layout.name]
        names = self.layout.file_names()
        for candidate in candidates:
            if all((candidate / name).is_file() for name in names):
                return candidate
        best = max(candidates, key=lambda c: sum((c / name).is_file() for name in names))
        missing = [name for name in names if not (best / name).is_file()]
        raise DataError(
            f"{self.layout.name}: missing {', '.join(missing)} in {best} (looked in {root} and {root / self.layout.name}). "
            f"{self.layout.source}; point --data-root (or SSVH_BENCH_DATA) at the folder holding them"
        )

    def feature_paths(self, folder: Path, split: FileSplit) -> list[Path]:
        """The split's feature files: the originals, or their float16 copies when ``float16`` is set."""
        paths = [folder / name for name in split.features]
        return [float16_sibling(path) for path in paths] if self.float16 else paths

    def _check_float16_copies(self, folder: Path) -> None:
        absent = [path.name for split in self.layout.splits().values() for path in self.feature_paths(folder, split)
                  if not path.is_file()]
        if absent:
            raise DataError(f"{self.layout.name}: float16=true but {', '.join(absent)} not found in {folder}; "
                            f"write them with: ssvh-bench data convert {self.layout.name} --float16")

    def load(self, data_root: Path | None = None) -> DatasetSplits:
        folder = self.folder(data_root)
        if self.float16:
            self._check_float16_copies(folder)
        features: dict[str, HDF5Features] = {}
        labels: dict[str, np.ndarray] = {}
        for name, split in self.layout.splits().items():
            features[name] = HDF5Features(self.feature_paths(folder, split))
            if split.labels:
                labels[name] = _split_labels(folder, split, features[name])
        _check_same_geometry(features)
        for name, split_features in features.items():
            split_features.check_finite(f"{self.layout.name} {name} features")
        if "query" in labels and labels["query"].shape[1] != labels["database"].shape[1]:
            raise DataError(f"{self.layout.name}: query labels have {labels['query'].shape[1]} classes but database "
                            f"labels {labels['database'].shape[1]}; the label files come from different releases")
        return DatasetSplits(self.layout.name, features["train"], features["database"], labels["database"],
                             features.get("query"), labels.get("query"))


def _split_labels(folder: Path, split: FileSplit, features: HDF5Features) -> np.ndarray:
    parts = [read_label_matrix(folder / name, split.label_key) for name in split.labels]
    classes = {part.shape[1] for part in parts}
    if len(classes) > 1:
        raise DataError(f"{', '.join(split.labels)} disagree on the number of classes: {sorted(classes)}")
    labels = np.concatenate(parts)
    if len(labels) != len(features):
        files = ", ".join(p.name for p in features.paths)
        raise DataError(f"{', '.join(split.labels)} hold {len(labels)} label rows but {files} hold "
                        f"{len(features)} videos; use label and feature files from the same release")
    return labels


def _check_same_geometry(features: dict[str, HDF5Features]) -> None:
    """Every split must share the frame count and the feature dimension of the training split."""
    train = features["train"]
    for name, split in features.items():
        for axis, what in ((1, "frames"), (2, "feature dimension")):
            if split.shape[axis] != train.shape[axis]:
                raise DataError(f"{split.paths[0]} ({name}) has {what} {split.shape[axis]} but {train.paths[0]} "
                                f"(train) has {train.shape[axis]}; the splits come from different feature extractors")
