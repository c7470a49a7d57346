"""Compressor registry (by magic bytes, never by file name) and a bounded reader.

Follows joblib's ``compressor.py``: each compressor is recognised by the first bytes of the file
(zlib ``78 01|5e|9c|da``, gzip ``1f 8b``, bz2 ``BZh``, xz ``fd 37 7a 58 5a 00``, lzma
FORMAT_ALONE ``5d 00 00``, lz4 frame ``04 22 4d 18``).  Every decompressed stream is wrapped in
:class:`BoundedReader`, which refuses to produce more than ``Limits.max_decompressed_bytes``,
so a decompression bomb stops after the limit instead of filling memory.
"""

from __future__ import annotations

import bz2
import functools
import gzip
import io
import lzma
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from ..errors import FormatError, LimitExceededError
from ..limits import Limits

__all__ = ["Compressor", "COMPRESSORS", "detect_compressor", "BoundedReader", "open_decompressed"]

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Compressor:
    """One registered compressor: ``name``, ``magic`` test and a ``open(raw) -> stream``."""

    name: str
    matches: Callable[[bytes], bool]
    open: Callable[[IO[bytes]], IO[bytes]]


class _ZlibStream(io.RawIOBase):
    """A raw zlib stream (joblib's ``BinaryZlibFile``) as a readable file."""

    def __init__(self, raw: IO[bytes]):
        self._raw = raw
        self._d = zlib.decompressobj()
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = len(b)
        while not self._buf:
            if self._d.eof:
                return 0
            data = self._d.unconsumed_tail or self._raw.read(_CHUNK)
            if not data:
                raise FormatError("truncated zlib stream (no end-of-stream marker)")
            try:
                self._buf = self._d.decompress(data, _CHUNK)
            except zlib.error as exc:
                raise FormatError(f"corrupt zlib stream: {exc}") from exc
        out = self._buf[:n]
        self._buf = self._buf[n:]
        b[: len(out)] = out
        return len(out)


def _lz4_open(raw: IO[bytes]) -> IO[bytes]:
    try:
        import lz4.frame
    except ImportError as exc:  # pragma: no cover - optional dependency
        raise FormatError("the file is lz4-compressed; install lz4 to read it") from exc
    return lz4.frame.LZ4FrameFile(raw, "rb")


COMPRESSORS: tuple[Compressor, ...] = (
    Compressor(
        "zlib",
        lambda h: h[:1] == b"\x78" and h[1:2] in (b"\x01", b"\x5e", b"\x9c", b"\xda"),
        lambda raw: io.BufferedReader(_ZlibStream(raw), _CHUNK),
    ),
    Compressor(
        "gzip", lambda h: h[:2] == b"\x1f\x8b", lambda raw: gzip.GzipFile(fileobj=raw, mode="rb")
    ),
    Compressor("bz2", lambda h: h[:3] == b"BZh", lambda raw: bz2.BZ2File(raw, "rb")),
    Compressor(
        "xz",
        lambda h: h[:6] == b"\xfd7zXZ\x00",
        functools.partial(lzma.LZMAFile, mode="rb", format=lzma.FORMAT_XZ),
    ),
    Compressor(
        "lzma",
        lambda h: h[:3] == b"\x5d\x00\x00",
        functools.partial(lzma.LZMAFile, mode="rb", format=lzma.FORMAT_ALONE),
    ),
    Compressor("lz4", lambda h: h[:4] == b"\x04\x22\x4d\x18", _lz4_open),
)


def detect_compressor(head: bytes) -> Compressor | None:
    """Return the compressor whose magic bytes start ``head``, or None."""
    for comp in COMPRESSORS:
        if comp.matches(head):
            return comp
    return None


class BoundedReader:
    """File-like reader that never yields more than ``limit`` bytes in total.

    Implements the subset the pure-Python unpickler uses (``read``, ``readline``,
    ``readinto``, ``peek``).  ``read(n)`` with a huge ``n`` (a ``BINBYTES8`` length) reads in
    chunks, so memory grows only with the bytes really present.

    Raises
    ------
    LimitExceededError
        Once more than ``limit`` bytes were produced (``max_decompressed_bytes``).
    FormatError
        When the underlying decompressor reports corrupt data.
    """

    def __init__(self, raw: IO[bytes], limit: int, limit_name: str = "max_decompressed_bytes"):
        self._raw = raw
        self._limit = limit
        self._limit_name = limit_name
        self.consumed = 0

    def _account(self, n: int) -> None:
        self.consumed += n
        if self.consumed > self._limit:
            raise LimitExceededError(
                self._limit_name, self.consumed, self._limit, "decompressed stream size"
            )

    def _wrap(self, fn, *args):
        try:
            return fn(*args)
        except (FormatError, LimitExceededError):
            raise
        except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError) as exc:
            raise FormatError(f"corrupt compressed stream: {type(exc).__name__}: {exc}") from exc

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self._limit - self.consumed + 1
        if n <= _CHUNK:
            out = self._wrap(self._raw.read, n)
            self._account(len(out))
            return out
        parts = []
        remaining = n
        while remaining > 0:
            chunk = self._wrap(self._raw.read, min(remaining, _CHUNK))
            if not chunk:
                break
            self._account(len(chunk))
            parts.append(chunk)
            remaining -= len(chunk)
        return b"".join(parts)

    def readinto(self, b) -> int:
        view = memoryview(b).cast("B")
        raw_readinto = getattr(self._raw, "readinto", None)
        total = 0
        while total < len(view):
            want = min(len(view) - total, 64 * _CHUNK)
            if raw_readinto is not None:  # straight into the array: no intermediate bytes
                got = self._wrap(raw_readinto, view[total : total + want])
                if not got:
                    break
                self._account(got)
            else:
                chunk = self.read(want)
                got = len(chunk)
                if not got:
                    break
                view[total : total + got] = chunk
            total += got
        return total

    def readline(self, size: int = -1) -> bytes:
        budget = self._limit - self.consumed + 1
        limit = budget if size is None or size < 0 else min(size, budget)
        out = self._wrap(self._raw.readline, limit)
        self._account(len(out))
        return out

    def peek(self, n: int = 0) -> bytes:  # pragma: no cover - used by some callers
        peek = getattr(self._raw, "peek", None)
        return peek(n) if peek is not None else b""


def open_decompressed(
    raw: IO[bytes], compressor: Compressor | None, limits: Limits
) -> BoundedReader:
    """Wrap ``raw`` (positioned at the start) in its decompressor and a :class:`BoundedReader`."""
    stream = compressor.open(raw) if compressor is not None else raw
    limit = limits.max_decompressed_bytes if compressor is not None else limits.max_file_bytes
    return BoundedReader(stream, limit)
