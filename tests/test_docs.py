"""The docs cannot drift from the code: their Python API example, their plugin example (an outside package
registered through the entry point, checked with ``check_method`` and run) and their marked command-line
examples run as written, and each method page's version and parameter table are the registry's."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest

import ssvh_bench
from ssvh_bench import method_registry
from ssvh_bench.targets import TARGETS

from conftest import TINY, invoke

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
DATASETS = ("fcvid", "activitynet", "yfcc", "synthetic")
# a marked block: <!-- docs-test: KIND --> on the line before a fenced block, optionally titled
MARKED = re.compile(r'<!-- docs-test: (\w+) -->\n```(\w+)(?: title="([^"]+)")?\n(.*?)```', re.S)
PAGES = {"lsh": "shallow", "pcah": "shallow", "itq": "shallow", "sh": "shallow"}


def marked_blocks(kind: str) -> dict[str, str]:
    """{title (or the page and index): code} of every block marked ``docs-test: kind``."""
    blocks = {}
    for page in sorted(DOCS.rglob("*.md")):
        for index, (found, _, title, code) in enumerate(MARKED.findall(page.read_text())):
            if found == kind:
                blocks[title or f"{page.name}:{index}"] = code
    return blocks


def python_example() -> str:
    section = (DOCS / "getting-started.md").read_text().split("## From Python", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def parameter_table(defaults: dict, dataset_defaults: dict) -> str:
    """The 'Every parameter' table a method page carries: defaults, then what each dataset changes."""
    def cell(value: object) -> str:
        return "`" + (value if isinstance(value, str) else repr(value)) + "`"

    lines = ["| parameter | default | " + " | ".join(DATASETS) + " |", "|---" * (2 + len(DATASETS)) + "|"]
    for key, value in defaults.items():
        per = [cell(dataset_defaults[d][key]) if key in dataset_defaults.get(d, {}) else "" for d in DATASETS]
        lines.append(f"| `{key}` | {cell(value)} | " + " | ".join(per) + " |")
    return "\n".join(lines) + "\n"


def test_the_python_api_example_runs_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(python_example(), str(DOCS / "getting-started.md"), "exec"), {})
    printed = capsys.readouterr().out
    assert printed.count(" finished") == 24  # 8 ITQ runs (2 n_iter values) + 4 LSH runs, each printed twice
    assert len(list((tmp_path / "results-api-demo" / "runs").glob("*/*/*/*/metrics.json"))) == 12


def test_the_marked_command_line_examples_run_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    lines = [line for code in marked_blocks("cli").values() for line in code.splitlines() if line.strip()]
    assert len(lines) >= 5
    for line in lines:
        words = shlex.split(line)
        assert words[0] == "ssvh-bench", line
        result = invoke(*words[1:])
        assert result.exit_code == 0, f"{line}\n{result.output}"
    assert len(list((tmp_path / "results-tiny" / "runs").glob("*/*/*/*/metrics.json"))) == 8
    assert (tmp_path / "results-tiny" / "report" / "index.html").is_file()


def test_the_plugin_example_installs_through_the_entry_point_checks_and_runs(tmp_path, monkeypatch):
    blocks = marked_blocks("plugin")
    entry_points = tomllib.loads(blocks["pyproject.toml"])["project"]["entry-points"]["ssvh_bench.methods"]
    (name, target), = entry_points.items()
    module = target.split(":")[0]
    (tmp_path / f"{module}.py").write_text(blocks[f"{module}.py"])
    # what `pip install` of the outside package leaves on the path: its module and its dist-info
    dist_info = tmp_path / f"{module}-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text(f"[ssvh_bench.methods]\n{name} = {target}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(method_registry, "_loaded", False)  # find the new entry point
    try:
        entry = method_registry.get(name)
        assert entry.family == "shallow" and entry.description.startswith("Sign of a random rotation")
        namespace: dict = {}
        exec(compile(blocks["tests/test_my_hashing.py"], "tests/test_my_hashing.py", "exec"), namespace)
        namespace["test_my_hash_keeps_the_method_contract"]()
        results = ssvh_bench.run(methods=[name], datasets=["synthetic"], bits=[16], dataset_params=TINY,
                                 results_dir=tmp_path / "results")
        assert [r.status for r in results] == ["finished"]
    finally:
        method_registry.unregister(name)


@pytest.mark.parametrize("entry", method_registry.list(), ids=lambda e: e.name)
def test_every_method_page_states_its_version_and_parameters(entry):
    text = (DOCS / "methods" / f"{PAGES.get(entry.name, entry.name)}.md").read_text()
    if entry.name not in PAGES:
        assert f"version {entry.version};" in text.split("##", 1)[0], "the page's header names another version"
    if entry.defaults:
        assert parameter_table(entry.defaults, entry.dataset_defaults) in text, (
            f"docs/methods: the parameter table of {entry.name} differs from the registry; regenerate it with "
            "tests/test_docs.py:parameter_table")
    row = next(line for line in (DOCS / "methods" / "index.md").read_text().splitlines() if f"`{entry.name}`" in line)
    assert f"| {entry.version} |" in row


def test_the_reproducing_page_lists_every_target():
    text = (DOCS / "reproducing.md").read_text()
    listed = re.findall(r"^\| `([a-z0-9-]+)` \|", text, re.M)
    assert listed == list(TARGETS)


SNIPPET = re.compile(r'^--8<-- "([^":]+)(?::(\d*):(\d*))?"$', re.M)


def test_every_included_file_is_included_to_its_end():
    """A line-range include (``--8<-- "file:3:"``) must be open at its end: a section added to the end of an
    included evidence file would otherwise silently drop off the site."""
    includes = [(page, *found) for page in sorted(DOCS.rglob("*.md")) for found in SNIPPET.findall(page.read_text())]
    assert len(includes) >= 4
    for page, path, start, end in includes:
        assert (ROOT / path).is_file(), f"{page.name} includes a missing file {path}"
        assert not end, f"{page.name} includes {path} only up to line {end} of {len((ROOT / path).read_text().splitlines())}"
