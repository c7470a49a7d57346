"""Structural pre-scan of a pickle stream: one pass over the opcodes, no objects built.

Why this exists: the C unpickler (``_pickle.Unpickler``) is what makes parsing fast, but a few
opcodes hurt *it* before any ``find_class`` hook runs:

* ``LONG_BINPUT`` with a huge index makes it resize and zero its memo array to twice that index
  (CVE-2018-20406; 2**30 → 16 GiB touched).
* ``EXT1/2/4`` fetch objects from the process-wide ``copyreg`` extension cache, bypassing
  ``find_class`` for any code some other library registered.
* Length prefixes (``BINBYTES8`` ...) larger than the data make older CPythons preallocate
  (python/cpython#115952).

So every stream goes through :func:`scan_opcodes` first; it checks each opcode's framing against
the bytes present, collects what the audit and the scanner need (protocol, offsets of the opcodes
that name globals, persistent ids, extension codes, out-of-band buffers, trailing data) and
raises :class:`~safeload.errors.FormatError` / :class:`~safeload.errors.LimitExceededError` on
anything that would make the C unpickler misbehave.  The opcode table is derived from
``pickletools.opcodes`` (the stdlib's declarative description of the protocol).
"""

from __future__ import annotations

import pickletools
from dataclasses import dataclass, field

from ..errors import FormatError, LimitExceededError
from ..limits import Limits

__all__ = ["StreamInfo", "scan_opcodes", "OPCODE_NAMES", "JOBLIB_MARKERS"]

# Argument kinds, derived from pickletools.ArgumentDescriptor.n
_INVALID, _FIXED, _LEN1, _LEN4S, _LEN4U, _LEN8U, _LINE, _LINE2 = range(8)

_KIND = [_INVALID] * 256
_SIZE = [0] * 256
OPCODE_NAMES: dict[int, str] = {}
for _op in pickletools.opcodes:
    _code = ord(_op.code)
    OPCODE_NAMES[_code] = _op.name
    _arg = _op.arg
    if _arg is None:
        _KIND[_code], _SIZE[_code] = _FIXED, 0
    elif _arg.n >= 0:
        _KIND[_code], _SIZE[_code] = _FIXED, _arg.n
    elif _arg.n == pickletools.UP_TO_NEWLINE:
        _KIND[_code] = _LINE2 if _op.name in ("GLOBAL", "INST") else _LINE
    elif _arg.n == pickletools.TAKEN_FROM_ARGUMENT1:
        _KIND[_code] = _LEN1
    elif _arg.n == pickletools.TAKEN_FROM_ARGUMENT4:
        _KIND[_code] = _LEN4S
    elif _arg.n == pickletools.TAKEN_FROM_ARGUMENT4U:
        _KIND[_code] = _LEN4U
    elif _arg.n == pickletools.TAKEN_FROM_ARGUMENT8U:
        _KIND[_code] = _LEN8U
    else:  # pragma: no cover - a future protocol
        raise RuntimeError(f"unknown argument kind for {_op.name}")

_OP = {name: code for code, name in OPCODE_NAMES.items()}
_STOP = _OP["STOP"]
_PROTO = _OP["PROTO"]
_FRAME = _OP["FRAME"]
_GLOBAL_OPS = frozenset({_OP["GLOBAL"], _OP["STACK_GLOBAL"], _OP["INST"]})
_EXT_OPS = frozenset({_OP["EXT1"], _OP["EXT2"], _OP["EXT4"]})
_PERSID_OPS = frozenset({_OP["PERSID"], _OP["BINPERSID"]})
_BUFFER_OPS = frozenset({_OP["NEXT_BUFFER"], _OP["READONLY_BUFFER"]})
_LONG_BINPUT = _OP["LONG_BINPUT"]
_PUT = _OP["PUT"]
_LONG_OPS = frozenset({_OP["LONG1"], _OP["LONG4"]})
_STRING_OPS = frozenset(
    {_OP["SHORT_BINUNICODE"], _OP["BINUNICODE"], _OP["SHORT_BINSTRING"], _OP["BINSTRING"]}
)
#: Module names that mean "this is a joblib stream: raw array bytes follow wrapper BUILDs".
#: The wrapper's class is always named before the first raw bytes, so the scan stops there.
JOBLIB_MARKERS = frozenset(
    {
        b"joblib.numpy_pickle",
        b"sklearn.externals.joblib.numpy_pickle",
        b"joblib.numpy_pickle_compat",
        b"sklearn.externals.joblib.numpy_pickle_compat",
    }
)
_MARKER_LENS = frozenset(len(m) for m in JOBLIB_MARKERS)
# Fixed-size opcodes that need a look beyond "skip the argument".
_SPECIAL = [False] * 256
for _code in (
    _STOP,
    _PROTO,
    _FRAME,
    _LONG_BINPUT,
    *_GLOBAL_OPS,
    *_EXT_OPS,
    *_PERSID_OPS,
    *_BUFFER_OPS,
):
    _SPECIAL[_code] = True


