"""Names of numpy dtypes, from a real ``numpy.dtype`` or from the inert pieces a pickle holds.

A pickled dtype is ``numpy.dtype(code, align, copy)`` with a ``BUILD`` state
``(version, endian, subarray, names, fields, elsize, alignment, flags[, metadata])`` (numpy's
``arraydescr_reduce``).  :func:`label_from_code` names it from those strings and ints alone —
nothing is built — in the same spelling :func:`label_of` gives a real dtype, so a model's
arrays read the same whatever file they came from: ``float64``, ``int64``, ``bool``, ``U5``,
``S3``, ``object``, ``datetime64[s]``, ``struct[left_child, right_child, ...]``, with ``>`` in
front of big-endian numeric types.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

__all__ = ["label_of", "label_from_code", "decode_scalar", "NUMERIC_KINDS"]

_CODE = re.compile(r"^([biufcOUSVMm?])(\d{0,6})$")
_BITS = {"f": "float", "i": "int", "u": "uint", "c": "complex"}
#: Kinds whose scalars :func:`decode_scalar` shows.
NUMERIC_KINDS = frozenset("biufc")
_MAX_NAMES = 6


def _struct(names: Any) -> str:
    shown = [str(n)[:40] for n in list(names)[:_MAX_NAMES]]
    more = ", …" if len(names) > _MAX_NAMES else ""
    return f"struct[{', '.join(shown)}{more}]"


def _label(kind: str, size: int, endian: str, names: Any = None, unit: str | None = None) -> str:
    if names:
        return _struct(names)
    prefix = ">" if endian == ">" else ""
    if kind in _BITS:
        return f"{prefix}{_BITS[kind]}{size * 8}"
    if kind in ("b", "?"):
        return "bool"
    if kind == "O":
        return "object"
    if kind in ("M", "m"):
        base = "datetime64" if kind == "M" else "timedelta64"
        return f"{base}[{unit}]" if unit else base
    return f"{kind}{size}"  # U (characters), S and V (bytes)


def label_of(dtype: np.dtype) -> str:
    """Name of a real dtype (``float64``, ``U5``, ``struct[a, b]`` ...)."""
    unit = None
    if dtype.kind in "Mm":
        unit = np.datetime_data(dtype)[0]
        unit = None if unit == "generic" else unit
    size = dtype.itemsize // 4 if dtype.kind == "U" else dtype.itemsize
    if dtype.subdtype is not None:
        base, shape = dtype.subdtype
        return f"{label_of(base)}{list(shape)}"
    return _label(dtype.kind, size, dtype.byteorder, dtype.names, unit)


def label_from_code(code: Any, state: Any) -> str | None:
    """Name of a pickled dtype from its constructor code (``'f8'``, ``'U5'``, ``'V16'``) and its
    ``BUILD`` state (or None when there is none); None when the pieces are not a dtype's."""
    if isinstance(code, bytes):
        code = code.decode("latin-1")
    if type(code) is not str:
        return None
    match = _CODE.match(code)
    if match is None:
        return None
    kind, digits = match.group(1), match.group(2)
    size = int(digits) if digits else 0
    endian, names, unit = "|", None, None
    if type(state) is tuple and len(state) >= 8:
        if type(state[1]) is str:
            endian = state[1]
        if type(state[3]) is tuple and all(type(n) is str for n in state[3]):
            names = state[3]
        if len(state) == 9 and type(state[8]) is tuple and len(state[8]) == 2:
            info = state[8][1]
            if type(info) is tuple and info and type(info[0]) in (bytes, str):
                raw = info[0]
                unit = (raw.decode("latin-1") if type(raw) is bytes else raw)[:10]
                unit = None if unit == "generic" else unit
    return _label(kind, size, endian, names, unit)


def decode_scalar(label: str, raw: Any) -> str | None:
    """``repr`` of a numeric scalar from its raw bytes, or None when it is not one we decode.

    Only the numeric dtypes named by :func:`label_from_code` are decoded, with a dtype built
    here from that label (never from the file's objects).
    """
    if not isinstance(raw, (bytes, bytearray)) or len(raw) > 16:
        return None
    big = label.startswith(">")
    name = label.lstrip(">")
    if name != "bool" and not re.fullmatch(r"(float|int|uint|complex)\d{1,3}", name):
        return None
    try:
        dtype = np.dtype(name).newbyteorder(">" if big else "<")
        if dtype.itemsize != len(raw) or dtype.kind not in NUMERIC_KINDS:
            return None
        value = np.frombuffer(bytes(raw), dtype=dtype)[0].item()
    except (TypeError, ValueError):
        return None
    return repr(value)
