"""Paper figures from finished runs; ``plot`` is the one entry point (the CLI and reports call it).

Figures are built without pyplot (no global state, no GUI backend: saving renders with Agg for PNG and the
PDF backend for PDF), so importing this module never changes the user's matplotlib backend. matplotlib and
pandas are imported inside the functions, so ``import ssvh_bench.cli`` stays fast.

Every figure averages over seeds and draws one panel per (dataset, bits) or per dataset. Figures of mAP@K
(``map-k``, ``map-bits``, ``ablation``) draw each mean's 95% interval as a band (over seeds and queries, over
queries only for a single seed: ``ssvh_bench.stats``); other curves draw a ± std band where there are several
seeds; ``compare`` is a forest plot of every pair's difference with its interval. Panels of a figure share their axes, so they compare at a glance (the price:
a dataset with much lower mAP than another uses less of its panel's height). Methods carry their paper name
and the same colour, marker and line style in every figure (``ssvh_bench.display``). PDFs embed TrueType
(Type 42) fonts, which journals accept and which stay editable, instead of matplotlib's default Type 3.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .display import method_rank, method_style, method_label
from .errors import ConfigError
from .io import atomic_path
from .metrics import DEFAULT_KS
from .run_folder import RunFolder

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

PLOT_KINDS = ("map-k", "pr", "precision-k", "map-bits", "ablation", "efficiency", "curve", "health", "compare")
FIGURES_FOLDER = "figures"
RC_STYLE = {"font.size": 8, "axes.titlesize": 9, "axes.labelsize": 8, "legend.fontsize": 8,
            "axes.grid": True, "grid.alpha": 0.3, "lines.linewidth": 1.4, "lines.markersize": 4.5,
            "pdf.fonttype": 42, "ps.fonttype": 42}
PANEL_SIZE = (3.3, 2.6)
# Lines of other K or code lengths in one panel (ablation); methods use ssvh_bench.display styles instead.
SEQUENCE_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#999999")
SEQUENCE_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
# Settings of a method with changed parameters keep its colour and marker, hollow, with another dash.
VARIANT_DASHES = (":", "-.", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)))
EFFICIENCY_AXES = {"train": ("train_seconds", "training time (s)"),
                   "encode": ("encode_ms_per_video", "encoding time (ms / video)")}


def plot(
    kind: str,
    *,
    results_dir: Path,
    out: Path | None = None,
    datasets: str | None = None,
    bits: str | None = None,
    methods: str | None = None,
    run_ids: Iterable[str] | None = None,
    param: str | None = None,
    ks: Sequence[int] | None = None,
    by: str = "k",
    x: str = "train",
    name: str | None = None,
    describe: Callable[[str], None] | None = None,
) -> list[Path]:
    """Draw one figure kind from the finished runs under ``results_dir`` and write it as PNG and PDF.

    ``datasets``, ``bits``, ``methods``: shell wildcards, comma-separated; ``run_ids`` keeps only those runs.
    ``out`` is the folder (default ``<results_dir>/figures``), ``name`` the file stem (default from the kind).
    ``describe`` receives one line saying what was drawn from how many runs. Returns the PNG and PDF paths.
    """
    from .checks import check_writable
    from .leaderboard import load_runs
    from .tables import select_runs

    check_kind(kind, param)
    results_dir = Path(results_dir)
    frame = select_runs(load_runs(results_dir), dataset=datasets, bits=bits, method=methods, run_ids=run_ids)
    if frame.empty:
        raise ConfigError(f"no finished run under {results_dir / 'runs'} matches --dataset {datasets or '*'!r} "
                          f"--bits {bits or '*'!r} --method {methods or '*'!r}")
    cutoffs = list(ks) if ks else default_ks(kind)
    figure = make_figure(kind, frame, ks=cutoffs, param=param, by=by, x=x)
    folder = Path(out) if out else results_dir / FIGURES_FOLDER
    check_writable(folder)
    paths = save_figure(figure, folder, name or figure_name(kind, param, by, x))
    if describe is not None:
        if kind == "ablation":
            used = len(ablation_runs(frame, param or ""))
            describe(f"ablation over {param}: {used} of {len(frame)} run(s) vary it and were used")
        else:
            describe(f"{kind} figure from {len(frame)} run(s)")
    return paths


def check_kind(kind: str, param: str | None = None) -> None:
    if kind not in PLOT_KINDS:
        import difflib

        close = difflib.get_close_matches(kind, PLOT_KINDS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown plot kind {kind!r}.{hint} Kinds: {', '.join(PLOT_KINDS)}")
    if kind == "ablation" and not param:
        raise ConfigError("plot ablation needs --param, e.g. --param mask_ratio")


def default_ks(kind: str) -> list[int]:
    """All K for curves over K; K=20 for one-number plots; 5,20,40,100 for ablations."""
    if kind in ("map-k", "precision-k"):
        return list(DEFAULT_KS)
    if kind == "ablation":
        return [5, 20, 40, 100]
    if kind == "compare":
        return [5]  # as ``ssvh-bench compare``
    return [20]


def figure_name(kind: str, param: str | None = None, by: str = "k", x: str = "train") -> str:
    if kind == "ablation":
        return f"ablation-{param}" + ("-by-bits" if by == "bits" else "")
    if kind == "efficiency" and x == "encode":
        return "efficiency-encode"
    return kind


def make_figure(kind: str, frame: pd.DataFrame, *, ks: Sequence[int], param: str | None = None, by: str = "k",
                x: str = "train") -> Figure:
    """The figure of one kind from a ``load_runs`` frame (already filtered)."""
    import matplotlib

    check_kind(kind, param)
    # Artists take font sizes when they are made, so the style must hold while drawing, not only at saving.
    with matplotlib.rc_context(RC_STYLE):
        if kind in ("map-k", "precision-k"):
            return plot_metric_at_k(frame, "map" if kind == "map-k" else "p", ks)
        if kind == "pr":
            return plot_pr(frame)
        if kind == "map-bits":
            return plot_map_bits(frame, ks[0])
        if kind == "ablation":
            return plot_ablation(frame, param or "", ks, by)
        if kind == "curve":
            return plot_curve(frame, ks[0])
        if kind == "health":
            return plot_health(frame)
        if kind == "compare":
            return plot_compare(frame, ks[0])
        return plot_efficiency(frame, ks[0], x)


def _figure(n_panels: int) -> tuple[Figure, list[Axes]]:
    from matplotlib.figure import Figure

    ncols = min(n_panels, 3)
    nrows = math.ceil(n_panels / ncols)
    figure = Figure(figsize=(PANEL_SIZE[0] * ncols, PANEL_SIZE[1] * nrows), layout="constrained")
    axes = figure.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True)
    # With shared axes, tick labels show on the outer panels only; inner ones would repeat them.
    for ax in axes.ravel():
        ax.label_outer(remove_inner_ticks=False)
    flat = axes.ravel().tolist()
    for extra in flat[n_panels:]:
        extra.set_visible(False)
    # A hidden panel leaves the one above it at the bottom of its column: it needs its x tick labels back.
    for ax in flat[max(n_panels - ncols, 0):n_panels]:
        ax.xaxis.set_tick_params(labelbottom=True)
    return figure, flat[:n_panels]


def _label_axes(axes: list[Axes], xlabel: str, ylabel: str) -> None:
    """x label under the bottom panel of each column, y label left of the first column (axes are shared)."""
    columns = min(len(axes), 3)
    for index, ax in enumerate(axes):
        if index + columns >= len(axes):
            ax.set_xlabel(xlabel)
        if index % columns == 0:
            ax.set_ylabel(ylabel)


def _finish(figure: Figure, axes: list[Axes], order: Sequence[str]) -> Figure:
    """One legend for the whole figure: in one row below the panels when it fits, else in a column at their
    right. Only series that were drawn get an entry, in ``order``."""
    handles: dict[str, Any] = {}
    for ax in axes:
        for handle, name in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(name, handle)
    names = [name for name in dict.fromkeys(order) if name in handles]
    if not names:
        return figure
    entry_width = 0.06 * max(len(n) for n in names) + 0.6  # inches: text plus handle and gap
    if entry_width * len(names) <= figure.get_figwidth():
        figure.set_figheight(figure.get_figheight() + 0.25)  # room for the row, so panels keep their size
        figure.legend([handles[n] for n in names], names, loc="outside lower center", ncol=len(names),
                      frameon=False)
    else:
        figure.set_figwidth(figure.get_figwidth() + entry_width)
        figure.legend([handles[n] for n in names], names, loc="outside right upper", ncol=1, frameon=False)
    return figure


def _series(ax: Axes, x: Sequence[float], mean: Sequence[float], low: Sequence[float], high: Sequence[float],
            label: str, style: dict[str, Any]) -> None:
    """Mean line with a band from ``low`` to ``high`` (only where they are known)."""
    x, mean = np.asarray(x, float), np.asarray(mean, float)
    low, high = np.asarray(low, float), np.asarray(high, float)
    ax.plot(x, mean, label=label, **style)
    if np.isfinite(low).any():
        ax.fill_between(x, np.where(np.isfinite(low), low, mean), np.where(np.isfinite(high), high, mean),
                        color=style["color"], alpha=0.15, linewidth=0)


def _std_series(ax: Axes, x: Sequence[float], mean: Sequence[float], std: Sequence[float], label: str,
                style: dict[str, Any]) -> None:
    """Mean line with a ± std band (the band only where several seeds give a std)."""
    mean, std = np.asarray(mean, float), np.asarray(std, float)
    _series(ax, x, mean, mean - std, mean + std, label, style)


def _intervals(runs: pd.DataFrame, ks: Sequence[int]) -> tuple[list[float], list[float], list[float]]:
    """Mean mAP@K of one setting's runs and its 95% interval over seeds and queries, for each K."""
    from .leaderboard import per_query_of
    from .stats import estimate

    found = [per_query_of(folder) for folder in runs.drop_duplicates("seed")["folder"]]
    estimates = [estimate(np.stack([run.ap(k) for run in found])) for k in ks]
    return [e.mean for e in estimates], [e.low for e in estimates], [e.high for e in estimates]


