"""User-facing errors: the CLI prints these as one line and exits non-zero, without a traceback."""


class SsvhBenchError(Exception):
    """Base class for every error caused by the user's input rather than by a bug."""


class UnknownNameError(SsvhBenchError, KeyError):
    """A method or dataset name that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class ConfigError(SsvhBenchError, ValueError):
    """A parameter out of range or of the wrong type."""


class DataError(SsvhBenchError, ValueError):
    """Features, labels or codes that cannot be used (missing, mismatched, NaN...)."""


class ConformanceError(SsvhBenchError, AssertionError):
    """A method that breaks the method contract (``ssvh_bench.conformance.check_method``)."""


class TrainingError(SsvhBenchError, RuntimeError):
    """Training cannot go on (a NaN or infinite loss, a checkpoint from other settings...)."""


def one_line(error: BaseException) -> str:
    """The message a user sees: input errors as they are, anything else prefixed by its type."""
    text = (str(error).strip().splitlines() or [""])[0]
    return text if isinstance(error, SsvhBenchError) else f"{type(error).__name__}: {text}"


class JobError(SsvhBenchError, RuntimeError):
    """A batch job (Slurm) ended before its run did, without the run recording an error."""
