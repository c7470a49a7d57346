"""``.npy`` headers: object dtypes, declared sizes, malformed headers.

The header is parsed by numpy's own ``read_magic``/``read_array_header_*`` (a Python literal read
with ``ast.literal_eval``, at most 10,000 bytes); nothing else is read for numeric arrays.  An
object dtype — or a structured dtype with an object field (``dtype.hasobject``) — means the body
is a pickle that ``numpy.load(allow_pickle=True)`` would run: that is a finding, and the body is
then scanned as a pickle stream so its globals are reported too.
"""

from __future__ import annotations

import math
from typing import IO

from numpy.lib import format as npformat

from .._text import describe
from .collector import Collector, describe_location
from .stream import scan_pickle

__all__ = ["scan_npy", "MAX_OBJECT_BODY"]

#: Largest object-array body scanned for its globals (larger ones are reported unscanned).
MAX_OBJECT_BODY = 1 << 28


def scan_npy(
    fh: IO[bytes], size: int | None, col: Collector, *, location: str | None = None
) -> str:
    """Check one ``.npy`` array given as a binary file positioned at its start.

    Parameters
    ----------
    fh : binary file
        Positioned at the magic string; only the header is read (and the body of an object
        array).
    size : int or None
        Total bytes of the array file, to compare with the header's declared size.
    col : Collector
    location : str, optional

    Returns
    -------
    str
        ``"npy"``.
    """
    try:
        version = npformat.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = npformat.read_array_header_1_0(fh)
        elif version in ((2, 0), (3, 0)):
            shape, _, dtype = npformat.read_array_header_2_0(fh)
        else:
            raise ValueError(f"unsupported .npy version {version[0]}.{version[1]}")
        header_end = fh.tell()
    except Exception as exc:  # noqa: BLE001 - numpy raises ValueError/SyntaxError/...
        col.add("npy-malformed", f"malformed .npy header: {type(exc).__name__}: {exc}"[:500],
                offset=0, location=location)  # fmt: skip
        return "npy"
    body = None if size is None else size - header_end
    if dtype.hasobject:
        col.add(
            "npy-object-dtype",
            f".npy with dtype {describe(dtype, 200)} holds Python objects: its body is a pickle "
            "that numpy.load(allow_pickle=True) runs (numpy CVE-2019-6446)",
            offset=0,
            location=location,
        )
        _scan_object_body(fh, body, col, location)
        return "npy"
    count = math.prod(shape)
    nbytes = count * dtype.itemsize
    limit = col.limits.max_array_bytes
    if nbytes > limit:
        col.add(
            "limit-exceeded",
            f"limit max_array_bytes exceeded (.npy of shape {describe(shape)}): the file needs "
            f"{nbytes:,}, the limit is {limit:,}",
            offset=0,
            location=location,
        )
    if body is not None and body < nbytes:
        col.add(
            "npy-malformed",
            f".npy header declares {nbytes:,} data bytes (shape {describe(shape)}, "
            f"dtype {describe(dtype, 60)}), {body:,} present",
            offset=header_end,
            location=location,
        )
    return "npy"


def _scan_object_body(
    fh: IO[bytes], body: int | None, col: Collector, location: str | None
) -> None:
    where = describe_location(location, "npy object body")
    cap = min(MAX_OBJECT_BODY, col.limits.max_decompressed_bytes)
    data = fh.read(cap + 1)
    if len(data) > cap:
        col.add("object-array-stream",
                f"object-array body larger than {cap:,} bytes: its globals were not listed",
                location=where)  # fmt: skip
        return
    if not data:
        return
    col.add("object-array-stream", "the .npy object body is a pickle stream; its globals are "
            "listed with the file's", location=where)  # fmt: skip
    scan_pickle(data, col, location=where)
