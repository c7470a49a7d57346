"""Small helpers shared by the rule modules (no rules here)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._standins import LegacyState, LegacyValue

__all__ = ["add_defaults", "rename", "legacy_of", "array_width", "as_state"]


def as_state(state: Any) -> dict | None:
    """The state as a dict to rewrite (a copy), or None when it is not a plain dict."""
    return dict(state) if type(state) is dict else None


def add_defaults(state: Any, defaults: dict[str, Any]) -> dict | None:
    """Add the attributes of ``defaults`` that ``state`` lacks; None when nothing was missing.

    Values that are callables are called with the state to compute the default.
    """
    if type(state) is not dict:
        return None
    missing = [k for k in defaults if k not in state]
    if not missing:
        return None
    state = dict(state)
    for key in missing:
        value = defaults[key]
        state[key] = value(state) if callable(value) else value
    return state


def rename(state: Any, renames: dict[str, str]) -> dict | None:
    """Rename attributes (old → new) present in ``state`` and absent under the new name."""
    if type(state) is not dict:
        return None
    todo = [(old, new) for old, new in renames.items() if old in state and new not in state]
    if not todo:
        return None
    state = dict(state)
    for old, new in todo:
        state[new] = state.pop(old)
    return state


def legacy_of(value: Any, *names: str) -> bool:
    """True when ``value`` is a stand-in of one of the removed ``names`` (canonical)."""
    return isinstance(value, (LegacyState, LegacyValue)) and value.legacy_name in names


def array_width(value: Any) -> int | None:
    """Number of columns of a 2-D array (length of a 1-D one), or None."""
    if isinstance(value, np.ndarray) and value.ndim in (1, 2):
        return int(value.shape[-1])
    return None
