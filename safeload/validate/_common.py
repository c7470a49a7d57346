"""Helpers shared by the content validators.

Every helper raises :class:`~safeload.errors.ValidationError` with a message of the form
``"<module>.<qualname>: <field>[<k>] = <value> is outside [lo, hi)"`` so a report names the
object, the field, the position and the bad value.  They never modify what they check and never
call code on the checked object other than attribute reads (``vars(obj)``), so properties of a
hostile object are not triggered.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import Any, NoReturn

import numpy as np

from .._text import describe
from ..errors import ValidationError

__all__ = [
    "MISSING",
    "fail",
    "type_name",
    "is_type",
    "state",
    "get_int",
    "get_array",
    "check_range",
    "check_forward",
    "check_single_parent",
    "check_flag",
    "tree_depth",
    "as_int_array",
]


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()


def type_name(tp: type) -> str:
    """Return ``"module.qualname"`` of a class (no import, no attribute lookups on instances)."""
    return f"{getattr(tp, '__module__', '?')}.{getattr(tp, '__qualname__', '?')}"


# (type, names) -> is_type verdict.  The types are the trusted classes a load builds, a small
# set; the bound only keeps a process that validates many ad-hoc classes from growing it.
_is_type_cache: dict[tuple[type, tuple[str, ...]], bool] = {}
_IS_TYPE_CACHE_SIZE = 1024


def is_type(obj: object, *names: str) -> bool:
    """Whether ``type(obj)`` or one of its bases is spelled ``module.qualname`` in ``names``.

    Matching on names keeps validators free of imports: a class that is not loaded yet can not
    be the type of an object handed to a validator anyway.  Cached per type and names: the
    validators ask once per object, and spelling the MRO costs microseconds.
    """
    key = (type(obj), names)
    found = _is_type_cache.get(key)
    if found is None:
        wanted = set(names)
        found = any(type_name(c) in wanted for c in key[0].__mro__)
        if len(_is_type_cache) < _IS_TYPE_CACHE_SIZE:
            _is_type_cache[key] = found
    return found


def _short(value: object, limit: int = 80) -> str:
    # bounded: a plain repr renders a deep or memo-bombed value whole, recursing in C (review 7)
    return describe(value, limit)


def fail(obj: object, message: str) -> NoReturn:
    """Raise a :class:`ValidationError` about ``obj``.

    Raises
    ------
    ValidationError
        Always, with ``"<module>.<qualname>: <message>"``.
    """
    raise ValidationError(f"{type_name(type(obj))}: {message}")


def state(obj: object) -> dict:
    """Return ``vars(obj)`` (the instance dict) without triggering properties.

    Raises
    ------
    ValidationError
        If the object has no instance dict.
    """
    try:
        d = vars(obj)
    except TypeError:
        fail(obj, "has no instance __dict__")
    if not isinstance(d, dict):
        fail(obj, f"__dict__ is a {type(d).__name__}, not a dict")
    return d


def get_int(
    obj: object,
    field: str,
    value: object,
    lo: int | None = None,
    hi: int | None = None,
) -> int:
    """Check that ``value`` is an integer (``int`` or numpy integer, not ``bool``) in
    ``[lo, hi]`` (both inclusive, ``None`` for unbounded) and return it as ``int``.

    Raises
    ------
    ValidationError
        If the value is not an integer or is out of range.
    """
    if type(value) is int:  # the common case, without the numbers.Integral ABC check
        ivalue = value
    else:
        if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
            fail(obj, f"{field} = {_short(value)} is not an integer")
        ivalue = int(value)
    if (lo is not None and ivalue < lo) or (hi is not None and ivalue > hi):
        lo_s = "-inf" if lo is None else str(lo)
        hi_s = "inf" if hi is None else str(hi)
        fail(obj, f"{field} = {ivalue} is outside [{lo_s}, {hi_s}]")
    return ivalue


def get_array(
    obj: object,
    field: str,
    value: object,
    *,
    ndim: int | None = None,
    kinds: str | None = None,
    dtype: Any = None,
    shape: tuple[int | None, ...] | None = None,
    c_contiguous: bool = False,
) -> np.ndarray:
    """Check that ``value`` is a numpy array with the given properties and return it.

    Parameters
    ----------
    obj : object
        The object being validated (named in messages).
    field : str
        The field name for messages.
    value : object
        The candidate array.
    ndim : int, optional
        Required number of dimensions.
    kinds : str, optional
        Allowed ``dtype.kind`` letters, e.g. ``"iu"``.
    dtype : dtype-like, optional
        Required dtype (compared with ``==``, so byte order matters).
    shape : tuple, optional
        Required shape; ``None`` entries match any length.
    c_contiguous : bool
        Require C order (Cython ``[::1]`` memoryviews refuse anything else).

    Raises
    ------
    ValidationError
        On the first property that does not hold.
    """
    if not isinstance(value, np.ndarray):
        fail(obj, f"{field} is a {type(value).__name__}, not a numpy array")
    if ndim is not None and value.ndim != ndim:
        fail(obj, f"{field} has {value.ndim} dimensions (shape {value.shape}), expected {ndim}")
    if kinds is not None and value.dtype.kind not in kinds:
        fail(obj, f"{field} has dtype {value.dtype}, expected one of kinds {kinds!r}")
    if dtype is not None and value.dtype != np.dtype(dtype):
        fail(obj, f"{field} has dtype {value.dtype}, expected {np.dtype(dtype)}")
    if shape is not None:
        ok = len(shape) == value.ndim and all(
            s is None or s == v for s, v in zip(shape, value.shape, strict=False)
        )
        if not ok:
            parts = ["*" if s is None else str(s) for s in shape]
            want = "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"
            fail(obj, f"{field} has shape {value.shape}, expected {want}")
    if c_contiguous and not value.flags.c_contiguous:
        fail(obj, f"{field} is not C-contiguous")
    return value


def _first(mask: np.ndarray) -> int:
    return int(np.argmax(mask))


def check_range(
    obj: object,
    field: str,
    values: np.ndarray,
    lo: int,
    hi: int,
    positions: np.ndarray | None = None,
) -> None:
    """Check ``lo <= values < hi`` elementwise (vectorised; min/max first, position on failure).

    ``positions`` maps an element of ``values`` back to its index in the original field (when
    ``values`` is a selection, e.g. the children of internal nodes only).

    Raises
    ------
    ValidationError
        ``"<field>[k] = v is outside [lo, hi)"`` for the first offending element.
    """
    if values.size == 0:
        return
    vmin = values.min()
    vmax = values.max()
    if vmin >= lo and vmax < hi:
        return
    bad = (values < lo) | (values >= hi)
    k = _first(bad)
    pos = int(positions[k]) if positions is not None else k
    fail(obj, f"{field}[{pos}] = {int(values[k])} is outside [{lo}, {hi})")


def check_forward(
    obj: object, field: str, children: np.ndarray, parents: np.ndarray, what: str = "node"
) -> None:
    """Check ``children > parents`` elementwise.

    scikit-learn builds its trees depth first and appends every child after its parent, so a
    child index that is not larger than its parent's is the only way to form a cycle (and an
    endless ``while`` loop in the prediction code).

    Raises
    ------
    ValidationError
        For the first child that does not come after its parent.
    """
    bad = children <= parents
    if bad.any():
        k = _first(bad)
        fail(
            obj,
            f"{field}[{int(parents[k])}] = {int(children[k])} does not come after its parent "
            f"{what} {int(parents[k])} (children must have a larger index than their parent; a "
            "smaller one allows cycles)",
        )


def check_single_parent(
    obj: object, n_nodes: int, left: np.ndarray, right: np.ndarray, what: str = "node"
) -> None:
    """Check that every node except the root 0 is the child of exactly one internal node.

    Expects ``left``/``right`` already range-checked and forward-checked.  With children after
    parents this makes the node array one tree rooted at 0: nothing unreachable, nothing shared,
    so a traversal stack never grows beyond ``n_nodes``.

    Raises
    ------
    ValidationError
        For the first node with zero or several parents.
    """
    counts = np.bincount(np.concatenate([left, right]), minlength=n_nodes)
    if counts.size > n_nodes:  # cannot happen after check_range; defensive
        fail(obj, f"child index {counts.size - 1} is outside [0, {n_nodes})")
    bad = counts[1:] != 1
    if bad.any():
        k = _first(bad) + 1
        fail(
            obj,
            f"{what} {k} has {int(counts[k])} parents (every {what} except the root must have "
            "exactly one parent)",
        )


def check_children(
    obj: object,
    fields: tuple[str, str],
    left: np.ndarray,
    right: np.ndarray,
    internal: np.ndarray,
    n_nodes: int,
) -> None:
    """The child-index checks every tree-shaped node array needs, in one place.

    ``left``/``right`` are the children of the internal nodes ``internal``: each in
    ``[0, n_nodes)`` and after its parent (:func:`check_range`, :func:`check_forward`), and
    every node but the root with exactly one parent (:func:`check_single_parent`).

    Raises
    ------
    ValidationError
        For the first bad child, named with ``fields`` (the left and right field names).
    """
    check_range(obj, fields[0], left, 0, n_nodes, internal)
    check_range(obj, fields[1], right, 0, n_nodes, internal)
    check_forward(obj, fields[0], left, internal)
    check_forward(obj, fields[1], right, internal)
    check_single_parent(obj, n_nodes, left, right)


def check_flag(
    obj: object, field: str, values: np.ndarray, positions: np.ndarray | None = None
) -> None:
    """Check that a uint8/bool flag array only holds 0 or 1.

    Raises
    ------
    ValidationError
        For the first value that is neither.
    """
    if values.size == 0:
        return
    # A one-byte integer or bool is a flag iff its byte is 0 or 1, so deleting those bytes
    # leaves nothing: one C loop instead of three ufuncs (~100 us the first time in a process).
    dtype = values.dtype
    if (
        dtype.itemsize == 1
        and dtype.kind in "uib"
        and not values.tobytes().translate(None, b"\x00\x01")
    ):
        return
    bad = (values != 0) & (values != 1)
    if bad.any():
        k = _first(bad)
        pos = int(positions[k]) if positions is not None else k
        fail(obj, f"{field}[{pos}] = {int(values[k])} is not 0 or 1")


def tree_depth(n_nodes: int, internal: np.ndarray, left: np.ndarray, right: np.ndarray) -> int:
    """Depth of a validated binary tree (root alone = 0), by pointer jumping over its internal
    nodes: O(n log depth) with a handful of full-array gathers per round.

    ``internal`` lists the internal nodes in increasing order and ``left``/``right`` their
    children.  Requires the single-parent, forward-child structure checked by
    :func:`check_forward` and :func:`check_single_parent` (so node 0 is the root).
    """
    k = internal.shape[0]
    if k == 0:
        return 0
    # intp throughout: fancy indexing with any other index dtype converts the index first
    pos = np.full(n_nodes, k, dtype=np.intp)  # position among internal nodes, k for leaves
    pos[internal] = np.arange(k)
    anc = np.full(k + 1, k, dtype=np.intp)  # parent's position, k (sentinel) for the root
    own = np.arange(k)
    anc[pos[left]] = own
    anc[pos[right]] = own
    anc[k] = k  # leaves were written into the sentinel slot
    depth = np.ones(k + 1, dtype=np.intp)
    depth[0] = 0
    depth[k] = 0
    for _ in range(70):  # ceil(log2(depth)) rounds; 2**64 bounds any node count
        if anc.min() == k:
            break
        depth += depth[anc]
        anc = anc[anc]
    return int(depth.max()) + 1


def as_int_array(obj: object, field: str, values: Iterable) -> np.ndarray:
    """Collect integers from an iterable into an int64 array (dict values, list-of-lists rows).

    Booleans, floats and anything else that is not an integer are refused (``np.fromiter`` with
    an integer dtype would silently truncate ``1.5`` to ``1``).

    Raises
    ------
    ValidationError
        If an element is not an integer or does not fit in 64 bits.
    """
    try:
        items = list(values)
    except Exception as exc:
        fail(obj, f"{field} could not be read ({type(exc).__name__}: {exc})")
    if not items:
        return np.zeros(0, dtype=np.int64)
    try:
        arr = np.array(items)
    except Exception:
        arr = None
    if arr is not None and arr.ndim == 1 and arr.dtype.kind == "i":
        return arr.astype(np.int64, copy=False)
    for k, v in enumerate(items):
        if isinstance(v, bool | np.bool_) or not isinstance(v, numbers.Integral):
            fail(obj, f"{field}[{k}] = {_short(v)} is not an integer")
        if not -(2**63) <= int(v) < 2**63:
            fail(obj, f"{field}[{k}] = {int(v)} does not fit in 64 bits")
    return np.array([int(v) for v in items], dtype=np.int64)
