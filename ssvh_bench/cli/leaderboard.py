"""The ``leaderboard`` command: leaderboard.csv (one row per run) and the paper table (CSV, Markdown, LaTeX)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.table import Table

from .. import results
from ..io import atomic_path
from ..config import parse_list
from ..errors import SsvhBenchError
from .app import ResultsDir, app, console, user_errors
from .filters import BitsFilter, DatasetFilter, MethodFilter

if TYPE_CHECKING:
    from ..tables import PaperTable

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
    """Write leaderboard.csv (every finished run) and leaderboard_table.{csv,md,tex} (mean ± std over seeds)."""
    from ..published import load_published  # pandas loads only when the command runs
    from ..tables import TABLE_KS, paper_table, select_runs, write_tables

    results_dir = Path(results_dir or results.default_results_dir())
    frame = results.leaderboard_frame(results_dir)
    if frame.empty:
        raise SsvhBenchError(f"no finished runs under {results_dir / 'runs'}; start one with ssvh-bench run")
    path = results_dir / results.LEADERBOARD_FILE
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")
    selected = select_runs(frame, dataset=dataset, bits=bits, method=method)
    if selected.empty:
        raise SsvhBenchError(f"no finished run matches --dataset {dataset!r} --bits {bits!r} --method {method!r}")
    table_ks = parse_list(ks, option="--k") if ks else list(TABLE_KS)
    reference = load_published() if published else None
    paths = write_tables(selected, results_dir / TABLE_STEM, table_ks, reference, digits)
    console.print(rich_table(paper_table(selected, table_ks, reference, digits)))
    console.print(f"{len(frame)} run(s) written to {path}; table ({len(selected)} run(s)) to "
                  f"{', '.join(str(p) for p in paths)}", highlight=False, soft_wrap=True)


def rich_table(table: "PaperTable") -> Table:
    """The paper table folded for a terminal: one block of rows per (dataset, bits), one column per K."""
    from ..tables import cell_text

    ks = sorted({k for _, _, k in table.columns})
    settings = list(dict.fromkeys((dataset, bits) for dataset, bits, _ in table.columns))
    out = Table(title="mAP@K, mean ± std over seeds (bold: best per column; Δ = ours − published)",
                title_justify="left")
    for name in ("dataset", "bits", "method", "seeds"):
        out.add_column(name)
    for k in ks:
        out.add_column(f"mAP@{k}", justify="right")
    for dataset, bits in settings:
        positions = {k: table.columns.index((dataset, bits, k)) for k in ks if (dataset, bits, k) in table.columns}
        for row in table.rows:
            cells = [row.cells[positions[k]] if k in positions else None for k in ks]
            if all(c is None or (c.mean != c.mean and c.published != c.published) for c in cells):
                continue  # this method has no run (and no published number) in this setting
            texts = ["" if c is None else cell_text(row, c, table.digits) for c in cells]
            texts = [f"[bold]{t}[/]" if c is not None and c.best else t for c, t in zip(cells, texts)]
            out.add_row(dataset, str(bits), row.label, row.seeds, *texts, style="dim" if row.published else None)
        out.add_section()
    return out
