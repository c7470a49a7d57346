"""``.npy`` members of the safe format: canonical headers, dtype descriptions, array reads.

A member's header must be byte for byte the canonical header for the dtype, order and shape the
graph declares (see ``FORMAT.md`` §N), so there is one way to write each array and the loader
never parses a header dictionary (numpy's own reader uses ``ast.literal_eval``).  The bytes
follow the NPY format specification (``numpy.lib.format``, versions 1.0 and 2.0): magic
``\\x93NUMPY``, version, little-endian header length, a Python-literal dict padded with spaces to
a multiple of 64 bytes and ended by ``\\n``, then the raw data.  Every member therefore stays
readable by ``numpy.load(path, allow_pickle=False)``.
"""

from __future__ import annotations

import functools
import math
import struct
from typing import Any

import numpy as np
from numpy.lib import format as npformat

from ..errors import FormatError

__all__ = [
    "header_bytes",
    "descr_to_json",
    "dtype_from_json",
    "check_array_dtype",
]

_MAGIC = b"\x93NUMPY"
_ALIGN = 64


def descr_to_json(dtype: np.dtype) -> Any:
    """numpy's array-protocol description of ``dtype`` as JSON (tuples become lists).

    Follows ``numpy.lib.format.dtype_to_descr``: a string for simple dtypes
    (``"<f8"``), a list of ``[name, descr]`` / ``[name, descr, shape]`` fields for structured
    ones, ``["", "|V7"]`` for padding.

    Raises
    ------
    ValueError
        Object dtypes, dtypes with metadata, and overlapping fields (not representable).
    """
    if dtype.hasobject:
        raise ValueError("object dtypes are not stored as .npy members")
    if dtype.metadata:
        raise ValueError("dtypes with metadata are not supported")
    if dtype.subdtype is not None:
        raise ValueError("subarray dtypes (a dtype with its own shape) are not supported")
    descr = npformat.dtype_to_descr(dtype)
    if isinstance(descr, str) and dtype.names is not None:
        raise ValueError("structured dtypes with overlapping fields are not supported")
    return _to_json(descr)


def _to_json(descr: Any) -> Any:
    if isinstance(descr, str):
        return descr
    out = []
    for field in descr:
        name = field[0]
        item = [list(name) if isinstance(name, tuple) else name, _to_json(field[1])]
        if len(field) == 3:
            item.append(list(field[2]))
        out.append(item)
    return out


def _from_json(value: Any, depth: int) -> Any:
    if depth > 32:
        raise FormatError("safe format rule G7: dtype description nested too deeply")
    if type(value) is str:
        if len(value) > 64:
            raise FormatError("safe format rule G7: dtype string too long")
        return value
    if type(value) is not list:
        raise FormatError("safe format rule G7: a dtype is a string or a field list")
    fields = []
    for field in value:
        if type(field) is not list or len(field) not in (2, 3):
            raise FormatError("safe format rule G7: a dtype field is [name, dtype(, shape)]")
        name = field[0]
        if type(name) is list:
            if len(name) != 2 or not all(type(x) is str for x in name):
                raise FormatError("safe format rule G7: a titled field name is [title, name]")
            name = tuple(name)
        elif type(name) is not str:
            raise FormatError("safe format rule G7: a field name is a string")
        item: tuple = (name, _from_json(field[1], depth + 1))
        if len(field) == 3:
            shape = field[2]
            if type(shape) is not list or not all(type(n) is int and 0 <= n < 2**31 for n in shape):
                raise FormatError("safe format rule G7: a field shape is a list of small ints")
            item += (tuple(shape),)
        fields.append(item)
    return fields


@functools.lru_cache(maxsize=4096)
def _dtype_cached(key: str, descr: Any) -> np.dtype:
    try:
        return npformat.descr_to_dtype(descr)
    except Exception as exc:  # noqa: BLE001 - numpy rejected the description
        raise FormatError(f"safe format rule G7: bad dtype {key[:80]}: {exc}") from None


