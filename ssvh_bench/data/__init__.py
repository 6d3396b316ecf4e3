"""Data containers shared by every dataset plugin and method."""

from .dataset import Dataset
from .features import ArrayFeatures, VideoFeatures, as_video_features, require_finite  # noqa: F401  (public)
from .file_dataset import FileDataset, FileLayout, FileSplit, resolve_data_root
from .hdf5 import HDF5Features
from .label_files import read_csv_labels, read_ids, read_labels
from .labels import read_label_matrix
from .npy import NpyFeatures
from .sampling import SampledFeatures, uniform_frame_indices
from .splits import DatasetSplits

__all__ = [
    "ArrayFeatures",
    "Dataset",
    "DatasetSplits",
    "FileDataset",
    "FileLayout",
    "FileSplit",
    "HDF5Features",
    "NpyFeatures",
    "SampledFeatures",
    "VideoFeatures",
    "as_video_features",
    "read_csv_labels",
    "read_ids",
    "read_label_matrix",
    "read_labels",
    "resolve_data_root",
    "uniform_frame_indices",
]
