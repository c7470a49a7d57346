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
#: Compressed input handed to a decompressor at a time when it does not report what it left
#: unconsumed (bz2, lzma, xz, lz4): :meth:`_DecompressedStream.compressed_used` is then exact
#: to within this many bytes.
_INPUT_PIECE = 8 << 10


@dataclass(frozen=True)
class Compressor:
    """One registered compressor: ``name``, ``magic`` test and a ``open(raw) -> stream``."""

    name: str
    matches: Callable[[bytes], bool]
    open: Callable[[IO[bytes]], IO[bytes]]


class _DecompressedStream(io.RawIOBase):
    """One compressed stream, decompressed incrementally, as a readable raw file.

    Works with the stdlib decompressor objects (``zlib.decompressobj`` — also gzip with
    ``wbits=31`` —, ``bz2.BZ2Decompressor``, ``lzma.LZMADecompressor``) and lz4's
    ``LZ4FrameDecompressor``.  Output is produced in chunks of at most 1 MiB.  When the stream
    ends, anything after it is refused — a compressed pickle followed by a zip is a polyglot,
    exactly like a raw one (catalogue F08) — except, for gzip, further members (RFC 1952).
    :meth:`compressed_used` tells how many compressed bytes produced the output so far (the
    joblib reader bounds the opcodes of a stream by it: a compression bomb of cheap opcodes).

    Raises
    ------
    FormatError
        Corrupt or truncated data, or trailing bytes after the end of the stream.
    """

    def __init__(self, raw: IO[bytes], make_decompressor, name: str, multi_member: bool):
        self._raw = raw
        self._make = make_decompressor
        self._d = make_decompressor()
        self._name = name
        self._multi_member = multi_member
        self._zlib_like = hasattr(self._d, "unconsumed_tail")
        self._pending = b""  # input read past the end of the previous gzip member
        self._buf = b""
        self._piece = _CHUNK if self._zlib_like else _INPUT_PIECE
        self._fed = 0  # compressed bytes read from ``raw`` so far

    def compressed_used(self) -> int:
        """Compressed bytes read and consumed by the decompressor so far.

        Exact for zlib and gzip (``unconsumed_tail``); for the other decompressors, which
        buffer their input, at most ``_INPUT_PIECE`` bytes more than consumed.
        """
        left = len(self._pending)
        d = self._d
        left += len(getattr(d, "unconsumed_tail", b"") or b"")
        left += len(getattr(d, "unused_data", b"") or b"")
        return max(0, self._fed - left)

    def readable(self) -> bool:
        return True

    def _input(self) -> bytes:
        if self._pending:
            data, self._pending = self._pending, b""
            return data
        data = self._raw.read(self._piece)
        self._fed += len(data)
        return data

    def _more(self) -> bytes:
        d = self._d
        if self._zlib_like:
            data = d.unconsumed_tail or self._input()
            needs_input = True
        else:
            needs_input = d.needs_input
            data = self._input() if needs_input else b""
        if not data and needs_input:
            raise FormatError(f"truncated {self._name} stream (no end-of-stream marker)")
        try:
            return d.decompress(data, _CHUNK)
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - zlib.error, OSError, EOFError, RuntimeError
            raise FormatError(f"corrupt {self._name} stream: {exc}") from exc

    def _at_end(self) -> bool:
        """True at the real end of the data; starts the next gzip member otherwise."""
        tail = (self._d.unused_data or b"") + self._pending
        self._pending = b""
        if len(tail) < 2:
            more = self._raw.read(2 - len(tail))
            self._fed += len(more)
            tail += more
        if not tail:
            return True
        if self._multi_member and tail[:2] == b"\x1f\x8b":
            self._d = self._make()
            self._pending = tail
            return False
        raise FormatError(
            f"trailing data after the end of the {self._name} stream (a polyglot file or "
            "several concatenated streams); refusing to guess which part is the model"
        )

    def readinto(self, b) -> int:
        n = len(b)
        while not self._buf:
            if self._d.eof and self._at_end():
                return 0
            self._buf = self._more()
        out = self._buf[:n]
        self._buf = self._buf[n:]
        b[: len(out)] = out
        return len(out)


def _stream(make_decompressor: Callable[[], object], name: str, multi_member: bool = False):
    def open_stream(raw: IO[bytes]) -> IO[bytes]:
        stream = _DecompressedStream(raw, make_decompressor, name, multi_member)
        return io.BufferedReader(stream, _CHUNK)

    return open_stream


def _lz4_decompressor():
    try:
        import lz4.frame
    except ImportError as exc:  # pragma: no cover - optional dependency
        raise FormatError("the file is lz4-compressed; install lz4 to read it") from exc
    return lz4.frame.LZ4FrameDecompressor()


COMPRESSORS: tuple[Compressor, ...] = (
    Compressor(
        "zlib",
        lambda h: h[:1] == b"\x78" and h[1:2] in (b"\x01", b"\x5e", b"\x9c", b"\xda"),
        _stream(zlib.decompressobj, "zlib"),
    ),
    Compressor(
        "gzip",
        lambda h: h[:2] == b"\x1f\x8b",
        _stream(functools.partial(zlib.decompressobj, wbits=31), "gzip", multi_member=True),
    ),
    Compressor("bz2", lambda h: h[:3] == b"BZh", _stream(bz2.BZ2Decompressor, "bz2")),
    Compressor(
        "xz",
        lambda h: h[:6] == b"\xfd7zXZ\x00",
        _stream(functools.partial(lzma.LZMADecompressor, format=lzma.FORMAT_XZ), "xz"),
    ),
    Compressor(
        "lzma",
        lambda h: h[:3] == b"\x5d\x00\x00",
        _stream(functools.partial(lzma.LZMADecompressor, format=lzma.FORMAT_ALONE), "lzma"),
    ),
    Compressor("lz4", lambda h: h[:4] == b"\x04\x22\x4d\x18", _stream(_lz4_decompressor, "lz4")),
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

    def __init__(
        self,
        raw: IO[bytes],
        limit: int,
        limit_name: str = "max_decompressed_bytes",
        source: Callable[[], int] | None = None,
    ):
        self._raw = raw
        self._limit = limit
        self._limit_name = limit_name
        self._source = source
        self.consumed = 0

    def source_bytes(self) -> int | None:
        """Compressed bytes consumed so far to produce this stream, None when not compressed."""
        return None if self._source is None else self._source()

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
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - decompressors raise many types (lz4: RuntimeError)
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

    def remaining(self) -> int:
        """Bytes this reader may still produce before its limit (the stream may hold fewer).

        A reader compares a declared length with this *before* reading or allocating, so a
        length prefix larger than the budget is refused without buffering what is present.
        """
        return max(0, self._limit - self.consumed)

    @property
    def limit_name(self) -> str:
        """The :class:`~safeload.Limits` field this reader enforces."""
        return self._limit_name


def open_decompressed(
    raw: IO[bytes], compressor: Compressor | None, limits: Limits
) -> BoundedReader:
    """Wrap ``raw`` (positioned at the start) in its decompressor and a :class:`BoundedReader`."""
    if compressor is None:
        return BoundedReader(raw, limits.max_file_bytes)
    stream = compressor.open(raw)
    inner = getattr(stream, "raw", None)
    source = getattr(inner, "compressed_used", None)
    return BoundedReader(stream, limits.max_decompressed_bytes, source=source)