@dataclass
class StreamInfo:
    """What the pre-scan learned about one pickle stream.

    Attributes
    ----------
    protocol : int
        From the ``PROTO`` opcode; 0 for streams without one (protocols 0 and 1 have none).
    start, end : int
        Byte offsets of the first opcode and one past ``STOP``.
    n_opcodes : int
    global_offsets : list of int
        Offsets of ``GLOBAL``/``STACK_GLOBAL``/``INST`` opcodes in stream order: the order in
        which the unpickler calls ``find_class``.
    ext_offsets, persid_offsets, buffer_offsets : list of int
        Offsets of extension-code, persistent-id and out-of-band-buffer opcodes.
    trailing : int
        Bytes after ``STOP`` (0 when the stream ends there).
    max_memo_index : int
    """

    protocol: int = 0
    start: int = 0
    end: int = 0
    n_opcodes: int = 0
    global_offsets: list[int] = field(default_factory=list)
    ext_offsets: list[int] = field(default_factory=list)
    persid_offsets: list[int] = field(default_factory=list)
    buffer_offsets: list[int] = field(default_factory=list)
    trailing: int = 0
    max_memo_index: int = -1
    joblib: bool = False


def scan_opcodes(
    data, limits: Limits, start: int = 0, *, allow_trailing: bool = False
) -> StreamInfo:
    """Walk the opcodes of one pickle stream in ``data[start:]`` without building anything.

    Parameters
    ----------
    data : bytes, bytearray, memoryview or mmap.mmap
        The whole buffer; indexing must return ``int``.
    limits : Limits
        ``max_opcodes``, ``max_memo`` and ``max_int_bytes`` are enforced here.
    start : int
        Offset of the first opcode.
    allow_trailing : bool
        If False, bytes after ``STOP`` raise ``FormatError`` (a polyglot or a concatenation).

    Returns
    -------
    StreamInfo

    Raises
    ------
    FormatError
        Unknown opcode, an argument running past the end of the data (truncated stream),
        a negative length, a missing ``STOP``, or trailing data.
    LimitExceededError
        Too many opcodes, a memo index beyond ``max_memo`` or beyond the number of opcodes read
        so far (a legitimate pickler numbers its memo 0, 1, 2, ...), an oversized integer.

    Notes
    -----
    Follows the opcode semantics of CPython's ``Lib/pickletools.py`` and ``Modules/_pickle.c``.
    """
    n = len(data)
    info = StreamInfo(start=start)
    pos = start
    nops = 0
    max_ops = limits.max_opcodes
    kind_of = _KIND
    size_of = _SIZE
    special = _SPECIAL
    find = data.find if hasattr(data, "find") else bytes(data).find
    global_offsets = info.global_offsets
    stopped = False
    while pos < n:
        op = data[pos]
        kind = kind_of[op]
        nops += 1
        if kind == _FIXED:
            if special[op]:
                if op == _STOP:
                    pos += 1
                    stopped = True
                    break
                _special(data, pos, op, info, nops, limits, n)
            pos += 1 + size_of[op]
            continue
        if kind == _LEN1:
            if pos + 1 >= n:
                break
            length = data[pos + 1]
            if length in _MARKER_LENS and bytes(data[pos + 2 : pos + 2 + length]) in JOBLIB_MARKERS:
                info.joblib = True
                info.n_opcodes = nops
                return info
            pos += 2 + length
        elif kind in (_LEN4U, _LEN4S):
            length = int.from_bytes(data[pos + 1 : pos + 5], "little", signed=kind == _LEN4S)
            if length < 0:
                raise FormatError(
                    f"negative length {length} for {OPCODE_NAMES[op]} at offset {pos}"
                )
            if op in _LONG_OPS:
                limits.check("max_int_bytes", length, f"LONG4 at offset {pos}")
            elif (
                length in _MARKER_LENS
                and op in _STRING_OPS
                and bytes(data[pos + 5 : pos + 5 + length]) in JOBLIB_MARKERS
            ):
                info.joblib = True
                info.n_opcodes = nops
                return info
            pos += 5 + length
        elif kind == _LEN8U:
            pos += 9 + int.from_bytes(data[pos + 1 : pos + 9], "little")
        elif kind in (_LINE, _LINE2):
            end = find(b"\n", pos + 1)
            if end < 0:
                pos = n + 1
                break
            if kind == _LINE2:
                global_offsets.append(pos)
                if bytes(data[pos + 1 : end]) in JOBLIB_MARKERS:
                    info.joblib = True
                    info.n_opcodes = nops
                    return info
                end = find(b"\n", end + 1)
                if end < 0:
                    pos = n + 1
                    break
            elif op == _PUT:
                _check_memo(int(bytes(data[pos + 1 : end]) or b"-1"), pos, nops, info, limits)
            elif op in _PERSID_OPS:
                info.persid_offsets.append(pos)
            pos = end + 1
        else:
            raise FormatError(f"invalid pickle opcode 0x{op:02x} at offset {pos}")
        if nops > max_ops:
            limits.check("max_opcodes", nops, "pickle opcodes")
    if pos > n:
        raise FormatError(
            f"truncated pickle stream: an argument runs {pos - n} bytes past the end of the data"
        )
    if not stopped:
        raise FormatError(
            f"truncated pickle stream: no STOP opcode before the end of the data ({n} bytes)"
        )
    info.end = pos
    info.n_opcodes = nops
    limits.check("max_opcodes", nops, "pickle opcodes")
    info.trailing = n - pos
    if info.trailing and not allow_trailing:
        raise FormatError(
            f"{info.trailing} bytes of trailing data after the pickle STOP opcode at offset "
            f"{pos - 1} (a polyglot file or several concatenated pickles); refusing to guess "
            "which part is the model"
        )
    return info


