"""How methods are shown to readers: paper names, one stable order, one figure style per method.

Tables, figures and the HTML report all read this one table, so a method looks the same everywhere. Methods
not listed (third-party plugins) keep their registry name and sort after the listed ones, alphabetically.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class MethodDisplay:
    name: str  # as the paper spells it
    colour: str
    marker: str
    linestyle: str


# Shallow baselines first, then deep methods by year of publication. Shallow lines are dashed and deep ones
# solid; colours are Okabe-Ito (colour-blind safe) plus grey, brown and dark purple, and every marker differs
# so a greyscale print still tells the methods apart.
METHODS: dict[str, MethodDisplay] = {
    "lsh": MethodDisplay("LSH", "#999999", "v", "--"),
    "pcah": MethodDisplay("PCAH", "#56B4E9", "<", "--"),
    "itq": MethodDisplay("ITQ", "#009E73", "D", "--"),
    "sh": MethodDisplay("SH", "#8C564B", ">", "--"),
    "ssvh": MethodDisplay("SSVH", "#E69F00", "s", "-"),  # 2018
    "bth": MethodDisplay("BTH", "#CC79A7", "^", "-"),  # 2021
    "mcmsh": MethodDisplay("MCMSH", "#0072B2", "P", "-"),  # 2022
    "conmh": MethodDisplay("ConMH", "#D55E00", "o", "-"),  # 2023
    "s5vh": MethodDisplay("S5VH", "#000000", "X", "-"),  # 2025
    "autossvh": MethodDisplay("AutoSSVH", "#6A3D9A", "*", "-"),  # 2025
}
# Unknown methods: a grey shade and marker picked from the name's checksum, so they too keep one style.
_OTHER_COLOURS = ("#444444", "#777777", "#AAAAAA")
_OTHER_MARKERS = ("h", "p", "d", "8", "H", "1")


def display_name(method: str) -> str:
    """``conmh`` -> ``ConMH``; an unknown method keeps its registry name."""
    entry = METHODS.get(method)
    return entry.name if entry else method


def method_rank(method: str) -> tuple[int, str]:
    """Sort key: listed methods in the table's order, then the others by name."""
    names = list(METHODS)
    return (names.index(method), "") if method in METHODS else (len(names), method)


def method_order(methods: Iterable[str]) -> list[str]:
    """Distinct registry names in display order (shallow first, then deep by year; unknown ones last)."""
    return sorted(set(methods), key=method_rank)


def method_style(method: str) -> dict[str, str]:
    """matplotlib keyword arguments (colour, marker, line style) of a method, the same in every figure."""
    entry = METHODS.get(method)
    if entry is None:
        checksum = zlib.crc32(method.encode())
        return {"color": _OTHER_COLOURS[checksum % len(_OTHER_COLOURS)],
                "marker": _OTHER_MARKERS[checksum % len(_OTHER_MARKERS)], "linestyle": ":"}
    return {"color": entry.colour, "marker": entry.marker, "linestyle": entry.linestyle}


def method_label(method: str, overrides: str) -> str:
    """How a setting is named in tables and legends: ``ConMH`` or ``ConMH (mask_ratio=0.5)``."""
    name = display_name(method)
    return f"{name} ({overrides.replace(';', ', ')})" if overrides else name
