from __future__ import annotations

import pandas as pd
import pytest

from ssvh_bench import leaderboard, run_folder
from ssvh_bench.io import read_json

from typer.testing import CliRunner

from ssvh_bench.cli import app
from conftest import invoke



def run_tiny(tmp_path, *extra: str):
    return invoke("run", "--method", "first-coords", "--dataset", "tiny-blobs", "--bits", "16",
                  "--results-dir", str(tmp_path), *extra)


def run_folders(tmp_path):
    return sorted(p.parent for p in (tmp_path / "runs").glob("*/*/*/*/config.json"))


def test_run_writes_a_complete_run_folder(tmp_path, tiny_plugins):
    result = run_tiny(tmp_path, "--seed", "0,1")
    assert result.exit_code == 0, result.output
    folders = run_folders(tmp_path)
    assert len(folders) == 2
    folder = folders[0]
    assert {p.name for p in folder.iterdir()} == {"config.json", "metrics.json", "codes.npz", "per_query.npz",
                                                  "run.log"}
    config = read_json(folder / "config.json")
    assert config["method"] == "first-coords" and config["bits"] == 16 and config["device"] == "cpu"
    assert config["method_params"] == {"offset": 0.0}
    assert {"python", "numpy", "torch"} <= set(config["versions"])
    assert "git_commit" in config and config["run_id"] == folder.name
    metrics = read_json(folder / "metrics.json")
    assert metrics["map@5"] == pytest.approx(1.0)  # two far-apart blobs: the top 5 are all of the query's class
    assert folder.parts[-4:-1] == ("tiny-blobs", "16", "first-coords")


def test_finished_runs_are_skipped_unless_forced(tmp_path, tiny_plugins):
    assert run_tiny(tmp_path).exit_code == 0
    metrics_file = run_folders(tmp_path)[0] / "metrics.json"
    first_write = metrics_file.stat().st_mtime_ns
    again = run_tiny(tmp_path)
    assert again.exit_code == 0 and "finished before" in again.output
    assert metrics_file.stat().st_mtime_ns == first_write
    forced = run_tiny(tmp_path, "--force")
    assert forced.exit_code == 0 and "finished before" not in forced.output
    assert metrics_file.stat().st_mtime_ns != first_write


def test_unfinished_run_is_redone(tmp_path, tiny_plugins):
    assert run_tiny(tmp_path).exit_code == 0
    folder = run_folders(tmp_path)[0]
    (folder / "metrics.json").unlink()
    result = run_tiny(tmp_path)
    assert result.exit_code == 0 and "finished before" not in result.output
    assert (folder / "metrics.json").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--bits", "4"), "bits must be an integer from 8 to 256"),
        (("--bits", "sixteen"), "--bits expects comma-separated integers"),
        (("--method", "first-cords"), "Did you mean 'first-coords'?"),
        (("--dataset", "tiny-blob"), "unknown dataset 'tiny-blob'"),
        (("--set", "offset=big"), "offset expects float"),
        (("--dataset-param", "poison=true"), "tiny-blobs train features contain NaN or inf (first at video 3)"),
    ],
)
def test_bad_input_is_one_line_error_and_no_run_folder(tmp_path, tiny_plugins, args, message):
    # click keeps the last value of a repeated option, so ``args`` override these defaults
    argv = ["--method", "first-coords", "--dataset", "tiny-blobs", "--bits", "16", *args]
    result = invoke("run", *argv, "--results-dir", str(tmp_path))
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "runs").exists()


def test_separate_query_split_and_evaluate_command(tmp_path, tiny_plugins):
    assert run_tiny(tmp_path, "--dataset-param", "separate_query=true").exit_code == 0
    folder = run_folders(tmp_path)[0]
    assert run_folder.load_codes(folder)["query"] is not None
    out = tmp_path / "recomputed.json"
    result = invoke("evaluate", str(folder), "--output", str(out))
    assert result.exit_code == 0, result.output
    saved = read_json(folder / "metrics.json")
    recomputed = read_json(out)
    for key in ("map@5", "map@100", "p@20"):
        assert recomputed[key] == pytest.approx(saved[key])


