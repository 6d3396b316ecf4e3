"""Paper figures from finished runs: each function returns a matplotlib Figure.

Figures are built without pyplot (no global state, no GUI backend: saving renders with Agg for PNG and the
PDF backend for PDF), so importing this module never changes the user's matplotlib backend.

Every figure averages over seeds (mean line, ± std band where there are several seeds), uses one panel per
(dataset, bits) or per dataset, and gives each method its own colour, marker and line style so the figures
stay readable in greyscale. ``save_figure`` writes PNG and PDF atomically.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .errors import ConfigError
from .metrics import DEFAULT_KS
from .io import atomic_path
from .results import iter_finished_runs, leaderboard_frame
from .tables import method_label, metric_columns

# Okabe-Ito colours (colour-blind safe); markers and dashes vary too, so greyscale prints stay readable.
COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#999999")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "h", "<")
LINE_STYLES = ("-", "--", "-.", ":")
RC_STYLE = {"font.size": 8, "axes.titlesize": 9, "axes.labelsize": 8, "legend.fontsize": 8,
            "axes.grid": True, "grid.alpha": 0.3, "lines.linewidth": 1.4, "lines.markersize": 4.5}
PANEL_SIZE = (3.3, 2.6)
LEGEND_ROW_INCHES = 0.17
PLOT_KINDS = ("map-k", "pr", "precision-k", "map-bits", "ablation", "efficiency")


def load_runs(results_dir: Path) -> pd.DataFrame:
    """The leaderboard frame plus ``method_params`` (dict) and ``pr_curve`` (dict) of every finished run."""
    frame = leaderboard_frame(results_dir)
    if frame.empty:
        return frame
    extra = {config["run_id"]: (config.get("method_params", {}), metrics.get("pr_curve"))
             for _, config, metrics in iter_finished_runs(results_dir)}
    frame = frame.copy()
    frame["method_params"] = frame["run_id"].map(lambda run_id: extra[run_id][0])
    frame["pr_curve"] = frame["run_id"].map(lambda run_id: extra[run_id][1])
    frame["label"] = [method_label(m, o) for m, o in zip(frame["method"], frame["overrides"])]
    return frame


def series_style(index: int) -> dict[str, Any]:
    return {"color": COLOURS[index % len(COLOURS)], "marker": MARKERS[index % len(MARKERS)],
            "linestyle": LINE_STYLES[index % len(LINE_STYLES)]}


def _figure(n_panels: int) -> tuple[Figure, list[Axes]]:
    ncols = min(n_panels, 3)
    nrows = math.ceil(n_panels / ncols)
    with matplotlib.rc_context(RC_STYLE):
        figure = Figure(figsize=(PANEL_SIZE[0] * ncols, PANEL_SIZE[1] * nrows + 0.5), layout="constrained")
        axes = figure.subplots(nrows, ncols, squeeze=False).ravel().tolist()
    for extra in axes[n_panels:]:
        extra.set_visible(False)
    return figure, axes[:n_panels]


def _finish(figure: Figure, axes: list[Axes]) -> Figure:
    """One legend for the whole figure, below the panels (same series share a name across panels)."""
    handles: dict[str, Any] = {}
    for ax in axes:
        for handle, name in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(name, handle)
    if handles:
        with matplotlib.rc_context(RC_STYLE):
            names = sorted(handles, key=_natural_key)
            columns = _legend_columns(figure, names)
            # The figure grows by the legend's height, so many series never squash the panels.
            rows = -(-len(names) // columns)
            figure.set_figheight(figure.get_figheight() + LEGEND_ROW_INCHES * rows)
            figure.legend([handles[n] for n in names], names, loc="outside lower center", ncol=columns,
                          frameon=False)
    return figure


def _natural_key(name: str) -> list:
    """Sort ``mAP@5`` before ``mAP@20`` and ``16 bits`` before ``128 bits``."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name)]


def _legend_columns(figure: Figure, names: list[str]) -> int:
    """As many columns as fit the figure's width (about 0.065 in per character plus the handle)."""
    entry_width = 0.065 * max(len(n) for n in names) + 0.7
    return max(1, min(len(names), 4, int(figure.get_figwidth() / entry_width)))


def _series(ax: Axes, x: Sequence[float], mean: Sequence[float], std: Sequence[float], label: str,
            style: dict[str, Any]) -> None:
    """Mean line with a ± std band (the band only where several seeds give a std)."""
    x, mean, std = np.asarray(x, float), np.asarray(mean, float), np.asarray(std, float)
    ax.plot(x, mean, label=label, **style)
    if np.isfinite(std).any():
        spread = np.nan_to_num(std)
        ax.fill_between(x, mean - spread, mean + spread, color=style["color"], alpha=0.15, linewidth=0)


def _require(frame: pd.DataFrame, what: str) -> None:
    if frame.empty:
        raise ConfigError(f"no finished runs to plot {what}; check the filters or run some first")


