"""The evaluation protocol (docs/protocol.md): mAP@K, tie-aware mAP@K, P@K, R@K and the PR curve.

Semantics, exactly as the published SSVH code evaluates:

- distance ``0.5 * (bits - q . b)`` with codes in {-1, 0, +1}; ``strict=True`` first maps 0 to +1;
- ranking by ascending distance, ties broken by database index; when the queries are the database, a query
  stays in its own ranking (at distance 0);
- relevant when the two label rows share at least one class;
- AP@K = sum over relevant positions r <= K of hits(r) / r, divided by K (``normalizer="k"``, the
  reference) or by hits(K) (``normalizer="hits"``, 0 without hits); mAP@K is the mean over queries;
- ``map_tie_aware@K`` is the exact expectation of mAP@K over uniformly random orders inside every group of
  equally distant items (McSherry & Najork, ECIR 2008), from per-distance counts in closed form;
- P@K = hits(K) / K and R@K = hits(K) / relevant items, on the index-tie-broken ranking;
- PR curve over Hamming radius r = 0..bits: each query retrieves everything at distance <= r; its precision
  is relevant retrieved / retrieved, counted as 0 when it retrieves nothing (the usual convention of the
  hashing literature, e.g. "precision within Hamming radius 2"), its recall relevant retrieved / relevant
  (0 for a query without relevant items); both are averaged over all queries.

Work is blocked over queries: per block, the integer distances to the whole database are counted per
distance value (all items and relevant items), and only each query's first max(K) items are ranked.
Memory stays proportional to the block; no N x N matrix is ever built. Blocks run on a pool of ``threads``
(numpy's popcount and sorts release the GIL) and are summed in query order, so the metrics are the same
with any number of threads.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
from scipy import sparse
from scipy.special import gammaln

from .codes import PackedCodes, check_codes, pack_codes, strict_codes
from .data.splits import check_labels
from .errors import ConfigError, DataError
from .hamming import CodeWords, distance_bins, distance_histograms, doubled_distances, first_k
from .hamming_device import DeviceSearch

DEFAULT_KS = (5, 10, 20, 40, 60, 80, 100)
NORMALIZERS = ("k", "hits")
BLOCK_PAIRS = 1 << 23  # default (query, database) pairs per block: tens of MB of transient arrays
DEVICE_BLOCK_PAIRS = 1 << 25  # on a GPU: about 1 GB of transient tensors per block


def evaluate(
    query_codes: PackedCodes | np.ndarray,
    database_codes: PackedCodes | np.ndarray,
    query_labels: np.ndarray,
    database_labels: np.ndarray,
    *,
    ks: tuple[int, ...] | list[int] = DEFAULT_KS,
    normalizer: str = "k",
    strict: bool = False,
    query_is_database: bool = False,
    block_size: int | None = None,
    progress: bool = False,
    device: str | None = None,
    threads: int = 1,
    per_query: bool = False,
) -> dict[str, Any]:
    """Every metric of the protocol for one set of codes; see the module docstring for the semantics.

    ``query_is_database`` states that the queries are the database (FCVID); it is checked, and the numbers
    are the same either way. ``block_size`` is the number of queries per block (default: about 8M pairs, 32M
    on a GPU). ``device`` ("cuda", "cuda:1", ...) runs the Hamming search there with torch
    (``hamming_device``), with results identical to the default popcount path on the CPU; "cpu" runs that
    torch path on the CPU (slower than the default; it exists to check the two agree). ``threads``: CPU
    threads of the popcount path (blocks of queries at once; the same metrics with any number). ``per_query``
    adds ``"per_query"``: each query's AP@K (float64 [queries]) per ``map@K`` key, whose means are the ``map@K``.
    """
    ks = _check_ks(ks)
    if normalizer not in NORMALIZERS:
        raise ConfigError(f"normalizer must be one of {', '.join(map(repr, NORMALIZERS))}, got {normalizer!r}")
    query = _code_words(query_codes, "query", strict)
    database = _code_words(database_codes, "database", strict)
    if query.bits != database.bits:
        raise DataError(f"query codes have {query.bits} bits but database codes have {database.bits}")
    query_labels = check_labels(query_labels, len(query), "query", rows="codes")
    database_labels = check_labels(database_labels, len(database), "database", rows="codes")
    if query_labels.shape[1] != database_labels.shape[1]:
        raise DataError(
            f"query labels have {query_labels.shape[1]} classes, database labels {database_labels.shape[1]}"
        )
    if query_is_database and not (query.same_codes(database) and np.array_equal(query_labels, database_labels)):
        raise DataError("query_is_database is set but the query codes or labels differ from the database's")
    if block_size is None:
        block_size = max(1, (BLOCK_PAIRS if device is None or device == "cpu" else DEVICE_BLOCK_PAIRS) // len(database))
    elif isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise ConfigError(f"block_size must be a positive integer, got {block_size!r}")
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ConfigError(f"threads must be a positive integer, got {threads!r}")

    totals = _Totals(ks, query.bits, normalizer, per_query)
    starts = range(0, len(query), block_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="evaluate", unit="block", leave=False)
    if device is not None:
        search = DeviceSearch(_unpacked(query_codes, strict), _unpacked(database_codes, strict), query_labels,
                              database_labels, device)
        for start in starts:
            totals.add(*search.block(start, min(start + block_size, len(query)), totals.k_max))
    else:
        relevance = _Relevance(query_labels, database_labels)

        def block(start: int) -> dict[str, np.ndarray]:
            stop = min(start + block_size, len(query))
            return totals.block_sums(*_evaluate_block(query.rows(start, stop), database, relevance, start,
                                                      totals.k_max))

        for sums in _in_order(block, starts, threads):
            totals.add_sums(sums)
    return totals.result(n_queries=len(query), n_database=len(database), strict=strict)


def _in_order(function: Callable[[int], Any], items: Iterable[int], threads: int) -> Iterator[Any]:
    """``map(function, items)`` on ``threads`` threads, in the items' order, at most two results per thread
    waiting (memory stays a few blocks)."""
    if threads == 1:
        yield from map(function, items)
        return
    with ThreadPoolExecutor(threads, thread_name_prefix="ssvh-bench-evaluate") as pool:
        waiting: deque[Future] = deque()
        try:
            for item in items:
                waiting.append(pool.submit(function, item))
                if len(waiting) >= 2 * threads:
                    yield waiting.popleft().result()
            while waiting:
                yield waiting.popleft().result()
        finally:
            for future in waiting:
                future.cancel()


def _evaluate_block(query: CodeWords, database: CodeWords, relevance: _Relevance, start: int,
                    k_max: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(counts, relevant counts per distance, relevance of the first ``k_max``) of one block of queries."""
    n_bins = distance_bins(query.bits)
    distances = doubled_distances(query, database)
    counts = distance_histograms(distances, n_bins)
    relevant_counts = relevance.counts_by_distance(start, distances, n_bins)
    top = first_k(distances, counts, k_max)
    return counts, relevant_counts, relevance.of_pairs(start, top)


