from __future__ import annotations

from pathlib import Path

import pytest

from ssvh_bench import DataError
from ssvh_bench.published import PUBLISHED_COLUMNS, load_published, packaged_published_path

REPOSITORY_COPY = Path(__file__).resolve().parents[1] / "results" / "published.csv"


def value(frame, method, dataset, bits, k):
    match = frame[(frame.method == method) & (frame.dataset == dataset) & (frame.bits == bits) & (frame.k == k)]
    assert len(match) == 1
    return match["value"].iloc[0]


def test_every_published_number_is_loaded():
    frame = load_published()
    assert list(frame.columns) == PUBLISHED_COLUMNS
    # ConMH 9 rows, S5VH, AutoSSVH and WSCH 6 rows each, x 6 K; BTH and BerVAE 7 K; SSVH 6 K (no @10)
    assert len(frame) == 9 * 6 + 3 * 6 * 6 + 7 + 7 + 6
    assert not frame.duplicated(["method", "dataset", "bits", "k"]).any()
    assert set(frame.method) == {"conmh", "s5vh", "autossvh", "wsch", "bth", "bervae", "ssvh"}


@pytest.mark.parametrize(("method", "dataset", "bits", "k", "expected"), [
    ("conmh", "fcvid", 64, 5, 0.524),
    ("conmh", "yfcc", 16, 100, 0.104),
    ("bth", "fcvid", 64, 100, 0.2041),
    ("bth", "fcvid", 64, 10, 0.3750),
    ("s5vh", "activitynet", 32, 60, 0.063),
    ("wsch", "fcvid", 128, 5, 0.578),
    ("ssvh", "fcvid", 256, 5, 0.5304),
    ("bervae", "fcvid", 64, 100, 0.1665),
])
def test_values_match_the_reference_tables(method, dataset, bits, k, expected):
    assert value(load_published(), method, dataset, bits, k) == pytest.approx(expected)


def test_ssvh_has_no_map_at_10_and_s5vh_at_60_cites_its_logs():
    frame = load_published()
    assert not ((frame.method == "ssvh") & (frame.k == 10)).any()
    s5vh_60 = frame[(frame.method == "s5vh") & (frame.k == 60)]
    assert s5vh_60["source"].str.contains("logs/").all()


def test_repository_copy_equals_the_packaged_file():
    assert REPOSITORY_COPY.read_bytes() == packaged_published_path().read_bytes()


def test_bad_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="no published-results file"):
        load_published(tmp_path / "missing.csv")
    (tmp_path / "bad.csv").write_text("method,value\nconmh,0.5\n")
    with pytest.raises(DataError, match="lacks the column"):
        load_published(tmp_path / "bad.csv")
