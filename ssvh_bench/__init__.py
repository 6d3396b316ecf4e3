"""ssvh-bench: the reference benchmark suite for self-supervised video hashing."""

from .artefacts import ArtefactCache
from .codes import PackedCodes, pack_codes, strict_codes
from .data import (ArrayFeatures, Dataset, DatasetSplits, FileDataset, FileLayout, FileSplit, HDF5Features,
                   VideoFeatures)
from .errors import ConfigError, DataError, SsvhBenchError, TrainingError, UnknownNameError
from .method import HashingMethod, ShallowMethod
from .metrics import DEFAULT_KS, evaluate
from .neighbours import (PseudoNeighbourhood, build_anchor_neighbourhood, kmeans, knn_graph, nearest_anchors,
                         resolve_kmeans_backend)
from .pca import fit_pca
from .registry import dataset_registry, method_registry, register_dataset, register_method
from .train import DeepMethod, step_decay_lr

__version__ = "0.1.0"

__all__ = [
    "ArrayFeatures",
    "ArtefactCache",
    "ConfigError",
    "DEFAULT_KS",
    "DataError",
    "Dataset",
    "DatasetSplits",
    "DeepMethod",
    "FileDataset",
    "FileLayout",
    "FileSplit",
    "HDF5Features",
    "HashingMethod",
    "PackedCodes",
    "PseudoNeighbourhood",
    "ShallowMethod",
    "SsvhBenchError",
    "TrainingError",
    "UnknownNameError",
    "VideoFeatures",
    "build_anchor_neighbourhood",
    "dataset_registry",
    "evaluate",
    "fit_pca",
    "kmeans",
    "knn_graph",
    "method_registry",
    "nearest_anchors",
    "pack_codes",
    "register_dataset",
    "register_method",
    "resolve_kmeans_backend",
    "step_decay_lr",
    "strict_codes",
]