def _special(data, pos: int, op: int, info: StreamInfo, nops: int, limits: Limits, n: int) -> None:
    if op == _PROTO:
        if pos + 1 < n:
            info.protocol = data[pos + 1]
            if info.protocol > 5:
                raise FormatError(f"unsupported pickle protocol {info.protocol} at offset {pos}")
    elif op == _LONG_BINPUT:
        _check_memo(int.from_bytes(data[pos + 1 : pos + 5], "little"), pos, nops, info, limits)
    elif op == _FRAME:
        length = int.from_bytes(data[pos + 1 : pos + 9], "little")
        if pos + 9 + length > n:
            raise FormatError(
                f"truncated pickle stream: FRAME at offset {pos} declares {length} bytes, "
                f"{n - pos - 9} remain"
            )
    elif op in _GLOBAL_OPS:
        info.global_offsets.append(pos)
    elif op in _EXT_OPS:
        info.ext_offsets.append(pos)
    elif op in _PERSID_OPS:
        info.persid_offsets.append(pos)
    elif op in _BUFFER_OPS:
        info.buffer_offsets.append(pos)


def _check_memo(index: int, pos: int, nops: int, info: StreamInfo, limits: Limits) -> None:
    if index < 0:
        raise FormatError(f"negative memo index at offset {pos}")
    if index > nops:
        raise LimitExceededError(
            "max_memo",
            index,
            nops,
            f"memo index at offset {pos} is larger than the {nops} opcodes read so far; a "
            "pickler numbers its memo 0, 1, 2, ... (CVE-2018-20406 memo resize)",
        )
    limits.check("max_memo", index, f"memo index at offset {pos}")
    if index > info.max_memo_index:
        info.max_memo_index = index
