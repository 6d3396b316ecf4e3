"""Paper tables from finished runs: mean ± std of mAP@K over seeds, published numbers beside reproduced ones.

Layout (what SSVH papers print): one row per method (with its overrides when the user changed parameters),
under its paper name and in display order (``ssvh_bench.display``), column groups dataset x bits, one column
per K. In each column the best reproduced mean is bold, and every setting whose difference from it is not
resolved (``comparison.not_distinguishable``: matched seeds and the same queries, Holm-corrected over the
column) is marked too (italic in Markdown, underlined in LaTeX and on the terminal); ``convention`` says so
under every table. For a method with published numbers, a ``<Method> (published)`` row follows its own rows;
it has a value only where the method's run with default parameters has one too (published numbers were
obtained with the defaults), and each such cell reads ``published (Δ ours − published)`` followed by whether
the published value lies inside (∈) or outside (∉) the 95% interval of our mean. The tidy CSV carries the same
published values, each mean's interval (``map@K_ci_low``, ``map@K_ci_high``, over ``ci_covers``) and
``map@K_published_inside``.

pandas is imported inside the functions, so importing this module (as the CLI does) stays cheap.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .display import method_rank, method_label
from .errors import ConfigError
from .io import write_text

if TYPE_CHECKING:
    import pandas as pd

TABLE_KS = (5, 20, 40, 100)
TABLE_FORMATS = ("csv", "md", "tex")
MARKS_NOTE = ("Bold: the best mean of the column; marked (italic in Markdown, underlined in LaTeX and on the "
              "terminal): not distinguishable from it (the difference's 95% interval over matched seeds and the "
              "same queries is not resolved, Holm-corrected over the column).")
PUBLISHED_NOTE = (" ∈/∉ CI: the published value lies inside/outside the 95% interval of our mean (over seeds and "
                  "queries; over queries only with one seed).")


def parse_patterns(text: str | None) -> list[str]:
    """``"16,32"`` -> ``["16", "32"]``; empty means everything."""
    patterns = [p.strip() for p in (text or "").split(",") if p.strip()]
    return patterns or ["*"]


def select_runs(
    frame: pd.DataFrame,
    *,
    dataset: str | None = None,
    bits: str | None = None,
    method: str | None = None,
    run_ids: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Rows of a leaderboard frame matching shell-style patterns (comma-separated alternatives)."""
    import pandas as pd

    if frame.empty:
        return frame
    keep = pd.Series(True, index=frame.index)
    for column, text in (("dataset", dataset), ("bits", bits), ("method", method)):
        patterns = parse_patterns(text)
        keep &= frame[column].astype(str).map(lambda v: any(fnmatch.fnmatchcase(v, p) for p in patterns))
    if run_ids is not None:
        keep &= frame["run_id"].isin(set(run_ids))
    return frame[keep]


def metric_columns(frame: pd.DataFrame, ks: Sequence[int], metric: str = "map") -> list[str]:
    columns = [f"{metric}@{k}" for k in ks]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        available = [c for c in frame.columns if c.startswith(f"{metric}@")]
        raise ConfigError(f"the runs have no {', '.join(missing)}; available: {', '.join(available)}")
    return columns


def summary_frame(frame: pd.DataFrame, ks: Sequence[int], published: pd.DataFrame | None = None) -> pd.DataFrame:
    """Mean, std and seed count per setting, plus ``map@K_published`` and ``map@K_delta`` (ours − published).

    Published numbers attach to the rows without overrides (they were obtained with default parameters).
    Rows are in display order: dataset, bits, then methods as ``ssvh_bench.display`` orders them.
    """
    from .comparison import contenders_from_frame
    from .leaderboard import aggregate, interval_columns
    from .stats import estimate

    columns = metric_columns(frame, ks)
    table = aggregate(frame, columns)
    rank = table["method"].map(method_rank)
    table = table.assign(_rank=rank).sort_values(["dataset", "bits", "_rank", "overrides"]).drop(columns="_rank")
    table = table.reset_index(drop=True)
    contenders = {c.setting_id: c for c in contenders_from_frame(frame.drop_duplicates(["setting_id", "seed"]))}
    for k in ks:
        found = [estimate(contenders[setting].matrix(k)) for setting in table["setting_id"]]
        low, high = interval_columns(f"map@{k}")
        table[low], table[high] = [e.low for e in found], [e.high for e in found]
        values = [
            _published_value(published, row.method, row.dataset, row.bits, k) if row.overrides == "" else math.nan
            for row in table.itertuples()
        ]
        table[f"map@{k}_published"] = values
        table[f"map@{k}_delta"] = table[f"map@{k}_mean"] - table[f"map@{k}_published"]
        table[f"map@{k}_published_inside"] = [None if math.isnan(v) else bool(e.low <= v <= e.high)
                                              for v, e in zip(values, found)]
    table["ci_covers"] = [contenders[s].matrix(ks[0]).shape[0] > 1 for s in table["setting_id"]]
    table["ci_covers"] = table["ci_covers"].map({True: "seeds and queries", False: "queries only"})
    return table


