"""Everything validated before a run folder is written: names, parameters, data, device, threads, the results
folder and whether the training split fits on the device. Launchers call ``check_specs`` before handing runs to
other processes, so an input error is one line before anything starts."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .config import RunSpec, dataset_label
from .data import DatasetSplits
from .data.on_device import check_choice, plan_data_on_device
from .devices import choose_threads, resolve_device
from .errors import ConfigError, DataError
from .io import canonical_json
from .options import RunOptions
from .precision import check_compile_available
from .registry import dataset_registry, method_registry
from .run_folder import RunFolder
from .tracking import check_loggers

log = logging.getLogger(__name__)
MIN_FREE_BYTES = 100 * 2**20


class DatasetCache:
    """Loads each (dataset, parameters, root) once per process and checks its splits; sweeps reuse them."""

    def __init__(self, data_root: Path | None = None) -> None:
        self.data_root = data_root
        self._loaded: dict[str, DatasetSplits] = {}

    def get(self, name: str, params: dict[str, Any]) -> DatasetSplits:
        key = canonical_json([name, params])
        if key not in self._loaded:
            log.info("loading dataset %s", name)
            splits = dataset_registry.create(name, **params).load(self.data_root)
            for split_name, split in (("train", splits.train), ("database", splits.database), ("query", splits.query)):
                if split is not None:
                    if 0 in split.shape:
                        raise DataError(f"{name} {split_name} split has shape {split.shape}: it needs videos, "
                                        "frames and features")
                    split.check_finite(f"{name} {split_name} features")
            self._loaded[key] = splits
        return self._loaded[key]

    def for_spec(self, spec: RunSpec) -> DatasetSplits:
        """What ``spec`` trains on and is evaluated on: its dataset's splits, or with ``eval_dataset`` the
        training split of one and the database and queries of the other (frames and feature size must agree)."""
        splits = self.get(spec.dataset, spec.dataset_params)
        if spec.eval_dataset is None:
            return splits
        target = self.get(spec.eval_dataset, spec.eval_dataset_params)
        train, database = splits.train.shape, target.database.shape
        if train[1:] != database[1:]:
            raise ConfigError(f"cannot evaluate on {spec.eval_dataset}: its videos are {database[1]} frames x "
                              f"{database[2]} features but {spec.dataset}'s training videos are {train[1]} x "
                              f"{train[2]}; use features of one extractor (and a folder's n_frames parameter)")
        return DatasetSplits(dataset_label(spec.dataset, spec.eval_dataset), splits.train, target.database,
                             target.database_labels, target.query, target.query_labels)


def check_specs(specs: Sequence[RunSpec], options: RunOptions, *, results_dir: Path,
                data_root: Path | str | None) -> DatasetCache:
    """Surface every input error (names, parameters, data, device, results folder) before the first run writes
    anything; returns the loaded datasets."""
    cache = DatasetCache(None if data_root is None else Path(data_root))
    if options.device != "auto":  # "auto" cannot fail, and resolving it would load torch for shallow-only grids
        resolve_device(options.device)
    if options.threads is not None:
        choose_threads(options.threads)
    if options.eval_every is not None and options.eval_every < 1:
        raise ConfigError(f"eval_every must be a positive number of epochs, got {options.eval_every}")
    if not options.checkpoint_minutes >= 0:  # NaN too
        raise ConfigError(f"checkpoint_minutes must be 0 or more minutes, got {options.checkpoint_minutes}")
    check_choice(options.data_on_device)
    check_loggers(options.logger)
    check_writable(results_dir)
    if any(spec.compile for spec in specs):
        check_compile_available(resolve_device(options.device))
    for spec in specs:
        method_registry.create(spec.method, **spec.method_params).check_params()
        if options.force or not RunFolder.of(results_dir, spec).is_finished():
            splits = cache.for_spec(spec)
            deep = method_registry.get(spec.method).family != "shallow"
            if deep and options.data_on_device not in ("auto", "no"):  # does the split fit on the device?
                plan_data_on_device(options.data_on_device, splits.train.shape, resolve_device(options.device))
    return cache


def check_writable(folder: Path) -> None:
    """A ConfigError unless ``folder`` is (or can be made as) a folder this process may write into."""
    existing = Path(folder).absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        why = "a file is in the way" if existing.exists() and not existing.is_dir() else "permission denied"
        raise ConfigError(f"results dir {folder} is not a writable folder ({why}: {existing})")
    free = shutil.disk_usage(existing).free
    if free < MIN_FREE_BYTES:
        raise ConfigError(f"results dir {folder} is on a full disk ({free / 2**20:.0f} MB free; runs need at least "
                          f"{MIN_FREE_BYTES // 2**20} MB for codes, checkpoints and caches)")
