from __future__ import annotations

import base64
import json
from html.parser import HTMLParser

import pytest
from runs_on_disk import write_run
from typer.testing import CliRunner

from ssvh_bench import ConfigError
from ssvh_bench.cli import app
from ssvh_bench.plots import PLOT_KINDS
from ssvh_bench.report import write_report

runner = CliRunner()


class Page(HTMLParser):
    """What a reader of the page sees: tables (rows of cell texts), images, details, external references."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[dict] = []
        self.images: list[dict] = []
        self.figcaptions: list[str] = []
        self.details: list[str] = []
        self.external: list[str] = []
        self.scripts = 0
        self._cell: list[str] | None = None
        self._caption: list[str] | None = None
        self._pre: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ("src", "href"):
            if name in attrs and not attrs[name].startswith(("#", "data:")):
                self.external.append(attrs[name])
        if tag == "link":
            self.external.append(str(attrs))
        if tag == "script":
            self.scripts += 1
        if tag == "table":
            self.tables.append({"class": attrs.get("class", ""), "bits": attrs.get("data-bits"), "rows": []})
        elif tag == "tr":
            self.tables[-1]["rows"].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append(attrs)
        elif tag == "figcaption":
            self._caption = []
        elif tag == "pre":
            self._pre = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1]["rows"][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "figcaption":
            self.figcaptions.append("".join(self._caption))
            self._caption = None
        elif tag == "pre":
            self.details.append("".join(self._pre))
            self._pre = None

    def handle_data(self, data):
        for sink in (self._cell, self._caption, self._pre):
            if sink is not None:
                sink.append(data)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    for bits in (16, 64):
        for method, value in (("conmh", 0.5), ("itq", 0.4), ("lsh", 0.3)):
            for seed in (0, 1):
                write_run(root, method, seed, value + 0.01 * seed, dataset="fcvid", bits=bits)
    for ratio in (0.25, 0.5):
        write_run(root, "conmh", 0, ratio, dataset="fcvid", bits=64, params={"mask_ratio": ratio},
                  overrides={"mask_ratio": ratio})
    path = write_report(root)
    parser = Page()
    parser.feed(path.read_text())
    return root, path, parser


def test_report_is_written_self_contained(page):
    root, path, parsed = page
    assert path == root / "report" / "index.html"
    assert parsed.external == []  # no network: no external script, style sheet or image
    assert parsed.scripts == 1  # the inline sorting script


def test_a_sortable_leaderboard_per_code_length_with_published_beside(page):
    _, _, parsed = page
    boards = [t for t in parsed.tables if "leaderboard" in t["class"]]
    assert [t["bits"] for t in boards] == ["16", "64"]
    assert all("sortable" in t["class"] for t in boards)
    header, *rows = boards[1]["rows"]
    assert header[:4] == ["Method", "Seeds", "mAP@5", "published mAP@5"]
    assert [r[0] for r in rows] == ["LSH", "ITQ", "ConMH", "ConMH (mask_ratio=0.25)", "ConMH (mask_ratio=0.5)"]
    conmh = rows[2]
    # ConMH's README: 0.524 at 64 bits, K=5; ours 0.505 over two seeds, with its interval over seeds and queries
    assert conmh[2] == "0.505 ± 0.007 [0.453, 0.557]" and conmh[3] == "0.524 (Δ -0.019) ∈ CI"
    assert rows[0][3] == ""  # LSH has no published FCVID number


def test_every_figure_is_embedded_as_png(page):
    _, _, parsed = page
    kinds = [c.split(":")[0] for c in parsed.figcaptions]
    assert kinds == [k for k in PLOT_KINDS if k not in ("ablation", "curve", "health")] + ["ablation over mask_ratio"]
    assert len(parsed.images) == len(kinds)  # every kind could be drawn from these runs
    for image in parsed.images:
        assert image["src"].startswith("data:image/png;base64,")
        assert base64.b64decode(image["src"].split(",", 1)[1])[:4] == b"\x89PNG"
    # the swept runs are in the ablation (the default runs here record no mask_ratio), not in the others
    assert parsed.figcaptions[0].endswith("; 12 run(s)") and parsed.figcaptions[-1].endswith("; 2 run(s)")


def test_each_run_configuration_is_one_click_away(page):
    root, _, parsed = page
    (runs,) = [t for t in parsed.tables if "runs" in t["class"].split()]
    assert len(runs["rows"]) == 1 + 14  # header + every run
    assert [row[0] for row in runs["rows"][1:7]] == ["LSH", "LSH", "ITQ", "ITQ", "ConMH", "ConMH"]  # 16 bits
    configs = [json.loads(text) for text in parsed.details]
    on_disk = {json.loads(p.read_text())["run_id"] for p in root.glob("runs/*/*/*/*/config.json")}
    assert {c["run_id"] for c in configs} == on_disk and len(configs) == 14


def test_report_command_and_empty_results(tmp_path, page):
    root, _, _ = page
    out = tmp_path / "page.html"
    result = runner.invoke(app, ["report", "--results-dir", str(root), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert str(out) in result.output and out.read_text().startswith("<!DOCTYPE html>")
    with pytest.raises(ConfigError, match="no finished runs"):
        write_report(tmp_path / "empty")
