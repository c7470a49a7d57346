"""Readers: bytes of one format → inert object graph (nothing imported, nothing called).

:func:`read_source` detects the format from the content — never from the file name — and
dispatches to the reader registered for it.
"""

from __future__ import annotations

import os

from ..errors import FormatError
from ..limits import Limits
from ..source import Source
from .compression import BoundedReader, detect_compressor, open_decompressed
from .joblib_reader import JOBLIB_MODULES, parse_joblib
from .npy import NPY_MAGIC
from .payloads import PayloadSource
from .pickle_reader import ParsedStream, parse_pickle

__all__ = ["read_source", "ParsedStream", "detect_format", "zip_reader_for"]

_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
#: Opcodes a pickle stream can start with (PROTO, or the first value of a protocol 0/1 stream).
_FIRST_OPCODES = frozenset(b"\x80(c]})NIJKMLFGSTUVXiP\x88\x89\x8a\x8b")


def detect_format(head: bytes) -> str:
    """Name the container format from the first bytes.

    Returns one of ``"pickle"``, ``"zip"``, ``"npy"``, ``"joblib-zfile"`` or a compressor name
    (``"zlib"``, ``"gzip"``, ``"bz2"``, ``"xz"``, ``"lzma"``, ``"lz4"``).

    Raises
    ------
    FormatError
        When the bytes match no known format.
    """
    if not head:
        raise FormatError("empty input")
    if head.startswith(_ZIP_MAGICS):
        return "zip"
    if head.startswith(NPY_MAGIC):
        return "npy"
    if head.startswith(b"ZF0x"):
        return "joblib-zfile"
    comp = detect_compressor(head)
    if comp is not None:
        return comp.name
    if head[0] in _FIRST_OPCODES:
        # protocol 2+ starts with PROTO (0x80); protocols 0-1 start with the opcode of the
        # first value: a MARK, a global, an empty container or a literal
        return "pickle"
    raise FormatError(f"unknown file format (starts with {head[:8]!r})")


def zip_reader_for(src: Source):
    """The loader for a zip-based model file, or None when ``src`` is not a zip archive.

    Returns ``load_archive`` for safe-format files (first member ``arrays/000000.npy`` or
    ``graph.json``, ``FORMAT.md`` §2.1) and the skops loader for ``.skops`` archives (a
    ``schema.json`` member); other zip archives are left to :func:`read_source`, which refuses
    them.  Imports lazily: the format package depends on the build stage.
    """
    head = src.head(64)
    if not head.startswith(b"PK\x03\x04"):
        return None
    from ..format.archive import is_safe_archive, load_archive

    if is_safe_archive(head):
        return load_archive
    from .skops_reader import is_skops_archive, load_skops

    if is_skops_archive(src):
        return load_skops
    return None


def read_source(src: Source, limits: Limits, *, defer_payloads: bool = False) -> ParsedStream:
    """Parse ``src`` into an inert graph with the reader its content calls for.

    Parameters
    ----------
    src : Source
    limits : Limits
    defer_payloads : bool
        Leave the large payloads of framed pickles in ``src`` for the builder to read
        (:mod:`safeload.readers.payloads`); ``src`` must then stay open until the graph is
        built.  Off for the scanner and the inspector, which build nothing.

    Raises
    ------
    FormatError
        Unknown or foreign format (zip archives that are not model files, bare ``.npy``),
        corrupt or truncated data.
    LimitExceededError
    """
    fmt = detect_format(src.head(16))
    dirname = os.path.dirname(os.path.abspath(src.path)) if src.path else None
    if fmt == "pickle":
        payloads = None
        if defer_payloads:
            payloads = PayloadSource(src.data if src.file is None else None, src.file)
        parsed = parse_pickle(src.data, limits, file=src.file, payloads=payloads)
        if parsed.info is not None and parsed.info.joblib:
            stream = BoundedReader(src.stream(), limits.max_file_bytes, "max_file_bytes")
            parsed = parse_joblib(stream, limits, dirname=dirname, fmt="joblib")
        return parsed
    if fmt == "zip":
        raise FormatError(
            "zip archive: not a pickle or joblib file (safeload does not unpickle members of "
            "zip archives)"
        )
    if fmt == "npy":
        raise FormatError("a bare .npy array, not a model file")
    if fmt == "joblib-zfile":
        raise FormatError("joblib < 0.10 compressed 'ZF' files are not supported")
    comp = detect_compressor(src.head(16))
    stream = open_decompressed(src.stream(), comp, limits)
    parsed = parse_joblib(stream, limits, dirname=dirname, fmt=fmt)
    is_joblib = any(module in JOBLIB_MODULES for module, _ in parsed.context.globals)
    parsed.format = f"joblib+{fmt}" if is_joblib else f"pickle+{fmt}"
    return parsed
