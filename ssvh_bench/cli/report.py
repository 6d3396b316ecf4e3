"""The ``report`` command: one self-contained HTML page of every finished run (``ssvh_bench.report``)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .app import ResultsDir, app, console, user_errors


@app.command()
@user_errors
def report(
    results_dir: Optional[Path] = ResultsDir,
    out: Optional[Path] = typer.Option(None, "--out", help="HTML file [default: RESULTS/report/index.html]."),
) -> None:
    """Write the HTML report.

    One self-contained page with leaderboards, published numbers, every figure and each run's configuration.
    """
    # Both load pandas and matplotlib: only when the command runs, so `import ssvh_bench.cli` stays light.
    from ..report import write_report
    from ..run_folder import default_results_dir

    path = write_report(Path(results_dir or default_results_dir()), out)
    console.print(f"report written to\n  {path}", highlight=False, soft_wrap=True)
