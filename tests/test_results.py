from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ssvh_bench import pack_codes, leaderboard, run_folder, RunFolder
from ssvh_bench.io import atomic_path, read_json, write_json
from ssvh_bench.config import RunSpec

from runs_on_disk import QUERY_PATTERN, finish_run


def test_atomic_write_keeps_old_file_when_writer_fails(tmp_path):
    target = tmp_path / "metrics.json"
    write_json(target, {"map@5": 0.5})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("{half")
            raise RuntimeError("crash mid-write")
    assert read_json(target) == {"map@5": 0.5}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_codes_round_trip_with_zeros_and_shared_query(tmp_path):
    rng = np.random.default_rng(0)
    database = rng.choice(np.array([-1, 0, 1], dtype=np.int8), size=(7, 24))
    labels = rng.random((7, 5)) > 0.5
    run_folder.save_codes(tmp_path / "codes.npz", pack_codes(database), labels)
    loaded = run_folder.load_codes(tmp_path)
    assert loaded["query"] is None and loaded["query_labels"] is None
    np.testing.assert_array_equal(loaded["database"].unpack(), database)
    np.testing.assert_array_equal(loaded["database_labels"], labels)


def test_codes_round_trip_binary_with_query(tmp_path):
    rng = np.random.default_rng(1)
    database = rng.choice(np.array([-1, 1], dtype=np.int8), size=(6, 16))
    query = rng.choice(np.array([-1, 1], dtype=np.int8), size=(3, 16))
    run_folder.save_codes(tmp_path / "c.npz", pack_codes(database), np.eye(6)[:, :4], pack_codes(query), np.eye(3, 4))
    loaded = run_folder.load_codes(tmp_path / "c.npz")
    assert loaded["database"].nonzero is None
    np.testing.assert_array_equal(loaded["query"].unpack(), query)
    np.testing.assert_array_equal(loaded["query_labels"], np.eye(3, 4, dtype=bool))


def write_run(root, method, seed, value, bits=16):
    spec = RunSpec(method, "synthetic", bits, seed)
    return finish_run(spec, RunFolder.of(root, spec).path, {
        "map@5": value, "map@10": value / 2, "p@5": value, "train_seconds": 1.0, "encode_ms_per_video": 0.1,
        "n_params": 3, "pr_curve": {"radius": [0]}})


def test_leaderboard_rows_columns_and_aggregate(tmp_path):
    write_run(tmp_path, "itq", 0, 0.6)
    write_run(tmp_path, "itq", 1, 0.8)
    write_run(tmp_path, "lsh", 0, 0.4)
    unfinished = RunFolder.of(tmp_path, RunSpec("sh", "synthetic", 16, 0)).path
    write_json(unfinished / run_folder.CONFIG_FILE, {})
    frame = leaderboard.leaderboard_frame(tmp_path)
    # code health: computed from the saved codes for runs that did not record it (no in_window: that needs the model)
    assert list(frame.columns) == ["dataset", "method", "bits", "seed", "overrides",
                                   "map@5", "map@5_ci_low", "map@5_ci_high", "map@10", "map@10_ci_low",
                                   "map@10_ci_high", "p@5", "train_seconds", "encode_ms_per_video", "n_params",
                                   "constant_bits", "distinct_codes", "top_code_share", "balance_deviation",
                                   "bit_correlation", "collapse", "device", "setting_id", "run_id", "folder"]
    itq0 = frame[(frame["method"] == "itq") & (frame["seed"] == 0)].iloc[0]  # 95% t interval over 200 queries
    assert itq0["map@5_ci_low"] < 0.6 < itq0["map@5_ci_high"]
    assert itq0["map@5_ci_high"] - 0.6 == pytest.approx(1.972 * np.std(QUERY_PATTERN, ddof=1) / np.sqrt(200), rel=1e-3)
    assert sorted(frame["method"]) == ["itq", "itq", "lsh"]
    table = leaderboard.aggregate(frame, ["map@5"]).set_index("method")
    assert table.loc["itq", "map@5_mean"] == pytest.approx(0.7)
    assert table.loc["itq", "map@5_std"] == pytest.approx(np.std([0.6, 0.8], ddof=1))
    assert table.loc["itq", "n_seeds"] == 2 and table.loc["lsh", "n_seeds"] == 1


def test_aggregate_groups_by_setting_and_flags_a_repeated_seed(tmp_path):
    write_run(tmp_path, "itq", 0, 0.6)
    write_run(tmp_path, "itq", 1, 0.8)
    frame = leaderboard.leaderboard_frame(tmp_path)
    doubled = frame[frame["seed"] == 0].assign(**{"map@5": 0.1})
    table = leaderboard.aggregate(pd.concat([frame, doubled]), ["map@5"]).set_index("method")
    assert table.loc["itq", "n_seeds"] == 2 and table.loc["itq", "repeated_seeds"] == "0"
    assert table.loc["itq", "map@5_mean"] == pytest.approx(0.7)  # the repeated seed's second run is not averaged


def test_settings_differing_in_resolved_parameters_are_separate_rows(tmp_path):
    first, second = RunSpec("itq", "synthetic", 16, 0, {"n_iter": 10}), RunSpec("itq", "synthetic", 16, 0, {"n_iter": 30})
    assert first.setting_id != second.setting_id and first.run_id != second.run_id
    assert first.setting_id == RunSpec("itq", "synthetic", 16, 1, {"n_iter": 10}).setting_id
    assert RunSpec("itq", "synthetic", 16, 0, {"n_iter": 10}, method_version=2).run_id != first.run_id
    for spec in (first, second):
        finish_run(spec, RunFolder.of(tmp_path, spec).path, {"map@5": 0.5})
    frame = leaderboard.leaderboard_frame(tmp_path)
    assert sorted(frame["overrides"]) == ["n_iter=10", "n_iter=30"]  # labels from parameters, none typed
    assert len(leaderboard.aggregate(frame, ["map@5"])) == 2


@pytest.mark.parametrize("damage", ["codes", "metrics", "config"])
def test_a_damaged_run_is_not_finished_and_the_leaderboard_skips_it(tmp_path, damage, caplog):
    folder = write_run(tmp_path, "itq", 0, 0.6)
    write_run(tmp_path, "lsh", 0, 0.4)
    assert RunFolder(folder).is_finished()
    target = {"codes": run_folder.CODES_FILE, "metrics": run_folder.METRICS_FILE, "config": run_folder.CONFIG_FILE}[damage]
    data = (folder / target).read_bytes()
    (folder / target).write_bytes(data[: len(data) // 2])
    assert not RunFolder(folder).is_finished()
    frame = leaderboard.leaderboard_frame(tmp_path)
    assert f"skipped {folder}" in caplog.text and target in caplog.text
    assert list(frame["method"]) == ["lsh"]


def test_a_run_at_todays_defaults_has_an_empty_label_after_its_json_round_trip():
    import json

    from ssvh_bench import method_registry
    from ssvh_bench.config import make_specs

    (spec,) = make_specs(["autossvh"], "synthetic", [16], [0])  # kmeans_backend resolved; n_clusters a tuple
    config = json.loads(json.dumps(spec.to_dict()))
    assert leaderboard.setting_label(config) == ""
    changed = json.loads(json.dumps({**spec.to_dict(), "method_params": {**spec.method_params, "epochs": 3}}))
    assert leaderboard.setting_label(changed) == "epochs=3"
    assert method_registry.get("autossvh").defaults["kmeans_backend"] == "auto"