def _published_value(published: pd.DataFrame | None, method: str, dataset: str, bits: int, k: int) -> float:
    if published is None or published.empty:
        return math.nan
    match = published[(published["method"] == method) & (published["dataset"] == dataset)
                      & (published["bits"] == int(bits)) & (published["k"] == int(k))]
    return float(match["value"].iloc[0]) if len(match) else math.nan


@dataclass
class Cell:
    mean: float = math.nan
    std: float = math.nan
    published: float = math.nan
    delta: float = math.nan
    best: bool = False
    tied: bool = False  # not distinguishable from the column's best
    inside: bool | None = None  # published row: the published value lies inside our mean's interval
    setting_id: str = ""


@dataclass
class Row:
    label: str
    published: bool
    seeds: str
    cells: list[Cell] = field(default_factory=list)


@dataclass
class PaperTable:
    """Columns are (dataset, bits, k); rows are reproduced settings and published rows, in print order."""

    columns: list[tuple[str, int, int]]
    rows: list[Row]
    digits: int = 3


def paper_table(
    frame: pd.DataFrame, ks: Sequence[int] = TABLE_KS, published: pd.DataFrame | None = None, digits: int = 3
) -> PaperTable:
    summary = summary_frame(frame, ks, published)
    groups = sorted({(d, int(b)) for d, b in zip(summary["dataset"], summary["bits"])})
    columns = [(d, b, k) for d, b in groups for k in ks]
    rows: list[Row] = []
    for method in sorted(summary["method"].unique(), key=method_rank):
        settings = summary[summary["method"] == method].sort_values("overrides")
        for overrides in settings["overrides"].unique():
            setting = settings[settings["overrides"] == overrides]
            cells = [_reproduced_cell(setting, d, b, k) for d, b, k in columns]
            counts = sorted({int(n) for n in setting["n_seeds"]})
            seeds = str(counts[0]) if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
            rows.append(Row(method_label(method, overrides), False, seeds, cells))
        default = settings[settings["overrides"] == ""]
        published_cells = []
        for d, b, k in columns:
            # Only beside a reproduced default run: a published number alone says nothing about this benchmark.
            ours = _reproduced_cell(default, d, b, k).mean
            value = math.nan if math.isnan(ours) else _published_value(published, method, d, b, k)
            match = default[(default["dataset"] == d) & (default["bits"] == b)]
            inside = None if math.isnan(value) else bool(match[f"map@{k}_published_inside"].iloc[0])
            published_cells.append(Cell(published=value, delta=ours - value, inside=inside))
        if any(not math.isnan(c.published) for c in published_cells):
            rows.append(Row(f"{method_label(method, '')} (published)", True, "", published_cells))
    _mark_best(rows, len(columns), digits)
    _mark_tied(frame, rows, columns)
    return PaperTable(columns, rows, digits)


def _reproduced_cell(setting: pd.DataFrame, dataset: str, bits: int, k: int) -> Cell:
    match = setting[(setting["dataset"] == dataset) & (setting["bits"] == bits)]
    if match.empty:
        return Cell()
    row = match.iloc[0]
    return Cell(mean=float(row[f"map@{k}_mean"]), std=float(row[f"map@{k}_std"]), setting_id=row["setting_id"])


def _mark_best(rows: list[Row], n_columns: int, digits: int) -> None:
    """Bold every reproduced value that equals the column's best at the printed precision."""
    for index in range(n_columns):
        shown = [round(r.cells[index].mean, digits) for r in rows
                 if not r.published and not math.isnan(r.cells[index].mean)]
        if not shown:
            continue
        best = max(shown)
        for r in rows:
            cell = r.cells[index]
            cell.best = not r.published and not math.isnan(cell.mean) and round(cell.mean, digits) == best


def _mark_tied(frame: pd.DataFrame, rows: list[Row], columns: list[tuple[str, int, int]]) -> None:
    """Mark every reproduced cell whose setting is not distinguishable from its column's best setting."""
    from .comparison import contenders_from_frame, not_distinguishable

    for index, (dataset, bits, k) in enumerate(columns):
        runs = frame[(frame["dataset"] == dataset) & (frame["bits"] == bits)]
        _, tied = not_distinguishable(contenders_from_frame(runs.drop_duplicates(["setting_id", "seed"])), k)
        for row in rows:
            cell = row.cells[index]
            cell.tied = not row.published and not cell.best and cell.setting_id in tied


