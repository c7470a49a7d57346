"""Validators for scipy sparse matrices and arrays (all seven formats, ``_matrix`` and ``_array``).

Pickled sparse objects are rebuilt with ``__newobj__``/``copyreg._reconstructor`` and their
``__dict__`` is set directly: scipy's constructors, which call ``check_format``, never run.  The
C++ ``sparsetools`` routines (``csr_matvec``, ``csr_todense``, ``coo_tocsr``, ...) then index
``x[indices[k]]`` and ``Yx[indptr[i]:indptr[i+1]]`` without bounds checks, so an index outside
the shape reads or writes out of bounds (e.g. ``X @ coef_`` in a linear model whose ``coef_``
was ``sparsify()``-ed, or an SVM's ``support_vectors_``).

For csr/csc/bsr the checks are explicit and vectorised, then scipy's own
``check_format(full_check=True)`` (``scipy/sparse/_compressed.py``, ``_bsr.py``) runs on a
shallow copy (it prunes and re-casts attributes in place, and the loaded object must not change).
coo follows ``_coo_base._check``; dia the ``_dia_base`` constructor; lil and dok have no scipy
check, so their rows/keys are checked against the shape here.
"""

from __future__ import annotations

import copy
import itertools
import numbers
import warnings

import numpy as np

from .._text import describe
from ..limits import Limits
from . import register
from ._common import as_int_array, check_range, fail, get_array, get_int, is_type, state

__all__ = [
    "validate_compressed",
    "validate_bsr",
    "validate_coo",
    "validate_dia",
    "validate_lil",
    "validate_dok",
]

_SP = "scipy.sparse"
_DATA_KINDS = "biufc"


def _names(fmt: str, base: str) -> tuple[str, ...]:
    return (
        f"{_SP}._{fmt}.{fmt}_matrix",
        f"{_SP}._{fmt}.{fmt}_array",
        base,
    )


def _is_matrix(obj: object) -> bool:
    return any(
        f"{c.__module__}.{c.__qualname__}" == f"{_SP}._matrix.spmatrix" for c in type(obj).__mro__
    )


def _shape(obj: object, d: dict, allowed_ndim: tuple[int, ...]) -> tuple[int, ...]:
    shape = d.get("_shape")
    if not isinstance(shape, tuple):
        fail(obj, f"_shape is a {type(shape).__name__}, not a tuple")
    if len(shape) not in allowed_ndim:
        fail(
            obj,
            f"_shape = {describe(shape, 80)} has {len(shape)} dimensions, expected {allowed_ndim}",
        )
    return tuple(get_int(obj, f"_shape[{i}]", s, 0, 2**62) for i, s in enumerate(shape))


def _index_array(obj: object, field: str, value: object, ndim: int = 1) -> np.ndarray:
    arr = get_array(obj, field, value, ndim=ndim, kinds="i")
    if arr.dtype.itemsize not in (4, 8):
        fail(obj, f"{field} has dtype {arr.dtype}; sparsetools index arrays are int32 or int64")
    return arr


def _data_array(obj: object, value: object, ndim: int) -> np.ndarray:
    return get_array(obj, "data", value, ndim=ndim, kinds=_DATA_KINDS)


def _check_indptr(obj: object, indptr: np.ndarray, n_major: int, n_stored: int) -> int:
    if indptr.shape[0] != n_major + 1:
        fail(obj, f"indptr has {indptr.shape[0]} entries, expected {n_major + 1} (shape)")
    if int(indptr[0]) != 0:
        fail(obj, f"indptr[0] = {int(indptr[0])}, expected 0")
    steps = np.diff(indptr)
    if steps.size and steps.min() < 0:
        k = int(np.argmax(steps < 0))
        fail(
            obj,
            f"indptr[{k + 1}] = {int(indptr[k + 1])} is smaller than indptr[{k}] = "
            f"{int(indptr[k])} (indptr must be non-decreasing)",
        )
    nnz = int(indptr[-1])
    if nnz > n_stored:
        fail(obj, f"indptr[-1] = {nnz} is larger than the {n_stored} stored indices")
    return nnz


