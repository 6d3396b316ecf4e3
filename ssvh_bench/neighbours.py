"""Stage-1 pseudo-neighbourhoods for two-stage methods: k-means anchors, anchor-graph pair tags, kNN graphs.

Nothing here builds a dense N x N matrix (FCVID's 45,585 training videos would need 8 GB as float32):
distances are computed a block of rows at a time, and pair relations are kept as neighbour lists or as
boolean CSR matrices whose rows are videos.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from .errors import ConfigError, DataError
from .io import atomic_path

KMEANS_BACKENDS = ("auto", "faiss", "sklearn")
# Anchor graph hashing (Liu et al. 2011) as BTH and MCMSH use it: graphs over the 3, 4 and 5 nearest anchors.
ANCHOR_GRAPH_SPARSITIES = (3, 4, 5)
ANCHOR_GRAPH_THRESHOLD = 1e-5
NEIGHBOURHOOD_FILE = "neighbourhood.npz"
_FORMAT_VERSION = 1
PAIR_SAMPLING = ("released", "cluster")
UNTAGGED_DRAWS = 64  # rejection rounds for the "released" dissimilar fallback


def resolve_kmeans_backend(backend: str = "auto") -> str:
    """``auto`` picks faiss when it is importable, else scikit-learn."""
    if backend not in KMEANS_BACKENDS:
        raise ConfigError(f"unknown k-means backend {backend!r}; known: {', '.join(KMEANS_BACKENDS)}")
    if backend == "sklearn":
        return backend
    try:
        import faiss  # noqa: F401
    except ImportError:
        if backend == "faiss":
            raise ConfigError("k-means backend 'faiss' needs faiss: pip install 'ssvh-bench[fast]'") from None
        return "sklearn"
    return "faiss"


def kmeans(
    features: np.ndarray,
    n_clusters: int,
    *,
    seed: int,
    n_iter: int = 25,
    backend: str = "auto",
) -> np.ndarray:
    """Centres [k', d] float32 of a seeded k-means; clusters left empty by the final assignment are dropped.

    faiss and scikit-learn give different (each deterministic) centres for the same seed, so a cache key
    for an artefact built from them should record ``resolve_kmeans_backend(backend)``.
    """
    features = _as_matrix(features, "k-means features")
    n_videos = len(features)
    if not 1 <= n_clusters <= n_videos:
        raise ConfigError(
            f"k-means needs 1 <= n_clusters <= number of videos, got n_clusters={n_clusters} for {n_videos} videos"
        )
    if n_iter < 1:
        raise ConfigError(f"k-means needs n_iter >= 1, got {n_iter}")
    if resolve_kmeans_backend(backend) == "faiss":
        centres = _kmeans_faiss(features, n_clusters, seed, n_iter)
    else:
        centres = _kmeans_sklearn(features, n_clusters, seed, n_iter)
    assigned, _ = nearest_anchors(features, centres, 1)
    used = np.bincount(assigned[:, 0], minlength=len(centres)) > 0
    return np.ascontiguousarray(centres[used], dtype=np.float32)


def _kmeans_faiss(features: np.ndarray, n_clusters: int, seed: int, n_iter: int) -> np.ndarray:
    import faiss

    # No subsampling (faiss keeps at most 256 points per centroid by default) and no warning for small sets.
    per_centroid = max(256, -(-len(features) // n_clusters))
    model = faiss.Kmeans(features.shape[1], n_clusters, niter=n_iter, seed=seed, verbose=False,
                         min_points_per_centroid=1, max_points_per_centroid=per_centroid)
    model.train(features)
    return np.array(model.centroids, dtype=np.float32)


def _kmeans_sklearn(features: np.ndarray, n_clusters: int, seed: int, n_iter: int) -> np.ndarray:
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning

    model = KMeans(n_clusters=n_clusters, n_init=1, max_iter=n_iter, random_state=seed, algorithm="lloyd")
    with warnings.catch_warnings():
        # Fewer distinct points than clusters is expected here: those clusters end up empty and are dropped.
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(features)
    return model.cluster_centers_.astype(np.float32)


def nearest_anchors(
    features: np.ndarray,
    centres: np.ndarray,
    n_nearest: int,
    *,
    block_size: int = 4096,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices [N, n] int64 of each video's nearest centres, nearest first, and their squared distances.

    Ties are broken by the lower centre index.
    """
    features = _as_matrix(features, "features")
    centres = _as_matrix(centres, "centres")
    if centres.shape[1] != features.shape[1]:
        raise DataError(f"centres have dimension {centres.shape[1]}, features {features.shape[1]}")
    if not 1 <= n_nearest <= len(centres):
        raise ConfigError(f"n_nearest must be between 1 and the number of centres ({len(centres)}), got {n_nearest}")
    return _blocked_nearest(features, centres, n_nearest, block_size, exclude_self=False, progress=False)


def knn_graph(
    features: np.ndarray,
    n_neighbours: int,
    *,
    block_size: int = 1024,
    exclude_self: bool = True,
    progress: bool = False,
) -> np.ndarray:
    """Indices [N, k] int64 of each video's k nearest videos (Euclidean), nearest first.

    Ties are broken by the lower video index; with ``exclude_self`` a video is never its own neighbour,
    even when it has exact duplicates (those are kept). Memory: one [block_size, N] float32 block.
    """
    features = _as_matrix(features, "features")
    limit = len(features) - int(exclude_self)
    if not 1 <= n_neighbours <= limit:
        raise ConfigError(f"n_neighbours must be between 1 and {limit} for {len(features)} videos, got {n_neighbours}")
    indices, _ = _blocked_nearest(features, features, n_neighbours, block_size, exclude_self, progress)
    return indices


def _blocked_nearest(
    queries: np.ndarray, base: np.ndarray, k: int, block_size: int, exclude_self: bool, progress: bool
) -> tuple[np.ndarray, np.ndarray]:
    if block_size < 1:
        raise ConfigError(f"block_size must be >= 1, got {block_size}")
    indices = np.empty((len(queries), k), dtype=np.int64)
    distances = np.empty((len(queries), k), dtype=np.float32)
    base_norms = np.einsum("ij,ij->i", base, base)
    for start, stop in _blocks(len(queries), block_size, progress, "nearest neighbours"):
        block = queries[start:stop]
        squared = block @ base.T  # |q|^2 + |b|^2 - 2 q.b, built in place to keep one [block, N] buffer
        squared *= -2
        squared += np.einsum("ij,ij->i", block, block)[:, None]
        squared += base_norms[None, :]
        np.maximum(squared, 0, out=squared)
        if exclude_self:
            rows = np.arange(stop - start)
            squared[rows, start + rows] = np.inf
        nearest = _smallest_in_order(squared, k)
        indices[start:stop] = nearest
        distances[start:stop] = np.take_along_axis(squared, nearest, axis=1)
    return indices, distances


def _smallest_in_order(values: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the k smallest entries of each row, ordered by (value, column)."""
    if k < values.shape[1]:
        import torch  # here, so importing ssvh_bench stays light; its partial sort beats np.partition ~4x

        top = torch.topk(torch.from_numpy(values), k + 1, dim=1, largest=False, sorted=True)
        top_values, top_cols = top.values.numpy(), top.indices.numpy()
        nearest = _sorted_by_value_then_column(top_values[:, :k], top_cols[:, :k])
        # Where the (k+1)-th value equals the k-th, which tied column makes the cut is decided by the full row.
        tied = np.flatnonzero(top_values[:, k] == top_values[:, k - 1])
        if len(tied):
            nearest[tied] = _smallest_with_ties(values[tied], top_values[tied, k - 1 : k], k)
        return nearest
    cols = np.broadcast_to(np.arange(values.shape[1]), values.shape)
    return _sorted_by_value_then_column(values, cols)[:, :k]


def _sorted_by_value_then_column(values: np.ndarray, cols: np.ndarray) -> np.ndarray:
    return np.take_along_axis(cols, np.lexsort((cols, values), axis=-1), axis=-1)


def _smallest_with_ties(values: np.ndarray, kth: np.ndarray, k: int) -> np.ndarray:
    rows, cols = np.nonzero(values <= kth)
    order = np.lexsort((cols, values[rows, cols], rows))
    rows, cols = rows[order], cols[order]
    rank = np.arange(len(rows)) - np.searchsorted(rows, rows)
    return cols[rank < k].reshape(len(values), k)


def anchor_weights(anchors: np.ndarray, squared_distances: np.ndarray, n_anchors: int) -> sp.csr_matrix:
    """The anchor-graph matrix Z [N, m] with s = ``anchors.shape[1]`` non-zeros per row.

    Z_ij = exp(-d_ij^2 / sigma^2) over the s nearest anchors, sigma = mean distance to the s-th anchor / sqrt 2,
    rows normalised to sum 1. The exponent is shifted by each row's smallest d^2 (cancelled by the
    normalisation) so far-away videos do not underflow to an all-zero row.
    """
    n_videos, sparsity = anchors.shape
    squared_distances = np.asarray(squared_distances, dtype=np.float64)
    sigma = np.sqrt(squared_distances[:, -1]).mean() / np.sqrt(2)
    scale = max(sigma**2, np.finfo(np.float64).tiny)
    weights = np.exp(-(squared_distances - squared_distances[:, :1]) / scale)
    weights /= weights.sum(axis=1, keepdims=True)
    indptr = np.arange(0, n_videos * sparsity + 1, sparsity)
    return sp.csr_matrix((weights.ravel(), anchors.ravel(), indptr), shape=(n_videos, n_anchors))


def anchor_graph_tags(
    anchors: np.ndarray,
    squared_distances: np.ndarray,
    n_anchors: int,
    *,
    block_size: int = 4096,
    progress: bool = False,
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Boolean CSR matrices ``similar`` and ``dissimilar`` [N, N] from each video's 5 nearest anchors.

    For s in (3, 4, 5): A_s = Z_s diag(colsum Z_s)^-1 Z_s^T > 1e-5 (Z_s from ``anchor_weights``), and the
    pair tag is 2*(A_5 - A_4) + A_3: 1 = similar, 2 = dissimilar, anything else ignored. The diagonal is
    never tagged. ``anchors`` / ``squared_distances`` are ``nearest_anchors(features, centres, 5)``.

    Computed a block of rows at a time as sparse products; only the result is N-sized. Memory on FCVID
    (N = 45,585, m = 2,000 anchors): two videos are linked in A_s when they share one of their s nearest
    anchors (the 1e-5 threshold rarely cuts), so A_s holds about sum over anchors of (videos using it)^2
    pairs: s^2 N^2 / m = 26M for s = 5 if anchors were used evenly, more when some anchors are hubs. Each
    tagged pair costs 5 bytes (int32 column + bool). Measured by benchmarks/bench_neighbours.py on 256-d
    synthetic features of FCVID's size, 2 shared CPU cores: well-clustered features give 8.6M similar +
    0.7M dissimilar pairs (45 MiB, 2 s); unclustered Gaussian features, the worst case, give 45M + 51M
    pairs (456 MiB, 16 s, peak ~560 MiB above the inputs).
    """
    needed = max(ANCHOR_GRAPH_SPARSITIES)
    if anchors.shape[1] < needed:
        raise ConfigError(f"anchor-graph tags need each video's {needed} nearest anchors, got {anchors.shape[1]}")
    if block_size < 1:
        raise ConfigError(f"block_size must be >= 1, got {block_size}")
    graphs = []
    for sparsity in ANCHOR_GRAPH_SPARSITIES:
        z = anchor_weights(anchors[:, :sparsity], squared_distances[:, :sparsity], n_anchors)
        column_sums = np.asarray(z.sum(axis=0)).ravel()
        inverse = np.divide(1.0, column_sums, out=np.zeros_like(column_sums), where=column_sums > 0)
        graphs.append((z, (z @ sp.diags(inverse)).T.tocsr()))
    similar, dissimilar = [], []
    for start, stop in _blocks(len(anchors), block_size, progress, "anchor graph"):
        linked_3, linked_4, linked_5 = (_linked(z[start:stop] @ z_scaled_t) for z, z_scaled_t in graphs)
        tag = (linked_5 - linked_4) * 2 + linked_3
        similar.append(_pairs_tagged(tag, 1, start))
        dissimilar.append(_pairs_tagged(tag, 2, start))
    return sp.vstack(similar, format="csr"), sp.vstack(dissimilar, format="csr")


def _linked(affinity: sp.csr_matrix) -> sp.csr_matrix:
    linked = sp.csr_matrix(((affinity.data > ANCHOR_GRAPH_THRESHOLD).astype(np.int8), affinity.indices,
                            affinity.indptr), shape=affinity.shape)
    linked.eliminate_zeros()
    return linked


def _pairs_tagged(tag: sp.csr_matrix, value: int, row_offset: int) -> sp.csr_matrix:
    entries = tag.tocoo()
    keep = (entries.data == value) & (entries.row + row_offset != entries.col)
    pattern = (np.ones(int(keep.sum()), dtype=bool), (entries.row[keep], entries.col[keep]))
    return sp.csr_matrix(pattern, shape=tag.shape)


@dataclass(eq=False)
class PseudoNeighbourhood:
    """What a stage 2 needs from stage 1 (BTH, MCMSH).

    ``features`` [N, d] are the stage-1 features; ``centres`` [m, d'] the k-means centres (PCA-reduced to
    d' when one was applied, else d' = d); ``anchors`` [N, n_nearest] are each video's nearest centres,
    nearest first, found before any PCA (column 0 is its pseudo-label); ``similar`` and ``dissimilar`` are
    boolean CSR [N, N] pair tags (rows = videos).

    Pair sampling (``pair_sampling``): ``"released"`` is the authors' loader (BTH ``data.py:45-73``, MCMSH
    ``data.py``): their tags include the diagonal, so a video is one of its own similar videos, and a video
    with no dissimilar one draws any video tagged neither similar nor dissimilar. ``"cluster"`` excludes the
    video itself and falls back by pseudo-label (see ``sample_similar`` / ``sample_dissimilar``).
    """

    features: np.ndarray
    centres: np.ndarray
    anchors: np.ndarray
    similar: sp.csr_matrix
    dissimilar: sp.csr_matrix

    def __post_init__(self) -> None:
        n_videos = len(self.features)
        if len(self.anchors) != n_videos or self.similar.shape != (n_videos, n_videos) or \
                self.dissimilar.shape != (n_videos, n_videos):
            raise DataError(
                f"pseudo-neighbourhood parts disagree on the number of videos: features {self.features.shape}, "
                f"anchors {self.anchors.shape}, similar {self.similar.shape}, dissimilar {self.dissimilar.shape}"
            )

    def __len__(self) -> int:
        return len(self.features)

    @property
    def pseudo_labels(self) -> np.ndarray:
        return self.anchors[:, 0]

    def sample_similar(self, rows: np.ndarray, rng: np.random.Generator,
                       pair_sampling: str = "cluster") -> np.ndarray:
        """One random similar video per row.

        ``"cluster"``: a row with no similar video falls back to a random other video with the same first
        anchor (the same pseudo-label), or to itself when it is alone in its cluster. ``"released"``: the
        row itself is one more similar video, drawn as often as each tagged one.
        """
        rows = np.asarray(rows, dtype=np.int64)
        if _check_pair_sampling(pair_sampling) == "released":
            starts = self.similar.indptr[rows]
            counts = self.similar.indptr[rows + 1] - starts
            offsets = (rng.random(len(rows)) * (counts + 1)).astype(np.int64)
            own = offsets == counts
            picked = rows.copy()
            picked[~own] = self.similar.indices[(starts + offsets)[~own]]
            return picked
        picked, missing = _sample_from_rows(self.similar, rows, rng)
        if missing.any():
            picked[missing] = self._same_cluster(rows[missing], rng)
        return picked

    def sample_dissimilar(self, rows: np.ndarray, rng: np.random.Generator,
                          pair_sampling: str = "cluster") -> np.ndarray:
        """One random dissimilar video per row.

        A row with no dissimilar video falls back, for ``"cluster"``, to a random video with a different
        first anchor (a uniformly random video if every video shares that anchor); for ``"released"``, to a
        random other video tagged neither similar nor dissimilar (the authors' tag 0; a uniformly random
        video if there is none).
        """
        rows = np.asarray(rows, dtype=np.int64)
        fallback = self._other_cluster if _check_pair_sampling(pair_sampling) == "cluster" else self._untagged
        picked, missing = _sample_from_rows(self.dissimilar, rows, rng)
        if missing.any():
            picked[missing] = fallback(rows[missing], rng)
        return picked

    def sample_partners(self, rows: np.ndarray, rng: np.random.Generator, similar_prob: float = 0.5,
                        pair_sampling: str = "cluster") -> tuple[np.ndarray, np.ndarray]:
        """One partner per row: with probability ``similar_prob`` a similar video (target +1), else a
        dissimilar one (target -1). Returns (partners, float32 targets).

        Draws, in this order: one uniform per row, then ``sample_similar`` for the rows that drew a similar
        partner, then ``sample_dissimilar`` for the others.
        """
        rows = np.asarray(rows, dtype=np.int64)
        similar = rng.random(len(rows)) < similar_prob
        partners = np.empty(len(rows), dtype=np.int64)
        partners[similar] = self.sample_similar(rows[similar], rng, pair_sampling)
        partners[~similar] = self.sample_dissimilar(rows[~similar], rng, pair_sampling)
        return partners, np.where(similar, 1.0, -1.0).astype(np.float32)

    @cached_property
    def _clusters(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Videos ordered by pseudo-label, each cluster's start and size in that order, each video's position."""
        labels = self.pseudo_labels
        order = np.argsort(labels, kind="stable")
        sizes = np.bincount(labels, minlength=len(self.centres))
        starts = np.cumsum(sizes) - sizes
        position = np.empty_like(order)
        position[order] = np.arange(len(order))
        return order, starts, sizes, position

    def _same_cluster(self, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        order, starts, sizes, position = self._clusters
        labels = self.pseudo_labels[rows]
        start, size = starts[labels], sizes[labels]
        picked = rows.copy()
        has_other = size > 1
        offset = (rng.random(len(rows)) * (size - 1)).astype(np.int64)
        offset += offset >= position[rows] - start  # skip the row itself
        picked[has_other] = order[(start + offset)[has_other]]
        return picked

    def _other_cluster(self, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        order, starts, sizes, _ = self._clusters
        labels = self.pseudo_labels[rows]
        start, size = starts[labels], sizes[labels]
        outside = len(self) - size
        offset = (rng.random(len(rows)) * outside).astype(np.int64)
        offset += np.where(offset >= start, size, 0)  # jump over the cluster's block in `order`
        anywhere = rng.integers(0, len(self), size=len(rows))
        return np.where(outside > 0, order[np.minimum(offset, len(self) - 1)], anywhere)

    def _untagged(self, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A random other video tagged neither similar nor dissimilar to each row (rejection sampling; the
        tags are sparse, so few rounds are needed), else a uniformly random video."""
        picked = rng.integers(0, len(self), size=len(rows))
        pending = np.arange(len(rows))
        for _ in range(UNTAGGED_DRAWS):
            candidates = picked[pending]
            tagged = (np.asarray(self.similar[rows[pending], candidates]).ravel()
                      | np.asarray(self.dissimilar[rows[pending], candidates]).ravel() | (candidates == rows[pending]))
            pending = pending[tagged]
            if not len(pending):
                break
            picked[pending] = rng.integers(0, len(self), size=len(pending))
        return picked

    def save(self, path: Path) -> None:
        """Write one .npz (atomically); a folder means ``<folder>/neighbourhood.npz``."""
        arrays: dict[str, np.ndarray] = {
            "format_version": np.array(_FORMAT_VERSION),
            "features": self.features,
            "centres": self.centres,
            "anchors": self.anchors,
        }
        for name in ("similar", "dissimilar"):
            arrays.update(boolean_csr_arrays(getattr(self, name), prefix=f"{name}_"))
        with atomic_path(_neighbourhood_file(path)) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, **arrays)

    @classmethod
    def load(cls, path: Path) -> "PseudoNeighbourhood":
        path = _neighbourhood_file(path)
        if not path.is_file():
            raise DataError(f"no pseudo-neighbourhood at {path}")
        with np.load(path) as data:
            if int(data["format_version"]) != _FORMAT_VERSION:
                raise DataError(f"{path} has format version {int(data['format_version'])}, expected {_FORMAT_VERSION}")
            pairs = {name: boolean_csr_from_arrays(data, prefix=f"{name}_") for name in ("similar", "dissimilar")}
            return cls(data["features"], data["centres"], data["anchors"], pairs["similar"], pairs["dissimilar"])


def build_anchor_neighbourhood(
    features: np.ndarray,
    *,
    n_anchors: int = 2000,
    n_nearest: int = 3,
    seed: int,
    pca_dim: int | None = None,
    kmeans_backend: str = "auto",
    block_size: int = 4096,
    progress: bool = False,
) -> PseudoNeighbourhood:
    """Stage 1 of BTH (``pca_dim=None``) and MCMSH (``pca_dim=256``) on stage-1 features [N, d].

    k-means with ``n_anchors`` clusters (empty ones dropped); each video's ``n_nearest`` nearest centres and
    the anchor-graph tags, both on the features against the centres; then, with ``pca_dim``, a PCA fitted on
    the centres reduces the stored centres only (the targets MCMSH's cluster term regresses), as the authors'
    code does (MCMSH ``utils/get_pseudo_label.py``, ``get_sim_matrix.py`` use the raw centres,
    ``dim_reduce.py`` reduces the centres alone).
    """
    features = _as_matrix(features, "stage-1 features")
    centres = kmeans(features, n_anchors, seed=seed, backend=kmeans_backend)
    if pca_dim is not None and not 1 <= pca_dim <= min(centres.shape):
        raise ConfigError(
            f"pca_dim must be between 1 and min(centres, dimension) = {min(centres.shape)}, got {pca_dim}"
        )
    needed = max(n_nearest, max(ANCHOR_GRAPH_SPARSITIES))
    if len(centres) < needed:
        raise ConfigError(
            f"the anchor graph needs at least {needed} non-empty k-means clusters, got {len(centres)} "
            f"(n_anchors={n_anchors}); use more anchors or more distinct training videos"
        )
    anchors, squared = nearest_anchors(features, centres, needed, block_size=block_size)
    similar, dissimilar = anchor_graph_tags(anchors, squared, len(centres), block_size=block_size, progress=progress)
    if pca_dim is not None:
        from sklearn.decomposition import PCA

        centres = PCA(n_components=pca_dim, svd_solver="full").fit_transform(centres).astype(np.float32)
    return PseudoNeighbourhood(features, centres, np.ascontiguousarray(anchors[:, :n_nearest]), similar, dissimilar)


def boolean_csr_arrays(matrix: sp.csr_matrix, prefix: str = "") -> dict[str, np.ndarray]:
    """The pattern of a boolean CSR matrix as arrays for ``np.savez``: ``{prefix}indptr``, ``{prefix}indices``
    (sorted within each row) and ``{prefix}shape``. Stored values are not kept: every stored entry is True."""
    matrix.sort_indices()
    return {f"{prefix}indptr": matrix.indptr, f"{prefix}indices": matrix.indices,
            f"{prefix}shape": np.array(matrix.shape)}


def boolean_csr_from_arrays(arrays: Mapping[str, np.ndarray], prefix: str = "") -> sp.csr_matrix:
    """The boolean CSR matrix that ``boolean_csr_arrays`` stored under ``prefix`` (e.g. an open ``np.load``)."""
    indices = arrays[f"{prefix}indices"]
    pattern = (np.ones(len(indices), dtype=bool), indices, arrays[f"{prefix}indptr"])
    return sp.csr_matrix(pattern, shape=tuple(arrays[f"{prefix}shape"]))


def _check_pair_sampling(pair_sampling: str) -> str:
    if pair_sampling not in PAIR_SAMPLING:
        raise ConfigError(f"pair_sampling must be one of {PAIR_SAMPLING}, got {pair_sampling!r}")
    return pair_sampling


def _sample_from_rows(
    matrix: sp.csr_matrix, rows: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One uniformly random stored column per row, and a mask of the rows that have none."""
    starts = matrix.indptr[rows]
    counts = matrix.indptr[rows + 1] - starts
    offsets = (rng.random(len(rows)) * counts).astype(np.int64)
    missing = counts == 0
    picked = np.empty(len(rows), dtype=np.int64)
    picked[~missing] = matrix.indices[(starts + offsets)[~missing]]
    return picked, missing


def _neighbourhood_file(path: Path) -> Path:
    path = Path(path)
    return path / NEIGHBOURHOOD_FILE if path.is_dir() else path


def _as_matrix(values: np.ndarray, what: str) -> np.ndarray:
    values = np.ascontiguousarray(values, dtype=np.float32)
    if values.ndim != 2 or not len(values):
        raise DataError(f"{what} must be a non-empty 2-D array [videos, dim], got shape {values.shape}")
    if not np.isfinite(values).all():
        raise DataError(f"{what} contain NaN or inf")
    return values


def _blocks(n: int, block_size: int, progress: bool, what: str) -> Iterator[tuple[int, int]]:
    starts = range(0, n, block_size)
    for start in tqdm(starts, desc=what, unit="block", disable=not progress or len(starts) < 2, leave=False):
        yield start, min(start + block_size, n)
