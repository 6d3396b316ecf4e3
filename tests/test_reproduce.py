from __future__ import annotations

import pytest

from ssvh_bench import targets
from ssvh_bench.targets import Report, Target

from conftest import invoke

TINY = Target("tiny", "two offsets of first-coords", ("first-coords",), (16,),
              (Report("table", {"ks": (5, 10)}), Report("map-k", {"ks": (5, 10)})), {"offset": (0.0, 0.5)})


@pytest.fixture
def tiny_target(tiny_plugins, monkeypatch):
    monkeypatch.setitem(targets.TARGETS, "tiny", TINY)


def test_dry_run_lists_the_runs_and_marks_finished_ones(tmp_path, tiny_target):
    assert invoke("run", "-m", "first-coords", "-d", "tiny-blobs", "-b", "16", "-s", "1",
                  "--results-dir", str(tmp_path)).exit_code == 0
    result = invoke("reproduce", "tiny", "--dataset", "tiny-blobs", "--seeds", "0,1", "--dry-run",
                    "--results-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if line.startswith("│ first-coords")]
    assert len(rows) == 4  # 2 offsets x 1 code length x 2 seeds
    finished = [row for row in rows if "finished" in row]
    assert len(finished) == 1 and "offset=0.0" in finished[0] and "│ 1 " in finished[0]
    assert "4 run(s) on tiny-blobs: 1 finished, 3 to do" in result.output
    assert "time: about 0 s of training" in result.output  # from the finished run's train_seconds
    assert len(list((tmp_path / "runs").glob("*/*/*/*/metrics.json"))) == 1  # a dry run runs nothing
    assert not (tmp_path / "tables").exists()


@pytest.mark.slow
def test_reproduce_runs_the_missing_runs_and_writes_its_reports(tmp_path, tiny_target):
    result = invoke("reproduce", "tiny", "--dataset", "tiny-blobs", "--results-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "2 run(s) done, 0 skipped" in result.output
    markdown = (tmp_path / "tables" / "tiny.md").read_text()
    assert "| first-coords |" in markdown and "first-coords (offset=0.5)" in markdown  # offset=0.0 is the default
    assert (tmp_path / "tables" / "tiny.tex").is_file() and (tmp_path / "tables" / "tiny.csv").is_file()
    assert (tmp_path / "figures" / "tiny-map-k.png").stat().st_size > 0
    again = invoke("reproduce", "tiny", "--dataset", "tiny-blobs", "--results-dir", str(tmp_path))
    assert again.exit_code == 0 and "0 run(s) done, 2 skipped" in again.output


def test_unregistered_methods_are_all_named(tmp_path, tiny_plugins, monkeypatch):
    needs = Target("needs", "", ("first-coords", "conmh-x", "bth-x"), (16,), ())
    monkeypatch.setitem(targets.TARGETS, "needs", needs)
    result = invoke("reproduce", "needs", "--dataset", "tiny-blobs", "--dry-run", "--results-dir", str(tmp_path))
    assert result.exit_code == 2
    assert "needs method(s) that are not registered: conmh-x, bth-x" in result.output


def test_unknown_target_lists_the_targets(tmp_path):
    result = invoke("reproduce", "conmh-tabel", "--results-dir", str(tmp_path))
    assert result.exit_code == 2 and "targets: autossvh-table, conmh-map-k, conmh-mask-ratio, conmh-pr, conmh-table, s5vh-table" in result.output


def test_conmh_targets_are_the_papers_grids():
    table = targets.TARGETS["conmh-table"]
    assert set(table.methods) >= {"conmh", "bth", "mcmsh", "ssvh", "itq", "lsh", "sh", "pcah"}
    assert table.bits == (16, 32, 64)
    ablation = targets.TARGETS["conmh-mask-ratio"]
    assert ablation.methods == ("conmh",) and ablation.bits == (64,)
    assert ablation.method_overrides == {"mask_ratio": (0.1, 0.25, 0.5, 0.75, 0.9)}
    assert [r.kind for r in ablation.reports] == ["ablation"]


def sweep(tmp_path, *extra: str):
    return invoke("sweep", "-m", "first-coords", "-d", "tiny-blobs", "-b", "16", "--results-dir", str(tmp_path),
                  *extra)


def test_sweep_expands_lists_skips_finished_runs_and_says_how_to_plot(tmp_path, tiny_plugins):
    first = sweep(tmp_path, "--set", "offset=0.0,0.5")
    assert first.exit_code == 0, first.output
    assert "2 run(s) done, 0 skipped" in first.output
    assert f"ssvh-bench plot ablation --param offset --method first-coords --dataset tiny-blobs --results-dir {tmp_path}" in first.output
    second = sweep(tmp_path, "--set", "offset=0.0,0.5,1.0")
    assert second.exit_code == 0, second.output
    assert "1 run(s) done, 2 skipped" in second.output


def test_sweep_without_a_swept_parameter_is_an_error(tmp_path, tiny_plugins):
    result = sweep(tmp_path, "--set", "offset=0.5")
    assert result.exit_code == 2 and "sweep needs a parameter with several values" in result.output
    assert not (tmp_path / "runs").exists()