def _row_order(indices: np.ndarray, indptr: np.ndarray) -> tuple[bool, bool]:
    """Return ``(sorted, strictly_sorted)`` of the column indices within each row."""
    nnz = int(indptr[-1])
    if nnz < 2:
        return True, True
    step = np.diff(indices[:nnz])
    drops = np.flatnonzero(step <= 0)  # few: mostly the starts of rows
    if drops.size == 0:
        return True, True
    # a drop between positions p and p + 1 is harmless when p + 1 starts a new row
    starts = indptr[1:-1]  # sorted (checked), as are the drops
    nxt = drops + 1
    at = np.minimum(np.searchsorted(starts, nxt), max(starts.size - 1, 0))
    drops = drops[starts[at] != nxt] if starts.size else drops
    if drops.size == 0:
        return True, True
    return not (step[drops] < 0).any(), False


def _scipy_check_format(obj: object) -> None:
    """Run scipy's ``check_format(full_check=True)`` on a shallow copy of ``obj``."""
    twin = copy.copy(obj)  # __dict__ copied, arrays shared; check_format only rebinds attributes
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            twin.check_format(full_check=True)  # type: ignore[attr-defined]
    except Exception as exc:
        fail(obj, f"scipy check_format(full_check=True) refused it: {exc}")


def _check_flags(obj: object, d: dict, indices: np.ndarray, indptr: np.ndarray) -> None:
    claims = {}
    for flag in ("_has_sorted_indices", "_has_canonical_format"):
        if flag in d:
            value = d[flag]
            if not isinstance(value, bool | np.bool_):
                fail(obj, f"{flag} = {describe(value, 80)} is not a bool")
            claims[flag] = bool(value)
    if not any(claims.values()):
        return
    is_sorted, is_strict = _row_order(indices, indptr)
    if claims.get("_has_sorted_indices") and not is_sorted:
        fail(obj, "_has_sorted_indices is set but the indices are not sorted within rows")
    if claims.get("_has_canonical_format") and not is_strict:
        fail(
            obj,
            "_has_canonical_format is set but the indices are not strictly sorted within rows",
        )


@register(
    *_names("csr", f"{_SP}._compressed._cs_matrix"),
    f"{_SP}._csc.csc_matrix",
    f"{_SP}._csc.csc_array",
)
def validate_compressed(obj: object, limits: Limits) -> None:
    """Validate a CSR or CSC matrix/array.

    Checks (vectorised, then ``scipy.sparse._compressed._cs_matrix.check_format(full_check=True)``
    on a shallow copy): ``data``/``indices``/``indptr`` are 1-D arrays, the index arrays int32 or
    int64, ``data`` numeric; ``len(indptr) == n_major + 1``, ``indptr[0] == 0``, ``indptr``
    non-decreasing, ``indptr[-1] <= len(indices) == len(data)``; every stored index in
    ``[0, n_minor)``; claimed sortedness flags hold.

    Parameters
    ----------
    obj : csr_matrix, csr_array, csc_matrix or csc_array
        The sparse object.
    limits : Limits
        Unused.

    Raises
    ------
    ValidationError
        Naming the array, the position and the bad value.
    """
    d = state(obj)
    is_csc = is_type(obj, f"{_SP}._csc._csc_base")
    shape = _shape(obj, d, (2,) if (_is_matrix(obj) or is_csc) else (1, 2))
    rows, cols = (1, shape[0]) if len(shape) == 1 else shape
    n_major, n_minor = (cols, rows) if is_csc else (rows, cols)
    data = _data_array(obj, d.get("data"), 1)
    indices = _index_array(obj, "indices", d.get("indices"))
    indptr = _index_array(obj, "indptr", d.get("indptr"))
    if indices.shape[0] != data.shape[0]:
        fail(obj, f"indices has {indices.shape[0]} entries but data has {data.shape[0]}")
    _check_indptr(obj, indptr, n_major, indices.shape[0])
    check_range(obj, "indices", indices, 0, n_minor)
    _check_flags(obj, d, indices, indptr)
    _scipy_check_format(obj)