def dtype_from_json(value: Any) -> np.dtype:
    """The dtype a JSON description names (inverse of :func:`descr_to_json`).

    Raises
    ------
    FormatError
        Malformed description, or one numpy refuses (rule G7).
    """
    if type(value) is str:
        return _dtype_cached(value, value)
    descr = _from_json(value, 0)
    return _dtype_cached(repr(descr), _Hashable(descr))


class _Hashable(list):
    """A field list usable as an ``lru_cache`` argument (hash of its repr)."""

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(repr(self))


def check_array_dtype(dtype: np.dtype) -> None:
    """Refuse dtypes that may not be stored in a ``.npy`` member (rule A2).

    Raises
    ------
    FormatError
        Object dtypes (anywhere in a structured dtype) and zero-size structured items that
        numpy cannot index.
    """
    if dtype.hasobject:
        raise FormatError("safe format rule A2: .npy members may not hold object dtypes")
    if dtype.itemsize == 0:
        raise FormatError(
            "safe format rule A2: .npy members may not have a zero-size dtype (numpy would "
            "reinterpret it)"
        )


def _header_dict(descr_repr: str, fortran: bool, shape: tuple[int, ...]) -> str:
    shape_repr = repr(shape)
    return f"{{'descr': {descr_repr}, 'fortran_order': {fortran!r}, 'shape': {shape_repr}, }}"


@functools.lru_cache(maxsize=8192)
def _header_cached(descr_repr: str, fortran: bool, shape: tuple[int, ...]) -> bytes:
    text = _header_dict(descr_repr, fortran, shape)
    # NPY 1.0 (2-byte length), 2.0 when longer (both latin-1), 3.0 (UTF-8) when a field name
    # is not latin-1, as numpy.lib.format writes them
    if descr_repr.isascii() or _latin1(descr_repr):
        versions: tuple = ((1, 0), (2, 0))
        body = text.encode("latin1")
    else:
        versions = ((3, 0),)
        body = text.encode("utf-8")
    for version in versions:
        fmt = "<H" if version == (1, 0) else "<I"
        prefix = len(_MAGIC) + 2 + struct.calcsize(fmt)
        total = prefix + len(body) + 1
        pad = (-total) % _ALIGN
        hlen = len(body) + pad + 1
        if version == (1, 0) and hlen > 0xFFFF:
            continue
        return _MAGIC + bytes(version) + struct.pack(fmt, hlen) + body + b" " * pad + b"\n"
    raise FormatError("safe format rule A2: .npy header too long")  # pragma: no cover


def _latin1(text: str) -> bool:
    try:
        text.encode("latin1")
    except UnicodeEncodeError:
        return False
    return True


def header_bytes(dtype: np.dtype, fortran: bool, shape: tuple[int, ...]) -> bytes:
    """The canonical ``.npy`` header (NPY format 1.0, or 2.0 when it needs more than 64 KiB).

    Parameters
    ----------
    dtype : numpy.dtype
        Not an object dtype.
    fortran : bool
        True for arrays written in Fortran (column-major) order.
    shape : tuple of int

    Returns
    -------
    bytes
        A multiple of 64 bytes long, ending in ``\\n``.
    """
    descr = npformat.dtype_to_descr(dtype)
    return _header_cached(repr(descr), bool(fortran), tuple(shape))


def header_for(descr_repr: str, fortran: bool, shape: tuple[int, ...]) -> bytes:
    """:func:`header_bytes` from the repr of numpy's descr (cached; the loader's fast path)."""
    return _header_cached(descr_repr, fortran, shape)


def nbytes_of(dtype: np.dtype, shape: tuple[int, ...]) -> int:
    """``prod(shape) * itemsize`` with Python ints (no overflow), in bytes."""
    return math.prod(shape) * dtype.itemsize