def _panel_keys(frame: pd.DataFrame, keys: list[str]) -> list[tuple]:
    return sorted({tuple(row) for row in frame[keys].itertuples(index=False)})


def _styles(labels) -> dict[str, dict[str, Any]]:
    return {label: series_style(i) for i, label in enumerate(sorted(set(labels)))}


def _method_panels(frame: pd.DataFrame, keys: list[str]) -> tuple[Figure, list[Axes], dict, list[tuple]]:
    """A figure with one panel per distinct value of ``keys``; for each panel its axes, key, runs and the
    runs grouped by method label (sorted), plus one style per label shared by all panels."""
    panels = _panel_keys(frame, keys)
    figure, axes = _figure(len(panels))
    contents = []
    for ax, key in zip(axes, panels):
        panel = frame[(frame[keys] == pd.Series(key, index=keys)).all(axis=1)]
        contents.append((ax, key, panel, sorted(panel.groupby("label"), key=lambda item: item[0])))
    return figure, axes, _styles(frame["label"]), contents


def plot_metric_at_k(frame: pd.DataFrame, metric: str = "map", ks: Sequence[int] = DEFAULT_KS) -> Figure:
    """``metric``@K against K (``map`` or ``p``), one line per method, one panel per (dataset, bits)."""
    _require(frame, f"{metric}@K")
    columns = metric_columns(frame, ks, metric)
    figure, axes, styles, panels = _method_panels(frame, ["dataset", "bits"])
    name = "mAP" if metric == "map" else "precision"
    for ax, (dataset, bits), _, series in panels:
        for label, runs in series:
            _series(ax, ks, runs[columns].mean(), runs[columns].std(), label, styles[label])
        ax.set(title=f"{dataset}, {bits} bits", xlabel="K", ylabel=f"{name}@K")
    return _finish(figure, axes)


