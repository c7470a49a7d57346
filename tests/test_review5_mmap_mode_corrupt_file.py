"""Review 5 (found by the mutation fuzzer): with ``mmap_mode="r"``, a corrupted safe file raises
``ValueError``, not a ``SafeloadError``.

``safeload.load(path, mmap_mode="r")`` decides "wrong argument" from the *file's content*: a
safe file with one flipped byte in its zip signature is sniffed as no known format and
``api.load`` raises ``ValueError("mmap_mode applies to safe-format files only")``.  Without
``mmap_mode`` the same file gives ``FormatError("unknown file format ...")``.  The README: "Every
error a file causes is a ``safeload.SafeloadError``" — a server that loads uploads with
``mmap_mode="r"`` and catches ``SafeloadError`` lets this one escape.  (Not from today's
changes: ``api.py`` is unchanged since 1ccee41.)

Expected: a ``FormatError`` (the file is not a readable safe file), as without ``mmap_mode``.
"""

from __future__ import annotations

import numpy as np
import pytest

import safeload
from safeload.errors import FormatError


def test_corrupt_signature_under_mmap_mode_is_a_format_error(tmp_path) -> None:
    data = bytearray(safeload.dumps([np.arange(3)]))
    assert data[:4] == b"PK\x03\x04"
    data[0] ^= 1  # one flipped bit: no longer sniffed as a zip
    path = tmp_path / "model.safeload"
    path.write_bytes(bytes(data))
    with pytest.raises(FormatError):
        safeload.load(path)  # holds today
    with pytest.raises(FormatError):
        safeload.load(path, mmap_mode="r")  # ValueError today
