from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from ssvh_bench.errors import ConfigError, DataError
from ssvh_bench.neighbours import (
    PseudoNeighbourhood,
    anchor_graph_tags,
    boolean_csr_arrays,
    boolean_csr_from_arrays,
    anchor_weights,
    build_anchor_neighbourhood,
    kmeans,
    knn_graph,
    nearest_anchors,
)

BACKENDS = ["faiss", "sklearn"]


def brute_squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return ((a[:, None, :].astype(np.float64) - b[None, :, :]) ** 2).sum(axis=2)


def brute_nearest(distances: np.ndarray, k: int) -> np.ndarray:
    """Sort each row by (distance, column) with a full stable sort."""
    return np.argsort(distances, axis=1, kind="stable")[:, :k]


def pairs(matrix: sp.csr_matrix) -> set[tuple[int, int]]:
    coo = matrix.tocoo()
    return set(zip(coo.row.tolist(), coo.col.tolist()))


# --- k-means -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_kmeans_is_deterministic_for_a_seed(backend):
    features = np.random.default_rng(0).normal(size=(300, 6)).astype(np.float32)
    first = kmeans(features, 12, seed=3, backend=backend)
    again = kmeans(features, 12, seed=3, backend=backend)
    other = kmeans(features, 12, seed=4, backend=backend)
    np.testing.assert_array_equal(first, again)
    assert first.shape == (12, 6) and first.dtype == np.float32
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("backend", BACKENDS)
def test_kmeans_drops_empty_clusters(backend):
    # Only three distinct points: identical points share their nearest centre, so at most 3 of the 5
    # clusters can hold a video after the final assignment; the centres left are those points (faiss
    # nudges a centre it split to fill an empty cluster by ~1e-3, hence the tolerance).
    values = np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]], dtype=np.float32)
    features = np.repeat(values, 4, axis=0)
    centres = kmeans(features, 5, seed=0, backend=backend)
    assert len(centres) == 3
    nearest_value = brute_squared_distances(centres, values).argmin(axis=1)
    assert sorted(nearest_value) == [0, 1, 2]
    np.testing.assert_allclose(centres, values[nearest_value], atol=0.01)


def test_kmeans_rejects_more_clusters_than_videos():
    features = np.zeros((4, 2), dtype=np.float32)
    with pytest.raises(ConfigError, match="n_clusters=5 for 4 videos"):
        kmeans(features, 5, seed=0)
    with pytest.raises(ConfigError, match="unknown k-means backend 'scipy'"):
        kmeans(features, 2, seed=0, backend="scipy")
    with pytest.raises(DataError, match="NaN or inf"):
        kmeans(np.full((4, 2), np.nan), 2, seed=0)


# --- nearest anchors and kNN graph ---------------------------------------------------------------------------


@pytest.mark.parametrize("block_size", [1, 7, 50, 1000])
@pytest.mark.parametrize("n_nearest", [1, 4, 9])
def test_nearest_anchors_match_brute_force(block_size, n_nearest):
    rng = np.random.default_rng(1)
    features = rng.normal(size=(50, 5)).astype(np.float32)
    centres = rng.normal(size=(9, 5)).astype(np.float32)
    indices, squared = nearest_anchors(features, centres, n_nearest, block_size=block_size)
    distances = brute_squared_distances(features, centres)
    np.testing.assert_array_equal(indices, brute_nearest(distances, n_nearest))
    np.testing.assert_allclose(squared, np.take_along_axis(distances, indices, axis=1), rtol=1e-4, atol=1e-4)
    assert indices.dtype == np.int64


@pytest.mark.parametrize("block_size", [1, 6, 40, 1000])
@pytest.mark.parametrize("exclude_self", [True, False])
def test_knn_graph_matches_brute_force(block_size, exclude_self):
    features = np.random.default_rng(2).normal(size=(40, 3)).astype(np.float32)
    distances = brute_squared_distances(features, features)
    if exclude_self:
        np.fill_diagonal(distances, np.inf)
    graph = knn_graph(features, 6, block_size=block_size, exclude_self=exclude_self)
    np.testing.assert_array_equal(graph, brute_nearest(distances, 6))
    assert (graph[:, 0] == np.arange(40)).all() != exclude_self


