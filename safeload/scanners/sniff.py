"""Which files of a directory are model files, judged by their content.

Used when a directory is scanned: every file named explicitly is always scanned (an unknown
format is then unsafe), but a directory holds source code, text and data too, and a text file
whose first byte happens to be a protocol-0 opcode must not be reported as a broken pickle.  A
file is a model file when its content is a zip archive, an ``.npy`` array, a joblib ``ZF`` file,
a pickle with a ``PROTO`` opcode (every protocol 2+ pickle), a compressed stream whose first
decompressed bytes are such a pickle, or — for files without ``PROTO`` (protocols 0 and 1,
at most :data:`MAX_PROBE` bytes) — a complete, valid pickle opcode stream.
"""

from __future__ import annotations

import os

from ..errors import FormatError, SafeloadError
from ..limits import DEFAULT_LIMITS, Limits
from ..readers import detect_format
from ..readers.compression import detect_compressor, open_decompressed
from ..readers.opscan import scan_opcodes

__all__ = ["is_model_file", "MAX_PROBE"]

#: Files without a PROTO opcode larger than this are not probed (not model files).
MAX_PROBE = 64 << 20


def _pickle_head(head: bytes) -> bool:
    return len(head) >= 2 and head[0] == 0x80 and head[1] <= 5


def is_model_file(path: str, limits: Limits = DEFAULT_LIMITS) -> bool:
    """True when the content of ``path`` is a format :func:`safeload.scan` inspects.

    Parameters
    ----------
    path : str
    limits : Limits

    Returns
    -------
    bool
        False for unreadable files too (they are reported when named explicitly).
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
            if not head:
                return False
            try:
                kind = detect_format(head)
            except FormatError:
                kind = None
            if kind in ("zip", "npy", "joblib-zfile") or _pickle_head(head):
                return True
            comp = detect_compressor(head)
            if comp is not None:
                fh.seek(0)
                try:
                    inner = open_decompressed(fh, comp, limits).read(2)
                except Exception:  # noqa: BLE001 - not a stream we read
                    return False
                return _pickle_head(inner) or (len(inner) >= 1 and detect_format(inner) == "pickle")
            size = os.fstat(fh.fileno()).st_size
            if size > MAX_PROBE:
                return False
            fh.seek(0)
            data = fh.read()
    except (OSError, FormatError):
        return False
    try:
        scan_opcodes(data, limits)
    except SafeloadError:
        return False
    return True
