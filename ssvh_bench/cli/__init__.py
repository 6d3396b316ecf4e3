"""The ``ssvh-bench`` command line: one module per group of commands, all on one typer app."""

# Importing a command module registers its commands; the order is the order of ``ssvh-bench --help``.
from . import runs  # noqa: F401  isort: skip
from . import leaderboard, plot, report, reproduce  # noqa: F401  isort: skip
from . import launch  # noqa: F401  isort: skip
from . import data  # noqa: F401  isort: skip
from .app import app

__all__ = ["app"]
