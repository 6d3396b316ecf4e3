"""DatasetSplits: what a dataset plugin hands to the engine."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DataError
from .features import VideoFeatures


@dataclass
class DatasetSplits:
    """Training videos (unlabelled for the method) plus the labelled retrieval splits.

    ``query is None`` means the query set is the database itself (FCVID's protocol): every database video
    queries the whole database, itself included.
    """

    name: str
    train: VideoFeatures
    database: VideoFeatures
    database_labels: np.ndarray
    query: VideoFeatures | None = None
    query_labels: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.database_labels = check_labels(self.database_labels, len(self.database), "database")
        if (self.query is None) != (self.query_labels is None):
            raise DataError("query features and query labels must be given together")
        if self.query is not None:
            self.query_labels = check_labels(self.query_labels, len(self.query), "query")
            if self.query_labels.shape[1] != self.database_labels.shape[1]:
                raise DataError(
                    f"query labels have {self.query_labels.shape[1]} classes, "
                    f"database labels {self.database_labels.shape[1]}"
                )
        dims = {s.feature_dim for s in (self.train, self.database, self.query) if s is not None}
        if len(dims) > 1:
            raise DataError(f"splits disagree on the feature dimension: {sorted(dims)}")

    @property
    def query_is_database(self) -> bool:
        return self.query is None

    @property
    def query_videos(self) -> VideoFeatures:
        return self.database if self.query is None else self.query

    @property
    def query_label_matrix(self) -> np.ndarray:
        return self.database_labels if self.query_labels is None else self.query_labels


def check_labels(labels: np.ndarray, n: int, split: str, *, rows: str = "videos") -> np.ndarray:
    """A multi-hot label matrix [n, classes] as booleans (any non-zero entry is a label)."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise DataError(f"{split} labels must be a 2-D multi-hot matrix [videos, classes], got shape {labels.shape}")
    if labels.shape[0] != n:
        raise DataError(f"{split} has {n} {rows} but {labels.shape[0]} label rows")
    if labels.shape[1] == 0:
        raise DataError(f"{split} labels have no classes")
    return labels != 0
