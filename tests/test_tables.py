from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from runs_on_disk import write_run
from typer.testing import CliRunner

from ssvh_bench import ConfigError, leaderboard
from ssvh_bench.cli import app
from ssvh_bench.cli.leaderboard import table_title
from ssvh_bench.display import display_name, method_order
from ssvh_bench.tables import paper_table, select_runs, summary_frame, to_latex, to_markdown

runner = CliRunner()
PUBLISHED = pd.DataFrame({"method": ["conmh", "conmh"], "dataset": ["fcvid", "fcvid"], "bits": [64, 64],
                          "k": [5, 20], "value": [0.524, 0.3712], "source": ["readme", "readme"]})


@pytest.fixture
def runs(tmp_path):
    write_run(tmp_path, "conmh", 0, 0.50, dataset="fcvid", bits=64)
    write_run(tmp_path, "conmh", 1, 0.60, dataset="fcvid", bits=64)
    write_run(tmp_path, "conmh", 0, 0.70, dataset="fcvid", bits=64, params={"mask_ratio": 0.5},
              overrides={"mask_ratio": 0.5})
    write_run(tmp_path, "itq", 0, 0.40, dataset="fcvid", bits=64)
    write_run(tmp_path, "itq", 0, 0.30, dataset="fcvid", bits=16)
    write_run(tmp_path, "lsh", 0, 0.20, dataset="synthetic", bits=16)
    return tmp_path


def test_summary_mean_std_seeds_and_published_difference(runs):
    frame = select_runs(leaderboard.leaderboard_frame(runs), dataset="fcvid")
    summary = summary_frame(frame, [5, 20], PUBLISHED).set_index(["method", "bits", "overrides"])
    default = summary.loc[("conmh", 64, "")]
    assert default["map@5_mean"] == pytest.approx(0.55)
    assert default["map@5_std"] == pytest.approx(np.std([0.5, 0.6], ddof=1))
    assert default["n_seeds"] == 2
    assert default["map@5_published"] == pytest.approx(0.524)
    assert default["map@5_delta"] == pytest.approx(0.55 - 0.524)
    assert default["map@20_delta"] == pytest.approx(0.55 * 5 / 20 - 0.3712)
    # published numbers belong to the default configuration only
    assert math.isnan(summary.loc[("conmh", 64, "mask_ratio=0.5"), "map@5_published"])
    assert math.isnan(summary.loc[("itq", 64, ""), "map@5_published"])


def test_paper_table_layout_best_and_published_row(runs):
    frame = select_runs(leaderboard.leaderboard_frame(runs), dataset="fcvid")
    table = paper_table(frame, [5, 20], PUBLISHED)
    assert table.columns == [("fcvid", 16, 5), ("fcvid", 16, 20), ("fcvid", 64, 5), ("fcvid", 64, 20)]
    # paper names, shallow methods before deep ones (not alphabetical: ITQ before ConMH)
    assert [r.label for r in table.rows] == ["ITQ", "ConMH", "ConMH (mask_ratio=0.5)", "ConMH (published)"]
    assert [r.seeds for r in table.rows] == ["1", "2", "1", ""]
    best = {r.label: [c.best for c in r.cells] for r in table.rows}
    assert best["ConMH (mask_ratio=0.5)"] == [False, False, True, True]
    assert best["ITQ"] == [True, True, False, False]  # the only run at 16 bits
    assert not any(best["ConMH"]) and not any(best["ConMH (published)"])
    markdown = to_markdown(table)
    lines = markdown.splitlines()
    assert lines[0] == ("| Method | Seeds | fcvid 16 bits mAP@5 | fcvid 16 bits mAP@20 | fcvid 64 bits mAP@5 "
                        "| fcvid 64 bits mAP@20 |")
    assert lines[2] == "| ITQ | 1 | **0.300** | **0.075** | 0.400 | 0.100 |"
    assert lines[3] == "| ConMH | 2 | - | - | 0.550 ± 0.071 | 0.138 ± 0.018 |"
    assert lines[4] == "| ConMH (mask\\_ratio=0.5) | 1 | - | - | **0.700** | **0.175** |"
    assert lines[5] == "| ConMH (published) |  | - | - | 0.524 (Δ +0.026) ∈ CI | 0.371 (Δ -0.234) ∉ CI |"


def test_ties_at_printed_precision_are_all_bold(tmp_path):
    write_run(tmp_path, "itq", 0, 0.5001)
    write_run(tmp_path, "lsh", 0, 0.5002)
    table = paper_table(leaderboard.leaderboard_frame(tmp_path), [5])
    assert [r.cells[0].best for r in table.rows] == [True, True]


def test_latex_is_booktabs_with_groups_bold_and_escapes(runs):
    frame = select_runs(leaderboard.leaderboard_frame(runs), dataset="fcvid")
    latex = to_latex(paper_table(frame, [5, 20], PUBLISHED))
    convention, latex = latex.split("\n", 1)  # the marks' convention, as a LaTeX comment above the tabular
    assert convention.startswith("% Bold: the best mean") and "not distinguishable" in convention
    assert latex.startswith(r"\begin{tabular}{lcrrrr}" + "\n" + r"\toprule")
    assert r"\multicolumn{2}{c}{fcvid, 16 bits} & \multicolumn{2}{c}{fcvid, 64 bits} \\" in latex
    assert r"Method & Seeds & mAP@5 & mAP@20 & mAP@5 & mAP@20 \\" in latex
    assert r"\cmidrule(lr){3-4} \cmidrule(lr){5-6}" in latex
    assert r"ConMH (mask\_ratio=0.5) & 1 & -- & -- & $\mathbf{0.700}$ & $\mathbf{0.175}$ \\" in latex
    assert r"$0.550 \pm 0.071$" in latex
    assert r"\quad ConMH (published) &  & -- & -- & $0.524$ {\scriptsize($\Delta\,+0.026$)}" in latex
    assert latex.rstrip().endswith(r"\bottomrule" + "\n" + r"\end{tabular}")


