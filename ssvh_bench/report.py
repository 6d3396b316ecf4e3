"""One self-contained HTML page of a results folder: leaderboards, published numbers, figures, run configs.

The page needs nothing but itself (no network, no external CSS or JS): figures are embedded as base64 PNG,
a few lines of inline JS sort the tables when a header is clicked, and each run's ``config.json`` sits in a
``<details>`` element, one click away.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .display import method_rank, method_label
from .errors import ConfigError, DataError
from .io import write_text
from .tables import TABLE_KS

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

REPORT_FOLDER, REPORT_FILE = "report", "index.html"
FIGURE_DPI = 110  # sharp on screen, small enough that a page of figures stays a few MB

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:1300px;
padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}h3{margin:1.4em 0 .4em}
table{border-collapse:collapse;margin:.4em 0 1em;font-variant-numeric:tabular-nums}
th,td{padding:.25em .7em;border-bottom:1px solid #e4e4e4;text-align:right;vertical-align:top;
white-space:nowrap}th.pub{white-space:normal;max-width:6em;font-weight:600;color:#555}
th:first-child,td:first-child,td.text,th.text{text-align:left}
th{background:#f3f3f3;cursor:pointer;user-select:none;white-space:nowrap}
th[aria-sort=ascending]::after{content:" ▲"}th[aria-sort=descending]::after{content:" ▼"}
td.best{font-weight:700}td.tied{text-decoration:underline}.ci{color:#888;font-size:.8em}
tr.collapsed td{background:#fde8e8}td.flag{color:#b00;font-weight:600}
td.pub{color:#666;background:#fafafa}.delta{color:#888;font-size:.85em}
figure{margin:1em 0 2em}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption,.note{color:#555;font-size:.9em}pre{background:#f6f6f6;padding:.6em;overflow:auto;
text-align:left;font-size:12px;margin:.3em 0}details summary{cursor:pointer;color:#0645ad}
"""

# Click a header: sort its table's rows by that column (numbers by data-v, text otherwise; empty cells last).
SCRIPT = """
document.querySelectorAll("table.sortable th").forEach(function (th) {
  th.addEventListener("click", function () {
    var table = th.closest("table"), body = table.tBodies[0];
    var column = Array.prototype.indexOf.call(th.parentNode.children, th);
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    function key(row) {
      var cell = row.cells[column], v = cell.getAttribute("data-v");
      if (v === "") return null;
      return v === null ? cell.textContent.trim().toLowerCase() : parseFloat(v);
    }
    Array.from(body.rows).sort(function (a, b) {
      var x = key(a), y = key(b);
      if (x === null || y === null) return (x === null) - (y === null);
      return (x < y ? -1 : x > y ? 1 : 0) * (ascending ? 1 : -1);
    }).forEach(function (row) { body.appendChild(row); });
  });
});
"""


def write_report(results_dir: Path, out: Path | None = None) -> Path:
    """Write the report of every finished run under ``results_dir`` (default ``<results_dir>/report/index.html``)."""
    from .checks import check_writable
    from .leaderboard import load_runs

    results_dir = Path(results_dir)
    frame = load_runs(results_dir)
    if frame.empty:
        raise ConfigError(f"no finished runs under {results_dir / 'runs'}; start one with ssvh-bench run")
    path = Path(out) if out is not None else results_dir / REPORT_FOLDER / REPORT_FILE
    check_writable(path.parent)
    write_text(path, render_report(frame, results_dir))
    return path


def render_report(frame: pd.DataFrame, results_dir: Path) -> str:
    """The HTML page of a ``plots.load_runs`` frame."""
    from .published import load_published

    ks = [k for k in TABLE_KS if f"map@{k}" in frame.columns]
    sections = [
        "<h2 id='leaderboard'>Leaderboard</h2>",
        "<p class='note'>mAP@K, mean ± std over seeds; bold: best reproduced value of a column. "
        "Published numbers (grey) stand beside the run with default parameters; Δ = ours − published. "
        "Click a header to sort.</p>",
        *leaderboard_tables(frame, ks, load_published()),
        "<h2 id='health'>Code health</h2>",
        f"<p class='note'>{HEALTH_NOTE}</p>",
        *health_tables(frame),
        "<h2 id='figures'>Figures</h2>",
        *figure_sections(frame),
        "<h2 id='runs'>Runs</h2>",
        "<p class='note'>Every finished run; open <i>config.json</i> for its resolved parameters.</p>",
        runs_table(frame),
    ]
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>ssvh-bench report</title><style>{STYLE}</style></head><body>\n"
            f"<h1>ssvh-bench report</h1><p class='note'>{len(frame)} finished run(s) under "
            f"{html.escape(str(results_dir))}. <a href='#leaderboard'>Leaderboard</a> · "
            "<a href='#health'>Code health</a> · <a href='#figures'>Figures</a> · <a href='#runs'>Runs</a></p>\n"
            + "\n".join(sections) + f"\n<script>{SCRIPT}</script>\n</body></html>\n")


