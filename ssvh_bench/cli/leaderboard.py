"""The ``leaderboard`` command: leaderboard.csv (one row per run) and the paper table (CSV, Markdown, LaTeX)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from ..config import parse_list
from ..errors import SsvhBenchError
from ..tables import TABLE_KS, PaperTable, convention, cell_text, paper_table, select_runs, write_tables
from .app import ResultsDir, app, console, user_errors
from .filters import BitsFilter, DatasetFilter, MethodFilter

if TYPE_CHECKING:
    from rich.table import Table

TABLE_STEM = "leaderboard_table"


@app.command()
@user_errors
def leaderboard(
    results_dir: Optional[Path] = ResultsDir,
    ks: Optional[str] = typer.Option(None, "--k", help="mAP cut-offs shown in the table [default: 5,20,40,100]."),
    dataset: str = DatasetFilter,
    bits: str = BitsFilter,
    method: str = MethodFilter,
    published: bool = typer.Option(True, "--published/--no-published", help="Show published numbers beside ours."),
    digits: int = typer.Option(3, "--digits", min=1, max=6, help="Decimals in the Markdown/LaTeX table."),
) -> None:
    """Write the leaderboard and the paper table.

    leaderboard.csv (every finished run) and leaderboard_table.{csv,md,tex} (mean ± std over seeds).
    """
    # the leaderboard and published numbers load pandas: only when the command runs, so `import ssvh_bench.cli`
    # stays light.
    from ..checks import check_writable
    from ..io import atomic_path
    from ..leaderboard import LEADERBOARD_FILE, leaderboard_frame
    from ..published import load_published
    from ..run_folder import default_results_dir

    results_dir = Path(results_dir or default_results_dir())
    frame = leaderboard_frame(results_dir)  # the table's runs need their folders: per-query AP
    if frame.empty:
        raise SsvhBenchError(f"no finished runs under {results_dir / 'runs'}; start one with ssvh-bench run")
    check_writable(results_dir)
    path = results_dir / LEADERBOARD_FILE
    with atomic_path(path) as tmp:
        frame.drop(columns="folder").to_csv(tmp, index=False, float_format="%.6g")
    selected = select_runs(frame, dataset=dataset, bits=bits, method=method)
    if selected.empty:
        raise SsvhBenchError(f"no finished run matches --dataset {dataset!r} --bits {bits!r} --method {method!r}")
    table_ks = parse_list(ks, option="--k") if ks else list(TABLE_KS)
    reference = load_published() if published else None
    paths = write_tables(selected, results_dir / TABLE_STEM, table_ks, reference, digits)
    table = paper_table(selected, table_ks, reference, digits)
    console.print(rich_table(table))
    console.print(convention(table), highlight=False, markup=False)
    # One path per line: long paths never break in the middle of a sentence on an 80-column terminal.
    console.print(f"{len(frame)} run(s) listed in\n  {path}", highlight=False)
    console.print(f"table of {len(selected)} run(s) written to", highlight=False)
    for written in paths:
        console.print(f"  {written}", highlight=False, soft_wrap=True)


def table_title(table: PaperTable) -> str:
    """At most 80 characters; names Δ only when a published row is shown."""
    title = "mAP@K, mean ± std over seeds\nbold: best per column; underlined: not distinguishable from it"
    if any(row.published for row in table.rows):
        title += "\ndim rows: published (Δ vs published = ours − published)"
    return title


def rich_table(table: "PaperTable") -> Table:
    """The paper table folded for a terminal: one block of rows per (dataset, bits), one column per K."""
    from rich.table import Table

    ks = sorted({k for _, _, k in table.columns})
    settings = list(dict.fromkeys((dataset, bits) for dataset, bits, _ in table.columns))
    out = Table(title=table_title(table), title_justify="left")
    for name in ("dataset", "bits", "method", "seeds"):
        out.add_column(name)
    for k in ks:
        out.add_column(f"mAP@{k}", justify="right")
    for dataset, bits in settings:
        positions = {k: table.columns.index((dataset, bits, k)) for k in ks if (dataset, bits, k) in table.columns}
        for row in table.rows:
            cells = [row.cells[positions[k]] if k in positions else None for k in ks]
            if all(c is None or (c.mean != c.mean and c.published != c.published) for c in cells):
                continue  # this method has no run (and so no published number) in this setting
            texts = ["" if c is None else cell_text(row, c, table.digits) for c in cells]
            texts = [f"[bold]{t}[/]" if c is not None and c.best else f"[underline]{t}[/]" if c is not None and c.tied
                     else t for c, t in zip(cells, texts)]
            out.add_row(dataset, str(bits), row.label, row.seeds, *texts, style="dim" if row.published else None)
        out.add_section()
    return out
