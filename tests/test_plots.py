from __future__ import annotations

import pytest
from runs_on_disk import write_run
from typer.testing import CliRunner

from ssvh_bench import ConfigError, plots, leaderboard
from ssvh_bench.cli import app
from ssvh_bench.display import method_style
from ssvh_bench.tables import select_runs

runner = CliRunner()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for bits in (16, 64):
        for index, method in enumerate(("itq", "lsh", "conmh")):
            for seed in (0, 1):
                write_run(root, method, seed, 0.3 + 0.1 * index + 0.01 * seed, bits=bits,
                          train_seconds=10.0 ** index)
    for ratio in (0.25, 0.5, 0.9):  # not ConMH's default 0.75, which would read as the default setting
        for seed in (0, 1):
            write_run(root, "conmh", seed, ratio + 0.01 * seed, bits=64, params={"mask_ratio": ratio},
                      overrides={"mask_ratio": ratio})
    # Runs that have the parameter but do not vary it: a single value at 16 bits, and another method.
    write_run(root, "conmh", 0, 0.9, bits=16, params={"mask_ratio": 0.5}, overrides={"mask_ratio": 0.5})
    write_run(root, "bth", 0, 0.9, bits=64, params={"mask_ratio": 0.3}, overrides={"mask_ratio": 0.3})
    return root


def defaults(root):
    frame = leaderboard.load_runs(root)
    return frame[frame["overrides"] == ""]


def series_per_panel(figure):
    return [len(ax.get_lines()) for ax in figure.axes if ax.get_visible()]


def legend_names(figure):
    (legend,) = figure.legends
    return [text.get_text() for text in legend.get_texts()]


KINDS = [
    ("map-k", {"ks": [5, 20, 100]}, [3, 3]),  # (synthetic, 16) and (synthetic, 64); itq, lsh, conmh
    ("precision-k", {"ks": [5, 20]}, [3, 3]),
    ("pr", {"ks": [20]}, [3, 3]),
    ("map-bits", {"ks": [20]}, [3]),  # one panel per dataset, a line per method
    ("efficiency", {"ks": [20]}, [3, 3]),  # one point per method
    ("ablation", {"ks": [5, 20], "param": "mask_ratio"}, [2]),  # conmh, 64 bits only; a line per K
]


@pytest.mark.parametrize(("kind", "options", "panels"), KINDS)
def test_every_kind_draws_the_expected_panels_and_lines(runs, kind, options, panels):
    frame = leaderboard.load_runs(runs) if kind == "ablation" else defaults(runs)
    figure = plots.make_figure(kind, frame, **options)
    assert series_per_panel(figure) == panels
    visible = [ax for ax in figure.axes if ax.get_visible()]
    # panels share both axes, so they compare at a glance
    assert all(visible[0].get_shared_y_axes().joined(visible[0], ax) for ax in visible[1:])
    assert all(visible[0].get_shared_x_axes().joined(visible[0], ax) for ax in visible[1:])


@pytest.mark.parametrize(("kind", "options", "panels"), KINDS)
def test_every_pdf_embeds_truetype_fonts_not_type3(runs, tmp_path, kind, options, panels):
    frame = leaderboard.load_runs(runs) if kind == "ablation" else defaults(runs)
    paths = plots.save_figure(plots.make_figure(kind, frame, **options), tmp_path, kind)
    assert [p.suffix for p in paths] == [".png", ".pdf"]
    assert paths[0].read_bytes()[:4] == b"\x89PNG"
    pdf = paths[1].read_bytes()
    assert pdf[:4] == b"%PDF"
    assert b"/FontFile2" in pdf and b"/Type3" not in pdf


def test_paper_names_order_and_one_style_per_method_across_figures(runs):
    map_k = plots.make_figure("map-k", defaults(runs), ks=[5, 20])
    pr = plots.make_figure("pr", defaults(runs), ks=[20])
    # shallow first, then deep by year: LSH, ITQ, ConMH (not alphabetical, not registry names)
    assert legend_names(map_k) == legend_names(pr) == ["LSH", "ITQ", "ConMH"]
    for figure in (map_k, pr):
        for line in figure.axes[0].get_lines():
            method = {"LSH": "lsh", "ITQ": "itq", "ConMH": "conmh"}[line.get_label()]
            assert (line.get_color(), line.get_marker()) == (method_style(method)["color"],
                                                            method_style(method)["marker"])


def test_changed_parameter_settings_keep_the_method_colour_hollow(runs):
    frame = select_runs(leaderboard.load_runs(runs), bits="64", method="conmh")
    figure = plots.make_figure("map-k", frame, ks=[5, 20])
    names = legend_names(figure)
    assert names == ["ConMH", "ConMH (mask_ratio=0.25)", "ConMH (mask_ratio=0.5)", "ConMH (mask_ratio=0.9)"]
    lines = {line.get_label(): line for line in figure.axes[0].get_lines()}
    assert {line.get_color() for line in lines.values()} == {method_style("conmh")["color"]}
    assert lines["ConMH"].get_markerfacecolor() != "none"
    assert lines["ConMH (mask_ratio=0.5)"].get_markerfacecolor() == "none"
    assert len({str(line.get_linestyle()) for line in lines.values()}) == 4