def _require(frame: pd.DataFrame, what: str) -> None:
    if frame.empty:
        raise ConfigError(f"no finished runs to plot {what}; check the filters or run some first")


def _panel_keys(frame: pd.DataFrame, keys: list[str]) -> list[tuple]:
    return sorted({tuple(row) for row in frame[keys].itertuples(index=False)})


def _rows(frame: pd.DataFrame, keys: Sequence[str], key: tuple) -> pd.DataFrame:
    return frame[np.logical_and.reduce([frame[c] == v for c, v in zip(keys, key)])]


def setting_styles(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """label -> matplotlib style: the method's own style, and for each changed-parameter setting of it the
    same colour and marker, hollow, with another dash."""
    styles: dict[str, dict[str, Any]] = {}
    for method, settings in frame.groupby("method"):
        base = method_style(method)
        variants = sorted(set(settings["overrides"]) - {""})
        for overrides in settings["overrides"].unique():
            style = dict(base)
            if overrides:
                style.update(linestyle=VARIANT_DASHES[variants.index(overrides) % len(VARIANT_DASHES)],
                             markerfacecolor="none")
            styles[method_label(method, overrides)] = style
    return styles


def label_order(frame: pd.DataFrame) -> list[str]:
    """Labels in display order: methods shallow first then deep by year, a method's default setting first."""
    pairs = {(m, o) for m, o in zip(frame["method"], frame["overrides"])}
    return [method_label(m, o) for m, o in sorted(pairs, key=lambda p: (method_rank(p[0]), p[1]))]


def _method_panels(frame: pd.DataFrame, keys: list[str]) -> tuple[Figure, list[Axes], list[tuple]]:
    """A figure with one panel per distinct value of ``keys``; for each panel its axes, key, runs and the
    runs of each label, in display order."""
    panels = _panel_keys(frame, keys)
    figure, axes = _figure(len(panels))
    order = label_order(frame)
    contents = []
    for ax, key in zip(axes, panels):
        panel = _rows(frame, keys, key)
        groups = dict(tuple(panel.groupby("label")))
        contents.append((ax, key, panel, [(label, groups[label]) for label in order if label in groups]))
    return figure, axes, contents


def plot_metric_at_k(frame: pd.DataFrame, metric: str = "map", ks: Sequence[int] = DEFAULT_KS) -> Figure:
    """``metric``@K against K (``map`` or ``p``), one line per method, one panel per (dataset, bits)."""
    from .tables import metric_columns

    _require(frame, f"{metric}@K")
    columns = metric_columns(frame, ks, metric)
    figure, axes, panels = _method_panels(frame, ["dataset", "bits"])
    styles = setting_styles(frame)
    for ax, (dataset, bits), _, series in panels:
        for label, runs in series:
            if metric == "map":
                _series(ax, ks, *_intervals(runs, ks), label, styles[label])
            else:
                _std_series(ax, ks, runs[columns].mean(), runs[columns].std(), label, styles[label])
        ax.set_title(f"{dataset}, {bits} bits")
    _label_axes(axes, "K", "mAP@K" if metric == "map" else "precision@K")
    return _finish(figure, axes, label_order(frame))


def plot_pr(frame: pd.DataFrame) -> Figure:
    """Precision against recall over Hamming radius 0..bits, one line per method, one panel per (dataset, bits)."""
    frame = frame[frame["pr_curve"].map(lambda c: isinstance(c, dict) and "precision" in c)]
    _require(frame, "precision-recall curves (runs need metrics.json 'pr_curve')")
    figure, axes, panels = _method_panels(frame, ["dataset", "bits"])
    styles = setting_styles(frame)
    for ax, (dataset, bits), _, series in panels:
        for label, runs in series:
            precision = np.mean([c["precision"] for c in runs["pr_curve"]], axis=0)
            recall = np.mean([c["recall"] for c in runs["pr_curve"]], axis=0)
            ax.plot(recall, precision, label=label, markevery=max(1, len(recall) // 8), **styles[label])
        ax.set_title(f"{dataset}, {bits} bits")
    axes[0].set_xlim(-0.02, 1.02)
    _label_axes(axes, "recall", "precision")
    return _finish(figure, axes, label_order(frame))


def plot_map_bits(frame: pd.DataFrame, k: int = 20) -> Figure:
    """mAP@k against code length, one line per method, one panel per dataset; settings run at a single code
    length are left out."""
    from .tables import metric_columns

    _require(frame, "mAP against bits")
    # A setting run at one code length would be a lone point among lines (e.g. the runs of a sweep): left out.
    frame = frame[frame.groupby(["dataset", "label"])["bits"].transform("nunique") >= 2]
    if frame.empty:
        raise ConfigError("map-bits needs a setting run at two code lengths or more")
    metric_columns(frame, [k])  # a K the runs lack is a ConfigError naming the ones they have
    figure, axes, panels = _method_panels(frame, ["dataset"])
    styles = setting_styles(frame)
    for ax, (dataset,), _, series in panels:
        for label, runs in series:
            by_bits = sorted(runs.groupby("bits"), key=lambda item: item[0])
            points = [_intervals(group, [k]) for _, group in by_bits]
            _series(ax, [b for b, _ in by_bits], *([p[i][0] for p in points] for i in range(3)), label, styles[label])
        ax.set_title(dataset)
    ticks = sorted(int(b) for b in frame["bits"].unique())
    axes[0].set_xscale("log", base=2)
    axes[0].set_xticks(ticks, [str(b) for b in ticks])
    axes[0].minorticks_off()
    _label_axes(axes, "code length (bits)", f"mAP@{k}")
    return _finish(figure, axes, label_order(frame))


def ablation_runs(frame: pd.DataFrame, param: str) -> pd.DataFrame:
    """The runs that vary ``param``: runs that have it, grouped by (dataset, method, bits, other changed
    parameters), keeping only groups where it takes two values or more. Adds ``value`` and ``other``."""
    if frame.empty:
        return frame
    frame = frame[frame["method_params"].map(lambda p: isinstance(p, dict) and param in p)].copy()
    if frame.empty:
        return frame
    frame["value"] = frame["method_params"].map(lambda p: p[param])
    frame["other"] = frame["overrides"].map(
        lambda o: ", ".join(item for item in o.split(";") if item and not item.startswith(f"{param}=")))
    counts = frame.groupby(["dataset", "method", "bits", "other"])["value"].transform(
        lambda values: len({repr(v) for v in values}))
    return frame[counts >= 2]


def plot_ablation(frame: pd.DataFrame, param: str, ks: Sequence[int] = (5, 20, 40, 100), by: str = "k") -> Figure:
    """mAP@K against a method parameter read from the runs' method_params, from the runs that vary it.

    ``by="k"``: one line per K, one panel per (dataset, method, bits); ``by="bits"``: one line per code
    length at ``ks[0]``, one panel per (dataset, method). Runs that also differ in other overrides get
    their own panels, so nothing unlike is averaged; settings where the parameter has one value are left out.
    """
    from .display import display_name
    from .tables import metric_columns

    if by not in ("k", "bits"):
        raise ConfigError(f"--by takes k or bits, not {by!r}")
    frame = ablation_runs(frame, param)
    _require(frame, f"an ablation over {param!r} (no run setting has that method parameter at two values "
                    f"or more; sweep it first)")
    metric_columns(frame, ks)
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in frame["value"])
    if not numeric:
        order = sorted({str(v) for v in frame["value"]})
        frame["value"] = frame["value"].map(lambda v: order.index(str(v)))
    keys = ["dataset", "method", "other"] + (["bits"] if by == "k" else [])
    panels = sorted(_panel_keys(frame, keys), key=lambda key: (key[0], method_rank(key[1]), key[2:]))
    figure, axes = _figure(len(panels))
    names = []
    for ax, key in zip(axes, panels):
        panel = _rows(frame, keys, key)
        if by == "k":
            values = sorted(panel.groupby("value"), key=lambda item: item[0])
            points = [_intervals(runs, ks) for _, runs in values]
            lines = [(f"mAP@{k}", [v for v, _ in values], *([p[i][j] for p in points] for i in range(3)))
                     for j, k in enumerate(ks)]
        else:
            lines = []
            for bits, runs in sorted(panel.groupby("bits"), key=lambda item: item[0]):
                values = sorted(runs.groupby("value"), key=lambda item: item[0])
                if len(values) >= 2:  # a code length swept at one value would be a lone point
                    points = [_intervals(group, ks[:1]) for _, group in values]
                    lines.append((f"{bits} bits", [v for v, _ in values], *([p[i][0] for p in points] for i in range(3))))
        for i, (name, x_values, mean, low, high) in enumerate(lines):
            style = {"color": SEQUENCE_COLOURS[i % len(SEQUENCE_COLOURS)],
                     "marker": SEQUENCE_MARKERS[i % len(SEQUENCE_MARKERS)], "linestyle": "-"}
            _series(ax, x_values, mean, low, high, name, style)
            names.append(name)
        title = f"{display_name(key[1])}, {key[0]}" + (f", {key[3]} bits" if by == "k" else "")
        ax.set_title(title + (f"\n({key[2]})" if key[2] else ""))
    if not numeric:
        axes[0].set_xticks(range(len(order)), order)
    _label_axes(axes, param, "mAP@K" if by == "k" else f"mAP@{ks[0]}")
    by_bits = sorted({n for n in names if n.endswith(" bits")}, key=lambda n: int(n.split()[0]))
    return _finish(figure, axes, [f"mAP@{k}" for k in ks] + by_bits)


def training_curve(folder: Path, k: int) -> pd.DataFrame | None:
    """(epochs trained, mAP@k) of a run evaluated with ``--eval-every`` (0: the untrained model), else None."""
    import pandas as pd

    history = RunFolder(folder).history
    if not history.is_file():
        return None
    rows = pd.read_csv(history)
    if f"map@{k}" not in rows:
        return None
    rows = rows.dropna(subset=[f"map@{k}"])
    return pd.DataFrame({"epochs": rows["epoch"] + 1, "map": rows[f"map@{k}"]})


def plot_curve(frame: pd.DataFrame, k: int = 20) -> Figure:
    """mAP@k against epochs trained (0 = untrained codes), from runs trained with ``--eval-every``; one line
    per method (mean over seeds), one panel per (dataset, bits). A diagnostic: it is evaluated on the
    database split, and the suite's codes are always the last epoch's."""
    import pandas as pd

    curves = {run_id: training_curve(folder, k) for run_id, folder in zip(frame["run_id"], frame["folder"])}
    frame = frame[frame["run_id"].map(lambda run_id: curves[run_id] is not None)]
    _require(frame, f"training curves (run deep methods with --eval-every to record mAP@{k} per epoch)")
    figure, axes, panels = _method_panels(frame, ["dataset", "bits"])
    styles = setting_styles(frame)
    for ax, (dataset, bits), _, series in panels:
        for label, runs in series:
            joined = pd.concat([curves[run_id] for run_id in runs["run_id"]]).groupby("epochs")["map"]
            mean = joined.mean()
            _std_series(ax, mean.index.tolist(), mean.tolist(), joined.std().reindex(mean.index).tolist(), label,
                        styles[label])
        ax.set_title(f"{dataset}, {bits} bits")
    _label_axes(axes, "epochs trained", f"mAP@{k} (database split)")
    return _finish(figure, axes, label_order(frame))


# the code-health figures over training, each a share in [0, 1] (see ssvh_bench.health)
HEALTH_PANELS = (("constant_bits", "constant bits (share of bits)"), ("top_code_share", "top code share"),
                 ("balance_deviation", "balance deviation"), ("bit_correlation", "mean |bit correlation|"),
                 ("in_window", "in gradient window"))


def health_curve(folder: Path, bits: int) -> pd.DataFrame | None:
    """(epochs trained, code-health figures as shares) of a run evaluated with ``--eval-every``, else None."""
    import pandas as pd

    history = RunFolder(folder).history
    if not history.is_file():
        return None
    rows = pd.read_csv(history)
    if "constant_bits" not in rows:
        return None
    rows = rows.dropna(subset=["constant_bits"])
    curve = pd.DataFrame({"epochs": rows["epoch"] + 1, "constant_bits": rows["constant_bits"] / bits})
    for name, _ in HEALTH_PANELS[1:]:
        curve[name] = rows[name] if name in rows else np.nan
    return curve


def plot_health(frame: pd.DataFrame) -> Figure:
    """Code health against epochs trained (0 = untrained codes), from runs trained with ``--eval-every``: a row
    of panels per (dataset, bits), one panel per figure (``HEALTH_PANELS``), one line per method (mean over
    seeds). A collapse shows as constant bits or the top code share rising."""
    import pandas as pd
    from matplotlib.figure import Figure

    curves = {run_id: health_curve(folder, bits)
              for run_id, folder, bits in zip(frame["run_id"], frame["folder"], frame["bits"])}
    frame = frame[frame["run_id"].map(lambda run_id: curves[run_id] is not None)]
    _require(frame, "code health over training (run deep methods with --eval-every to record it per epoch)")
    keys = _panel_keys(frame, ["dataset", "bits"])
    shown = [(name, title) for name, title in HEALTH_PANELS
             if any(curves[r][name].notna().any() for r in frame["run_id"])]
    figure = Figure(figsize=(PANEL_SIZE[0] * len(shown), PANEL_SIZE[1] * len(keys)), layout="constrained")
    grid = figure.subplots(len(keys), len(shown), squeeze=False, sharey=True)
    styles, order = setting_styles(frame), label_order(frame)
    for row, key in zip(grid, keys):
        panel = _rows(frame, ["dataset", "bits"], key)
        groups = dict(tuple(panel.groupby("label")))
        for ax, (name, title) in zip(row, shown):
            for label in (label for label in order if label in groups):
                joined = pd.concat([curves[r] for r in groups[label]["run_id"]]).groupby("epochs")[name]
                mean = joined.mean()
                _std_series(ax, mean.index.tolist(), mean.tolist(), joined.std().reindex(mean.index).tolist(), label,
                            styles[label])
            ax.set_title(f"{title}\n{key[0]}, {key[1]} bits")
            ax.set_ylim(-0.03, 1.03)
        row[0].set_ylabel("share")
    for ax in grid[-1]:
        ax.set_xlabel("epochs trained")
    return _finish(figure, grid.ravel().tolist(), order)


def plot_compare(frame: pd.DataFrame, k: int = 5) -> Figure:
    """Forest plot of ``ssvh-bench compare``: every pair's difference in mAP@k (better − worse) with its 95%
    interval, one panel per (dataset, bits); resolved pairs (Holm-corrected) are filled, the others hollow."""
    from matplotlib.figure import Figure

    from .comparison import compare_contenders, contenders_from_frame
    from .tables import metric_columns

    _require(frame, "a comparison")
    metric_columns(frame, [k])
    panels = []
    for dataset, bits in _panel_keys(frame, ["dataset", "bits"]):
        runs = _rows(frame, ["dataset", "bits"], (dataset, bits)).drop_duplicates(["setting_id", "seed"])
        panels.append(compare_contenders(contenders_from_frame(runs), k, dataset=dataset, bits=bits))
    rows = max(len(c.pairs) for c in panels)
    # the pair names sit left of each panel: widen the panel by their length so the axes keep their width
    names = max(len(f"{p.better} − {p.worse}") for c in panels for p in c.pairs)
    width = PANEL_SIZE[0] * 1.6 + 0.055 * names
    figure = Figure(figsize=(width * len(panels), 1.0 + 0.2 * rows), layout="constrained")
    for ax, comparison in zip(figure.subplots(1, len(panels), squeeze=False)[0], panels):
        pairs = comparison.pairs[::-1]  # the first pair on top
        y = np.arange(len(pairs))
        for row, pair in zip(y, pairs):
            e = pair.difference.estimate
            colour = SEQUENCE_COLOURS[0] if pair.resolved else "#777777"
            ax.plot([e.low, e.high], [row, row], color=colour, linewidth=1.2)
            ax.plot([e.mean], [row], marker="o", color=colour, markerfacecolor=colour if pair.resolved else "white")
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_yticks(y, [f"{p.better} − {p.worse}" for p in pairs])
        ax.grid(axis="y", visible=False)
        covers = "; ".join(sorted({e.covers for e in comparison.estimates.values()}))
        shared = f", {comparison.shared}" if comparison.shared else ""
        ax.set_title(f"{comparison.dataset}, {comparison.bits} bits{shared}\n95% intervals over {covers}")
        ax.set_xlabel(f"difference in mAP@{k}")
    figure.suptitle("filled: resolved (Holm-corrected p < 0.05 over all pairs); hollow: not resolved;\n"
                    "each interval is its pair's own (uncorrected)", fontsize=7)
    return figure


def plot_efficiency(frame: pd.DataFrame, k: int = 20, x: str = "train") -> Figure:
    """Training time (or encoding ms/video) against mAP@k, one labelled point per method, one panel per
    (dataset, bits); every panel has the same axis ranges and scale."""
    from .tables import metric_columns

    if x not in EFFICIENCY_AXES:
        raise ConfigError(f"--x takes {' or '.join(EFFICIENCY_AXES)}, not {x!r}")
    _require(frame, "efficiency")
    (column,) = metric_columns(frame, [k])
    x_column, x_label = EFFICIENCY_AXES[x]
    figure, axes, panels = _method_panels(frame, ["dataset", "bits"])
    styles = setting_styles(frame)
    positive = frame[x_column][frame[x_column] > 0]
    log_x = bool(len(positive)) and positive.max() > 20 * positive.min()
    scale = np.log10 if log_x else (lambda v: v)
    low, high = scale(frame[x_column].clip(lower=positive.min() if log_x else None)).agg(["min", "max"])
    for ax, (dataset, bits), _, series in panels:
        texts = []
        for label, runs in series:
            style = {**styles[label], "linestyle": "none"}
            x_mean, y_mean, y_std = runs[x_column].mean(), runs[column].mean(), runs[column].std()
            ax.plot([x_mean], [y_mean], markersize=6, **style)
            if np.isfinite(y_std):
                ax.errorbar([x_mean], [y_mean], yerr=[y_std], fmt="none", ecolor=style["color"], capsize=0)
            # The label sits beside its point (no legend to look up), towards the panel's centre so it stays
            # inside the axes.
            right_half = high > low and (scale(x_mean) - low) / (high - low) > 0.5
            texts.append(ax.annotate(label, (x_mean, y_mean), xytext=(-5 if right_half else 5, 0),
                                     textcoords="offset points", ha="right" if right_half else "left",
                                     va="center", fontsize=6.5, color=style["color"]))
        ax.set_title(f"{dataset}, {bits} bits")
    if log_x:
        axes[0].set_xscale("log")
    for ax in axes:
        ax.margins(x=0.08, y=0.1)
    _label_axes(axes, x_label, f"mAP@{k}")
    _separate_labels(figure, axes)
    return figure


def _separate_labels(figure: Figure, axes: list[Axes]) -> None:
    """Move point labels that overlap apart vertically (a few passes; points close in x and y are rare)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(figure).get_renderer()
    figure.draw_without_rendering()
    for ax in axes:
        texts = sorted(ax.texts, key=lambda t: t.xy[1])
        for _ in range(5):
            moved = False
            for lower, upper in zip(texts, texts[1:]):
                a, b = lower.get_window_extent(renderer), upper.get_window_extent(renderer)
                if a.overlaps(b):
                    shift = (a.y1 - b.y0) / 2 + 1  # points = pixels at 72 dpi; renderer is at figure dpi
                    scale = 72 / figure.dpi
                    lower.set_position((lower.get_position()[0], lower.get_position()[1] - shift * scale))
                    upper.set_position((upper.get_position()[0], upper.get_position()[1] + shift * scale))
                    moved = True
            if not moved:
                break


def save_figure(figure: Figure, folder: Path, name: str, dpi: int = 200) -> list[Path]:
    """``<folder>/<name>.png`` and ``.pdf`` (TrueType fonts), each written to a temporary file and renamed."""
    import matplotlib

    paths = []
    for suffix in ("png", "pdf"):
        path = Path(folder) / f"{name}.{suffix}"
        # pdf.fonttype is read when the PDF is written, so the style must hold here too.
        with matplotlib.rc_context(RC_STYLE), atomic_path(path) as tmp:
            figure.savefig(tmp, format=suffix, dpi=dpi)
        paths.append(path)
    return paths

