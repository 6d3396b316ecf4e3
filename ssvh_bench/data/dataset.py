"""The dataset plugin contract."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from ..registry import signature_defaults
from .splits import DatasetSplits


class Dataset(ABC):
    """A dataset plugin: ``__init__`` stores parameters only, ``load`` builds the splits.

    ``needs_data_root`` is True for datasets read from user-supplied files (``--data-root``); the embedded
    synthetic dataset generates its splits and ignores the root.
    """

    needs_data_root: ClassVar[bool] = False

    def get_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in signature_defaults(type(self))}

    def resolve(self, data_root: Path | None = None) -> "Dataset":
        """This dataset with what its parameters leave to the files ("auto") decided, as runs record it."""
        return self

    def fingerprint(self, data_root: Path | None = None) -> str | None:
        """A short hash of the data a run reads, which enters the run id, for datasets whose parameters do not
        pin their files (a user's own folder); None: the name and parameters identify the data."""
        return None

    @property
    def method_defaults(self) -> str | None:
        """The dataset whose per-dataset method defaults apply (``dataset_defaults``); None: this one."""
        return None

    @abstractmethod
    def load(self, data_root: Path | None = None) -> DatasetSplits:
        """Return the training, database and (optional) query splits with labels."""