@pytest.mark.parametrize("block_size", [1, 2, 4])
def test_knn_graph_breaks_ties_by_index_and_keeps_duplicates(block_size):
    # Videos 0, 1, 2 coincide; video 3 is at distance 5 from all three.
    features = np.array([[0.0], [0.0], [0.0], [5.0]], dtype=np.float32)
    np.testing.assert_array_equal(knn_graph(features, 2, block_size=block_size), [[1, 2], [0, 2], [0, 1], [0, 1]])
    np.testing.assert_array_equal(
        knn_graph(features, 2, block_size=block_size, exclude_self=False), [[0, 1], [0, 1], [0, 1], [3, 0]]
    )


def test_knn_graph_rejects_too_many_neighbours():
    with pytest.raises(ConfigError, match="between 1 and 3 for 4 videos, got 4"):
        knn_graph(np.zeros((4, 2)), 4)
    with pytest.raises(ConfigError, match="block_size"):
        knn_graph(np.zeros((4, 2)), 2, block_size=0)


# --- anchor graph --------------------------------------------------------------------------------------------


def test_anchor_weights_by_hand():
    # Both videos are at distances 1 and 3 from their two anchors: sigma = 3 / sqrt 2, sigma^2 = 4.5, so the
    # weights are proportional to exp(-1/4.5) and exp(-9/4.5), i.e. 1 : exp(-16/9).
    anchors = np.array([[0, 1], [2, 1]])
    squared = np.array([[1.0, 9.0], [1.0, 9.0]])
    z = anchor_weights(anchors, squared, 3).toarray()
    near = 1 / (1 + np.exp(-16 / 9))
    np.testing.assert_allclose(z, [[near, 1 - near, 0], [0, 1 - near, near]])


def test_anchor_graph_tags_on_a_hand_checked_line():
    # Anchors at 0, 10, ..., 70 on a line; videos at 1, 2, 69, 34. Their 5 nearest anchors, nearest first:
    #   v0 = 1:  0 10 20 | 30 | 40        (s=3 set | added at s=4 | added at s=5)
    #   v1 = 2:  0 10 20 | 30 | 40
    #   v2 = 69: 70 60 50 | 40 | 30
    #   v3 = 34: 30 40 20 | 50 | 10
    # Every weight here is above 0.015 and a column sums to at most 4 (4 videos), so two videos sharing an
    # anchor in their s-sets get A_s >= 0.015^2 / 4 > 1e-5: A_s = "share an anchor among the s nearest".
    #   v0-v1: share at s=3,4,5           -> tag 2*(1-1)+1 = 1 similar
    #   v0-v2, v1-v2: share only at s=5   -> tag 2*(1-0)+0 = 2 dissimilar
    #   v0-v3, v1-v3: share 20 at s=3     -> tag 1 similar
    #   v2-v3: share 40, 50 from s=4 on   -> tag 2*(1-1)+0 = 0 ignored
    centres = np.arange(0, 80, 10, dtype=np.float32)[:, None]
    features = np.array([[1.0], [2.0], [69.0], [34.0]], dtype=np.float32)
    anchors, squared = nearest_anchors(features, centres, 5)
    np.testing.assert_array_equal(anchors, [[0, 1, 2, 3, 4], [0, 1, 2, 3, 4], [7, 6, 5, 4, 3], [3, 4, 2, 5, 1]])
    for sparsity in (3, 4, 5):
        assert anchor_weights(anchors[:, :sparsity], squared[:, :sparsity], 8).data.min() > 0.015
    for block_size in (1, 3, 4):
        similar, dissimilar = anchor_graph_tags(anchors, squared, 8, block_size=block_size)
        assert pairs(similar) == {(0, 1), (1, 0), (0, 3), (3, 0), (1, 3), (3, 1)}
        assert pairs(dissimilar) == {(0, 2), (2, 0), (1, 2), (2, 1)}
        assert similar.dtype == bool and dissimilar.dtype == bool


