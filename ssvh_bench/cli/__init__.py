"""The ``ssvh-bench`` command line: one module per group of commands, all on one typer app."""

from . import data, runs  # noqa: F401  (importing a command module registers its commands)
from .app import app

__all__ = ["app"]
