"""Run filters shared by the report commands (leaderboard, plot): shell wildcards, comma-separated."""

from __future__ import annotations

import typer

DatasetFilter = typer.Option("*", "--dataset", "-d", help="Datasets to include, shell wildcards, comma-separated.")
BitsFilter = typer.Option("*", "--bits", "-b", help="Code lengths to include, e.g. 16,64 or '*'.")
MethodFilter = typer.Option("*", "--method", "-m", help="Methods to include, e.g. 'conmh,i*'.")