def _number(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}f}"


def _td(text: str, value: float | None = None, css: str = "") -> str:
    """A cell; ``value`` (NaN for none) becomes ``data-v``, the key the sorting script uses."""
    attributes = f" class='{css}'" if css else ""
    if value is not None:
        attributes += " data-v=''" if math.isnan(value) else f" data-v='{value:.6g}'"
    return f"<td{attributes}>{text}</td>"


def leaderboard_tables(frame: pd.DataFrame, ks: list[int], published: pd.DataFrame | None) -> list[str]:
    """One sortable table per (dataset, bits): a row per setting, mAP@K columns, each followed by the
    published value where one exists for that table."""
    from .comparison import contenders_from_frame, not_distinguishable
    from .tables import MARKS_NOTE, PUBLISHED_NOTE, summary_frame

    summary = summary_frame(frame, ks, published)
    parts = []
    for (dataset, bits), block in summary.groupby(["dataset", "bits"], sort=True):
        shown = [k for k in ks if block[f"map@{k}_published"].notna().any()]
        best = {k: round(block[f"map@{k}_mean"].max(), 3) for k in ks}
        runs = frame[(frame["dataset"] == dataset) & (frame["bits"] == bits)].drop_duplicates(["setting_id", "seed"])
        contenders = contenders_from_frame(runs)
        tied = {k: not_distinguishable(contenders, k)[1] for k in ks}
        header = "<th>Method</th><th>Seeds</th>" + "".join(
            f"<th>mAP@{k}</th>" + (f"<th class='pub'>published mAP@{k}</th>" if k in shown else "") for k in ks)
        rows = []
        for values in block.to_dict("records"):  # itertuples would rename the map@K columns
            cells = [f"<td>{html.escape(method_label(values['method'], values['overrides']))}</td>",
                     _td(str(values["n_seeds"]), float(values["n_seeds"]))]
            for k in ks:
                mean, std = values[f"map@{k}_mean"], values[f"map@{k}_std"]
                text = "–" if math.isnan(mean) else _number(mean) + ("" if math.isnan(std) else f" ± {_number(std)}")
                text += (f" <span class='ci'>[{_number(values[f'map@{k}_ci_low'])}, "
                         f"{_number(values[f'map@{k}_ci_high'])}]</span>")
                mark = ("best" if round(mean, 3) == best[k] else
                        "tied" if values["setting_id"] in tied[k] else "")
                cells.append(_td(text, mean, mark))
                if k in shown:
                    value, delta = values[f"map@{k}_published"], values[f"map@{k}_delta"]
                    inside = values[f"map@{k}_published_inside"]
                    text = "" if math.isnan(value) else (
                        f"{_number(value)} <span class='delta'>(Δ {delta:+.3f}) {'∈' if inside else '∉'} CI</span>")
                    cells.append(_td(text, value, "pub"))
            rows.append("<tr>" + "".join(cells) + "</tr>")
        parts.append(f"<h3>{html.escape(str(dataset))}, {int(bits)} bits</h3>\n"
                     f"<table class='sortable leaderboard' data-dataset='{html.escape(str(dataset))}' "
                     f"data-bits='{int(bits)}'><thead><tr>{header}</tr></thead><tbody>\n"
                     + "\n".join(rows) + "\n</tbody></table>\n"
                     f"<p class='note'>mean ± std over seeds [95% interval over "
                     f"{html.escape(', '.join(sorted(set(block['ci_covers']))))}]. "
                     f"{html.escape(MARKS_NOTE.replace('italic in Markdown, underlined in LaTeX and on the terminal', 'underlined'))}"
                     f"{html.escape(PUBLISHED_NOTE) if shown else ''}</p>")
    return parts