def dense_anchor_tags(features: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """The reference computation on dense matrices, written independently of the engine."""
    distances = brute_squared_distances(features, centres)
    order = np.argsort(distances, axis=1, kind="stable")
    linked = {}
    below_threshold = 0
    for s in (3, 4, 5):
        sigma = np.sqrt(np.take_along_axis(distances, order[:, s - 1 : s], axis=1)).mean() / np.sqrt(2)
        z = np.zeros_like(distances)
        rows = np.arange(len(features))[:, None]
        z[rows, order[:, :s]] = np.exp(-np.take_along_axis(distances, order[:, :s], axis=1) / sigma**2)
        z /= z.sum(axis=1, keepdims=True)
        affinity = z @ np.diag(1 / z.sum(axis=0)) @ z.T
        below_threshold += int(((affinity > 0) & (affinity <= 1e-5)).sum())
        linked[s] = (affinity > 1e-5).astype(int)
    tag = 2 * (linked[5] - linked[4]) + linked[3]
    off_diagonal = ~np.eye(len(features), dtype=bool)
    return (tag == 1) & off_diagonal, (tag == 2) & off_diagonal, below_threshold


def test_anchor_graph_tags_blocked_equal_dense():
    rng = np.random.default_rng(4)
    # Tight clusters far apart, so far anchors get weights small enough for the 1e-5 threshold to matter.
    features = (rng.normal(size=(70, 3)) + 6 * rng.integers(0, 4, size=(70, 1))).astype(np.float32)
    centres = (features[rng.choice(70, 12, replace=False)] + 0.1).astype(np.float32)
    similar_dense, dissimilar_dense, below_threshold = dense_anchor_tags(features, centres)
    assert below_threshold > 0 and similar_dense.any() and dissimilar_dense.any()
    anchors, squared = nearest_anchors(features, centres, 5)
    for block_size in (1, 9, 70, 500):
        similar, dissimilar = anchor_graph_tags(anchors, squared, 12, block_size=block_size)
        np.testing.assert_array_equal(similar.toarray(), similar_dense)
        np.testing.assert_array_equal(dissimilar.toarray(), dissimilar_dense)


def test_anchor_graph_tags_need_five_anchors():
    anchors, squared = np.zeros((3, 4), dtype=np.int64), np.zeros((3, 4))
    with pytest.raises(ConfigError, match="5 nearest anchors"):
        anchor_graph_tags(anchors, squared, 4)


# --- PseudoNeighbourhood -------------------------------------------------------------------------------------


def toy_neighbourhood(labels: list[int], similar: dict[int, list[int]], dissimilar: dict[int, list[int]]):
    n = len(labels)

    def matrix(rows: dict[int, list[int]]) -> sp.csr_matrix:
        dense = np.zeros((n, n), dtype=bool)
        for row, cols in rows.items():
            dense[row, cols] = True
        return sp.csr_matrix(dense)

    anchors = np.stack([labels, labels], axis=1).astype(np.int64)
    features = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    centres = np.zeros((max(labels) + 1, 2), dtype=np.float32)
    return PseudoNeighbourhood(features, centres, anchors, matrix(similar), matrix(dissimilar))


def drawn(sampler, row: int, draws: int = 300) -> set[int]:
    return set(sampler(np.full(draws, row), np.random.default_rng(row)).tolist())


def test_samplers_draw_tagged_neighbours_and_fall_back():
    # Pseudo-labels: videos 0, 1 -> anchor 0; 2, 3, 4 -> anchor 1; 5 -> anchor 2 (alone).
    neighbourhood = toy_neighbourhood(
        [0, 0, 1, 1, 1, 2],
        similar={0: [1], 2: [3, 4], 3: [2]},
        dissimilar={0: [5], 1: [2, 5], 5: [0]},
    )
    assert drawn(neighbourhood.sample_similar, 0) == {1}
    assert drawn(neighbourhood.sample_similar, 2) == {3, 4}
    assert drawn(neighbourhood.sample_similar, 1) == {0}  # none tagged: another video with its first anchor
    assert drawn(neighbourhood.sample_similar, 4) == {2, 3}
    assert drawn(neighbourhood.sample_similar, 5) == {5}  # alone in its cluster: itself
    assert drawn(neighbourhood.sample_dissimilar, 1) == {2, 5}
    assert drawn(neighbourhood.sample_dissimilar, 2) == {0, 1, 5}  # none tagged: any video outside anchor 1
    assert drawn(neighbourhood.sample_dissimilar, 0) == {5}
    assert drawn(neighbourhood.sample_dissimilar, 4) == {0, 1, 5}


def test_partners_are_similar_with_target_plus_one_or_dissimilar_with_minus_one():
    # each video has exactly one similar and one dissimilar video, so a partner tells which was drawn
    neighbourhood = toy_neighbourhood([0, 0, 1, 1], similar={0: [1], 1: [0], 2: [3], 3: [2]},
                                      dissimilar={0: [2], 1: [3], 2: [0], 3: [1]})
    rows = np.array([0, 1, 2, 3, 0])
    for prob, expected, target in ((1.0, [1, 0, 3, 2, 1], 1.0), (0.0, [2, 3, 0, 1, 2], -1.0)):
        partners, targets = neighbourhood.sample_partners(rows, np.random.default_rng(0), similar_prob=prob)
        assert partners.tolist() == expected and targets.dtype == np.float32 and (targets == target).all()
    rows = np.repeat(np.arange(4), 500)
    partners, targets = neighbourhood.sample_partners(rows, np.random.default_rng(1), similar_prob=0.25)
    similar_partner = np.array([1, 0, 3, 2])[rows]
    assert ((partners == similar_partner) == (targets == 1)).all()  # the target says which kind was drawn
    assert (targets == 1).mean() == pytest.approx(0.25, abs=0.03)  # 2,000 draws: std 0.01


def test_boolean_csr_arrays_by_hand_and_round_trip(tmp_path):
    matrix = sp.csr_matrix(np.array([[0, 1, 1], [0, 0, 0], [1, 0, 0]], dtype=bool))
    arrays = boolean_csr_arrays(matrix, prefix="similar_")
    assert sorted(arrays) == ["similar_indices", "similar_indptr", "similar_shape"]
    assert arrays["similar_indptr"].tolist() == [0, 2, 2, 3] and arrays["similar_indices"].tolist() == [1, 2, 0]
    np.savez(tmp_path / "m.npz", **arrays)
    with np.load(tmp_path / "m.npz") as data:
        loaded = boolean_csr_from_arrays(data, prefix="similar_")
    assert loaded.dtype == bool and (loaded != matrix).nnz == 0 and loaded.shape == (3, 3)


def test_dissimilar_fallback_with_a_single_cluster_is_any_video():
    neighbourhood = toy_neighbourhood([0, 0, 0], similar={}, dissimilar={})
    assert drawn(neighbourhood.sample_dissimilar, 1) == {0, 1, 2}
    assert drawn(neighbourhood.sample_similar, 1) == {0, 2}


def test_samplers_are_vectorised_and_valid_on_a_built_neighbourhood():
    features = np.random.default_rng(5).normal(size=(120, 4)).astype(np.float32)
    neighbourhood = build_anchor_neighbourhood(features, n_anchors=15, seed=0)
    rows = np.tile(np.arange(120), 5)
    rng = np.random.default_rng(0)
    similar = neighbourhood.sample_similar(rows, rng)
    dissimilar = neighbourhood.sample_dissimilar(rows, rng)
    has_similar = np.diff(neighbourhood.similar.indptr)[rows] > 0
    has_dissimilar = np.diff(neighbourhood.dissimilar.indptr)[rows] > 0
    assert has_similar.mean() > 0.9 and has_dissimilar.mean() > 0.9
    assert np.asarray(neighbourhood.similar[rows[has_similar], similar[has_similar]]).all()
    assert np.asarray(neighbourhood.dissimilar[rows[has_dissimilar], dissimilar[has_dissimilar]]).all()
    labels = neighbourhood.pseudo_labels
    assert (labels[dissimilar[~has_dissimilar]] != labels[rows[~has_dissimilar]]).all()


def test_save_load_round_trip(tmp_path):
    features = np.random.default_rng(6).normal(size=(60, 4)).astype(np.float32)
    built = build_anchor_neighbourhood(features, n_anchors=10, seed=1)
    for target in (tmp_path / "pn.npz", tmp_path):
        built.save(target)
        loaded = PseudoNeighbourhood.load(target)
        for name in ("features", "centres", "anchors"):
            np.testing.assert_array_equal(getattr(loaded, name), getattr(built, name))
        for name in ("similar", "dissimilar"):
            assert getattr(loaded, name).dtype == bool
            assert (getattr(loaded, name) != getattr(built, name)).nnz == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["neighbourhood.npz", "pn.npz"]
    with pytest.raises(DataError, match="no pseudo-neighbourhood"):
        PseudoNeighbourhood.load(tmp_path / "missing.npz")


def test_neighbourhood_parts_must_agree():
    with pytest.raises(DataError, match="disagree on the number of videos"):
        PseudoNeighbourhood(np.zeros((3, 2)), np.zeros((2, 2)), np.zeros((2, 1), dtype=np.int64),
                            sp.csr_matrix((3, 3), dtype=bool), sp.csr_matrix((3, 3), dtype=bool))


# --- build_anchor_neighbourhood ------------------------------------------------------------------------------


def test_build_is_deterministic_and_consistent():
    features = np.random.default_rng(7).normal(size=(90, 6)).astype(np.float32)
    first = build_anchor_neighbourhood(features, n_anchors=12, n_nearest=3, seed=2)
    again = build_anchor_neighbourhood(features, n_anchors=12, n_nearest=3, seed=2)
    np.testing.assert_array_equal(first.anchors, again.anchors)
    assert (first.similar != again.similar).nnz == 0 and (first.dissimilar != again.dissimilar).nnz == 0
    assert first.anchors.shape == (90, 3)
    distances = brute_squared_distances(first.features, first.centres)
    np.testing.assert_array_equal(first.anchors, brute_nearest(distances, 3))
    assert (first.similar != first.similar.T).nnz == 0  # A_s is symmetric, so are the tags
    assert not first.similar.diagonal().any() and not first.dissimilar.diagonal().any()
    assert (first.similar.multiply(first.dissimilar)).nnz == 0


def test_build_with_pca_assigns_on_raw_features_and_reduces_only_the_centres():
    features = np.random.default_rng(8).normal(size=(80, 10)).astype(np.float32)
    built = build_anchor_neighbourhood(features, n_anchors=12, seed=0, pca_dim=4)
    raw = build_anchor_neighbourhood(features, n_anchors=12, seed=0)
    assert built.features.shape == (80, 10) and built.centres.shape == (len(raw.centres), 4)
    np.testing.assert_allclose(built.centres.mean(axis=0), 0, atol=1e-4)  # PCA was fitted on the centres
    # MCMSH's get_pseudo_label.py / get_sim_matrix.py: raw features against the raw centres
    np.testing.assert_array_equal(built.anchors, raw.anchors)
    assert (built.similar != raw.similar).nnz == 0 and (built.dissimilar != raw.dissimilar).nnz == 0
    distances = brute_squared_distances(features, raw.centres)
    np.testing.assert_array_equal(built.pseudo_labels, distances.argmin(axis=1))
    with pytest.raises(ConfigError, match="pca_dim must be between 1 and"):
        build_anchor_neighbourhood(features, n_anchors=12, seed=0, pca_dim=11)


def test_released_pair_sampling_counts_the_video_itself_and_falls_back_to_untagged_videos():
    # the authors' tags include the diagonal; no dissimilar video: any video tagged neither way
    neighbourhood = toy_neighbourhood(
        [0, 0, 1, 1, 1, 2],
        similar={0: [1], 2: [3, 4], 3: [2]},
        dissimilar={0: [5], 1: [2, 5], 5: [0]},
    )

    def released(sampler):
        return lambda rows, rng: sampler(rows, rng, "released")

    assert drawn(released(neighbourhood.sample_similar), 0) == {0, 1}
    assert drawn(released(neighbourhood.sample_similar), 2) == {2, 3, 4}
    assert drawn(released(neighbourhood.sample_similar), 1) == {1}  # none tagged: only itself
    assert drawn(released(neighbourhood.sample_dissimilar), 1) == {2, 5}
    assert drawn(released(neighbourhood.sample_dissimilar), 2) == {0, 1, 5}  # untagged, not itself, not 3 / 4
    assert drawn(released(neighbourhood.sample_dissimilar), 3) == {0, 1, 4, 5}
    with pytest.raises(ConfigError, match="pair_sampling must be one of"):
        neighbourhood.sample_similar(np.array([0]), np.random.default_rng(0), "any")


def test_build_needs_enough_distinct_clusters():
    features = np.repeat(np.eye(3, dtype=np.float32), 5, axis=0)
    with pytest.raises(ConfigError, match="at least 5 non-empty k-means clusters, got 3"):
        build_anchor_neighbourhood(features, n_anchors=8, seed=0)
