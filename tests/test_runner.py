"""The engine's run API: the grid from Python, events, skipping, failure isolation, light imports."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

import ssvh_bench
from ssvh_bench import ConfigError, ShallowMethod, method_registry, leaderboard
from ssvh_bench.cli import app
from ssvh_bench import evaluation
from ssvh_bench.io import read_json

from conftest import TINY


class Fragile(ShallowMethod):
    """Like first-coords, but fitting raises for ``fail=True``."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    def _fit_pooled(self, pooled, bits, rng):
        if self.fail:
            raise FloatingPointError("the fit diverged")
        self.mean_ = pooled.mean(axis=0)

    def _project(self, pooled):
        return np.resize(pooled - self.mean_, (len(pooled), self.bits))


@pytest.fixture
def fragile(tiny_plugins):
    method_registry.register("fragile", description="fails on demand", family="shallow")(Fragile)
    yield
    method_registry.unregister("fragile")


def test_run_expands_the_grid_reports_events_and_skips_finished_runs(tmp_path, tiny_plugins):
    events = []
    first = ssvh_bench.run(["first-coords"], "tiny-blobs", bits=[8, 16], seeds=[0, 1], params={"offset": [0.0, 0.5]},
                           results_dir=tmp_path, on_event=events.append)
    assert [r.status for r in first] == ["finished"] * 8
    assert {(r.spec.bits, r.spec.seed, r.spec.method_params["offset"]) for r in first} == {
        (b, s, o) for b in (8, 16) for s in (0, 1) for o in (0.0, 0.5)}
    assert [e.kind for e in events] == ["start", "finished"] * 8
    assert [e.index for e in events[::2]] == list(range(1, 9)) and {e.total for e in events} == {8}
    assert all((r.folder / "metrics.json").is_file() for r in first)
    assert all(r.metrics["map@5"] == pytest.approx(1.0) for r in first
               if r.spec.method_params["offset"] == 0.0 and r.spec.bits == 16)
    again = ssvh_bench.run("first-coords", "tiny-blobs", bits=[8, 16], seeds=[0, 1], params={"offset": [0.0, 0.5]},
                           results_dir=tmp_path)
    assert [r.status for r in again] == ["skipped"] * 8
    assert [r.metrics for r in again] == [r.metrics for r in first]


def test_a_failed_run_is_recorded_and_the_grid_goes_on(tmp_path, fragile):
    outcomes = ssvh_bench.run(["fragile", "first-coords"], "tiny-blobs", bits=16, params={"fragile.fail": True},
                              results_dir=tmp_path)
    failed, finished = outcomes
    assert (failed.status, finished.status) == ("failed", "finished")
    assert failed.error == "FloatingPointError: the fit diverged"
    error = read_json(failed.folder / "error.json")
    assert error["error"] == failed.error and error["type"] == "FloatingPointError"
    assert "Traceback" in (failed.folder / "error.log").read_text()
    assert not (failed.folder / "metrics.json").exists()
    stopped = ssvh_bench.run(["fragile", "first-coords"], "tiny-blobs", bits=32, params={"fragile.fail": True},
                             results_dir=tmp_path, keep_going=False)
    assert [o.status for o in stopped] == ["failed"]  # recorded, and nothing after it started


def test_a_retried_run_that_succeeds_drops_the_old_error(tmp_path, fragile):
    failed = ssvh_bench.run("fragile", "tiny-blobs", bits=16, params={"fail": True}, results_dir=tmp_path)[0]
    assert (failed.folder / "error.json").is_file()
    (failed.folder / "metrics.json").unlink(missing_ok=True)
    # Same folder (same run id) once the cause is gone: simulate by patching the class, not the parameters.
    Fragile._fit_pooled, original = (lambda self, pooled, bits, rng: setattr(self, "mean_", pooled.mean(0))), Fragile._fit_pooled
    try:
        retried = ssvh_bench.run("fragile", "tiny-blobs", bits=16, params={"fail": True}, results_dir=tmp_path)[0]
    finally:
        Fragile._fit_pooled = original
    assert retried.status == "finished" and retried.folder == failed.folder
    assert not (retried.folder / "error.json").exists() and not (retried.folder / "error.log").exists()


