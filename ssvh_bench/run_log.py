"""``run.log``: every progress line of one run in its folder, whatever the terminal shows.

For the duration of a run, a file handler on the ``ssvh_bench`` logger appends each line (start, epochs with
their losses, lr, videos/s and ETA, evaluation, warnings) to the run folder's ``run.log``, and the traceback
of an error that ends the run. ``--quiet`` quiets the terminal only: the file always gets the progress lines.
A resumed run appends below a marker line. Only the process that writes the folder (rank 0 under torchrun)
opens it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from .provenance import now
from .run_folder import RunFolder

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"


@contextmanager
def run_log(folder: RunFolder) -> Iterator[None]:
    """Log the ``ssvh_bench`` lines of the enclosed work to ``folder.run_log`` (appended, with a marker line when
    the file exists: the run resumes); an exception leaving the block is written with its traceback."""
    logger = logging.getLogger("ssvh_bench")
    resumed = folder.run_log.is_file() and folder.run_log.stat().st_size > 0
    handler = logging.FileHandler(folder.run_log, mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT, datefmt="%Y-%m-%d %H:%M:%S"))
    handler.setLevel(logging.INFO)
    level = logger.level
    if logger.getEffectiveLevel() > logging.INFO:  # --quiet: the terminal's handler keeps its own level
        logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        if resumed:
            handler.stream.write(f"---- resumed {now()} ----\n")
        yield
    except BaseException as error:
        # to the file only: the terminal gets the one-line failure from the runner's caller
        handler.handle(logger.makeRecord(logger.name, logging.ERROR, __file__, 0, "run failed: %s", (error,),
                                         (type(error), error, error.__traceback__)))
        raise
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        handler.close()
