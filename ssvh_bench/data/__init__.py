"""Data containers shared by every dataset plugin and method."""

from .dataset import Dataset
from .features import ArrayFeatures, VideoFeatures, as_video_features
from .splits import DatasetSplits

__all__ = ["ArrayFeatures", "Dataset", "DatasetSplits", "VideoFeatures", "as_video_features"]
