"""Hash codes: the {-1, 0, +1} form methods produce and the packed form stored and searched.

Methods return int8 codes of shape [N, bits] with values in {-1, 0, +1}. A 0 appears only where the
reference protocol averages per-frame codes and the mean is exactly 0; most methods
never produce one. Packed form: ``signs`` has bit 1 where the code is +1; ``nonzero`` (only kept when some
entry is 0) has bit 1 where the code is not 0. Bit order is numpy's ``packbits`` default ("big"): code
position j lives in byte j // 8 at bit 7 - j % 8.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ConfigError, DataError

MIN_BITS, MAX_BITS = 8, 256


@dataclass(frozen=True)
class PackedCodes:
    signs: np.ndarray  # uint8 [N, ceil(bits / 8)]
    bits: int
    nonzero: np.ndarray | None = None  # uint8 like signs, or None when no entry is 0

    def __len__(self) -> int:
        return self.signs.shape[0]

    def unpack(self) -> np.ndarray:
        signs = np.unpackbits(self.signs, axis=1, count=self.bits).astype(np.int8) * 2 - 1
        if self.nonzero is not None:
            signs *= np.unpackbits(self.nonzero, axis=1, count=self.bits).astype(np.int8)
        return signs


def check_codes(codes: np.ndarray, *, what: str = "codes") -> np.ndarray:
    """Validate a {-1, 0, +1} code matrix and return it as int8."""
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise DataError(f"{what} must be 2-D [videos, bits], got shape {codes.shape}")
    if codes.dtype.kind == "f" and not np.isfinite(codes).all():
        raise DataError(f"{what} contain NaN or inf")
    as_int = codes.astype(np.int8)
    if codes.dtype.kind == "f" and not np.array_equal(as_int, codes):
        raise DataError(f"{what} must hold only -1, 0 and +1")
    if not np.isin(as_int, (-1, 0, 1)).all():
        raise DataError(f"{what} must hold only -1, 0 and +1")
    return as_int


def pack_codes(codes: np.ndarray) -> PackedCodes:
    codes = check_codes(codes)
    nonzero = np.packbits(codes != 0, axis=1) if (codes == 0).any() else None
    return PackedCodes(np.packbits(codes > 0, axis=1), codes.shape[1], nonzero)


def strict_codes(codes: np.ndarray) -> np.ndarray:
    """The ``strict`` protocol option: map 0 to +1 so codes are purely binary."""
    codes = check_codes(codes)
    return np.where(codes == 0, np.int8(1), codes)


def check_bits(bits: int) -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not MIN_BITS <= bits <= MAX_BITS:
        raise ConfigError(f"bits must be an integer from {MIN_BITS} to {MAX_BITS}, got {bits!r}")
    return int(bits)