def test_cli_summarises_failures_and_exits_1_and_fail_fast_stops(tmp_path, fragile):
    runner = CliRunner()
    result = runner.invoke(app, ["run", "-m", "fragile,first-coords", "-d", "tiny-blobs", "-b", "16",
                                 "--set", "fragile.fail=true", "--results-dir", str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert "1 run(s) done, 0 skipped, 1 failed" in result.output
    assert "failed: fragile, 16 bits, seed 0: FloatingPointError: the fit diverged" in result.output
    fast = runner.invoke(app, ["run", "-m", "fragile,first-coords", "-d", "tiny-blobs", "-b", "32",
                               "--set", "fragile.fail=true", "--fail-fast", "--results-dir", str(tmp_path)])
    # the failure is not an input error of ours: still the one-line summary and exit status 1, no traceback
    assert fast.exit_code == 1, fast.output
    assert "0 run(s) done, 0 skipped, 1 failed" in fast.output and "Traceback" not in fast.output
    assert "failed: fragile, 32 bits, seed 0: FloatingPointError: the fit diverged" in fast.output
    assert not list((tmp_path / "runs" / "tiny-blobs" / "32" / "first-coords").glob("*/metrics.json"))


@pytest.mark.parametrize("device", ["foo", "cuda:x", "gpu"])
def test_bad_device_is_one_line_before_anything_is_written(tmp_path, tiny_plugins, device):
    result = CliRunner().invoke(app, ["run", "-m", "first-coords", "-d", "tiny-blobs", "-b", "16", "--device", device,
                                      "--results-dir", str(tmp_path)])
    assert result.exit_code == 2 and "unknown device" in result.output
    assert not (tmp_path / "runs").exists()


def test_shallow_runs_record_the_cpu_and_threads(tmp_path, tiny_plugins):
    outcome = ssvh_bench.run("first-coords", "tiny-blobs", bits=16, results_dir=tmp_path, threads=1)[0]
    config = read_json(outcome.folder / "config.json")
    assert config["device"] == "cpu" and config["threads"] == 1
    with pytest.raises(ConfigError, match="threads"):
        ssvh_bench.run("first-coords", "tiny-blobs", bits=16, results_dir=tmp_path, threads=0, force=True)


def test_run_files_follow_the_umask(tmp_path, tiny_plugins):
    outcome = ssvh_bench.run("first-coords", "tiny-blobs", bits=16, results_dir=tmp_path)[0]
    mask = os.umask(0)
    os.umask(mask)
    for name in ("config.json", "metrics.json", "codes.npz"):
        assert stat.S_IMODE((outcome.folder / name).stat().st_mode) == 0o666 & ~mask, name


@pytest.mark.slow
def test_import_and_cli_start_load_no_heavy_library():
    probe = ("import sys, ssvh_bench, ssvh_bench.cli\n"
             "from ssvh_bench import method_registry\n"
             "entries = method_registry.list()\n"
             "assert {'conmh', 'itq'} <= {e.name for e in entries}, entries\n"
             "assert method_registry.get('conmh').defaults['epochs'] == 800\n"
             "print(json.dumps(sorted(m for m in ('torch', 'pandas', 'sklearn', 'matplotlib') if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", "import json\n" + probe], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_version_option():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"ssvh-bench {ssvh_bench.__version__}"


CONMH = {"epochs": 2, "batch_size": 16, "encoder_dim": 16, "decoder_dim": 8}


def test_eval_every_records_a_curve_and_the_oracle_without_changing_the_codes(tmp_path):
    plain = ssvh_bench.run("conmh", "synthetic", bits=16, params=CONMH, dataset_params=TINY,
                           results_dir=tmp_path / "plain")[0]
    curved = ssvh_bench.run("conmh", "synthetic", bits=16, params=CONMH, dataset_params=TINY, eval_every=1,
                            results_dir=tmp_path / "curve")[0]
    assert curved.metrics["codes_sha256"] == plain.metrics["codes_sha256"]  # a diagnostic only
    lines = (curved.folder / "history.csv").read_text().splitlines()
    header = lines[0].split(",")
    # the evaluation columns last: the curve, then its code health (ssvh_bench.health)
    assert header[:2] == ["epoch", "loss"] and header[-9:] == ["map@5", "map@20", "map@100", "constant_bits",
                                                                "distinct_codes", "top_code_share", "balance_deviation",
                                                                "bit_correlation", "in_window"]
    rows = [dict(zip(header, line.split(","))) for line in lines[1:]]
    assert [row["epoch"] for row in rows] == ["-1", "0", "1"] and rows[0]["loss"] == ""
    last = float(rows[-1]["map@5"])
    assert last == pytest.approx(curved.metrics["map@5"])  # the last epoch's evaluation is the run's
    best = max(range(3), key=lambda i: float(rows[i]["map@5"]))
    assert curved.metrics["oracle_epoch"] == best  # counted from 1; 0 is the untrained model
    assert curved.metrics["map@5_oracle"] == pytest.approx(float(rows[best]["map@5"]))
    assert "oracle_epoch" not in plain.metrics
    columns = list(leaderboard.leaderboard_frame(tmp_path / "curve").columns)
    at = columns.index("oracle_epoch")
    assert columns[at - 9:at + 2] == [  # after every honest number, each with its interval over queries
        "map@5_oracle", "map@5_oracle_ci_low", "map@5_oracle_ci_high", "map@20_oracle", "map@20_oracle_ci_low",
        "map@20_oracle_ci_high", "map@100_oracle", "map@100_oracle_ci_low", "map@100_oracle_ci_high",
        "oracle_epoch", "train_seconds"]
    oracle = leaderboard.per_query_of(curved.folder).ap(5, oracle=True)  # the oracle epoch's per-query AP
    assert oracle.mean() == pytest.approx(curved.metrics["map@5_oracle"], abs=1e-12)
    from ssvh_bench import plots

    figure = plots.make_figure("curve", leaderboard.load_runs(tmp_path / "curve"), ks=[5])
    (line,) = figure.axes[0].get_lines()
    assert list(line.get_xdata()) == [0, 1, 2]  # epochs trained; 0 is the untrained model
    assert list(line.get_ydata()) == pytest.approx([float(row["map@5"]) for row in rows])
    with pytest.raises(ConfigError, match="--eval-every"):
        plots.make_figure("curve", leaderboard.load_runs(tmp_path / "plain"), ks=[5])


@pytest.mark.slow
def test_a_run_logs_plain_lines_per_stage_and_epoch_when_not_on_a_terminal(tmp_path):
    script = ("import ssvh_bench\nfrom ssvh_bench.cli import app\n"
              f"app(['run', '-m', 'conmh', '-b', '16', '--results-dir', {str(tmp_path)!r}, "
              + ", ".join(f"'--set', '{k}={v}'" for k, v in CONMH.items()) + ", "
              + ", ".join(f"'--dataset-param', '{k}={v}'" for k, v in TINY.items()) + "])\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    epochs = [line for line in lines if " epoch " in f" {line.split(' ', 1)[1]}" and "/2 " in line]
    assert len(epochs) == 2 and "epoch 1/2" in epochs[0] and "epoch 2/2" in epochs[1]
    for field in ("loss", "reconstruction", "videos/s", "elapsed", "eta"):
        assert field in epochs[1], epochs[1]
    for stage in ("loading dataset synthetic", "conmh: training on 64 videos", "conmh: encoding 32 database",
                  "conmh: evaluating"):
        assert any(stage in line for line in lines), (stage, lines)
    quiet = subprocess.run([sys.executable, "-c", script.replace("app(['run'", "app(['--quiet', 'run'")],
                           capture_output=True, text=True)
    assert quiet.returncode == 0 and "epoch" not in quiet.stdout and "1 skipped" in quiet.stdout


def test_encoding_time_is_measured_over_enough_videos_to_be_above_timer_noise(tmp_path, tiny_plugins):
    outcome = ssvh_bench.run("first-coords", "tiny-blobs", bits=16, results_dir=tmp_path)[0]
    metrics = outcome.metrics
    assert metrics["encode_timed_videos"] > 40 and metrics["encode_timed_videos"] % 40 == 0  # whole passes
    assert metrics["encode_ms_per_video"] * metrics["encode_timed_videos"] >= 1000 * evaluation.MIN_TIMED_SECONDS
