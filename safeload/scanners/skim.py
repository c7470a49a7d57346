"""A payload-free copy of a big pickle stream, so scanning it needs memory for its structure only.

The C unpickler materialises every ``bytes``/``bytearray`` payload of a stream (the raw data of
numpy arrays), so parsing a 10 GiB model holds 10 GiB.  A scan does not need those bytes: no
verdict depends on their content, and they can not name a global (``find_class`` is reached only
through ``GLOBAL``/``INST`` operands and ``STACK_GLOBAL`` operands, which must be ``str``).
:func:`skim` therefore copies a stream that already passed the opcode pre-scan, replacing every
``BINBYTES``/``BINBYTES8``/``BYTEARRAY8`` payload of :data:`MIN_PAYLOAD` bytes or more by an
empty one of the same opcode — and, in streams without a ``STACK_GLOBAL`` (where text can not
name a global either), every ``BINUNICODE``/``BINUNICODE8``/``BINSTRING`` payload too (the
latin-1 array text of protocols 0-2) — and rewriting ``FRAME`` lengths to match.  Opcodes, their order and
every memo index are unchanged, so the parse of the copy names exactly the same globals in the
same order and builds a graph of the same shape (only payload contents are empty).  Payload
pages of a memory-mapped file are never touched.

It is used only for streams dominated by payloads (see :func:`worth_skimming`), where its
per-opcode Python loop costs little; the offsets reported are those of the original stream.
"""

from __future__ import annotations

import pickle
from typing import Any

from ..readers import opscan
from ..readers.opscan import StreamInfo

__all__ = ["skim", "worth_skimming", "MIN_PAYLOAD", "MIN_FILE", "BYTES_PER_OPCODE"]

#: Payloads shorter than this are kept.
MIN_PAYLOAD = 4096
#: Streams smaller than this are parsed as they are.
MIN_FILE = 16 << 20
#: Skim only when the stream has at least this many bytes per opcode (payload dominated).
BYTES_PER_OPCODE = 4096

_FRAME = pickle.FRAME[0]
_STACK_GLOBAL = pickle.STACK_GLOBAL[0]
_LEN4_BYTES = frozenset({pickle.BINBYTES[0]})
_LEN4_TEXT = frozenset({pickle.BINUNICODE[0], pickle.BINSTRING[0]})
_LEN8_BYTES = frozenset({pickle.BINBYTES8[0], pickle.BYTEARRAY8[0]})
_LEN8_TEXT = frozenset({pickle.BINUNICODE8[0]})
_KIND = opscan._KIND
_SIZE = opscan._SIZE
_FIXED, _LEN1, _LEN4S, _LEN4U, _LEN8U, _LINE, _LINE2 = (
    opscan._FIXED,
    opscan._LEN1,
    opscan._LEN4S,
    opscan._LEN4U,
    opscan._LEN8U,
    opscan._LINE,
    opscan._LINE2,
)


def worth_skimming(size: int, info: StreamInfo) -> bool:
    """True for a big stream made mostly of payloads (and parsed by the C unpickler)."""
    return (
        size >= MIN_FILE
        and info.n_opcodes * BYTES_PER_OPCODE <= size
        and not info.joblib
        and not info.ext_offsets
        and not info.buffer_offsets
        and info.trailing == 0
    )


def skim(data: Any, info: StreamInfo) -> bytes | None:
    """The stream ``data[info.start:info.end]`` with its large payloads emptied.

    Parameters
    ----------
    data : bytes or mmap.mmap
        A stream that :func:`~safeload.readers.opscan.scan_opcodes` accepted (so every length
        is within the data).
    info : StreamInfo
        Its pre-scan.

    Returns
    -------
    bytes or None
        None when the stream has a shape this copier does not handle (a ``FRAME`` inside a
        frame); the caller then parses the original.
    """
    # Text can name a global only through STACK_GLOBAL: without one, text payloads go too
    # (protocol 0-2 arrays are latin-1 text for _codecs.encode).
    text = not any(data[offset] == _STACK_GLOBAL for offset in info.global_offsets)
    len4 = _LEN4_BYTES | _LEN4_TEXT if text else _LEN4_BYTES
    len8 = _LEN8_BYTES | _LEN8_TEXT if text else _LEN8_BYTES
    out = bytearray()
    pos = run = info.start
    end = info.end
    frame: tuple[int, int] | None = None  # (index of the length in out, end in data)
    find = data.find
    while pos < end:
        if frame is not None and pos >= frame[1]:
            out += data[run:pos]
            run = pos
            _patch(out, frame[0])
            frame = None
        op = data[pos]
        kind = _KIND[op]
        if kind == _FIXED:
            if op == _FRAME:
                if frame is not None:
                    return None
                out += data[run:pos]
                length = int.from_bytes(data[pos + 1 : pos + 9], "little")
                out.append(_FRAME)
                frame = (len(out), pos + 9 + length)
                out += bytes(8)
                pos = run = pos + 9
                continue
            pos += 1 + _SIZE[op]
        elif kind == _LEN1:
            pos += 2 + data[pos + 1]
        elif kind in (_LEN4U, _LEN4S):
            length = int.from_bytes(data[pos + 1 : pos + 5], "little", signed=kind == _LEN4S)
            if op in len4 and length >= MIN_PAYLOAD:
                out += data[run:pos]
                out.append(op)
                out += bytes(4)
                pos = run = pos + 5 + length
                continue
            pos += 5 + length
        elif kind == _LEN8U:
            length = int.from_bytes(data[pos + 1 : pos + 9], "little")
            if op in len8 and length >= MIN_PAYLOAD:
                out += data[run:pos]
                out.append(op)
                out += bytes(8)
                pos = run = pos + 9 + length
                continue
            pos += 9 + length
        elif kind == _LINE:
            pos = find(b"\n", pos + 1) + 1
        elif kind == _LINE2:
            pos = find(b"\n", find(b"\n", pos + 1) + 1) + 1
        else:  # pragma: no cover - the pre-scan refused invalid opcodes
            return None
        if pos <= 0:  # pragma: no cover - the pre-scan found every newline
            return None
    out += data[run:end]
    if frame is not None:
        _patch(out, frame[0])
    return bytes(out)


def _patch(out: bytearray, index: int) -> None:
    out[index : index + 8] = (len(out) - index - 8).to_bytes(8, "little")