class _Relevance:
    """Which (query, database) pairs share a class: counted per distance for a block, or looked up for pairs.

    Sparse relevance (FCVID: ~1% of pairs) goes through a sparse label product that lists the relevant
    pairs; dense relevance (few classes) through a boolean mask gathered from the distinct label rows.
    """

    DENSE_FROM = 0.05  # fraction of relevant pairs above which the mask is cheaper than listing pairs
    SAMPLE_QUERIES = 256

    def __init__(self, query_labels: np.ndarray, database_labels: np.ndarray) -> None:
        self.query_labels = sparse.csr_matrix(query_labels, dtype=np.int32)
        self.database_by_class = sparse.csr_matrix(database_labels.T, dtype=np.int32)
        self.query_packed = np.packbits(query_labels, axis=1)
        self.database_packed = np.packbits(database_labels, axis=1)
        n_sample = min(len(query_labels), self.SAMPLE_QUERIES)
        n_sample_relevant = len(self._pairs(0, n_sample)[0])
        self.dense = n_sample_relevant > self.DENSE_FROM * n_sample * len(database_labels)
        if self.dense:
            distinct, label_row = np.unique(database_labels, axis=0, return_inverse=True)
            self.database_label_row = label_row.reshape(-1)
            self.distinct_labels = distinct.T.astype(np.float32)

    def counts_by_distance(self, start: int, distances: np.ndarray, n_bins: int) -> np.ndarray:
        """Per query row of the block, relevant database items at each doubled distance: int64 [rows, n_bins]."""
        n_rows, n_database = distances.shape
        if self.dense:
            query = self.query_labels[start:start + n_rows].toarray().astype(np.float32)
            shared = np.take((query @ self.distinct_labels) > 0, self.database_label_row, axis=1)
            out = np.empty((n_rows, n_bins), dtype=np.int64)
            for row in range(n_rows):
                out[row] = np.bincount(distances[row][shared[row]], minlength=n_bins)
            return out
        rows, columns = self._pairs(start, start + n_rows)
        found = distances.ravel()[rows * n_database + columns]
        return np.bincount(rows * n_bins + found, minlength=n_rows * n_bins).reshape(n_rows, n_bins)

    def _pairs(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """(row within the block, database index) of every relevant pair of queries start..stop."""
        shared = (self.query_labels[start:stop] @ self.database_by_class).tocsr()
        rows = np.repeat(np.arange(stop - start), np.diff(shared.indptr))
        return rows, shared.indices.astype(np.intp)

    def of_pairs(self, start: int, database_indices: np.ndarray) -> np.ndarray:
        """Relevance of query ``start + row`` to ``database_indices[row, j]``: bool, same shape."""
        query = self.query_packed[start:start + len(database_indices), None, :]
        return (query & self.database_packed[database_indices]).any(axis=2)


class _Totals:
    """Sums over queries of every per-query metric, filled block by block."""

    def __init__(self, ks: tuple[int, ...], bits: int, normalizer: str, per_query: bool = False) -> None:
        self.ks, self.bits, self.normalizer = ks, bits, normalizer
        self.per_query: list[list[np.ndarray]] | None = [[] for _ in ks] if per_query else None
        self.k_max = max(ks)
        self.harmonic = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, self.k_max + 1))])
        self.sums = {name: np.zeros(len(ks)) for name in ("map", "map_tie_aware", "p", "r")}
        self.precision = np.zeros(bits + 1)
        self.recall = np.zeros(bits + 1)

    def add(self, counts: np.ndarray, relevant_counts: np.ndarray, top_relevant: np.ndarray) -> None:
        self.add_sums(self.block_sums(counts, relevant_counts, top_relevant))

    def add_sums(self, sums: dict[str, np.ndarray]) -> None:
        """Add one block's ``block_sums`` (blocks added in query order give the same floats every time)."""
        for name in self.sums:
            self.sums[name] += sums[name]
        if self.per_query is not None:
            for i, k in enumerate(self.ks):
                self.per_query[i].append(sums[f"ap@{k}"])
        self.precision += sums["precision"]
        self.recall += sums["recall"]

    def block_sums(self, counts: np.ndarray, relevant_counts: np.ndarray,
                   top_relevant: np.ndarray) -> dict[str, np.ndarray]:
        """One block's sums over its queries of every per-query metric (no state changes: runs on any thread)."""
        sums = {name: np.zeros(len(self.ks)) for name in self.sums}
        n_relevant = relevant_counts.sum(axis=1)
        padded = np.zeros((len(counts), self.k_max), dtype=bool)  # a database smaller than K ranks fewer
        padded[:, :top_relevant.shape[1]] = top_relevant
        hits = np.cumsum(padded, axis=1)
        precision_sums = np.cumsum(padded * hits / np.arange(1, self.k_max + 1), axis=1)
        # distance groups that start after the first k_max items never matter to tie-aware AP@K
        needed = int((np.cumsum(counts, axis=1) < self.k_max).sum(axis=1).max()) + 1
        ranked, ranked_relevant = counts[:, :needed], relevant_counts[:, :needed]
        for i, k in enumerate(self.ks):
            hits_k = hits[:, k - 1]
            ap = self._normalize(precision_sums[:, k - 1], hits_k, k)
            sums["map"][i] = ap.sum()
            if self.per_query is not None:
                sums[f"ap@{k}"] = ap
            sums["map_tie_aware"][i] = self._tie_aware_ap(ranked, ranked_relevant, k).sum()
            sums["p"][i] = hits_k.sum() / k
            sums["r"][i] = _ratio(hits_k, n_relevant).sum()
        within = slice(0, 2 * self.bits + 1, 2)  # radius r keeps doubled distances <= 2r
        retrieved = np.cumsum(counts, axis=1)[:, within]
        relevant_retrieved = np.cumsum(relevant_counts, axis=1)[:, within]
        sums["precision"] = _ratio(relevant_retrieved, retrieved).sum(axis=0)
        sums["recall"] = _ratio(relevant_retrieved, n_relevant[:, None]).sum(axis=0)
        return sums

    def _normalize(self, precision_sum: np.ndarray, hits: np.ndarray, k: int) -> np.ndarray:
        return precision_sum / k if self.normalizer == "k" else _ratio(precision_sum, hits)

    def _tie_aware_ap(self, counts: np.ndarray, relevant_counts: np.ndarray, k: int) -> np.ndarray:
        """Expected AP@K over random orders within each distance group, per query.

        A group of n items (m relevant) after s ranked items holding h relevant ones, of which the top K keeps
        its first L = clip(K - s, 0, n) positions, adds in expectation
            sum_{p=1..L} (m/n) * (h + 1 + (p-1)(m-1)/(n-1)) / (s + p)
          = (m/n) * ((h + 1) dH + (m-1)/(n-1) * (L - (s + 1) dH)),   dH = H(s + L) - H(s),
        because position p is relevant with probability m/n and, given that, each earlier position of the
        group is relevant with probability (m-1)/(n-1). Groups before the cut are whole (L = n); at most one
        group (the boundary) is cut.
        """
        n, m = counts, relevant_counts
        before = np.cumsum(n, axis=1) - n
        hits_before = np.cumsum(m, axis=1) - m
        kept = np.clip(k - before, 0, n)
        start = np.minimum(before, k)  # where kept == 0 the terms vanish; this keeps the lookup in range
        expected = _group_expectation(self.harmonic, n, m, kept, start, hits_before)
        whole = kept == n
        if self.normalizer == "k":
            return expected.sum(axis=1) / k
        # "hits": hits(K) is random only through the boundary group, so condition on how many of its kept
        # positions are relevant (hypergeometric) and average the ratio exactly.
        before_boundary = np.where(whole, expected, 0.0).sum(axis=1)
        hits_whole = np.where(whole, m, 0).sum(axis=1)
        out = _ratio(before_boundary, hits_whole)
        cut = ~whole & (kept > 0)
        rows, groups = np.nonzero(cut)
        if len(rows):
            size, relevant, taken = n[rows, groups], m[rows, groups], kept[rows, groups]
            offset, hits0 = before[rows, groups], hits_before[rows, groups]
            x = np.arange(int(np.minimum(relevant, taken).max()) + 1)[None, :]
            probability = _hypergeometric(x, size[:, None], relevant[:, None], taken[:, None])
            inside = _group_expectation(self.harmonic, taken[:, None], x, taken[:, None], offset[:, None],
                                        hits0[:, None])
            ratio = _ratio(before_boundary[rows, None] + inside, hits0[:, None] + x)
            out[rows] = (probability * ratio).sum(axis=1)
        return out

    def result(self, *, n_queries: int, n_database: int, strict: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in ("map", "map_tie_aware", "p", "r"):
            for i, k in enumerate(self.ks):
                out[f"{name}@{k}"] = float(self.sums[name][i] / n_queries)
        out["pr_curve"] = {
            "radius": list(range(self.bits + 1)),
            "precision": (self.precision / n_queries).tolist(),
            "recall": (self.recall / n_queries).tolist(),
        }
        out.update(n_queries=n_queries, n_database=n_database, bits=self.bits, normalizer=self.normalizer,
                   strict=strict)
        if self.per_query is not None:
            out["per_query"] = {f"map@{k}": np.concatenate(parts) for k, parts in zip(self.ks, self.per_query)}
        return out


def _group_expectation(harmonic: np.ndarray, n: np.ndarray, m: np.ndarray, kept: np.ndarray,
                       start: np.ndarray, hits_before: np.ndarray) -> np.ndarray:
    """Expected sum of hits(p)/p over the kept positions of a group (see ``_Totals._tie_aware_ap``)."""
    d_harmonic = harmonic[start + kept] - harmonic[start]
    relevant_share = _ratio(m, n)
    pair_share = _ratio(m - 1, n - 1)  # only used where n > 1; elsewhere its factor below is 0
    return relevant_share * ((hits_before + 1) * d_harmonic + pair_share * (kept - (start + 1) * d_harmonic))


def _hypergeometric(x: np.ndarray, size: np.ndarray, relevant: np.ndarray, taken: np.ndarray) -> np.ndarray:
    """P(x relevant among `taken` drawn without replacement from `size` items of which `relevant` are)."""
    valid = (x <= relevant) & (x <= taken) & (taken - x <= size - relevant)
    x_ok = np.where(valid, x, 0)
    log_p = (_log_choose(relevant, x_ok) + _log_choose(size - relevant, taken - x_ok)
             - _log_choose(size, taken))
    return np.where(valid, np.exp(log_p), 0.0)


def _log_choose(n: np.ndarray, k: np.ndarray) -> np.ndarray:
    n, k = np.asarray(n, dtype=float), np.asarray(k, dtype=float)
    k = np.clip(k, 0, np.maximum(n, 0))
    return gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0."""
    numerator = np.asarray(numerator, dtype=float)
    denominator = np.asarray(denominator, dtype=float)
    safe = np.where(denominator == 0, 1.0, denominator)
    return np.where(denominator == 0, 0.0, numerator / safe)


def _check_ks(ks: Any) -> tuple[int, ...]:
    values = list(ks) if not isinstance(ks, (int, np.integer)) else [ks]
    if not values:
        raise DataError("ks must list at least one cut-off K")
    for k in values:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise DataError(f"every K must be an integer, got {k!r}")
        if k < 1:
            raise DataError(f"every K must be at least 1, got {k}")
    return tuple(sorted({int(k) for k in values}))


def _unpacked(codes: PackedCodes | np.ndarray, strict: bool) -> np.ndarray:
    codes = codes.unpack() if isinstance(codes, PackedCodes) else check_codes(codes)
    return strict_codes(codes) if strict else codes


def _code_words(codes: PackedCodes | np.ndarray, split: str, strict: bool) -> CodeWords:
    if not isinstance(codes, PackedCodes):
        codes = pack_codes(check_codes(codes, what=f"{split} codes"))
    if len(codes) == 0:
        raise DataError(f"{split} codes are empty")
    return CodeWords.from_packed(codes, strict=strict)
