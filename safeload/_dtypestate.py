"""Shape check of ``numpy.dtype`` pickle states before ``dtype.__setstate__`` sees them.

numpy's ``arraydescr_setstate`` trusts the state it is given: a 6-tuple such as
``(3, '<', None, -1, -1, 0)`` on a fresh ``dtype('f8', False, True)`` crashes the interpreter
(segmentation fault, numpy 2.4).  Every ``dtype`` in a pickle is restored from such a state, so
anything that replays one — the joblib reader evaluating an array wrapper's dtype, the scanner
evaluating dtypes statically, the build stage — must first check that the state has the shape
numpy's own ``dtype.__reduce__`` writes (``numpy/_core/src/multiarray/descriptor.c``,
``arraydescr_reduce``): version 3 (8 items) or 4 (9 items: metadata, and the unit of
datetime types), an endianness
character, an optional subarray ``(base, shape)``, matching field names and fields, and small
ints for the item size, alignment and flags.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._text import describe

__all__ = ["MAX_DTYPE_NESTING", "dtype_nesting", "dtype_state_problem"]

#: Deepest nesting of structured dtypes (and of the lists, tuples and dicts that describe one)
#: let through to numpy: its converter, comparison and repr recurse in C without a stack guard
#: (review 7: 100,000 nested fields crashed ``dtype == dtype``).  The safe format's limit too
#: (``format/npyio.py``); scikit-learn's deepest, a tree's node record, nests 1.
MAX_DTYPE_NESTING = 32

_ENDIAN = frozenset({"<", ">", "|", "="})


def dtype_nesting(value: Any, limit: int = MAX_DTYPE_NESTING) -> int:
    """How deep ``value`` nests: a ``numpy.dtype`` through its fields and subarray base, a dtype
    description through its lists, tuples and dicts.  Iterative, and stops counting once past
    ``limit`` (returns at most ``limit + 1``).

    Parameters
    ----------
    value : object
        A dtype, or what ``numpy.dtype(...)`` is called with.
    limit : int

    Returns
    -------
    int
        0 for an atom (a type code, a scalar dtype's base, None).
    """
    import numpy as np

    deepest = 0
    stack = [(value, 1)]
    budget = 100_000  # a wide description is measured in linear time, then reported as deep
    while stack:
        node, depth = stack.pop()
        budget -= 1
        if budget < 0:
            return limit + 1
        if isinstance(node, np.dtype):
            fields = node.fields
            sub = node.subdtype
            if not fields and sub is None:
                continue
            children = [f[0] for f in fields.values()] if fields else []
            if sub is not None:
                children.append(sub[0])
        elif type(node) in (list, tuple):
            children = list(node)
        elif type(node) is dict:
            children = list(node.values())
        else:
            continue
        if depth > deepest:
            deepest = depth
            if deepest > limit:
                return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _small_int(value: Any, low: int, high: int) -> bool:
    return type(value) is int and low <= value < high


def dtype_state_problem(state: Any, is_dtype: Callable[[Any], bool] | None = None) -> str | None:
    """None when ``state`` is shaped like numpy's own dtype state, else what is wrong.

    Parameters
    ----------
    state : object
        The state a pickle hands to ``dtype.__setstate__``.
    is_dtype : callable, optional
        Tells whether a nested value (a field's or subarray's base) is a dtype; by default it
        must be a ``numpy.dtype``.  The scanner passes a test for inert ``numpy.dtype`` nodes.

    Returns
    -------
    str or None
    """
    if is_dtype is None:
        import numpy as np

        def is_dtype(value: Any) -> bool:
            return isinstance(value, np.dtype)

    if type(state) is not tuple or len(state) not in (8, 9):
        return "a dtype state is a tuple of 8 or 9 items"
    version, endian, subarray, names, fields, elsize, alignment, flags = state[:8]
    if type(version) is not int or version != len(state) - 5:
        return f"dtype state version {describe(version, 40)} with {len(state)} items"
    if type(endian) is not str or endian not in _ENDIAN:
        return "dtype state endianness must be one of < > | ="
    if not (_small_int(elsize, -1, 1 << 31) and _small_int(alignment, -1, 1 << 16)):
        return "dtype state item size and alignment must be small ints"
    if not _small_int(flags, 0, 1 << 16):
        return "dtype state flags must be a small int"
    if subarray is not None and not (
        type(subarray) is tuple
        and len(subarray) == 2
        and is_dtype(subarray[0])
        and type(subarray[1]) is tuple
        and all(_small_int(d, 0, 1 << 62) for d in subarray[1])
    ):
        return "dtype state subarray must be (dtype, shape)"
    if (names is None) != (fields is None):
        return "dtype state has names without fields or fields without names"
    if names is not None:
        if type(names) is not tuple or not all(type(n) is str for n in names):
            return "dtype state names must be a tuple of str"
        if len(set(names)) != len(names):
            return "dtype state names repeat"
        if type(fields) is not dict or not set(names) <= set(fields):
            return "dtype state fields must be a dict holding every name"
        for value in fields.values():
            if not (
                type(value) is tuple
                and len(value) in (2, 3)
                and is_dtype(value[0])
                and _small_int(value[1], 0, 1 << 62)
            ):
                return "dtype state field must be (dtype, offset[, title])"
    if len(state) == 9 and not _metadata_ok(state[8]):
        return "dtype state metadata must be a dict, or (metadata, datetime unit) for datetimes"
    nested = [subarray[0]] if subarray is not None else []
    nested += [value[0] for value in (fields or {}).values()]
    if dtype_nesting(nested) > MAX_DTYPE_NESTING:
        return f"dtype state nests dtypes more than {MAX_DTYPE_NESTING} levels deep"
    return None


def _metadata_ok(value: Any) -> bool:
    if value is None or type(value) is dict:
        return True
    # datetime64/timedelta64: (metadata or None, (unit, num, den, events))
    return (
        type(value) is tuple
        and len(value) == 2
        and (value[0] is None or type(value[0]) is dict)
        and type(value[1]) is tuple
        and len(value[1]) == 4
        and type(value[1][0]) in (bytes, str)
        and all(_small_int(v, 0, 1 << 31) for v in value[1][1:])
    )