@register(*_names("bsr", f"{_SP}._bsr._bsr_base"))
def validate_bsr(obj: object, limits: Limits) -> None:
    """Validate a BSR matrix/array.

    Checks (vectorised, then ``scipy.sparse._bsr._bsr_base.check_format(full_check=True)`` on a
    shallow copy): ``data`` is 3-D ``(nnzb, R, C)`` with ``R, C >= 1`` dividing the shape;
    ``len(indptr) == M // R + 1``, ``indptr[0] == 0``, non-decreasing, ``indptr[-1] <=
    len(indices) == nnzb``; block column indices in ``[0, N // C)``.

    Parameters
    ----------
    obj : bsr_matrix or bsr_array
        The sparse object.
    limits : Limits
        Unused.

    Raises
    ------
    ValidationError
        Naming the array, the position and the bad value.
    """
    d = state(obj)
    m, n = _shape(obj, d, (2,))
    data = _data_array(obj, d.get("data"), 3)
    r, c = data.shape[1], data.shape[2]
    if r < 1 or c < 1 or m % r or n % c:
        fail(obj, f"blocksize ({r}, {c}) does not divide shape ({m}, {n})")
    indices = _index_array(obj, "indices", d.get("indices"))
    indptr = _index_array(obj, "indptr", d.get("indptr"))
    if indices.shape[0] != data.shape[0]:
        fail(obj, f"indices has {indices.shape[0]} entries but data has {data.shape[0]} blocks")
    _check_indptr(obj, indptr, m // r, indices.shape[0])
    check_range(obj, "indices", indices, 0, n // c)
    _check_flags(obj, d, indices, indptr)
    _scipy_check_format(obj)


@register(*_names("coo", f"{_SP}._coo._coo_base"))
def validate_coo(obj: object, limits: Limits) -> None:
    """Validate a COO matrix/array (n-D for ``coo_array``).

    Follows ``scipy.sparse._coo._coo_base._check``: one 1-D int32/int64 index array per axis in
    ``coords``, each as long as ``data``, each index in ``[0, shape[axis])``.  A claimed
    ``has_canonical_format`` must hold (sorted, no duplicates).

    Parameters
    ----------
    obj : coo_matrix or coo_array
        The sparse object.
    limits : Limits
        Unused.

    Raises
    ------
    ValidationError
        Naming the axis, the position and the bad value.
    """
    d = state(obj)
    shape = _shape(obj, d, (2,) if _is_matrix(obj) else tuple(range(1, 65)))
    data = _data_array(obj, d.get("data"), 1)
    coords = d.get("coords")
    if not isinstance(coords, tuple) or len(coords) != len(shape):
        fail(obj, f"coords must be a tuple of {len(shape)} index arrays (one per axis)")
    arrays = []
    for axis, idx in enumerate(coords):
        idx = _index_array(obj, f"coords[{axis}]", idx)
        if idx.shape[0] != data.shape[0]:
            fail(obj, f"coords[{axis}] has {idx.shape[0]} entries but data has {data.shape[0]}")
        check_range(obj, f"coords[{axis}]", idx, 0, shape[axis])
        arrays.append(idx)
    canonical = d.get("has_canonical_format", False)
    if not isinstance(canonical, bool | np.bool_):
        fail(obj, f"has_canonical_format = {describe(canonical, 80)} is not a bool")
    if canonical and data.shape[0] > 1:
        later = np.zeros(data.shape[0] - 1, dtype=bool)
        equal = np.ones(data.shape[0] - 1, dtype=bool)
        for idx in arrays:
            later |= equal & (idx[1:] > idx[:-1])
            equal &= idx[1:] == idx[:-1]
        if not later.all():
            k = int(np.argmax(~later)) + 1
            fail(obj, f"has_canonical_format is set but entry {k} is not after entry {k - 1}")


@register(*_names("dia", f"{_SP}._dia._dia_base"))
def validate_dia(obj: object, limits: Limits) -> None:
    """Validate a DIA matrix/array.

    Follows the ``scipy.sparse._dia._dia_base`` constructor checks: ``data`` is 2-D with one row
    per diagonal, ``offsets`` a 1-D integer array with as many distinct entries.

    Parameters
    ----------
    obj : dia_matrix or dia_array
        The sparse object.
    limits : Limits
        Unused.

    Raises
    ------
    ValidationError
        Naming the array and its bad shape.
    """
    d = state(obj)
    _shape(obj, d, (2,))
    data = _data_array(obj, d.get("data"), 2)
    offsets = _index_array(obj, "offsets", d.get("offsets"))
    if data.shape[0] != offsets.shape[0]:
        fail(obj, f"data has {data.shape[0]} diagonals but offsets has {offsets.shape[0]}")
    if np.unique(offsets).shape[0] != offsets.shape[0]:
        fail(obj, "offsets contains duplicate values")


def _check_dtype_attr(obj: object, d: dict) -> None:
    dtype = d.get("dtype")
    if not isinstance(dtype, np.dtype) or dtype.kind not in _DATA_KINDS:
        fail(obj, f"dtype = {describe(dtype, 80)} is not a numeric numpy dtype")


@register(*_names("lil", f"{_SP}._lil._lil_base"))
def validate_lil(obj: object, limits: Limits) -> None:
    """Validate a LIL matrix/array.

    scipy has no ``check_format`` for LIL; ``_csparsetools`` (``lil_get1``, ``lil_fancy_get``,
    ``lil_flatten_to_array``) and ``tocsr`` trust the rows.  Checks: ``rows``/``data`` are 1-D
    object arrays with one ``list`` per row; each row's column indices are integers, strictly
    increasing, in ``[0, n_cols)``, with as many values in ``data``.

    Parameters
    ----------
    obj : lil_matrix or lil_array
        The sparse object.
    limits : Limits
        ``max_items`` bounds the total number of stored entries walked.

    Raises
    ------
    ValidationError
        Naming the row and the bad column.
    """
    d = state(obj)
    m, n = _shape(obj, d, (2,))
    _check_dtype_attr(obj, d)
    rows = get_array(obj, "rows", d.get("rows"), ndim=1, kinds="O", shape=(m,))
    data = get_array(obj, "data", d.get("data"), ndim=1, kinds="O", shape=(m,))
    lengths = np.zeros(m, dtype=np.int64)
    for i in range(m):
        row, vals = rows[i], data[i]
        if type(row) is not list or type(vals) is not list:
            fail(obj, f"rows[{i}] and data[{i}] must be lists")
        if len(row) != len(vals):
            fail(obj, f"rows[{i}] has {len(row)} columns but data[{i}] has {len(vals)} values")
        lengths[i] = len(row)
    total = int(lengths.sum())
    limits.check("max_items", total, "entries of a lil sparse matrix")
    cols = as_int_array(obj, "rows", itertools.chain.from_iterable(rows))
    if cols.size == 0:
        return
    pos = np.repeat(np.arange(m), lengths)
    bad = (cols < 0) | (cols >= n)
    if bad.any():
        k = int(np.argmax(bad))
        fail(obj, f"rows[{int(pos[k])}] holds column {int(cols[k])}, outside [0, {n})")
    same = pos[1:] == pos[:-1]
    unsorted = same & (cols[1:] <= cols[:-1])
    if unsorted.any():
        k = int(np.argmax(unsorted))
        fail(obj, f"rows[{int(pos[k])}] is not strictly increasing")


@register(*_names("dok", f"{_SP}._dok._dok_base"))
def validate_dok(obj: object, limits: Limits) -> None:
    """Validate a DOK matrix/array.

    ``tocoo``/``tocsr`` turn the keys into coordinates handed to ``coo_tocsr`` unchecked.
    Checks: ``_dict`` is a dict whose keys are ``(row, col)`` integer tuples (integers for a
    1-D ``dok_array``) inside the shape and whose values are numbers.

    Parameters
    ----------
    obj : dok_matrix or dok_array
        The sparse object.
    limits : Limits
        ``max_items`` bounds the number of keys walked.

    Raises
    ------
    ValidationError
        Naming the bad key or value.
    """
    d = state(obj)
    shape = _shape(obj, d, (2,) if _is_matrix(obj) else (1, 2))
    _check_dtype_attr(obj, d)
    entries = d.get("_dict")
    if type(entries) is not dict:
        fail(obj, f"_dict is a {type(entries).__name__}, not a dict")
    limits.check("max_items", len(entries), "entries of a dok sparse matrix")
    for value in entries.values():
        if not isinstance(value, numbers.Number | np.generic) or isinstance(value, np.void):
            fail(obj, f"holds a value of type {type(value).__name__}, not a number")
    if not entries:
        return
    keys = list(entries)
    if len(shape) == 1:
        flat = as_int_array(obj, "_dict keys", keys)
        check_range(obj, "_dict key", flat, 0, shape[0])
        return
    for key in keys:
        if type(key) is not tuple or len(key) != 2:
            fail(obj, f"_dict key {describe(key, 80)} is not a (row, col) tuple")
    flat = as_int_array(obj, "_dict keys", itertools.chain.from_iterable(keys)).reshape(-1, 2)
    for axis in (0, 1):
        bad = (flat[:, axis] < 0) | (flat[:, axis] >= shape[axis])
        if bad.any():
            k = int(np.argmax(bad))
            fail(obj, f"_dict key {describe(keys[k], 80)} is outside the shape {shape}")
