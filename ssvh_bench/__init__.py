"""ssvh-bench: the reference benchmark suite for self-supervised video hashing."""

from .codes import PackedCodes, pack_codes, strict_codes
from .data import ArrayFeatures, Dataset, DatasetSplits, VideoFeatures
from .errors import ConfigError, DataError, SsvhBenchError, UnknownNameError
from .method import HashingMethod, ShallowMethod
from .metrics import DEFAULT_KS, evaluate
from .registry import dataset_registry, method_registry, register_dataset, register_method

__version__ = "0.1.0"

__all__ = [
    "ArrayFeatures",
    "ConfigError",
    "DEFAULT_KS",
    "DataError",
    "Dataset",
    "DatasetSplits",
    "HashingMethod",
    "PackedCodes",
    "ShallowMethod",
    "SsvhBenchError",
    "UnknownNameError",
    "VideoFeatures",
    "dataset_registry",
    "evaluate",
    "method_registry",
    "pack_codes",
    "register_dataset",
    "register_method",
    "strict_codes",
]
