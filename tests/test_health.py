"""Code health: the figures on hand-made codes, the collapse thresholds, the binarisers' gradient windows, and a
collapsing run's warning, metrics, leaderboard columns and report table."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ssvh_bench import leaderboard
from ssvh_bench.health import code_health, collapse, health_row
from ssvh_bench.nn import hash_binarize, sign_ste
from ssvh_bench.nn.binarize import window_share
from ssvh_bench.report import render_report

from conftest import dataset_options, invoke
from runs_on_disk import finish_run


def test_all_equal_codes_are_one_code_with_every_bit_constant():
    codes = np.tile(np.array([1, -1, 1, 1, -1, -1, 1, -1], dtype=np.int8), (20, 1))
    health = code_health(codes)
    assert health["constant_bits"] == 8 and health["distinct_codes"] == 1 and health["top_code_share"] == 1.0
    assert health["balance_deviation"] == 1.0 and health["bit_correlation"] == 0.0  # no bit varies
    assert health["bit_balance"] == [1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0]
    assert "in_window" not in health
    assert collapse(health, 8) == "8 of 8 bits constant; one code shared by 100% of videos (1 distinct codes)"


def test_perfectly_balanced_independent_bits():
    # every 3-bit code once, twice: each bit is +1 for half the videos and no bit predicts another
    codes = np.array([[1 if (row >> bit) & 1 else -1 for bit in range(3)] for row in range(8)] * 2, dtype=np.int8)
    health = code_health(codes, in_window=0.25)
    assert health == {"constant_bits": 0, "distinct_codes": 8, "top_code_share": 2 / 16, "balance_deviation": 0.0,
                      "bit_correlation": 0.0, "bit_balance": [0.5, 0.5, 0.5], "in_window": 0.25}
    assert collapse(health, 3) == "one code shared by 12% of videos (8 distinct codes)"  # 12.5% > 10%


def test_one_constant_bit_and_copied_bits():
    base = np.array([[1, -1], [-1, 1], [1, 1], [-1, -1]] * 5, dtype=np.int8)  # 20 videos, 4 distinct codes
    codes = np.column_stack([base, base[:, 0], np.ones(20, dtype=np.int8)])  # bit 2 copies bit 0; bit 3 constant
    health = code_health(codes)
    assert health["constant_bits"] == 1 and health["distinct_codes"] == 4 and health["top_code_share"] == 0.25
    assert health["balance_deviation"] == pytest.approx(0.25)  # (0 + 0 + 0 + 1) / 4
    # pairs among bits 0, 1, 2: |r| = 0 (0-1), 1 (0-2), 0 (1-2)
    assert health["bit_correlation"] == pytest.approx(1 / 3)
    assert collapse(health, 4) == "one code shared by 25% of videos (4 distinct codes)"
    assert health_row(health) == {k: health[k] for k in ("constant_bits", "distinct_codes", "top_code_share",
                                                         "balance_deviation", "bit_correlation")}


def test_healthy_codes_do_not_collapse():
    codes = np.where(np.random.default_rng(0).random((1000, 16)) < 0.5, 1, -1).astype(np.int8)
    health = code_health(codes)
    assert health["constant_bits"] == 0 and health["distinct_codes"] > 950 and collapse(health, 16) == ""
    half = codes.copy()
    half[:, :8] = 1  # exactly half the bits constant: not more than half
    assert "bits constant" not in collapse(code_health(half), 16)
    half[:, 8] = 1
    assert collapse(code_health(half), 16).startswith("9 of 16 bits constant")


def test_the_binarisers_count_their_inputs_inside_their_gradient_windows():
    x = torch.tensor([-2.0, -1.0, -0.5, 0.0, 1.0, 1.5])
    with window_share() as hashed:
        hash_binarize(x)  # window -1 < x <= 1: -0.5, 0, 1
    with window_share() as signed:
        sign_ste(x)  # window |x| <= 1: -1, -0.5, 0, 1
    assert hashed.share == pytest.approx(3 / 6) and signed.share == pytest.approx(4 / 6)
    # the window is where the gradient passes
    for binarise in (hash_binarize, sign_ste):
        leaf = x.clone().requires_grad_()
        binarise(leaf).sum().backward()
        assert leaf.grad.tolist() == [0.0, 0.0 if binarise is hash_binarize else 1.0, 1.0, 1.0, 1.0, 0.0]
    with window_share() as nothing:
        pass
    assert nothing.share is None
    hash_binarize(x)  # outside a recording nothing is counted (and nothing fails)


def test_leaderboard_columns_and_report_table_from_hand_made_runs(tmp_path):
    from ssvh_bench import RunFolder
    from ssvh_bench.config import RunSpec

    collapsed = code_health(np.ones((10, 16), dtype=np.int8), in_window=0.2)
    healthy = {**collapsed, "constant_bits": 0, "distinct_codes": 10, "top_code_share": 0.1}
    for seed, health in ((0, collapsed), (1, healthy)):
        spec = RunSpec("conmh", "synthetic", 16, seed)
        flag = {"collapse": collapse(health, 16)} if seed == 0 else {}
        metrics = {"map@5": 0.5, "train_seconds": 1.0, "health": health, **flag}
        finish_run(spec, RunFolder.of(tmp_path, spec).path, metrics)
    spec = RunSpec("itq", "synthetic", 16, 0)
    itq = finish_run(spec, RunFolder.of(tmp_path, spec).path, {"map@5": 0.4, "train_seconds": 1.0})  # before health
    frame = leaderboard.leaderboard_frame(tmp_path)
    columns = list(frame.columns)
    assert columns[columns.index("n_params") + 1:columns.index("device")] == [
        "constant_bits", "distinct_codes", "top_code_share", "balance_deviation", "bit_correlation", "in_window",
        "collapse"]
    conmh = frame[frame["method"] == "conmh"].set_index("seed")
    assert conmh.loc[0, "collapse"].startswith("16 of 16 bits constant") and conmh.loc[1, "collapse"] == ""
    # a run made before code health was measured: computed from its saved codes, without in_window
    itq_row = frame[frame["method"] == "itq"].iloc[0]
    expected = code_health(RunFolder(itq).load_codes()["database"].unpack())
    assert itq_row["distinct_codes"] == expected["distinct_codes"] == 2 and np.isnan(itq_row["in_window"])
    assert itq_row["collapse"] == collapse(expected, 16)
    page = render_report(leaderboard.load_runs(tmp_path), tmp_path)
    table = page[page.index("<table class='sortable health'"):]
    table = table[: table.index("</table>")]
    assert table.count("<tr class='collapsed'>") == 2  # ITQ's two hand-made videos share nothing but 2 codes
    # mean over the two seeds; the flag says how many seeds collapsed
    assert "<td data-v='8'>8</td><td data-v='5.5'>5.5</td>" in table and "(1 of 2 seeds)" in table


def test_plot_health_draws_each_figure_as_a_share_against_epochs_trained(tmp_path):
    from ssvh_bench import RunFolder
    from ssvh_bench.config import RunSpec
    from ssvh_bench.errors import ConfigError
    from ssvh_bench.plots import make_figure
    from ssvh_bench.run_folder import write_history

    spec = RunSpec("conmh", "synthetic", 16, 0)
    folder = finish_run(spec, RunFolder.of(tmp_path, spec).path, {"map@5": 0.5, "train_seconds": 1.0})
    evaluated = [{"constant_bits": c, "distinct_codes": 9, "top_code_share": t, "balance_deviation": 0.5,
                  "bit_correlation": 0.1, "in_window": w} for c, t, w in ((0, 0.1, 0.9), (4, 0.2, 0.6), (12, 0.5, 0.3))]
    write_history(RunFolder(folder).history, [{"epoch": -1, **evaluated[0]}, {"epoch": 0, "loss": 1.0, **evaluated[1]},
                                              {"epoch": 1, "loss": 0.5, **evaluated[2]}])
    figure = make_figure("health", leaderboard.load_runs(tmp_path), ks=[20])
    panels = [ax for ax in figure.axes if ax.get_lines()]
    assert [ax.get_title().split("\n")[0] for ax in panels] == [
        "constant bits (share of bits)", "top code share", "balance deviation", "mean |bit correlation|",
        "in gradient window"]
    (constant,) = panels[0].get_lines()
    assert list(constant.get_xdata()) == [0, 1, 2] and list(constant.get_ydata()) == [0, 0.25, 0.75]
    assert list(panels[4].get_lines()[0].get_ydata()) == [0.9, 0.6, 0.3]
    (RunFolder(folder).history).unlink()
    with pytest.raises(ConfigError, match="--eval-every"):
        make_figure("health", leaderboard.load_runs(tmp_path), ks=[20])


@pytest.mark.slow
def test_a_collapsing_run_warns_and_the_report_flags_it(tmp_path):
    """BTH at 16 bits on the tiny synthetic data: its codes collapse (as the authors' do at 16 bits)."""
    tiny = {"n_train": 64, "n_database": 64, "n_frames": 4, "feature_dim": 16, "n_classes": 4}
    result = invoke("run", "-m", "bth,lsh", "-b", "16", "--set", "bth.epochs=1", "--set", "stage1_epochs=1",
                    "--set", "hidden_dim=16", "--set", "ffn_dim=32", "--set", "n_anchors=8", "--set", "batch_size=16",
                    "--results-dir", tmp_path, *dataset_options(tiny))
    assert result.exit_code == 0, result.output
    frame = leaderboard.load_runs(tmp_path)
    bth = frame[frame["method"] == "bth"].iloc[0]
    lsh = frame[frame["method"] == "lsh"].iloc[0]
    assert bth["collapse"] and not lsh["collapse"]
    assert f"bth: codes collapsed: {bth['collapse']}" in result.output and "lsh: codes collapsed" not in result.output
    assert 0 <= bth["in_window"] <= 1 and np.isnan(lsh["in_window"])  # shallow methods have no binariser window
    run_log = (bth["folder"] / "run.log").read_text()
    assert f"WARNING bth: codes collapsed: {bth['collapse']}" in run_log
    page = render_report(frame, tmp_path)
    table = page[page.index("<table class='sortable health'"):]
    table = table[: table.index("</table>")]
    assert table.count("<tr class='collapsed'>") == 1 and bth["collapse"] in table