def test_means_over_seeds_with_std_band(runs):
    frame = select_runs(leaderboard.load_runs(runs), method="itq", bits="16")
    figure = plots.plot_metric_at_k(frame, "map", [5])
    (line,) = figure.axes[0].get_lines()
    assert line.get_ydata()[0] == pytest.approx((0.30 + 0.31) / 2)
    assert len(figure.axes[0].collections) == 1  # the ± std band


def test_ablation_uses_only_runs_that_vary_the_parameter(runs):
    frame = leaderboard.load_runs(runs)
    used = plots.ablation_runs(frame, "mask_ratio")
    # the 6 swept conmh runs at 64 bits; not the lone 16-bit one, nor bth's single value
    assert len(used) == 6 and set(used["method"]) == {"conmh"} and set(used["bits"]) == {64}
    figure = plots.plot_ablation(frame, "mask_ratio", [5], by="bits")
    assert series_per_panel(figure) == [1]  # 16 bits had one value: no lone point
    (line,) = figure.axes[0].get_lines()
    assert list(line.get_xdata()) == [0.25, 0.5, 0.9]
    assert line.get_ydata() == pytest.approx([0.255, 0.505, 0.905])
    assert line.get_label() == "64 bits"
    assert figure.axes[0].get_title() == "ConMH, synthetic"


def test_ablation_without_two_values_is_a_config_error(runs):
    with pytest.raises(ConfigError, match="at two values or more"):
        plots.plot_ablation(leaderboard.load_runs(runs), "depth")
    with pytest.raises(ConfigError, match="at two values or more"):
        plots.plot_ablation(select_runs(leaderboard.load_runs(runs), method="bth"), "mask_ratio")


def test_efficiency_labels_points_on_one_scale(runs):
    figure = plots.make_figure("efficiency", defaults(runs), ks=[20])
    first, second = figure.axes[:2]
    assert [t.get_text() for t in first.texts] == ["LSH", "ITQ", "ConMH"]
    assert first.get_xscale() == second.get_xscale() == "log"  # 1 s .. 100 s of training
    assert first.get_xlim() == second.get_xlim() and first.get_ylim() == second.get_ylim()
    assert not figure.legends  # the labels say it


def test_legend_in_one_row_below_or_one_column_right(runs):
    few = plots.make_figure("map-k", defaults(runs), ks=[5, 20])
    assert few.legends[0]._ncols == 3
    many = plots.make_figure("map-k", select_runs(leaderboard.load_runs(runs), bits="64"), ks=[5, 20])
    assert many.legends[0]._ncols == 1  # 6 long labels do not fit a 2-panel row: a column at the right
    assert legend_names(many)[0] == "LSH"


def test_map_bits_leaves_out_settings_at_one_code_length(runs):
    figure = plots.make_figure("map-bits", leaderboard.load_runs(runs), ks=[20])
    # mask_ratio=0.5 was run at 16 and 64 bits; 0.25 and 0.9 at 64 bits only: left out
    assert legend_names(figure) == ["LSH", "ITQ", "ConMH", "ConMH (mask_ratio=0.5)"]
    with pytest.raises(ConfigError, match="two code lengths"):
        plots.make_figure("map-bits", select_runs(defaults(runs), bits="64"), ks=[20])


def test_plot_entry_point_filters_names_and_describes(runs, tmp_path):
    lines = []
    paths = plots.plot("ablation", results_dir=runs, out=tmp_path, param="mask_ratio", describe=lines.append)
    assert paths == [tmp_path / "ablation-mask_ratio.png", tmp_path / "ablation-mask_ratio.pdf"]
    assert lines == [f"ablation over mask_ratio: 6 of {len(leaderboard.load_runs(runs))} run(s) vary it and were used"]
    paths = plots.plot("map-k", results_dir=runs, out=tmp_path, methods="itq", bits="16", name="itq16")
    assert [p.name for p in paths] == ["itq16.png", "itq16.pdf"]


def test_plot_command_writes_png_and_pdf_with_filters(runs):
    result = runner.invoke(app, ["plot", "ablation", "--param", "mask_ratio", "--method", "conmh",
                                 "--results-dir", str(runs)])
    assert result.exit_code == 0, result.output
    assert (runs / "figures" / "ablation-mask_ratio.png").stat().st_size > 0
    assert (runs / "figures" / "ablation-mask_ratio.pdf").stat().st_size > 0
    assert "ablation over mask_ratio: 6 of 11 run(s) vary it and were used" in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["plot", "bars"], "unknown plot kind 'bars'"),
    (["plot", "ablation"], "needs --param"),
    (["plot", "map-k", "--method", "zzz"], "no finished run"),
    (["plot", "efficiency", "--x", "memory"], "--x takes train or encode"),
])
def test_bad_plot_requests_are_one_line_errors(runs, args, message):
    result = runner.invoke(app, [*args, "--results-dir", str(runs)])
    assert result.exit_code == 2 and message in result.output
