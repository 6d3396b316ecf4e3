"""Code health: how much of the code space a method's codes use, and whether they collapsed.

Hashing methods fail silently: a method can give every video the same code (or leave most bits constant) and
still train without an error. ``code_health(codes)`` measures, on the database codes [N, bits] in {-1, 0, +1}:

- ``bit_balance``: per bit, the share of videos whose bit is +1 (0.5 is ideal);
- ``balance_deviation``: the mean over bits of ``|2 * bit_balance - 1|`` (0: every bit splits the videos in
  half; 1: every bit is constant);
- ``constant_bits``: bits with one value over the whole database (they carry no information);
- ``distinct_codes`` and ``top_code_share``: how many different codes the videos get, and the largest share of
  videos sharing one code;
- ``bit_correlation``: the mean absolute Pearson correlation between pairs of non-constant bits (0: independent
  bits; 1: copies of one bit);
- ``in_window`` (deep methods whose binariser has a straight-through gradient window, see
  ``ssvh_bench.nn.binarize``): the share of pre-binarisation values inside that window, i.e. still trainable.

``collapse(health, bits)`` names what collapsed, by thresholds chosen to catch a collapse and never a healthy
run (see the docs, "Watching runs"): more than half the bits constant (``MAX_CONSTANT_SHARE``), or one code
shared by more than 10% of the videos (``MAX_TOP_CODE_SHARE``). A healthy 16-bit code on 1,000 videos has about
1,000 distinct codes and no constant bit; the authors' BTH at 16 bits gives one code to every video.
"""

from __future__ import annotations

from typing import Any

import numpy as np

MAX_CONSTANT_SHARE = 0.5  # more than half the bits constant over the database
MAX_TOP_CODE_SHARE = 0.1  # one code shared by more than 10% of the videos
# the scalar figures, in the order of every table (leaderboard columns, history.csv, the report, trackers)
HEALTH_COLUMNS = ("constant_bits", "distinct_codes", "top_code_share", "balance_deviation", "bit_correlation",
                  "in_window")


def code_health(codes: np.ndarray, in_window: float | None = None) -> dict[str, Any]:
    """The diagnostics of ``codes`` [videos, bits] (int8 in {-1, 0, +1}); ``in_window`` is passed through
    when the method measured it (``None``: not measured, and left out)."""
    codes = np.asarray(codes)
    if codes.ndim != 2 or len(codes) == 0:
        raise ValueError(f"code health needs codes of shape [videos, bits], got {codes.shape}")
    n_videos = len(codes)
    balance = (codes > 0).mean(axis=0)
    constant = np.all(codes == codes[:1], axis=0)
    _, counts = np.unique(codes, axis=0, return_counts=True)
    health: dict[str, Any] = {
        "constant_bits": int(constant.sum()),
        "distinct_codes": int(len(counts)),
        "top_code_share": float(counts.max() / n_videos),
        "balance_deviation": float(np.abs(2 * balance - 1).mean()),
        "bit_correlation": _mean_abs_correlation(codes[:, ~constant]),
        "bit_balance": [round(float(b), 6) for b in balance],
    }
    if in_window is not None:
        health["in_window"] = float(in_window)
    return health


def _mean_abs_correlation(codes: np.ndarray) -> float:
    """Mean |Pearson correlation| over pairs of (non-constant) bits; 0 when fewer than two bits vary."""
    if codes.shape[1] < 2:
        return 0.0
    correlation = np.corrcoef(codes.astype(np.float64), rowvar=False)
    pairs = np.triu_indices(codes.shape[1], k=1)
    return float(np.abs(correlation[pairs]).mean())


def collapse(health: dict[str, Any], bits: int) -> str:
    """What collapsed, as one phrase ("" when nothing did)."""
    found = []
    if health["constant_bits"] > MAX_CONSTANT_SHARE * bits:
        found.append(f"{health['constant_bits']} of {bits} bits constant")
    if health["top_code_share"] > MAX_TOP_CODE_SHARE:
        found.append(f"one code shared by {100 * health['top_code_share']:.0f}% of videos "
                     f"({health['distinct_codes']} distinct codes)")
    return "; ".join(found)


def health_row(health: dict[str, Any]) -> dict[str, float]:
    """The scalar figures (``HEALTH_COLUMNS`` present in ``health``) as one flat row."""
    return {name: health[name] for name in HEALTH_COLUMNS if name in health}


def health_line(health: dict[str, Any]) -> str:
    """The scalar figures as one log line."""
    return "  ".join(f"{name} {health[name]:.4g}" for name in HEALTH_COLUMNS if name in health)
