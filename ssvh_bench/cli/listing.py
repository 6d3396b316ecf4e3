"""``list``: the registered methods and datasets."""

from __future__ import annotations

import difflib

import typer
from rich.table import Table

from ..config import resolve_params
from ..errors import SsvhBenchError
from ..registry import Registry, dataset_registry, method_registry
from .app import app, console, user_errors


@app.command("list")
@user_errors
def list_command(
    what: str = typer.Argument("all", metavar="[methods|datasets|all]", help="What to list."),
    pattern: str = typer.Option("*", "--pattern", "-p", help="Shell-style name filter, e.g. 'i*'."),
    dataset: str = typer.Option("synthetic", "--dataset", "-d", help="Show the method defaults that apply on this dataset."),
) -> None:
    """List the registered methods and datasets.

    Each with its family, description and defaults (the method defaults that apply on --dataset).
    """
    kinds = {"methods": [method_registry], "datasets": [dataset_registry], "all": [method_registry, dataset_registry]}
    if what not in kinds:
        close = difflib.get_close_matches(what, kinds, n=1)
        raise SsvhBenchError(f"list takes methods, datasets or all, not {what!r}"
                             + (f". Did you mean {close[0]!r}?" if close else ""))
    dataset_registry.get(dataset)  # a misspelt dataset is an error with the closest name
    for registry in kinds[what]:
        console.print(_registry_table(registry, pattern, dataset))


def _registry_table(registry: Registry, pattern: str, dataset: str) -> Table:
    title = f"{registry.kind}s" + (f" (defaults on {dataset})" if registry is method_registry else "")
    table = Table(title=title, title_justify="left")
    for column in ("name", "family", "description", "defaults"):
        table.add_column(column, overflow="fold")
    for entry in registry.list(pattern):
        resolved = resolve_params(entry, {}, dataset=dataset) if registry is method_registry else entry.defaults
        defaults = ", ".join(f"{k}={v}" for k, v in resolved.items())
        table.add_row(entry.name, entry.family or "", entry.description, defaults)
    return table
