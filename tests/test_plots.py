from __future__ import annotations

import pytest
from runs_on_disk import write_run
from typer.testing import CliRunner

from ssvh_bench import ConfigError, plots
from ssvh_bench.cli import app
from ssvh_bench.plots import make_figure
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
    for ratio in (0.25, 0.5, 0.75):
        for seed in (0, 1):
            write_run(root, "conmh", seed, ratio + 0.01 * seed, bits=64, params={"mask_ratio": ratio},
                      overrides={"mask_ratio": ratio})
    return root


def series_per_panel(figure):
    visible = [ax for ax in figure.axes if ax.get_visible()]
    return [len(ax.get_lines()) for ax in visible]


@pytest.mark.parametrize(("kind", "options", "panels"), [
    ("map-k", {"ks": [5, 20, 100]}, [3, 3]),  # (synthetic, 16) and (synthetic, 64); itq, lsh, conmh
    ("precision-k", {"ks": [5, 20]}, [3, 3]),
    ("pr", {"ks": [20]}, [3, 3]),
    ("map-bits", {"ks": [20]}, [3]),  # one panel per dataset, a line per method
    ("efficiency", {"ks": [20]}, [3, 3]),  # one point per method
    ("ablation", {"ks": [5, 20], "param": "mask_ratio"}, [2]),  # conmh, 64 bits; a line per K
])
def test_every_kind_draws_the_expected_panels_and_lines(runs, tmp_path, kind, options, panels):
    frame = plots.load_runs(runs)
    if kind != "ablation":
        frame = frame[frame["overrides"] == ""]
    figure = make_figure(kind, frame, **options)
    assert series_per_panel(figure) == panels
    paths = plots.save_figure(figure, tmp_path, kind)
    assert [p.suffix for p in paths] == [".png", ".pdf"]
    assert all(p.stat().st_size > 1000 for p in paths)
    assert paths[0].read_bytes()[:4] == b"\x89PNG" and paths[1].read_bytes()[:4] == b"%PDF"


def test_means_over_seeds_with_std_band(runs):
    frame = select_runs(plots.load_runs(runs), method="itq", bits="16")
    figure = plots.plot_metric_at_k(frame, "map", [5])
    (line,) = figure.axes[0].get_lines()
    assert line.get_ydata()[0] == pytest.approx((0.30 + 0.31) / 2)
    assert len(figure.axes[0].collections) == 1  # the ± std band


def test_ablation_by_bits_and_x_values(runs):
    frame = plots.load_runs(runs)
    figure = plots.plot_ablation(frame, "mask_ratio", [5], by="bits")
    (line,) = figure.axes[0].get_lines()
    assert list(line.get_xdata()) == [0.25, 0.5, 0.75]
    assert line.get_ydata() == pytest.approx([0.255, 0.505, 0.755])
    assert line.get_label() == "64 bits"


def test_ablation_of_unknown_parameter_is_a_config_error(runs):
    with pytest.raises(ConfigError, match="no run has that method parameter"):
        plots.plot_ablation(plots.load_runs(runs), "depth")


def test_plot_command_writes_png_and_pdf_with_filters(runs):
    result = runner.invoke(app, ["plot", "ablation", "--param", "mask_ratio", "--method", "conmh",
                                 "--results-dir", str(runs)])
    assert result.exit_code == 0, result.output
    assert (runs / "figures" / "ablation-mask_ratio.png").stat().st_size > 0
    assert (runs / "figures" / "ablation-mask_ratio.pdf").stat().st_size > 0
    assert "ablation figure from" in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["plot", "bars"], "unknown plot kind 'bars'"),
    (["plot", "ablation"], "needs --param"),
    (["plot", "map-k", "--method", "zzz"], "no finished run"),
    (["plot", "efficiency", "--x", "memory"], "--x takes train or encode"),
])
def test_bad_plot_requests_are_one_line_errors(runs, args, message):
    result = runner.invoke(app, [*args, "--results-dir", str(runs)])
    assert result.exit_code == 2 and message in result.output
