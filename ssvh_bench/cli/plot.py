"""The ``plot`` command: paper figures (PNG and PDF) from finished runs, into results/figures/."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .. import results
from ..config import parse_list
from ..errors import ConfigError
from .app import ResultsDir, app, console, user_errors
from .filters import BitsFilter, DatasetFilter, MethodFilter


@app.command()
@user_errors
def plot(
    kind: str = typer.Argument(..., help="One of: map-k, pr, precision-k, map-bits, ablation, efficiency."),
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
    from .. import plots  # matplotlib loads only when a figure is drawn
    from ..tables import select_runs

    if kind not in plots.PLOT_KINDS:
        raise ConfigError(f"unknown plot kind {kind!r}; kinds: {', '.join(plots.PLOT_KINDS)}")
    results_dir = Path(results_dir or results.default_results_dir())
    frame = select_runs(plots.load_runs(results_dir), dataset=dataset, bits=bits, method=method)
    if frame.empty:
        raise ConfigError(f"no finished run under {results_dir / 'runs'} matches --dataset {dataset!r} "
                          f"--bits {bits!r} --method {method!r}")
    cutoffs = parse_list(ks, option="--k") if ks else plots.default_ks(kind)
    figure = plots.make_figure(kind, frame, ks=cutoffs, param=param, by=by, x=x)
    paths = plots.save_figure(figure, results_dir / plots.FIGURES_FOLDER, name or plots.figure_name(kind, param, by, x))
    console.print(f"{kind} figure from {len(frame)} run(s): {', '.join(str(p) for p in paths)}", highlight=False, soft_wrap=True)
