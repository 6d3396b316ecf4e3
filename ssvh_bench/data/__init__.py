"""Data containers shared by every dataset plugin and method."""

from .dataset import Dataset
from .features import ArrayFeatures, VideoFeatures, as_video_features, require_finite  # noqa: F401  (public)
from .file_dataset import FileDataset, FileLayout, FileSplit
from .hdf5 import HDF5Features
from .labels import read_label_matrix
from .splits import DatasetSplits

__all__ = [
    "ArrayFeatures",
    "Dataset",
    "DatasetSplits",
    "FileDataset",
    "FileLayout",
    "FileSplit",
    "HDF5Features",
    "VideoFeatures",
    "as_video_features",
    "read_label_matrix",
]
