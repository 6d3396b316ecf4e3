from __future__ import annotations

import numpy as np
import pytest

from ssvh_bench import DataError, PackedCodes, pack_codes
from ssvh_bench.hamming import CodeWords, distance_bins, distance_histograms, doubled_distances, first_k


def words(codes, strict: bool = False) -> CodeWords:
    return CodeWords.from_packed(pack_codes(np.asarray(codes)), strict=strict)


def plain_doubled(query: np.ndarray, database: np.ndarray) -> np.ndarray:
    """2 * 0.5 * (bits - q . b), straight from the definition."""
    return query.shape[1] - query.astype(int) @ database.astype(int).T


ONES = [1] * 8


def test_half_integer_distances_with_zeros():
    query = [ONES, [0, 1, 1, 1, 1, 1, 1, 1]]
    database = [
        [0, 1, 1, 1, 1, 1, 1, 1],   # vs ONES: one 0 -> 0.5;  vs query 1: both 0 at position 0 -> still 0.5
        ONES,                       # 0;                      0.5
        [-1, 0, 1, 1, 1, 1, 1, 1],  # 1 + 0.5 = 1.5;          0.5 + 0.5 = 1
        [-1, 1, 1, 1, 1, 1, 1, 1],  # 1;                      0.5
    ]
    got = doubled_distances(words(query), words(database))
    np.testing.assert_array_equal(got, [[1, 0, 3, 2], [1, 1, 2, 1]])
    assert got.dtype == np.uint8


def test_binary_codes_count_differing_bits_twice():
    query = [ONES]
    database = [ONES, [-1, -1, 1, 1, 1, 1, 1, -1], [-1] * 8]
    np.testing.assert_array_equal(doubled_distances(words(query), words(database)), [[0, 6, 16]])


@pytest.mark.parametrize("bits", [8, 13, 64, 70, 130])
@pytest.mark.parametrize("zeros", ["none", "query", "database", "both"])
def test_matches_the_definition_across_word_boundaries(bits, zeros):
    rng = np.random.default_rng(bits)
    query = rng.choice([-1, 1], size=(5, bits)).astype(np.int8)
    database = rng.choice([-1, 1], size=(7, bits)).astype(np.int8)
    if zeros in ("query", "both"):
        query[rng.random(query.shape) < 0.2] = 0
    if zeros in ("database", "both"):
        database[rng.random(database.shape) < 0.2] = 0
    got = doubled_distances(words(query), words(database))
    np.testing.assert_array_equal(got, plain_doubled(query, database))
    assert got.dtype == (np.uint8 if bits < 128 else np.uint16)


def test_strict_maps_zero_to_plus_one():
    query = [[0, -1, 1, 1, 1, 1, 1, 1]]
    database = [ONES]
    # strict: query becomes [1, -1, 1, ...], one differing bit -> doubled distance 2 (not 1 + 2 = 3)
    assert doubled_distances(words(query), words(database))[0, 0] == 3
    assert doubled_distances(words(query, strict=True), words(database, strict=True))[0, 0] == 2


def test_padding_bits_are_ignored():
    codes = pack_codes(np.array([[1] * 12, [-1] * 12]))
    dirty = PackedCodes(codes.signs | np.array([0, 0b1111], dtype=np.uint8), 12)  # junk in the 4 pad bits
    np.testing.assert_array_equal(doubled_distances(CodeWords.from_packed(dirty), CodeWords.from_packed(codes)),
                                  [[0, 24], [24, 0]])


def test_different_bits_is_an_error():
    with pytest.raises(DataError, match="query codes have 8 bits but database codes have 16"):
        doubled_distances(words([ONES]), words([[1] * 16]))


def test_histograms_count_items_per_distance():
    distances = np.array([[0, 2, 2, 4], [3, 3, 3, 1]], dtype=np.uint8)
    np.testing.assert_array_equal(distance_histograms(distances, 5), [[1, 0, 2, 0, 1], [0, 1, 0, 3, 0]])
    assert distance_bins(64) == 129


def test_first_k_breaks_ties_by_index():
    distances = np.array([[4, 2, 2, 0, 2, 6], [1, 1, 1, 1, 1, 0]], dtype=np.uint8)
    counts = distance_histograms(distances, 7)
    # row 0 ranks 3 (d0), then 1, 2, 4 (d2, by index), then 0, 5; row 1 ranks 5, then 0, 1, 2...
    np.testing.assert_array_equal(first_k(distances, counts, 3), [[3, 1, 2], [5, 0, 1]])
    np.testing.assert_array_equal(first_k(distances, counts, 5), [[3, 1, 2, 4, 0], [5, 0, 1, 2, 3]])
    # k beyond the database ranks everything
    np.testing.assert_array_equal(first_k(distances, counts, 10), [[3, 1, 2, 4, 0, 5], [5, 0, 1, 2, 3, 4]])


def test_first_k_matches_a_stable_argsort():
    rng = np.random.default_rng(0)
    distances = rng.integers(0, 9, size=(20, 50)).astype(np.uint8)
    counts = distance_histograms(distances, 9)
    expected = np.argsort(distances, axis=1, kind="stable")[:, :17]
    np.testing.assert_array_equal(first_k(distances, counts, 17), expected)
