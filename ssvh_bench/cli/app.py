"""The typer application shared by every command module, and how commands report input errors."""

from __future__ import annotations

import functools
import logging
from typing import Any, Callable

import typer
from rich.console import Console
from rich.markup import escape

from ..errors import SsvhBenchError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None,  # help texts show [brackets] literally
                  help="Benchmark self-supervised video hashing methods under the published protocol.")
console = Console()
errors = Console(stderr=True)


def _print_version(value: bool) -> None:
    if value:
        from .. import __version__

        console.print(f"ssvh-bench {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def main(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                      help="Print the version and exit."),
         quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and errors, no progress."),
         verbose: bool = typer.Option(False, "--verbose", "-v", help="Also debug messages.")) -> None:
    """Benchmark self-supervised video hashing methods under the published protocol."""
    configure_logging(logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO)


class _TqdmHandler(logging.Handler):
    """Log lines through tqdm.write, so they never tear a progress bar on a terminal."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm.auto import tqdm

        tqdm.write(self.format(record))


def configure_logging(level: int) -> None:
    """Plain timestamped lines from the engine's loggers (one per epoch and per stage), to stdout."""
    logger = logging.getLogger("ssvh_bench")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = _TqdmHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    handler.setLevel(level)  # its own level: a run's run.log lowers the logger's while the run lasts
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def user_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Report input errors as one line and exit 2; genuine bugs still show their traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except SsvhBenchError as error:
            # escaped: messages quote shapes like [videos, frames, dim], which rich would take for markup
            errors.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


ResultsDir = typer.Option(None, "--results-dir",
                          help="Where runs and tables go [env SSVH_BENCH_RESULTS, default ./results].")

# Options shared by several commands (the execution options are in ``cli.options``).
MethodsOption = typer.Option(..., "--method", "-m", metavar="METHOD[,METHOD]", help="Method name(s), comma-separated.")
BitsOption = typer.Option("64", "--bits", "-b", metavar="BITS[,BITS]", help="Code length(s), comma-separated, 8..256.")
SeedsOption = typer.Option("0", "--seed", "-s", metavar="SEED[,SEED]", help="Seed(s), comma-separated.")
DatasetParamOption = typer.Option([], "--dataset-param", metavar="KEY=VALUE", help="Dataset parameter key=value.")
EvalDatasetOption = typer.Option(None, "--eval-dataset", metavar="DATASET",
                                 help="Evaluate on this dataset's database and queries (train on --dataset's training split).")
EvalDatasetParamOption = typer.Option([], "--eval-dataset-param", metavar="KEY=VALUE",
                                      help="Parameter key=value of the --eval-dataset.")
DataRootOption = typer.Option(None, "--data-root", envvar="SSVH_BENCH_DATA", help="Folder with the dataset's files.")