HEALTH_NOTE = ("How much of the code space each setting's database codes use (mean over seeds): bits constant over "
               "the database, distinct codes, the largest share of videos sharing one code, balance deviation "
               "(0: every bit splits the videos in half; 1: every bit constant), mean |correlation| between bits, "
               "and for deep methods the share of binariser inputs inside its gradient window (not for runs made "
               "before it was measured: their figures come from their saved codes). Red: collapsed "
               "codes (more than half the bits constant, or one code shared by more than 10% of videos).")
HEALTH_HEADERS = {"constant_bits": "Constant bits", "distinct_codes": "Distinct codes",
                  "top_code_share": "Top code share", "balance_deviation": "Balance deviation",
                  "bit_correlation": "Bit correlation", "in_window": "In gradient window"}


def health_tables(frame: pd.DataFrame) -> list[str]:
    """One sortable table per (dataset, bits): a row per setting with its code health (mean over seeds), the
    rows of collapsed settings flagged with what collapsed."""
    from .health import HEALTH_COLUMNS

    columns = [c for c in HEALTH_COLUMNS if c in frame]  # in_window only where a deep method measured it
    runs = frame.assign(_rank=frame["method"].map(method_rank))
    header = "<th>Method</th><th>Seeds</th>" + "".join(f"<th>{HEALTH_HEADERS[c]}</th>" for c in columns) + \
        "<th class='text'>Collapse</th>"
    parts = []
    for (dataset, bits), block in runs.groupby(["dataset", "bits"], sort=True):
        rows = []
        for (_, overrides, method), seeds in block.groupby(["_rank", "overrides", "method"], sort=True):
            means = seeds[columns].mean()
            collapsed = sorted({c for c in seeds["collapse"] if c})
            cells = [f"<td>{html.escape(method_label(method, overrides))}</td>", _td(str(len(seeds)), len(seeds))]
            for column in columns:
                value = float(means[column])
                counted = column in ("constant_bits", "distinct_codes")  # counts: whole unless averaged over seeds
                text = ("–" if math.isnan(value) else f"{value:.0f}" if counted and value.is_integer()
                        else f"{value:.1f}" if counted else _number(value))
                cells.append(_td(text, value))
            flag = "; ".join(collapsed) + (f" ({sum(seeds['collapse'] != '')} of {len(seeds)} seeds)"
                                           if collapsed and len(seeds) > 1 else "")
            cells.append(_td(html.escape(flag), css="text flag" if flag else "text"))
            rows.append(("<tr class='collapsed'>" if collapsed else "<tr>") + "".join(cells) + "</tr>")
        parts.append(f"<h3>{html.escape(str(dataset))}, {int(bits)} bits</h3>\n"
                     f"<table class='sortable health' data-dataset='{html.escape(str(dataset))}' "
                     f"data-bits='{int(bits)}'><thead><tr>{header}</tr></thead><tbody>\n"
                     + "\n".join(rows) + "\n</tbody></table>")
    return parts


def report_figures(frame: pd.DataFrame) -> list[tuple[str, str, Figure | None]]:
    """(title, caption, figure) of every figure kind these runs allow; figure None with the reason as caption
    where a kind cannot be drawn (e.g. a single code length for map-bits).

    Each parameter that runs vary (a sweep) gets an ablation figure; the runs that set it are left out of the
    other figures, which would otherwise carry a line per swept value.
    """
    from .plots import PLOT_KINDS, ablation_runs, default_ks, health_curve, make_figure, training_curve

    changed = sorted({item.split("=", 1)[0] for overrides in frame["overrides"] for item in overrides.split(";")
                      if item and not item.startswith("dataset.")})
    swept = [param for param in changed if not ablation_runs(frame, param).empty]
    sets_swept = frame["overrides"].map(lambda o: any(item.split("=", 1)[0] in swept for item in o.split(";")))
    # training curves only exist for runs made with --eval-every: a diagnostic, shown when there is one
    curves = any(training_curve(folder, 20) is not None for folder in frame["folder"])
    health = any(health_curve(folder, bits) is not None for folder, bits in zip(frame["folder"], frame["bits"]))
    requests = [(kind, frame[~sets_swept], {}) for kind in PLOT_KINDS
                if kind != "ablation" and (kind != "curve" or curves) and (kind != "health" or health)]
    requests += [("ablation", frame, {"param": param}) for param in swept]
    figures = []
    for kind, runs, options in requests:
        title = kind + (f" over {options['param']}" if options else "")
        caption = FIGURE_CAPTIONS[kind] + (f"; {len(runs)} run(s)" if kind != "ablation" else
                                           f"; {len(ablation_runs(runs, options['param']))} run(s)")
        try:
            figures.append((title, caption, make_figure(kind, runs, ks=default_ks(kind), **options)))
        except (ConfigError, DataError) as error:
            figures.append((title, f"not drawn: {error}", None))
    return figures


