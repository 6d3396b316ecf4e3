"""Labels in any of the formats a folder of features may use: a multi-hot ``.npy`` or ``.mat`` matrix, or a
CSV of video ids and label names.

CSV: a header ``video,labels``, then one row per video (or several rows for one video, which add up); a
video's labels are separated by ``;``. Rows are matched to the split's video ids, so the file's order does
not matter. The classes are the sorted label names of every CSV of the dataset (or the given class list).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import DataError
from .labels import read_label_matrix

CSV_HEADER = ["video", "labels"]
LABEL_SEPARATOR = ";"


def read_csv_labels(path: Path) -> dict[str, set[str]]:
    """Video id -> its label names, from a CSV with the header ``video,labels``."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"cannot read labels from {path}: {error}") from None
    if not rows or [cell.strip() for cell in rows[0]] != CSV_HEADER:
        raise DataError(f"{path} must start with the header line {','.join(CSV_HEADER)}")
    labels: dict[str, set[str]] = {}
    for number, row in enumerate(rows[1:], 2):
        if not row:
            continue
        if len(row) != 2 or not row[0].strip():
            raise DataError(f"{path} line {number}: expected 'video,label1;label2', got {','.join(row)!r}")
        names = {name.strip() for name in row[1].split(LABEL_SEPARATOR) if name.strip()}
        labels.setdefault(row[0].strip(), set()).update(names)
    return labels


def csv_label_matrix(path: Path, ids: Sequence[str], classes: Sequence[str]) -> np.ndarray:
    """The multi-hot matrix [len(ids), len(classes)] of a label CSV; a video without a row has no label."""
    labels = read_csv_labels(path)
    unknown = sorted(set(labels) - set(ids))
    if unknown:
        raise DataError(f"{path} names {len(unknown)} video(s) that are not in the split's ids, e.g. {unknown[0]!r}")
    column = {name: i for i, name in enumerate(classes)}
    matrix = np.zeros((len(ids), len(classes)), dtype=bool)
    for row, video in enumerate(ids):
        for name in labels.get(video, ()):
            if name not in column:
                raise DataError(f"{path}: label {name!r} of {video!r} is not among the classes")
            matrix[row, column[name]] = True
    return matrix


def read_labels(path: Path, *, key: str, ids: Sequence[str] | None, classes: Sequence[str] | None) -> np.ndarray:
    """A split's labels as bool [videos, classes]: ``.npy`` (2-D, numbers), ``.mat`` (variable ``key``) or ``.csv``
    (needs the split's ``ids`` and the dataset's ``classes``)."""
    path = Path(path)
    if path.suffix == ".mat":
        return read_label_matrix(path, key)
    if path.suffix == ".csv":
        if ids is None or classes is None:
            raise DataError(f"{path}: CSV labels name videos, so the split needs its ids file")
        return csv_label_matrix(path, ids, classes)
    try:
        matrix = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as error:
        raise DataError(f"cannot read labels from {path}: not a .npy file or truncated ({error})") from None
    if matrix.ndim != 2 or not (np.issubdtype(matrix.dtype, np.number) or matrix.dtype == bool):
        raise DataError(f"{path} has {matrix.dtype} {matrix.shape}; expected a 2-D multi-hot matrix [videos, classes]")
    return matrix != 0


def read_ids(path: Path) -> list[str]:
    """One video id per line (blank lines ignored); ids must be unique."""
    try:
        ids = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"cannot read video ids from {path}: {error}") from None
    if len(set(ids)) != len(ids):
        raise DataError(f"{path} repeats a video id; every id must be unique")
    return ids
