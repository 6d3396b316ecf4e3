"""Hamming ranking over packed codes: distances by popcount, per-distance counts, the first K of a ranking.

Distances follow the reference protocol, ``0.5 * (bits - q . b)`` for codes in {-1, 0, +1}. A 0 entry adds
0.5, so distances are half-integers; everything here works in *doubled* units (``2 * distance``, an integer
from 0 to ``2 * bits``) to stay exact. Per position, with both entries non-zero the doubled distance is 0
(same sign) or 2 (opposite signs); with either entry 0 it is 1. Over a code:

    doubled = 2 * popcount((q_signs ^ b_signs) & both_nonzero) + bits - popcount(both_nonzero)

which for purely binary codes is ``2 * popcount(q_signs ^ b_signs)``. Codes are re-laid as 64-bit words so one
numpy ``bitwise_count`` pass handles 64 positions; the caller bounds memory by passing a block of queries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .codes import PackedCodes
from .errors import DataError

WORD_BYTES = 8
CACHE_BYTES = 1 << 19  # transient uint64 words per chunk of query rows: about half an L2 cache


@dataclass(frozen=True)
class CodeWords:
    """Packed codes as uint64 words [N, words]; padding bits beyond ``bits`` are always 0."""

    signs: np.ndarray
    bits: int
    nonzero: np.ndarray | None = None  # None when no entry is 0

    @classmethod
    def from_packed(cls, codes: PackedCodes, *, strict: bool = False) -> CodeWords:
        """Re-lay packed codes as words; ``strict`` maps every 0 entry to +1 (a purely binary code)."""
        valid = _to_words(np.packbits(np.ones((1, codes.bits), dtype=bool), axis=1))
        signs = _to_words(codes.signs) & valid
        nonzero = None if codes.nonzero is None else _to_words(codes.nonzero) & valid
        if strict and nonzero is not None:
            signs |= ~nonzero & valid
            nonzero = None
        return cls(signs, codes.bits, nonzero)

    def __len__(self) -> int:
        return self.signs.shape[0]

    def rows(self, start: int, stop: int) -> CodeWords:
        nonzero = None if self.nonzero is None else self.nonzero[start:stop]
        return CodeWords(self.signs[start:stop], self.bits, nonzero)

    def same_codes(self, other: CodeWords) -> bool:
        if self.bits != other.bits or (self.nonzero is None) != (other.nonzero is None):
            return False
        same_nonzero = self.nonzero is None or np.array_equal(self.nonzero, other.nonzero)
        return same_nonzero and np.array_equal(self.signs, other.signs)


def _to_words(packed: np.ndarray) -> np.ndarray:
    n_rows, n_bytes = packed.shape
    n_words = -(-n_bytes // WORD_BYTES)
    padded = np.zeros((n_rows, n_words * WORD_BYTES), dtype=np.uint8)
    padded[:, :n_bytes] = packed
    return padded.view(np.uint64)


def distance_bins(bits: int) -> int:
    """Number of possible doubled distances: 0, 1, ..., 2 * bits."""
    return 2 * bits + 1


def doubled_distances(query: CodeWords, database: CodeWords) -> np.ndarray:
    """``2 * distance`` for every (query, database) pair, [len(query), len(database)].

    uint8 when ``2 * bits`` fits (bits <= 127), else uint16.
    """
    if query.bits != database.bits:
        raise DataError(f"query codes have {query.bits} bits but database codes have {database.bits}")
    dtype = np.uint8 if 2 * query.bits <= np.iinfo(np.uint8).max else np.uint16
    out = np.empty((len(query), len(database)), dtype=dtype)
    # a few query rows at a time keep the uint64 intermediates in cache (several times faster than one pass)
    step = max(1, CACHE_BYTES // (WORD_BYTES * max(1, len(database))))
    for start in range(0, len(query), step):
        _distances_into(out[start:start + step], query.rows(start, start + step), database)
    return out


def _distances_into(out: np.ndarray, query: CodeWords, database: CodeWords) -> None:
    shape = out.shape
    counted = np.empty(shape, dtype=np.uint8)
    differ = np.empty(shape, dtype=np.uint64)
    n_words = query.signs.shape[1]
    if query.nonzero is None and database.nonzero is None:
        out[...] = 0
        for word in range(n_words):
            np.bitwise_xor(query.signs[:, word, None], database.signs[None, :, word], out=differ)
            np.add(out, np.bitwise_count(differ, out=counted), out=out)
        np.add(out, out, out=out)
        return
    # both_nonzero of a side without zeros is just the other side's plane (padding bits are 0 there too)
    out[...] = query.bits
    both = np.empty(shape, dtype=np.uint64)
    for word in range(n_words):
        if query.nonzero is None:
            both[...] = database.nonzero[None, :, word]
        elif database.nonzero is None:
            both[...] = query.nonzero[:, word, None]
        else:
            np.bitwise_and(query.nonzero[:, word, None], database.nonzero[None, :, word], out=both)
        np.bitwise_xor(query.signs[:, word, None], database.signs[None, :, word], out=differ)
        np.bitwise_count(np.bitwise_and(differ, both, out=differ), out=counted)
        # add before subtracting: the running value never drops below 0, so unsigned arithmetic is exact
        np.add(out, counted, out=out)
        np.add(out, counted, out=out)
        np.subtract(out, np.bitwise_count(both, out=counted), out=out)


def distance_histograms(distances: np.ndarray, n_bins: int) -> np.ndarray:
    """Per query row, how many database items lie at each doubled distance: int64 [rows, n_bins]."""
    # A bincount per row stays in cache and avoids an int64 key array the size of the block.
    out = np.empty((distances.shape[0], n_bins), dtype=np.int64)
    for row, values in enumerate(distances):
        out[row] = np.bincount(values, minlength=n_bins)
    return out


def first_k(distances: np.ndarray, histograms: np.ndarray, k: int) -> np.ndarray:
    """Database indices of each row's first ``min(k, N)`` items, ordered by (distance, index): int64 [rows, k'].

    The first k are every item closer than the row's k-th distance plus the lowest-indexed items at that
    distance, so only those candidates are sorted, never a whole row.
    """
    n_rows, n_database = distances.shape
    k = min(k, n_database)
    n_bins = histograms.shape[1]
    kth_distance = (np.cumsum(histograms, axis=1) < k).sum(axis=1)
    candidates = np.flatnonzero(distances <= kth_distance[:, None].astype(distances.dtype))
    rows, columns = np.divmod(candidates, n_database)  # flatnonzero is far faster than a 2-D np.nonzero
    # candidates come by (row, index); a stable sort on (row, distance) keeps the index order
    order = np.argsort(rows * n_bins + distances[rows, columns], kind="stable")
    rows, columns = rows[order], columns[order]
    rank = np.arange(len(rows)) - np.searchsorted(rows, np.arange(n_rows))[rows]
    keep = rank < k
    out = np.empty((n_rows, k), dtype=np.int64)
    out[rows[keep], rank[keep]] = columns[keep]
    return out
