"""ssvh-bench: the reference benchmark suite for self-supervised video hashing.

Names are imported on first use (PEP 562), so ``import ssvh_bench`` and the command line's start stay light:
torch, pandas, scikit-learn and matplotlib load only when something needs them.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "ArrayFeatures": "data",
    "ArtefactCache": "artefacts",
    "Reproduction": "targets",
    "RunEvent": "runner",
    "RunResult": "runner",
    "RunSpec": "config",
    "evaluate_checkpoint": "runner",
    "reproduce": "targets",
    "run": "runner",
    "ConfigError": "errors",
    "DEFAULT_KS": "metrics",
    "DataError": "errors",
    "Dataset": "data",
    "DatasetSplits": "data",
    "DeepMethod": "train",
    "FileDataset": "data",
    "FileLayout": "data",
    "FileSplit": "data",
    "HDF5Features": "data",
    "HashingMethod": "method",
    "PackedCodes": "codes",
    "PseudoNeighbourhood": "neighbours",
    "ShallowMethod": "method",
    "SsvhBenchError": "errors",
    "TrainingError": "errors",
    "UnknownNameError": "errors",
    "VideoFeatures": "data",
    "build_anchor_neighbourhood": "neighbours",
    "dataset_registry": "registry",
    "evaluate": "metrics",
    "fit_pca": "pca",
    "kmeans": "neighbours",
    "knn_graph": "neighbours",
    "nearest_anchors": "neighbours",
    "method_registry": "registry",
    "pack_codes": "codes",
    "register_dataset": "registry",
    "register_method": "registry",
    "resolve_kmeans_backend": "neighbours",
    "step_decay_lr": "train",
    "strict_codes": "codes",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'ssvh_bench' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))