FIGURE_CAPTIONS = {
    "map-k": "mAP@K against K, mean over seeds with its 95% interval",
    "precision-k": "precision@K against K, mean over seeds",
    "pr": "precision against recall over Hamming radius 0..bits",
    "map-bits": "mAP@20 against code length",
    "ablation": "mAP@K against the swept parameter, from the runs that vary it",
    "efficiency": "training time against mAP@20",
    "curve": "mAP@20 on the database split against epochs trained (runs with --eval-every; a diagnostic)",
    "health": "code health of the database codes against epochs trained (runs with --eval-every): a collapse "
              "shows as constant bits or the top code share rising",
    "compare": "difference in mAP@5 of every pair of settings with its 95% interval (ssvh-bench compare)",
}


def figure_sections(frame: pd.DataFrame) -> list[str]:
    parts = []
    for title, caption, figure in report_figures(frame):
        if figure is None:
            parts.append(f"<figure class='missing'><figcaption><b>{html.escape(title)}</b>: "
                         f"{html.escape(caption)}</figcaption></figure>")
            continue
        alt = html.escape(f"{title}: {caption}")
        parts.append(f"<figure data-kind='{html.escape(title)}'><img alt='{alt}' src='data:image/png;base64,"
                     f"{png_base64(figure)}'><figcaption><b>{html.escape(title)}</b>: {html.escape(caption)}"
                     "</figcaption></figure>")
    return parts


def png_base64(figure: Figure) -> str:
    import matplotlib

    from .plots import RC_STYLE

    buffer = io.BytesIO()
    with matplotlib.rc_context(RC_STYLE):
        figure.savefig(buffer, format="png", dpi=FIGURE_DPI)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def runs_table(frame: pd.DataFrame) -> str:
    """Every run with its headline numbers and its config.json in a ``<details>`` element."""
    from .run_folder import CONFIG_FILE, RunFolder

    k = 20 if "map@20" in frame.columns else int(next(c for c in frame.columns if c.startswith("map@"))[4:])
    header = "".join(f"<th class='text'>{name}</th>" if name in ("Dataset", "Overrides", "Configuration")
                     else f"<th>{name}</th>" for name in
                     ("Method", "Dataset", "Bits", "Seed", "Overrides", f"mAP@{k}", "Train (s)", "Configuration"))
    rows = []
    ordered = frame.assign(_rank=frame["method"].map(method_rank)).sort_values(
        ["dataset", "bits", "_rank", "overrides", "seed"])
    for values in ordered.to_dict("records"):
        folder = values["folder"]
        config = RunFolder(folder).read_config()
        config_json = html.escape(json.dumps(config, indent=2, sort_keys=True))
        details = (f"<details><summary>{CONFIG_FILE}</summary><p class='note'>{html.escape(str(folder))}</p>"
                   f"<pre>{config_json}</pre></details>")
        rows.append("<tr>" + "".join([
            f"<td>{html.escape(method_label(values['method'], ''))}</td>",
            _td(html.escape(str(values["dataset"])), css="text"),
            _td(str(values["bits"]), float(values["bits"])), _td(str(values["seed"]), float(values["seed"])),
            _td(html.escape(values["overrides"].replace(";", ", ")), css="text"),
            _td(_number(values[f"map@{k}"]), float(values[f"map@{k}"])),
            _td(f"{values['train_seconds']:.1f}", float(values["train_seconds"])), _td(details, css="text"),
        ]) + "</tr>")
    return (f"<table class='sortable runs'><thead><tr>{header}</tr></thead><tbody>\n" + "\n".join(rows)
            + "\n</tbody></table>")
