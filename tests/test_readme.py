"""The README's Python example runs as written (in a temporary folder, with its own results directory)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_example() -> str:
    section = README.read_text().split("### From Python", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_python_api_example_runs_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(python_example(), str(README), "exec"), {})
    printed = capsys.readouterr().out
    assert printed.count(" finished") == 24  # 8 ITQ runs (2 n_iter values) + 4 LSH runs, each printed twice
    assert len(list((tmp_path / "results-api-demo" / "runs").glob("*/*/*/*/metrics.json"))) == 12
