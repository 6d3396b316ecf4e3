"""Label matrices from MATLAB .mat files, both the classic format (scipy) and v7.3 (which is HDF5).

The SSVH papers distribute labels as multi-hot rows (one row per video, one column per class); only
non-zero entries matter, so the result is a boolean matrix.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import scipy.io
import scipy.sparse

from ..errors import DataError


def read_label_matrix(path: Path, key: str) -> np.ndarray:
    """The multi-hot label matrix stored under ``key`` in ``path``, as bool [videos, classes]."""
    path = Path(path)
    try:  # an unreadable file (permissions, a folder in its place) is the user's to fix: say so in one line
        with open(path, "rb"):
            pass
    except OSError as error:
        raise DataError(f"cannot read labels from {path}: {error.strerror or error}") from None
    try:
        contents = scipy.io.loadmat(path, variable_names=[key])
    except NotImplementedError:  # scipy's answer for MATLAB v7.3 files
        return _read_v73(path, key)
    except (ValueError, OSError, TypeError, IndexError, scipy.io.matlab.MatReadError) as error:
        if h5py.is_hdf5(path):  # a v7.3 file whose MATLAB header was lost: still readable as HDF5
            return _read_v73(path, key)
        raise DataError(f"cannot read labels from {path}: not a MATLAB .mat file or truncated ({error}); "
                        "download the file again") from None
    if key not in contents:
        found = sorted(name for name, _, _ in scipy.io.whosmat(path))
        raise DataError(f"{path} has no variable {key!r} (found: {', '.join(found) or 'none'}); "
                        "is this the right label file?")
    matrix = contents[key]
    return _as_multi_hot(matrix.toarray() if scipy.sparse.issparse(matrix) else np.asarray(matrix), path, key)


def _read_v73(path: Path, key: str) -> np.ndarray:
    try:
        with h5py.File(path, "r") as handle:
            if key not in handle:
                raise DataError(f"{path} has no variable {key!r} (found: {', '.join(sorted(handle)) or 'none'}); "
                                "is this the right label file?")
            node = handle[key]
            if not isinstance(node, h5py.Dataset):
                raise DataError(f"{path}: {key!r} is a sparse or structured MATLAB variable; save it as a full "
                                "numeric matrix")
            # MATLAB writes column-major, so an N x C matrix appears to HDF5 as C x N.
            return _as_multi_hot(np.asarray(node[()]).T, path, key)
    except OSError as error:
        raise DataError(f"cannot read labels from {path}: truncated or corrupt HDF5 ({error}); "
                        "download the file again") from None


def _as_multi_hot(matrix: np.ndarray, path: Path, key: str) -> np.ndarray:
    if matrix.ndim != 2:
        raise DataError(f"{path}: {key!r} has shape {matrix.shape}, expected a 2-D multi-hot matrix "
                        "[videos, classes]")
    if not (np.issubdtype(matrix.dtype, np.number) or matrix.dtype == bool):
        raise DataError(f"{path}: {key!r} has dtype {matrix.dtype}, expected numbers")
    return matrix != 0


def label_statistics(labels: np.ndarray) -> dict[str, float | int]:
    """Counts that show whether a label matrix looks right: classes, labels per video, videos per class."""
    labels = np.asarray(labels) != 0
    per_video = labels.sum(axis=1)
    per_class = labels.sum(axis=0)
    return {
        "videos": int(labels.shape[0]),
        "classes": int(labels.shape[1]),
        "labels_per_video_mean": float(per_video.mean()) if len(per_video) else 0.0,
        "labels_per_video_max": int(per_video.max(initial=0)),
        "unlabelled_videos": int((per_video == 0).sum()),
        "videos_per_class_min": int(per_class.min()) if per_class.size else 0,
        "videos_per_class_median": float(np.median(per_class)) if per_class.size else 0.0,
        "videos_per_class_max": int(per_class.max(initial=0)),
        "empty_classes": int((per_class == 0).sum()),
    }
