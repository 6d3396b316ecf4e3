"""ssvh-bench: the reference benchmark suite for self-supervised video hashing."""

from .artefacts import ArtefactCache
from .codes import PackedCodes, pack_codes, strict_codes
from .data import (ArrayFeatures, Dataset, DatasetSplits, FileDataset, FileLayout, FileSplit, HDF5Features,
                   VideoFeatures)
from .errors import ConfigError, DataError, SsvhBenchError, TrainingError, UnknownNameError
from .method import HashingMethod, ShallowMethod
from .metrics import DEFAULT_KS, evaluate
from .neighbours import (PseudoNeighbourhood, boolean_csr_arrays, boolean_csr_from_arrays, build_anchor_neighbourhood,
                         knn_graph, resolve_kmeans_backend)
from .pca import fit_pca
from .registry import dataset_registry, method_registry, register_dataset, register_method
from .train import Batch, DeepMethod, Related, TrainingHooks, read_batch, run_training, step_decay_lr, train_model

__version__ = "0.1.0"

__all__ = [
    "ArrayFeatures",
    "ArtefactCache",
    "Batch",
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
    "Related",
    "ShallowMethod",
    "SsvhBenchError",
    "TrainingError",
    "TrainingHooks",
    "UnknownNameError",
    "VideoFeatures",
    "boolean_csr_arrays",
    "boolean_csr_from_arrays",
    "build_anchor_neighbourhood",
    "dataset_registry",
    "evaluate",
    "fit_pca",
    "knn_graph",
    "method_registry",
    "pack_codes",
    "read_batch",
    "register_dataset",
    "register_method",
    "resolve_kmeans_backend",
    "run_training",
    "step_decay_lr",
    "strict_codes",
    "train_model",
]
