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
    "Batch": "train",
    "boolean_csr_arrays": "neighbours",
    "check_method": "conformance",
    "boolean_csr_from_arrays": "neighbours",
    "build_anchor_neighbourhood": "neighbours",
    "compare": "api",
    "Comparison": "comparison",
    "ConfigError": "errors",
    "ConformanceError": "errors",
    "DataError": "errors",
    "Dataset": "data",
    "dataset_registry": "registry",
    "DatasetSplits": "data",
    "DeepMethod": "method",
    "DEFAULT_KS": "metrics",
    "evaluate": "metrics",
    "evaluate_checkpoint": "evaluation",
    "FileDataset": "data",
    "FileLayout": "data",
    "FileSplit": "data",
    "fit_pca": "pca",
    "HashingMethod": "method",
    "HDF5Features": "data",
    "kmeans": "neighbours",
    "KMEANS_BACKENDS": "neighbours",
    "LaunchOptions": "options",
    "NpyFeatures": "data",
    "knn_graph": "neighbours",
    "method_registry": "registry",
    "nearest_anchors": "neighbours",
    "pack_codes": "codes",
    "PackedCodes": "codes",
    "PAIR_SAMPLING": "neighbours",
    "PseudoNeighbourhood": "neighbours",
    "read_batch": "train",
    "read_csv_labels": "data",
    "read_ids": "data",
    "read_labels": "data",
    "register_dataset": "registry",
    "register_method": "registry",
    "Related": "train",
    "reproduce": "api",
    "Reproduction": "api",
    "resolve_data_root": "data",
    "resolve_kmeans_backend": "neighbours",
    "run": "api",
    "run_training": "train",
    "RunEvent": "runner",
    "RunFolder": "run_folder",
    "RunOptions": "options",
    "RunResult": "runner",
    "RunSpec": "config",
    "SampledFeatures": "data",
    "ShallowMethod": "method",
    "SsvhBenchError": "errors",
    "step_decay_lr": "train",
    "strict_codes": "codes",
    "train_model": "train",
    "TrainingError": "errors",
    "TrainingHooks": "train",
    "uniform_frame_indices": "data",
    "UnknownNameError": "errors",
    "VideoFeatures": "data",
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
