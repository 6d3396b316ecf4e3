"""The ``plot`` command: paper figures (PNG and PDF) from finished runs, into results/figures/."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import pandas as pd
import typer
from matplotlib.figure import Figure

from .. import plots, results
from ..config import parse_list
from ..errors import ConfigError
from ..metrics import DEFAULT_KS
from ..tables import select_runs
from .app import ResultsDir, app, console, user_errors
from .filters import BitsFilter, DatasetFilter, MethodFilter

FIGURES_FOLDER = "figures"


def make_figure(kind: str, frame: pd.DataFrame, *, ks: list[int], param: str | None = None, by: str = "k",
                x: str = "train") -> Figure:
    """The figure of one ``plot`` kind from a ``plots.load_runs`` frame (already filtered)."""
    if kind == "map-k":
        return plots.plot_metric_at_k(frame, "map", ks)
    if kind == "precision-k":
        return plots.plot_metric_at_k(frame, "p", ks)
    if kind == "pr":
        return plots.plot_pr(frame)
    if kind == "map-bits":
        return plots.plot_map_bits(frame, ks[0])
    if kind == "ablation":
        if not param:
            raise ConfigError("plot ablation needs --param, e.g. --param mask_ratio")
        return plots.plot_ablation(frame, param, ks, by)
    if kind == "efficiency":
        return plots.plot_efficiency(frame, ks[0], x)
    raise ConfigError(f"unknown plot kind {kind!r}; kinds: {', '.join(plots.PLOT_KINDS)}")


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


@app.command()
@user_errors
def plot(
    kind: str = typer.Argument(..., help=f"One of: {', '.join(plots.PLOT_KINDS)}."),
    results_dir: Optional[Path] = ResultsDir,
    dataset: str = DatasetFilter,
    bits: str = BitsFilter,
    method: str = MethodFilter,
    ks: Optional[str] = typer.Option(None, "--k", help="Cut-off(s): the curve's K (map-k, precision-k), the K of "
                                     "map-bits/efficiency (first value), the lines of ablation."),
    param: Optional[str] = typer.Option(None, "--param", help="ablation: the method parameter on the x axis."),
    by: str = typer.Option("k", "--by", help="ablation: one line per k, or per bits (at the first --k)."),
    x: str = typer.Option("train", "--x", help="efficiency: x axis is train (seconds) or encode (ms/video)."),
    name: Optional[str] = typer.Option(None, "--name", help="File name without suffix [default: the kind]."),
) -> None:
    """Draw a paper figure from finished runs (mean over seeds, ± std band) as PNG and PDF."""
    if kind not in plots.PLOT_KINDS:
        raise ConfigError(f"unknown plot kind {kind!r}; kinds: {', '.join(plots.PLOT_KINDS)}")
    results_dir = Path(results_dir or results.default_results_dir())
    frame = select_runs(plots.load_runs(results_dir), dataset=dataset, bits=bits, method=method)
    if frame.empty:
        raise ConfigError(f"no finished run under {results_dir / 'runs'} matches --dataset {dataset!r} "
                          f"--bits {bits!r} --method {method!r}")
    cutoffs = parse_list(ks, option="--k") if ks else default_ks(kind)
    figure = make_figure(kind, frame, ks=cutoffs, param=param, by=by, x=x)
    paths = plots.save_figure(figure, results_dir / FIGURES_FOLDER, name or figure_name(kind, param, by, x))
    console.print(f"{kind} figure from {len(frame)} run(s): {', '.join(str(p) for p in paths)}", highlight=False, soft_wrap=True)
