"""Bounded descriptions of values that came from a file, for error messages.

``f"{value!r:.80}"`` is not bounded: Python renders the whole ``repr`` first, and a memo bomb
(a tuple holding the previous tuple twice, 40 levels deep) renders 2**40 items.  Everything that
puts file content into a message goes through :func:`describe`, which walks at most a few
dozen items (``reprlib`` with tight limits).
"""

from __future__ import annotations

import reprlib

__all__ = ["describe"]

_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxtuple = _REPR.maxlist = _REPR.maxdict = _REPR.maxset = _REPR.maxfrozenset = 4
_REPR.maxdeque = _REPR.maxarray = 4
_REPR.maxstring = _REPR.maxother = 60
_REPR.maxlong = 40


def describe(value: object, limit: int = 100) -> str:
    """A short, bounded-cost text for ``value`` (never more than ``limit`` characters)."""
    try:
        text = _REPR.repr(value)
    except Exception:  # noqa: BLE001 - a hostile __repr__ must not escape
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."
