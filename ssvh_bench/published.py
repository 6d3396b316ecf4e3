"""Published mAP@K of SSVH methods, as data, so reports can show them beside reproduced numbers.

The single source is ``ssvh_bench/data/published.csv`` (shipped with the package); ``results/published.csv``
in the repository is a copy for readers, and a test keeps the two identical. Columns:
``method, dataset, bits, k, value, source`` (``value`` is mAP@k; ``source`` is repository and file).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pandas as pd

from .errors import DataError

PUBLISHED_COLUMNS = ["method", "dataset", "bits", "k", "value", "source"]


def packaged_published_path() -> Path:
    return Path(str(resources.files("ssvh_bench.data") / "published.csv"))


def load_published(path: Path | None = None) -> pd.DataFrame:
    """Published numbers from ``path`` (default: the copy shipped with the package), one row per value."""
    path = Path(path) if path is not None else packaged_published_path()
    if not path.is_file():
        raise DataError(f"no published-results file at {path}")
    frame = pd.read_csv(path, dtype={"method": str, "dataset": str, "source": str})
    missing = [c for c in PUBLISHED_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{path} lacks the column(s) {', '.join(missing)}; expected {', '.join(PUBLISHED_COLUMNS)}")
    return frame[PUBLISHED_COLUMNS].astype({"bits": int, "k": int, "value": float})
