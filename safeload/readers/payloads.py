"""Large byte payloads left in the file until the build stage needs them.

Why: a protocol-5 pickle of a random forest is ~99 % array bytes.  ``pickle.load`` reads each
array's bytes into a fresh ``bytearray`` (a 100 MB copy into newly faulted pages), and then every
``sklearn.tree._tree.Tree`` copies its node and value arrays into its own buffer in
``__setstate__`` — the bytes object is garbage right after.  The restricted loader parses first
and builds afterwards, so it can do better: the parse leaves each large payload in the file and
the builder reads it where it is consumed.  A tree's node and value payloads are read into a
reused scratch buffer that ``Tree.__setstate__`` copies from (no fresh pages, no copy kept);
a payload numpy's ``_frombuffer`` wraps is read into uninitialised memory of its own; every
other payload is read into a fresh ``bytes``/``bytearray`` exactly as the unpickler would have
made it.  The safe format's decoder lends its tree arrays through the same scratch buffers.

How, without trusting anything new:

* :func:`find_payloads` hops over the stream's top level — ``FRAME``\\ s and the large
  ``BINBYTES``/``BINBYTES8``/``BYTEARRAY8`` that picklers write *between* frames (protocol 4
  and 5 framing: ``pickle._Framer``, ``_Pickler_write_bytes`` in ``Modules/_pickle.c``) and
  the short opcodes they leave unframed — and stops at anything else.
* :func:`skeleton` is the stream with each such opcode and its payload replaced by one
  ``NEXT_BUFFER`` opcode (PEP 574); the unpickler gets an iterator of :class:`Payload` markers as
  its ``buffers``, so ``NEXT_BUFFER`` pushes the marker where the bytes would have been.
* Every opcode the walk replaces must be one the pre-scan met in its linear walk of the whole
  stream (:attr:`~safeload.readers.opscan.StreamInfo.payload_offsets`): a frame that ends
  inside an opcode can not make the walk replace bytes that are not an opcode.  The skeleton
  then holds the pre-scanned opcodes in the same order, each replaced one by a ``NEXT_BUFFER``
  with the same stack effect.  A FRAME that covers a replaced opcode (picklers never write
  one) may then reach past the skeleton's end: the unpickler refuses it, and the stream is
  parsed again as it is.  A stream with its own ``NEXT_BUFFER``/``READONLY_BUFFER`` never gets
  here (it is refused as before).
* A lent view must be gone once its consumer is done (:func:`release_lent`): an array that
  outlived it refuses the file, and its scratch buffer is never reused.

Payloads are read with ``seek`` + ``readinto`` (never a memory map, so a file truncated while it
loads is a :class:`~safeload.errors.FormatError`, not a ``SIGBUS``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import FormatError
from .opscan import LARGE_PAYLOAD

__all__ = [
    "MIN_PAYLOAD",
    "Payload",
    "PayloadSource",
    "find_payloads",
    "release_lent",
    "skeleton",
]

#: Payloads smaller than this stay in the stream.  Picklers frame everything below 64 KiB
#: (``_FRAME_SIZE_TARGET``), so in practice only array data is deferred.
MIN_PAYLOAD = LARGE_PAYLOAD

_PROTO = 0x80
_FRAME = 0x95
_BINBYTES = 0x42  # 'B': 4-byte little-endian length
_BINBYTES8 = 0x8E
_BYTEARRAY8 = 0x96
_NEXT_BUFFER = b"\x97"
#: opcodes picklers leave unframed between large payloads (runs under 4 bytes get no FRAME):
#: the walk steps over them; a wrong step is caught by the pre-scan's payload offsets
_NO_ARG = frozenset(b"\x94()]}a\x85\x86\x87Rbesu\x81\x93N\x88\x89\x8f\x900")
_ONE_BYTE_ARG = frozenset(b"qhK")  # BINPUT, BINGET, BININT1


class Payload:
    """Marker for the bytes of one deferred ``BINBYTES``/``BINBYTES8``/``BYTEARRAY8`` opcode.

    Attributes
    ----------
    op : int
        Byte offset of the opcode in the stream.
    offset : int
        Byte offset of the payload (after the opcode and its length) in the stream.
    length : int
        Payload size in bytes.
    mutable : bool
        ``BYTEARRAY8`` (the unpickler makes a ``bytearray``) rather than ``bytes``.
    """

    __slots__ = ("op", "offset", "length", "mutable")

    def __init__(self, op: int, offset: int, length: int, mutable: bool) -> None:
        set_slot = object.__setattr__
        set_slot(self, "op", op)
        set_slot(self, "offset", offset)
        set_slot(self, "length", length)
        set_slot(self, "mutable", mutable)

    # Immutable, and no BUILD: the unpickler would set a slot state on the marker (where
    # pickle fails, bytes having no attributes) and steer the read anywhere in the file.
    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"'{type(self).__name__}' object is read-only")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"'{type(self).__name__}' object is read-only")

    def __setstate__(self, state: Any) -> None:
        raise AttributeError(
            "BUILD on a bytes payload (a bytes or bytearray object has no state to set)"
        )

    def __repr__(self) -> str:
        kind = "bytearray" if self.mutable else "bytes"
        return f"<deferred {kind} of {self.length} bytes at offset {self.offset}>"


def find_payloads(data: Any, start: int, end: int) -> list[Payload]:
    """The large payloads written between frames, from ``start`` (the first opcode).

    Parameters
    ----------
    data : bytes-like or mmap.mmap
        The stream; only opcode headers are read (payload pages are not touched).
    start, end : int
        Offsets of the first opcode and one past ``STOP`` (from the pre-scan, which checked
        every length against the data).

    Returns
    -------
    list of Payload
        Empty when the stream is not framed (protocols 0-3) or has no large payload.

    Notes
    -----
    The walk steps over ``PROTO``, frames, bytes opcodes and the one- and two-byte
    opcodes picklers leave unframed (``MEMOIZE``, ``MARK``, ``BINPUT`` ...), stops at anything
    else, and after ``1000 + (end - start) // 4096`` hops (a stream of tiny frames is parsed
    the ordinary way rather than walked slowly in Python).  It may be fooled by a frame that
    ends inside an opcode; the caller keeps only payloads at offsets the pre-scan's linear
    walk met (``StreamInfo.payload_offsets``).
    """
    found: list[Payload] = []
    pos = start
    budget = 1000 + (end - start) // 4096
    while pos < end and budget > 0:
        budget -= 1
        op = data[pos]
        if op == _FRAME:
            pos += 9 + int.from_bytes(data[pos + 1 : pos + 9], "little")
        elif op in (_BYTEARRAY8, _BINBYTES8):
            n = int.from_bytes(data[pos + 1 : pos + 9], "little")
            if n >= MIN_PAYLOAD:
                found.append(Payload(pos, pos + 9, n, op == _BYTEARRAY8))
            pos += 9 + n
        elif op == _BINBYTES:
            n = int.from_bytes(data[pos + 1 : pos + 5], "little")
            if n >= MIN_PAYLOAD:
                found.append(Payload(pos, pos + 5, n, False))
            pos += 5 + n
        elif op == _PROTO or op in _ONE_BYTE_ARG:
            pos += 2
        elif op in _NO_ARG:
            pos += 1
        else:
            break
    return found


def skeleton(data: Any, start: int, end: int, payloads: list[Payload]) -> tuple[bytes, list[int]]:
    """The stream ``data[start:end]`` with every payload's opcode replaced by ``NEXT_BUFFER``.

    Returns
    -------
    bytes
        The rewritten stream (small: everything but the payloads).
    list of int
        Offsets of the inserted ``NEXT_BUFFER`` opcodes in it, in order.
    """
    parts = []
    offsets = []
    pos = start
    size = 0
    for p in payloads:
        op_at = p.op
        parts.append(data[pos:op_at])
        size += op_at - pos
        offsets.append(size)
        parts.append(_NEXT_BUFFER)
        size += 1
        pos = p.offset + p.length
    parts.append(data[pos:end])
    return b"".join(parts), offsets


class PayloadSource:
    """Reads deferred payloads from the file (or bytes) the stream was parsed from.

    Parameters
    ----------
    data : bytes or None
        The whole stream in memory (``loads``, file objects): payloads are sliced from it.
    file : seekable binary file or None
        A local file, read with ``seek`` + ``readinto``.  It must stay open until the build
        finishes.
    """

    def __init__(self, data: Any = None, file: Any = None) -> None:
        self.data = data if isinstance(data, bytes) else None
        self.file = file
        self._scratch: dict[int, bytearray] = {}

    @property
    def usable(self) -> bool:
        return self.data is not None or self.file is not None

    def read(self, p: Payload) -> Any:
        """A fresh ``bytearray`` (``BYTEARRAY8``) or ``bytes``: what the unpickler would make.

        Raises
        ------
        FormatError
            The file ends before the payload (it changed since it was scanned).
        """
        if self.data is not None:
            view = memoryview(self.data)[p.offset : p.offset + p.length]
            return bytearray(view) if p.mutable else bytes(view)
        if not p.mutable:
            self.file.seek(p.offset)
            data = self.file.read(p.length)
            if len(data) != p.length:
                raise _truncated(p, len(data))
            return data
        buf = bytearray(p.length)
        self.fill(buf, p)
        return buf

    def fresh(self, p: Payload) -> memoryview:
        """The payload in new memory, for numpy's ``_frombuffer``: a view of an uninitialised
        ``numpy.empty`` buffer filled from the file (``bytearray(n)`` would zero it first),
        writable exactly when the unpickler's object would have been (``BYTEARRAY8``).

        Raises
        ------
        FormatError
            The file ends before the payload.
        """
        buf = np.empty(p.length, np.uint8)
        if self.data is not None:
            buf[:] = memoryview(self.data)[p.offset : p.offset + p.length]
        else:
            self.fill(buf, p)
        view = memoryview(buf)
        return view if p.mutable else view.toreadonly()

    def borrow(self, p: Payload, slot: int) -> memoryview:
        """A read-only view of the payload in scratch buffer ``slot``.

        For consumers that copy what they are given (``Tree.__setstate__``): the buffer is
        reused from call to call unless a view of it is still alive (then a new one is made);
        :meth:`scratch` names the buffer a call used, for :func:`release_lent`.

        Raises
        ------
        FormatError
            The file ends before the payload.
        """
        buf = self._scratch.get(slot)
        if buf is None or len(buf) < p.length or _exported(buf):
            buf = self._scratch[slot] = bytearray(max(p.length, len(buf) if buf else 0))
        view = memoryview(buf)[: p.length]
        if self.data is not None:
            view[:] = memoryview(self.data)[p.offset : p.offset + p.length]
        else:
            self.fill(view, p)
        return view.toreadonly()

    def scratch(self, slot: int) -> bytearray:
        """The scratch buffer the last :meth:`borrow` of ``slot`` filled."""
        return self._scratch[slot]

    def fill(self, buf: Any, p: Payload) -> None:
        """Read payload ``p`` into the writable buffer ``buf`` (``p.length`` bytes).

        Raises
        ------
        FormatError
            The file ends before the payload.
        """
        fh = self.file
        fh.seek(p.offset)
        view = memoryview(buf)
        got = 0
        while got < p.length:
            n = fh.readinto(view[got : p.length])
            if not n:
                raise _truncated(p, got)
            got += n


def release_lent(views: list, buffers: list, name: str) -> None:
    """Drop the views a consumer borrowed (:meth:`PayloadSource.borrow`) once it is done, and
    check that nothing else holds one: each scratch buffer it used must have no export left.

    An array built on a view keeps it (or numpy's own view of it) alive, and with it an export
    of the scratch buffer; so an export left over is an array that outlived the consumer.
    (``memoryview.release`` is not used: it would succeed while numpy's own view lives on.)

    Raises
    ------
    FormatError
        One is still alive: the file shares a tree's node or value array with something else
        (scikit-learn never does).  The buffer is then never reused (see ``borrow``).
    """
    views.clear()
    for buf in buffers:
        if _exported(buf):
            raise FormatError(
                f"{name}: its node or value array is also referenced from elsewhere in the "
                "file (scikit-learn never shares those)"
            )


def _truncated(p: Payload, got: int) -> FormatError:
    return FormatError(
        f"the file ended at byte {p.offset + got}, inside a payload of {p.length} bytes at "
        f"offset {p.offset} (was it changed while loading?)"
    )


def _exported(buf: bytearray) -> bool:
    """True while a memoryview (or an array built on one) of ``buf`` is alive."""
    try:
        last = buf.pop()  # shrinking by one byte never reallocates; growing back neither
    except BufferError:
        return True
    buf.append(last)
    return False
