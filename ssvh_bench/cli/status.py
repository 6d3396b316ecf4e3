"""``status``: which runs are pending, running, finished or failed."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..launchers import grid_status
from ..run_folder import default_results_dir
from .app import ResultsDir, app, console, user_errors


@app.command()
@user_errors
def status(
    results_dir: Optional[Path] = ResultsDir,
    show: str = typer.Option("all", "--show", help="all, or one of pending, running, finished, failed."),
) -> None:
    """Show which runs are pending, running, finished or failed.

    Reads the run folders under the results folder (and each submitted run's Slurm job state)."""
    rows = grid_status(Path(results_dir or default_results_dir()))
    table = Table("run", "status", "detail", "job")
    for label, state in rows:
        if show in ("all", state.status):
            table.add_row(label, state.status, state.detail, state.job_id or "")
    console.print(table)
    counts = Counter(state.status for _, state in rows)
    console.print(", ".join(f"{counts[s]} {s}" for s in ("pending", "running", "finished", "failed")), highlight=False)