def convention(table: PaperTable) -> str:
    """What the marks of ``table`` mean, printed under it."""
    return MARKS_NOTE + (PUBLISHED_NOTE if any(row.published for row in table.rows) else "")


def _number(value: float, digits: int) -> str:
    return f"{value:.{digits}f}"


def cell_text(row: Row, cell: Cell, digits: int) -> str:
    """Plain text of a cell: ``mean ± std`` (or ``mean``), ``published (Δ ±x)``, or ``-`` when empty."""
    if row.published:
        text = "-" if math.isnan(cell.published) else _number(cell.published, digits)
        text = text if math.isnan(cell.delta) else f"{text} (Δ {cell.delta:+.{digits}f})"
        return text if cell.inside is None else f"{text} {'∈' if cell.inside else '∉'} CI"
    if math.isnan(cell.mean):
        return "-"
    return _number(cell.mean, digits) + ("" if math.isnan(cell.std) else f" ± {_number(cell.std, digits)}")


def column_title(dataset: str, bits: int, k: int) -> str:
    return f"{dataset} {bits} bits mAP@{k}"


def to_markdown(table: PaperTable) -> str:
    header = ["Method", "Seeds"] + [column_title(*column) for column in table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * 2 + "---:|" * len(table.columns)]
    for row in table.rows:
        cells = [cell_text(row, c, table.digits) for c in row.cells]
        cells = [f"**{text}**" if c.best else f"_{text}_" if c.tied else text for c, text in zip(row.cells, cells)]
        lines.append("| " + " | ".join([_markdown_escape(row.label), row.seeds, *cells]) + " |")
    return "\n".join(lines) + "\n\n" + convention(table) + "\n"


def _markdown_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("*", "\\*").replace("_", "\\_")


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def to_latex(table: PaperTable) -> str:
    """A booktabs ``tabular`` (needs ``\\usepackage{booktabs}``); wrap it in your own ``table``."""
    d = table.digits
    groups: list[tuple[str, int, int]] = []  # (dataset, bits, number of K columns)
    for ds, b, _ in table.columns:
        if groups and groups[-1][:2] == (ds, b):
            groups[-1] = (ds, b, groups[-1][2] + 1)
        else:
            groups.append((ds, b, 1))
    lines = [r"\begin{tabular}{lc" + "r" * len(table.columns) + "}", r"\toprule"]
    lines.append(" & & " + " & ".join(rf"\multicolumn{{{n}}}{{c}}{{{latex_escape(ds)}, {b} bits}}"
                                      for ds, b, n in groups) + r" \\")
    start, rules = 3, []
    for _, _, n in groups:
        rules.append(rf"\cmidrule(lr){{{start}-{start + n - 1}}}")
        start += n
    lines.append(" ".join(rules))
    lines.append("Method & Seeds & " + " & ".join(f"mAP@{k}" for _, _, k in table.columns) + r" \\")
    lines.append(r"\midrule")
    for row in table.rows:
        cells = []
        for cell in row.cells:
            if row.published:
                text = "--" if math.isnan(cell.published) else f"${_number(cell.published, d)}$"
                if not math.isnan(cell.delta):
                    text += rf" {{\scriptsize($\Delta\,{cell.delta:+.{d}f}$)}}"
                if cell.inside is not None:
                    symbol = r"\in" if cell.inside else r"\notin"
                    text += rf" {{\scriptsize${symbol}$\,CI}}"
            elif math.isnan(cell.mean):
                text = "--"
            else:
                body = _number(cell.mean, d) + ("" if math.isnan(cell.std) else rf" \pm {_number(cell.std, d)}")
                text = (rf"$\mathbf{{{body}}}$" if cell.best else rf"\underline{{${body}$}}" if cell.tied
                        else f"${body}$")
            cells.append(text)
        label = (r"\quad " if row.published else "") + latex_escape(row.label)
        lines.append(" & ".join([label, row.seeds, *cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "% " + convention(table) + "\n" + "\n".join(lines) + "\n"


def write_tables(
    frame: pd.DataFrame,
    stem: Path,
    ks: Sequence[int] = TABLE_KS,
    published: pd.DataFrame | None = None,
    digits: int = 3,
) -> list[Path]:
    """Write ``<stem>.csv`` (tidy summary), ``<stem>.md`` and ``<stem>.tex`` (paper layout), atomically."""
    stem = Path(stem)
    table = paper_table(frame, ks, published, digits)
    paths = [stem.with_name(f"{stem.name}.{suffix}") for suffix in TABLE_FORMATS]
    write_text(paths[0], summary_frame(frame, ks, published).to_csv(index=False, float_format="%.6g"))
    write_text(paths[1], to_markdown(table))
    write_text(paths[2], to_latex(table))
    return paths