def test_evaluate_missing_codes_is_an_error(tmp_path):
    result = invoke("evaluate", str(tmp_path / "nowhere"))
    assert result.exit_code == 2 and "no saved codes" in result.output


def test_leaderboard_writes_csv_and_prints_mean_std(tmp_path, tiny_plugins):
    assert run_tiny(tmp_path, "--seed", "0,1", "--set", "offset=0.0,0.5").exit_code == 0
    result = invoke("leaderboard", "--results-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(tmp_path / "leaderboard.csv")
    assert len(frame) == 4
    # labels say what differs from the defaults, whatever was typed: offset=0.0 is the default
    assert set(frame["overrides"].fillna("")) == {"", "offset=0.5"}
    assert "±" in result.output


def test_leaderboard_without_runs_is_an_error(tmp_path):
    result = invoke("leaderboard", "--results-dir", str(tmp_path))
    assert result.exit_code == 2 and "no finished runs" in result.output


def test_list_shows_registered_plugins(tiny_plugins):
    result = invoke("list")
    assert result.exit_code == 0
    assert "first-coords" in result.output and "tiny-blobs" in result.output and "offset=0.0" in result.output
    assert invoke("list", "widgets").exit_code == 2


def test_evaluate_command_on_a_self_query_run_prints_one_row_per_k(tmp_path, tiny_plugins):
    assert run_tiny(tmp_path).exit_code == 0
    folder = run_folders(tmp_path)[0]
    result = invoke("evaluate", str(folder), "--k", "5,20", "--normalizer", "hits")
    assert result.exit_code == 0, result.output
    assert "40 queries x 40 database, 16 bits, AP divided by hits" in result.output
    assert "map_tie_aware@K" in result.output
    rows = [line for line in result.output.splitlines() if line.strip("│ ").startswith(("5 ", "20 "))]
    assert len(rows) == 2


def test_evaluate_command_rejects_a_zero_cutoff(tmp_path, tiny_plugins):
    assert run_tiny(tmp_path).exit_code == 0
    result = invoke("evaluate", str(run_folders(tmp_path)[0]), "--k", "0,5")
    assert result.exit_code == 2 and "every K must be at least 1, got 0" in result.output


def test_config_file_sets_parameters_and_set_wins(tmp_path, tiny_plugins):
    config = tmp_path / "params.toml"
    config.write_text("offset = 0.25\n[dataset]\nseparate_query = true\n")
    assert run_tiny(tmp_path, "--config", str(config)).exit_code == 0
    assert run_tiny(tmp_path, "--config", str(config), "--set", "offset=0.5").exit_code == 0
    configs = [read_json(f / "config.json") for f in run_folders(tmp_path)]
    assert sorted(c["method_params"]["offset"] for c in configs) == [0.25, 0.5]
    assert all(c["dataset_params"]["separate_query"] is True for c in configs)


def test_list_shows_the_defaults_that_apply_on_the_chosen_dataset():
    synthetic = invoke("list", "methods", "-p", "conmh", "--dataset", "synthetic")
    fcvid = invoke("list", "methods", "-p", "conmh", "--dataset", "fcvid")
    assert synthetic.exit_code == fcvid.exit_code == 0
    flat = lambda text: " ".join(text.split()).replace("│ ", "")  # noqa: E731  the table folds long cells
    assert "variant=mini" in flat(synthetic.output) and "epochs=800" in flat(fcvid.output)
    assert "Did you mean 'methods'?" in invoke("list", "method").output


def test_help_lists_every_command_without_cutting_it_and_reads_values():
    result = CliRunner().invoke(app, ["--help"], terminal_width=80)
    commands = result.output.split("Commands:")[1]
    assert result.exit_code == 0 and "..." not in commands and "reproduce" in commands
    run_help = CliRunner().invoke(app, ["run", "--help"], terminal_width=100).output
    assert "METHOD[,METHOD]" in run_help and "BITS[,BITS]" in run_help
    assert run_help.count("SSVH_BENCH_DATA") == 1


def test_misspelt_plot_kind_and_data_info_sources():
    assert "Did you mean 'map-k'?" in invoke("plot", "mapk").output
    info = " ".join(invoke("data", "info").output.split())
    assert "https://github.com/huangmozhi9527/ConMH" in info and "37.4 GB" in info
