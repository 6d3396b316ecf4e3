"""The ``compare`` command: pairwise differences in mAP@K with intervals, Holm-corrected p-values and verdicts."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer

from .app import ResultsDir, app, console, user_errors


@app.command()
@user_errors
def compare(
    dataset: str = typer.Option("synthetic", "--dataset", "-d", help="Dataset name."),
    bits: int = typer.Option(64, "--bits", "-b", help="Code length."),
    method: Optional[str] = typer.Option(None, "--method", "-m", metavar="METHOD[,METHOD]",
                                         help="Methods to compare [default: every method with finished runs]."),
    k: int = typer.Option(5, "--k", "-k", min=1, help="The K of mAP@K."),
    target: float = typer.Option(0.01, "--target", help="Difference for which to say how many seeds it needs."),
    results_dir: Optional[Path] = ResultsDir,
) -> None:
    """Which methods really differ.

    For each pair of settings: the difference in mAP@K with its 95% interval over matched seeds and the same
    queries, and a p-value Holm-corrected for the number of pairs; then the verdicts in words.
    """
    from rich.table import Table

    from ..api import compare as compare_runs
    from ..comparison import verdict_lines

    result = compare_runs(dataset, bits, method, k, target=target, results_dir=results_dir)
    covers = {e.covers for e in result.estimates.values()}
    where = f"{dataset}, {bits} bits" + (f", every setting with {result.shared}" if result.shared else "")
    settings = Table(title=f"mAP@{k} on {where}; 95% interval over {' / '.join(sorted(covers))}",
                     title_justify="left")
    for name in ("setting", "seeds", f"mAP@{k}", "95% interval", "seed std"):
        settings.add_column(name, justify="left" if name == "setting" else "right")
    for label, e in result.estimates.items():
        settings.add_row(label, str(e.n_seeds), f"{e.mean:.4f}", f"[{e.low:.4f}, {e.high:.4f}]",
                         "-" if math.isnan(e.seed_std) else f"{e.seed_std:.4f}")
    console.print(settings)
    pairs = Table(title=f"differences in mAP@{k} (better − worse); resolved: Holm-corrected p < 0.05",
                  title_justify="left")
    for name in ("better", "worse", "difference", "95% interval", "p", "p (Holm)", "resolved"):
        pairs.add_column(name, justify="left" if name in ("better", "worse") else "right",
                         no_wrap=name not in ("better", "worse"))
    for pair in result.pairs:
        e = pair.difference.estimate
        pairs.add_row(pair.better, pair.worse, f"{e.mean:+.4f}", f"[{e.low:+.4f}, {e.high:+.4f}]",
                      _p(pair.difference.p_value), _p(pair.p_holm), "yes" if pair.resolved else "no",
                      style=None if pair.resolved else "dim")
    console.print(pairs)
    for line in verdict_lines(result):
        console.print(line, highlight=False, soft_wrap=True, markup=False)


def _p(value: float) -> str:
    return "<0.0001" if value < 1e-4 else f"{value:.4f}"