def plot_pr(frame: pd.DataFrame) -> Figure:
    """Precision against recall over Hamming radius 0..bits, one line per method, one panel per (dataset, bits)."""
    frame = frame[frame["pr_curve"].map(lambda c: isinstance(c, dict) and "precision" in c)]
    _require(frame, "precision-recall curves (runs need metrics.json 'pr_curve')")
    figure, axes, styles, panels = _method_panels(frame, ["dataset", "bits"])
    for ax, (dataset, bits), _, series in panels:
        for label, runs in series:
            precision = np.mean([c["precision"] for c in runs["pr_curve"]], axis=0)
            recall = np.mean([c["recall"] for c in runs["pr_curve"]], axis=0)
            ax.plot(recall, precision, label=label, markevery=max(1, len(recall) // 8), **styles[label])
        ax.set(title=f"{dataset}, {bits} bits", xlabel="recall", ylabel="precision", xlim=(-0.02, 1.02))
    return _finish(figure, axes)


def plot_map_bits(frame: pd.DataFrame, k: int = 20) -> Figure:
    """mAP@k against code length, one line per method, one panel per dataset."""
    _require(frame, "mAP against bits")
    (column,) = metric_columns(frame, [k])
    figure, axes, styles, panels = _method_panels(frame, ["dataset"])
    for ax, (dataset,), panel, series in panels:
        for label, runs in series:
            stats = runs.groupby("bits")[column].agg(["mean", "std"])
            _series(ax, stats.index, stats["mean"], stats["std"], label, styles[label])
        ax.set_xscale("log", base=2)
        ticks = sorted(panel["bits"].unique())
        ax.set_xticks(ticks, [str(b) for b in ticks])
        ax.minorticks_off()
        ax.set(title=dataset, xlabel="code length (bits)", ylabel=f"mAP@{k}")
    return _finish(figure, axes)


def plot_ablation(frame: pd.DataFrame, param: str, ks: Sequence[int] = (5, 20, 40, 100), by: str = "k") -> Figure:
    """mAP@K against a method parameter read from the runs' method_params.

    ``by="k"``: one line per K, one panel per (dataset, method, bits); ``by="bits"``: one line per code
    length at ``ks[0]``, one panel per (dataset, method). Runs that also differ in other overrides get
    their own panels, so nothing unlike is averaged.
    """
    if by not in ("k", "bits"):
        raise ConfigError(f"--by takes k or bits, not {by!r}")
    has_param = frame["method_params"].map(lambda p: isinstance(p, dict) and param in p) if not frame.empty else []
    frame = frame[has_param].copy() if len(frame) else frame
    _require(frame, f"an ablation over {param!r} (no run has that method parameter)")
    frame["value"] = frame["method_params"].map(lambda p: p[param])
    frame["other"] = frame["overrides"].map(
        lambda o: ", ".join(item for item in o.split(";") if item and not item.startswith(f"{param}=")))
    columns = metric_columns(frame, ks)
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in frame["value"])
    if not numeric:
        order = sorted({str(v) for v in frame["value"]})
        frame["value"] = frame["value"].map(lambda v: order.index(str(v)))
    keys = ["dataset", "method", "other"] + (["bits"] if by == "k" else [])
    panels = _panel_keys(frame, keys)
    figure, axes = _figure(len(panels))
    for ax, key in zip(axes, panels):
        panel = frame[np.logical_and.reduce([frame[c] == v for c, v in zip(keys, key)])]
        if by == "k":
            stats = panel.groupby("value")[columns].agg(["mean", "std"])
            for i, (k, column) in enumerate(zip(ks, columns)):
                _series(ax, stats.index, stats[(column, "mean")], stats[(column, "std")], f"mAP@{k}",
                        series_style(i))
        else:
            for i, (bits, runs) in enumerate(sorted(panel.groupby("bits"), key=lambda item: item[0])):
                stats = runs.groupby("value")[columns[0]].agg(["mean", "std"])
                _series(ax, stats.index, stats["mean"], stats["std"], f"{bits} bits", series_style(i))
        if not numeric:
            ax.set_xticks(range(len(order)), order)
        title = f"{key[1]} on {key[0]}" + (f", {key[3]} bits" if by == "k" else "") + (f" ({key[2]})" if key[2] else "")
        ax.set(title=title, xlabel=param, ylabel="mAP@K" if by == "k" else f"mAP@{ks[0]}")
    return _finish(figure, axes)


EFFICIENCY_AXES = {"train": ("train_seconds", "training time (s)"),
                   "encode": ("encode_ms_per_video", "encoding time (ms / video)")}


def plot_efficiency(frame: pd.DataFrame, k: int = 20, x: str = "train") -> Figure:
    """Training time (or encoding ms/video) against mAP@k, one point per method, one panel per (dataset, bits)."""
    if x not in EFFICIENCY_AXES:
        raise ConfigError(f"--x takes {' or '.join(EFFICIENCY_AXES)}, not {x!r}")
    _require(frame, "efficiency")
    (column,) = metric_columns(frame, [k])
    x_column, x_label = EFFICIENCY_AXES[x]
    figure, axes, styles, panels = _method_panels(frame, ["dataset", "bits"])
    for ax, (dataset, bits), panel, series in panels:
        for label, runs in series:
            style = {**styles[label], "linestyle": "none"}
            x_mean, y_mean, y_std = runs[x_column].mean(), runs[column].mean(), runs[column].std()
            ax.plot([x_mean], [y_mean], label=label, markersize=7, **style)
            if np.isfinite(y_std):
                ax.errorbar([x_mean], [y_mean], yerr=[y_std], fmt="none", ecolor=style["color"], capsize=0)
        positive = panel[x_column][panel[x_column] > 0]
        if len(positive) and positive.max() > 20 * positive.min():
            ax.set_xscale("log")
        ax.set(title=f"{dataset}, {bits} bits", xlabel=x_label, ylabel=f"mAP@{k}")
    return _finish(figure, axes)


def save_figure(figure: Figure, folder: Path, name: str, dpi: int = 200) -> list[Path]:
    """``<folder>/<name>.png`` and ``.pdf``, each written to a temporary file and renamed."""
    paths = []
    for suffix in ("png", "pdf"):
        path = Path(folder) / f"{name}.{suffix}"
        with atomic_path(path) as tmp:
            figure.savefig(tmp, format=suffix, dpi=dpi)
        paths.append(path)
    return paths


FIGURES_FOLDER = "figures"


def make_figure(kind: str, frame: pd.DataFrame, *, ks: list[int], param: str | None = None, by: str = "k",
                x: str = "train") -> Figure:
    """The figure of one ``plot`` kind from a ``load_runs`` frame (already filtered)."""
    if kind == "map-k":
        return plot_metric_at_k(frame, "map", ks)
    if kind == "precision-k":
        return plot_metric_at_k(frame, "p", ks)
    if kind == "pr":
        return plot_pr(frame)
    if kind == "map-bits":
        return plot_map_bits(frame, ks[0])
    if kind == "ablation":
        if not param:
            raise ConfigError("plot ablation needs --param, e.g. --param mask_ratio")
        return plot_ablation(frame, param, ks, by)
    if kind == "efficiency":
        return plot_efficiency(frame, ks[0], x)
    raise ConfigError(f"unknown plot kind {kind!r}; kinds: {', '.join(PLOT_KINDS)}")


def default_ks(kind: str) -> list[int]:
    """All K for curves over K; K=20 for one-number plots; 5,20,40,100 for ablations."""
    if kind in ("map-k", "precision-k"):
        return list(DEFAULT_KS)
    if kind == "ablation":
        return [5, 20, 40, 100]
    return [20]


def figure_name(kind: str, param: str | None = None, by: str = "k", x: str = "train") -> str:
    if kind == "ablation":
        return f"ablation-{param}" + ("-by-bits" if by == "bits" else "")
    if kind == "efficiency" and x == "encode":
        return "efficiency-encode"
    return kind
