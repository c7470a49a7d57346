"""Reading ``.npy`` data without ever unpickling: numeric and structured dtypes only.

Follows the NPY format specification (``numpy.lib.format``): magic ``\\x93NUMPY``, version,
header length, a Python-literal header dict parsed by numpy's own ``read_array_header_*``
(``ast.literal_eval``-based, never ``eval``), then raw data.  Object dtypes — including
structured dtypes with an object field (``dtype.hasobject``) — are refused, because their body
is a pickle.  The declared size is checked against the bytes present *before* allocating
(numpy preallocates for non-file objects).
"""

from __future__ import annotations

import math
import os
from typing import IO

import numpy as np
from numpy.lib import format as npformat

from ..errors import FormatError
from ..limits import Limits

__all__ = ["read_npy_header", "read_npy_file", "NPY_MAGIC"]

NPY_MAGIC = b"\x93NUMPY"


def read_npy_header(fh: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Read magic and header; return ``(shape, fortran_order, dtype)``.

    Raises
    ------
    FormatError
        Bad magic, unsupported version, malformed header, or an object dtype.
    """
    try:
        major, minor = npformat.read_magic(fh)
        if (major, minor) == (1, 0):
            shape, fortran, dtype = npformat.read_array_header_1_0(fh)
        elif (major, minor) in ((2, 0), (3, 0)):
            shape, fortran, dtype = npformat.read_array_header_2_0(fh)
        else:
            raise FormatError(f"unsupported .npy version {major}.{minor}")
    except FormatError:
        raise
    except Exception as exc:  # noqa: BLE001 - numpy raises ValueError/SyntaxError/...
        raise FormatError(f"malformed .npy header: {type(exc).__name__}: {exc}") from exc
    if dtype.hasobject:
        raise FormatError(
            f".npy with dtype {dtype!r} holds Python objects (its body is a pickle); refused "
            "(numpy CVE-2019-6446)"
        )
    return tuple(shape), bool(fortran), dtype


def read_npy_file(path: str, limits: Limits) -> np.ndarray:
    """Read a numeric ``.npy`` file into memory with ``allow_pickle`` semantics off.

    Parameters
    ----------
    path : str
    limits : Limits
        ``max_array_bytes`` is enforced before allocation.

    Returns
    -------
    numpy.ndarray

    Raises
    ------
    FormatError
        Malformed header, object dtype, or fewer data bytes than the header declares.
    LimitExceededError
    """
    with open(path, "rb") as fh:
        shape, fortran, dtype = read_npy_header(fh)
        count = math.prod(shape)
        nbytes = count * dtype.itemsize
        limits.check("max_array_bytes", nbytes, f"array in {os.path.basename(path)}")
        remaining = os.fstat(fh.fileno()).st_size - fh.tell()
        if remaining < nbytes:
            raise FormatError(
                f"{os.path.basename(path)}: header declares {nbytes} data bytes, {remaining} present"
            )
        array = np.empty(count, dtype=dtype)
        if nbytes and fh.readinto(memoryview(array).cast("B")) != nbytes:
            raise FormatError(f"{os.path.basename(path)}: short read")
    if fortran:
        return array.reshape(shape[::-1]).transpose()
    return array.reshape(shape)
