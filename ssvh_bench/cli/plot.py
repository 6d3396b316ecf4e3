"""The ``plot`` command: parses options and calls ``ssvh_bench.plots.plot`` (PNG and PDF into results/figures/)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..config import parse_list
from ..plots import PLOT_KINDS, plot as draw
from .app import ResultsDir, app, console, user_errors
from .filters import BitsFilter, DatasetFilter, MethodFilter


@app.command()
@user_errors
def plot(
    kind: str = typer.Argument(..., help=f"One of: {', '.join(PLOT_KINDS)}."),
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
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for the files [default: RESULTS/figures]."),
) -> None:
    """Draw a paper figure (PNG and PDF).

    From finished runs: mean over seeds with a ± std band.
    """
    from ..run_folder import default_results_dir

    paths = draw(kind, results_dir=Path(results_dir or default_results_dir()), out=out, datasets=dataset,
                 bits=bits, methods=method, param=param, ks=parse_list(ks, option="--k") if ks else None, by=by,
                 x=x, name=name, describe=lambda line: console.print(line, highlight=False))
    for path in paths:
        console.print(f"  {path}", highlight=False, soft_wrap=True)
