"""The ``ssvh-bench`` command line: one module per command, all on one typer app."""

# Importing a command module registers its commands; the order is the order of ``ssvh-bench --help``.
from . import listing, run, evaluate, sweep  # noqa: F401  isort: skip
from . import leaderboard, compare, plot, report, reproduce  # noqa: F401  isort: skip
from . import status  # noqa: F401  isort: skip
from . import data, extract  # noqa: F401  isort: skip
from .app import app

__all__ = ["app"]