def test_filters_take_wildcards_and_lists(runs):
    frame = leaderboard.leaderboard_frame(runs)
    assert set(select_runs(frame, method="c*,lsh")["method"]) == {"conmh", "lsh"}
    assert set(select_runs(frame, bits="16")["method"]) == {"itq", "lsh"}
    assert set(select_runs(frame, dataset="syn*")["method"]) == {"lsh"}
    assert len(select_runs(frame, method="nothing*")) == 0


def test_missing_k_is_a_config_error(runs):
    with pytest.raises(ConfigError, match="the runs have no map@7"):
        paper_table(leaderboard.leaderboard_frame(runs), [5, 7])


def test_leaderboard_command_writes_csv_md_tex_with_published(runs):
    result = runner.invoke(app, ["leaderboard", "--results-dir", str(runs), "--dataset", "fcvid", "--k", "5,100"])
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(runs / "leaderboard.csv")) == 6  # every run, whatever the filters
    table = pd.read_csv(runs / "leaderboard_table.csv")
    assert set(table["dataset"]) == {"fcvid"} and len(table) == 4
    assert table.loc[(table.method == "conmh") & table.overrides.isna(), "map@100_published"].item() == 0.267
    markdown = (runs / "leaderboard_table.md").read_text()
    # the shipped ConMH table also has 16 bits, but no 16-bit ConMH run stands beside it: not shown
    assert "| ConMH (published) |  | - | - | 0.524 (Δ +0.026) ∈ CI | 0.267 (Δ -0.240) ∉ CI |" in markdown
    # the tidy CSV carries the same published values as the Markdown, and none where Markdown shows none
    assert table["map@100_published"].notna().sum() == 1
    assert (runs / "leaderboard_table.tex").read_text().split("\n")[1].startswith(r"\begin{tabular}")
    assert "leaderboard_table.md" in result.output
    assert "Δ vs published" in result.output
    assert all(len(line) <= 80 for line in result.output.splitlines() if not line.startswith("  /"))


def test_leaderboard_without_published_and_empty_filter(runs):
    result = runner.invoke(app, ["leaderboard", "--results-dir", str(runs), "--no-published"])
    assert result.exit_code == 0, result.output
    assert "published" not in (runs / "leaderboard_table.md").read_text()
    assert "Δ" not in result.output
    empty = runner.invoke(app, ["leaderboard", "--results-dir", str(runs), "--method", "zzz"])
    assert empty.exit_code == 2 and "no finished run matches" in empty.output


def test_display_names_and_order_with_unknown_methods_last():
    assert [display_name(m) for m in method_order(["conmh", "zz_new", "sh", "autossvh", "lsh", "a_new", "bth",
                                                   "s5vh", "itq", "ssvh", "mcmsh", "pcah"])] == [
        "LSH", "SH", "PCAH", "ITQ", "SSVH", "BTH", "MCMSH", "ConMH", "S5VH", "AutoSSVH", "a_new", "zz_new"]


def test_a_plugin_brings_its_own_display_and_parameter_rules(monkeypatch):
    from ssvh_bench import ConfigError, ShallowMethod, method_registry, register_method
    from ssvh_bench.display import method_style

    @register_method("zz-plugin", description="a plugin declaring its display and rules", family="shallow")
    class Plugin(ShallowMethod):
        display = {"name": "ZZ-Hash", "published": "2001-01", "colour": "#123456", "marker": "s"}
        param_rules = {"spread": "open_unit"}

        def __init__(self, spread: float = 0.5) -> None:
            self.spread = spread

        def _fit_pooled(self, pooled, bits, rng): ...

        def _project(self, pooled): ...

    try:
        assert display_name("zz-plugin") == "ZZ-Hash"
        assert method_order(["itq", "zz-plugin", "lsh"]) == ["lsh", "zz-plugin", "itq"]  # shallow, by publication
        assert method_style("zz-plugin") == {"color": "#123456", "marker": "s", "linestyle": "--"}
        with pytest.raises(ConfigError, match="spread must be strictly between 0 and 1, got 1.5"):
            Plugin(spread=1.5).check_params()
    finally:
        method_registry.unregister("zz-plugin")


def test_tidy_csv_rows_in_display_order(runs):
    summary = summary_frame(select_runs(leaderboard.leaderboard_frame(runs), dataset="fcvid", bits="64"), [5], PUBLISHED)
    assert list(summary["method"]) == ["itq", "conmh", "conmh"]  # registry names stay, for filters and scripts


def test_terminal_title_fits_80_columns_and_names_delta_only_with_published(runs):
    frame = select_runs(leaderboard.leaderboard_frame(runs), dataset="fcvid")
    with_published, without = table_title(paper_table(frame, [5], PUBLISHED)), table_title(paper_table(frame, [5]))
    assert "Δ vs published" in with_published and "Δ" not in without
    assert all(len(line) <= 80 for line in with_published.splitlines())
