"""ssvh-bench: the reference benchmark suite for self-supervised video hashing."""

from .codes import PackedCodes, pack_codes, strict_codes
from .data import ArrayFeatures, Dataset, DatasetSplits, VideoFeatures
from .errors import ConfigError, DataError, SsvhBenchError, TrainingError, UnknownNameError
from .method import HashingMethod, ShallowMethod
from .registry import dataset_registry, method_registry, register_dataset, register_method
from .train import DeepMethod

__version__ = "0.1.0"

__all__ = [
    "ArrayFeatures",
    "ConfigError",
    "DataError",
    "Dataset",
    "DatasetSplits",
    "DeepMethod",
    "HashingMethod",
    "PackedCodes",
    "ShallowMethod",
    "SsvhBenchError",
    "TrainingError",
    "UnknownNameError",
    "VideoFeatures",
    "dataset_registry",
    "method_registry",
    "pack_codes",
    "register_dataset",
    "register_method",
    "strict_codes",
]
