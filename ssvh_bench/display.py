"""How methods are shown to readers: paper names, one stable order, one figure style per method.

Each method plugin declares its ``display`` (name, publication month, colour, marker); tables, figures and the
HTML report all read it from the registry here, so a method looks the same everywhere. Shallow methods are
drawn dashed and deep ones solid, and come first; then methods go by publication. Methods without a display
(unregistered ones, third-party plugins that declare none) keep their registry name, a grey style picked from
the name's checksum, and sort after the others, alphabetically.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

from .errors import UnknownNameError
from .registry import method_registry

# Unknown methods: a grey shade and marker picked from the name's checksum, so they too keep one style.
_OTHER_COLOURS = ("#444444", "#777777", "#AAAAAA")
_OTHER_MARKERS = ("h", "p", "d", "8", "H", "1")


def _display(method: str) -> tuple[dict[str, str], str | None]:
    """(the plugin's display, its family); empty and None for a method that is not registered."""
    try:
        entry = method_registry.get(method)
    except UnknownNameError:
        return {}, None
    return entry.display, entry.family


def display_name(method: str) -> str:
    """``conmh`` -> ``ConMH``; a method without a display keeps its registry name."""
    return _display(method)[0].get("name", method)


def method_rank(method: str) -> tuple[int, str, str]:
    """Sort key: shallow methods first, then the others by publication; methods without a display last."""
    display, family = _display(method)
    if "published" not in display:
        return (2, "", method)
    return (0 if family == "shallow" else 1, display["published"], method)


def method_order(methods: Iterable[str]) -> list[str]:
    """Distinct registry names in display order."""
    return sorted(set(methods), key=method_rank)


def method_style(method: str) -> dict[str, str]:
    """matplotlib keyword arguments (colour, marker, line style) of a method, the same in every figure."""
    display, family = _display(method)
    if "colour" not in display:
        checksum = zlib.crc32(method.encode())
        return {"color": _OTHER_COLOURS[checksum % len(_OTHER_COLOURS)],
                "marker": _OTHER_MARKERS[checksum % len(_OTHER_MARKERS)], "linestyle": ":"}
    return {"color": display["colour"], "marker": display.get("marker", "o"),
            "linestyle": "--" if family == "shallow" else "-"}


def method_label(method: str, overrides: str) -> str:
    """How a setting is named in tables and legends: ``ConMH`` or ``ConMH (mask_ratio=0.5)``."""
    name = display_name(method)
    return f"{name} ({overrides.replace(';', ', ')})" if overrides else name
