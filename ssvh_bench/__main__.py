"""``python -m ssvh_bench`` runs the command line, for environments where the console script is not on PATH."""

from .cli import app

app(prog_name="ssvh-bench")
