"""Each query's AP@K of a finished run: what intervals and paired tests are computed from.

A run writes ``per_query.npz`` beside ``codes.npz`` when it finishes (float64 AP@K per query for every K it
evaluated, whose means are exactly its ``map@K``). The file is derived data: it records the checksum of the
codes it came from, and a run folder without it (written before it existed) or with a stale or damaged one
gets it recomputed exactly from ``codes.npz`` (which holds the labels too) and cached atomically.

``queries`` fingerprints the query set a run was evaluated on (query and database labels): runs can be paired
query by query only when their fingerprints are equal.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import DataError
from .metrics import DEFAULT_KS, evaluate
from .run_folder import RunFolder


@dataclass(frozen=True)
class PerQuery:
    """``values``: ``map@K`` -> AP@K per query (float64); ``queries``: the query set's fingerprint."""

    values: dict[str, np.ndarray]
    queries: str

    def ap(self, k: int, *, oracle: bool = False) -> np.ndarray:
        """AP@k per query (``oracle``: of the epoch chosen on test data, ``map@K_oracle``)."""
        key = f"map@{k}" + ("_oracle" if oracle else "")
        if key not in self.values:
            available = ", ".join(sorted(self.values, key=lambda name: (name.endswith("_oracle"), len(name), name)))
            raise DataError(f"the runs have no per-query {key}; available: {available or 'none'}")
        return self.values[key]


def queries_fingerprint(query_labels: np.ndarray | None, database_labels: np.ndarray) -> str:
    """Fingerprint of a query set: both label matrices (``query_labels`` None: the database queries itself)."""
    digest = hashlib.sha256()
    for labels in (query_labels, database_labels):
        if labels is None:
            digest.update(b"-")
            continue
        labels = np.asarray(labels) != 0
        digest.update(str(labels.shape).encode() + np.packbits(labels, axis=1).tobytes())
    return digest.hexdigest()


def per_query_arrays(values: dict[str, np.ndarray], codes_sha256: str, queries: str) -> dict[str, np.ndarray]:
    """What ``per_query.npz`` holds: the AP arrays, the checksum of the codes and the query fingerprint."""
    return {**values, "codes_sha256": np.array(codes_sha256), "queries": np.array(queries)}


def load_per_query(folder: RunFolder, metrics: dict[str, Any]) -> PerQuery:
    """The per-query AP of a finished run (``metrics``: its metrics.json), recomputed from its codes and cached
    when ``per_query.npz`` is missing, damaged or was made from other codes."""
    stored = folder.read_per_query()
    if stored is not None and str(stored.get("codes_sha256")) == metrics.get("codes_sha256") and "queries" in stored:
        values = {name: array for name, array in stored.items() if name.startswith("map@")}
        return PerQuery(values, str(stored["queries"]))
    codes = folder.load_codes()
    query = codes["database"] if codes["query"] is None else codes["query"]
    query_labels = codes["database_labels"] if codes["query"] is None else codes["query_labels"]
    found = evaluate(query, codes["database"], query_labels, codes["database_labels"],
                     ks=_evaluated_ks(metrics), normalizer=metrics.get("normalizer", "k"),
                     strict=bool(metrics.get("strict", False)), per_query=True)
    queries = queries_fingerprint(codes["query_labels"], codes["database_labels"])
    folder.save_per_query(per_query_arrays(found["per_query"], metrics["codes_sha256"], queries))
    return PerQuery(found["per_query"], queries)


def _evaluated_ks(metrics: dict[str, Any]) -> tuple[int, ...]:
    ks = sorted(int(key[4:]) for key in metrics if key.startswith("map@") and key[4:].isdigit())
    return tuple(ks) or DEFAULT_KS
