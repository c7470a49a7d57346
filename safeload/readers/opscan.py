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

import mmap
import os
import pickletools
import sys
from dataclasses import dataclass, field

from ..errors import FormatError, LimitExceededError
from ..limits import Limits

try:  # the C scanner, compiled by ``pip install`` when a C compiler is present (setup.py)
    from . import _opscan
except ImportError:  # pragma: no cover - depends on the build
    _opscan = None

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


# Error codes shared with the C scanner (``_opscan.c`` has the same numbers).  Both scanners
# report a failure as ``(code, a, b, c)`` and :func:`_error` builds the exception, so every
# message is defined once, here.  The comment lists what a, b, c are.
_E_INVALID_OP = 1  # offset, opcode
_E_NEG_LENGTH = 2  # offset, opcode, length
_E_PROTO = 3  # offset, protocol
_E_FRAME = 4  # offset, declared length, bytes remaining after the FRAME header (may be < 0)
_E_PAST_END = 5  # overshoot = a + b (b carries 8-byte lengths that a C int64 can not add)
_E_NO_STOP = 6  # data length
_E_TRAILING = 7  # offset of STOP, trailing bytes
_E_BAD_PUT = 8  # offset of PUT, offset of its newline
_E_MEMO_NOPS = 9  # offset, memo index, opcodes read so far
_E_MAX_MEMO = 10  # offset, memo index
_E_MAX_INT = 11  # offset, LONG4 length
_E_MAX_OPS = 12  # opcodes read so far

#: Longest decimal memo index a text ``PUT`` may carry: 19 digits always fit in 64 bits.
_MAX_PUT_DIGITS = 19


def _error(code: int, a: int, b: int, c: int, data, limits: Limits) -> Exception:
    """The exception for a failed scan; shared by the C and the Python scanner."""
    if code == _E_INVALID_OP:
        return FormatError(f"invalid pickle opcode 0x{b:02x} at offset {a}")
    if code == _E_NEG_LENGTH:
        return FormatError(f"negative length {c} for {OPCODE_NAMES[b]} at offset {a}")
    if code == _E_PROTO:
        return FormatError(f"unsupported pickle protocol {b} at offset {a}")
    if code == _E_FRAME:
        return FormatError(
            f"truncated pickle stream: FRAME at offset {a} declares {b} bytes, {c} remain"
        )
    if code == _E_PAST_END:
        return FormatError(
            f"truncated pickle stream: an argument runs {a + b} bytes past the end of the data"
        )
    if code == _E_NO_STOP:
        return FormatError(
            f"truncated pickle stream: no STOP opcode before the end of the data ({a} bytes)"
        )
    if code == _E_TRAILING:
        return FormatError(
            f"{b} bytes of trailing data after the pickle STOP opcode at offset {a} (a polyglot "
            "file or several concatenated pickles); refusing to guess which part is the model"
        )
    if code == _E_BAD_PUT:
        line = bytes(data[a + 1 : min(b, a + 1 + 2 * _MAX_PUT_DIGITS)])
        return FormatError(
            f"invalid PUT memo index {line!r} at offset {a}: expected 1 to {_MAX_PUT_DIGITS} "
            "ASCII digits"
        )
    if code == _E_MEMO_NOPS:
        return LimitExceededError(
            "max_memo",
            b,
            c,
            f"memo index at offset {a} is larger than the {c} opcodes read so far; a "
            "pickler numbers its memo 0, 1, 2, ... (CVE-2018-20406 memo resize)",
        )
    if code == _E_MAX_MEMO:
        return LimitExceededError("max_memo", b, limits.max_memo, f"memo index at offset {a}")
    if code == _E_MAX_INT:
        return LimitExceededError("max_int_bytes", b, limits.max_int_bytes, f"LONG4 at offset {a}")
    if code == _E_MAX_OPS:
        return LimitExceededError("max_opcodes", a, limits.max_opcodes, "pickle opcodes")
    raise AssertionError(f"unknown opcode-scan error code {code}")  # pragma: no cover


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
        Largest index of a ``PUT``/``LONG_BINPUT`` (``BINPUT``'s one-byte index is not counted).
    joblib : bool
        The scan stopped early at a joblib marker (see :data:`JOBLIB_MARKERS`); ``end`` and
        ``trailing`` are then 0 and the other fields describe the part scanned.
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

    Runs the C scanner ``safeload.readers._opscan`` when it was built (``pip install`` compiles
    it when a C compiler is present) and :func:`_scan_opcodes_py`, the reference
    implementation, otherwise; both give the same result and raise the same errors for every
    input.  Set the environment variable ``SAFELOAD_PURE_PYTHON=1`` to force the Python one.

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
        a negative length, a text ``PUT`` whose index is not 1 to 19 ASCII digits, a missing
        ``STOP``, or trailing data.
    LimitExceededError
        Too many opcodes, a memo index beyond ``max_memo`` or beyond the number of opcodes read
        so far (a legitimate pickler numbers its memo 0, 1, 2, ...), an oversized integer.

    Notes
    -----
    Follows the opcode semantics of CPython's ``Lib/pickletools.py`` and ``Modules/_pickle.c``.
    """
    if _opscan is not None and 0 <= start <= sys.maxsize and _c_buffer(data) and not _pure_python():
        return _scan_opcodes_c(data, limits, start, allow_trailing=allow_trailing)
    return _scan_opcodes_py(data, limits, start, allow_trailing=allow_trailing)


def _pure_python() -> bool:
    return os.environ.get("SAFELOAD_PURE_PYTHON", "") not in ("", "0")


def _c_buffer(data) -> bool:
    """True for the buffers whose Python indexing the C scanner's byte view reproduces."""
    if isinstance(data, (bytes, bytearray, mmap.mmap)):
        return True
    return (
        isinstance(data, memoryview) and data.format == "B" and data.ndim == 1 and data.c_contiguous
    )


_U64_MAX = (1 << 64) - 1


def _scan_opcodes_c(
    data, limits: Limits, start: int = 0, *, allow_trailing: bool = False
) -> StreamInfo:
    """:func:`scan_opcodes` through the C extension (same results, same exceptions)."""
    res = _opscan.scan(
        data,
        start,
        min(limits.max_opcodes, _U64_MAX),
        min(limits.max_memo, _U64_MAX),
        min(limits.max_int_bytes, _U64_MAX),
        bool(allow_trailing),
    )
    if res[0]:
        raise _error(res[0], res[1], res[2], res[3], data, limits)
    _, protocol, end, nops, globs, exts, persids, buffers, trailing, max_memo, joblib = res
    return StreamInfo(
        protocol, start, end, nops, globs, exts, persids, buffers, trailing, max_memo, joblib
    )


def _scan_opcodes_py(
    data, limits: Limits, start: int = 0, *, allow_trailing: bool = False
) -> StreamInfo:
    """Reference implementation of :func:`scan_opcodes` in pure Python.

    ``_opscan.c`` must behave exactly like this function for every input: same
    :class:`StreamInfo`, same exception class, message, ``limit``, ``actual`` and ``allowed``
    (``tests/test_opscan.py`` compares the two on real, hand-written and mutated streams).
    Change both together.
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
            # A marker counts only when the whole declared argument is present: a truncated
            # slice could otherwise spell a shorter marker.
            if (
                length in _MARKER_LENS
                and pos + 2 + length <= n
                and bytes(data[pos + 2 : pos + 2 + length]) in JOBLIB_MARKERS
            ):
                info.joblib = True
                info.n_opcodes = nops
                return info
            pos += 2 + length
        elif kind in (_LEN4U, _LEN4S):
            length = int.from_bytes(data[pos + 1 : pos + 5], "little", signed=kind == _LEN4S)
            if length < 0:
                raise _error(_E_NEG_LENGTH, pos, op, length, data, limits)
            if op in _LONG_OPS:
                if length > limits.max_int_bytes:
                    raise _error(_E_MAX_INT, pos, length, 0, data, limits)
            elif (
                length in _MARKER_LENS
                and op in _STRING_OPS
                and pos + 5 + length <= n
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
                if end - pos - 1 in _MARKER_LENS and bytes(data[pos + 1 : end]) in JOBLIB_MARKERS:
                    info.joblib = True
                    info.n_opcodes = nops
                    return info
                end = find(b"\n", end + 1)
                if end < 0:
                    pos = n + 1
                    break
            elif op == _PUT:
                # Picklers write the index as plain decimal digits; anything else (signs,
                # spaces, underscores, 20+ digits that int() would still take) is refused.
                line = bytes(data[pos + 1 : end]) if end - pos - 1 <= _MAX_PUT_DIGITS else b""
                if not line.isdigit():
                    raise _error(_E_BAD_PUT, pos, end, 0, data, limits)
                _check_memo(int(line), pos, nops, info, limits, data)
            elif op in _PERSID_OPS:
                info.persid_offsets.append(pos)
            pos = end + 1
        else:
            raise _error(_E_INVALID_OP, pos, op, 0, data, limits)
        if nops > max_ops:
            raise _error(_E_MAX_OPS, nops, 0, 0, data, limits)
    if pos > n:
        raise _error(_E_PAST_END, pos - n, 0, 0, data, limits)
    if not stopped:
        raise _error(_E_NO_STOP, n, 0, 0, data, limits)
    info.end = pos
    info.n_opcodes = nops
    if nops > max_ops:
        raise _error(_E_MAX_OPS, nops, 0, 0, data, limits)
    info.trailing = n - pos
    if info.trailing and not allow_trailing:
        raise _error(_E_TRAILING, pos - 1, info.trailing, 0, data, limits)
    return info


def _special(data, pos: int, op: int, info: StreamInfo, nops: int, limits: Limits, n: int) -> None:
    if op == _PROTO:
        if pos + 1 < n:
            info.protocol = data[pos + 1]
            if info.protocol > 5:
                raise _error(_E_PROTO, pos, info.protocol, 0, data, limits)
    elif op == _LONG_BINPUT:
        index = int.from_bytes(data[pos + 1 : pos + 5], "little")
        _check_memo(index, pos, nops, info, limits, data)
    elif op == _FRAME:
        length = int.from_bytes(data[pos + 1 : pos + 9], "little")
        if pos + 9 + length > n:
            raise _error(_E_FRAME, pos, length, n - pos - 9, data, limits)
    elif op in _GLOBAL_OPS:
        info.global_offsets.append(pos)
    elif op in _EXT_OPS:
        info.ext_offsets.append(pos)
    elif op in _PERSID_OPS:
        info.persid_offsets.append(pos)
    elif op in _BUFFER_OPS:
        info.buffer_offsets.append(pos)


def _check_memo(index: int, pos: int, nops: int, info: StreamInfo, limits: Limits, data) -> None:
    if index > nops:
        raise _error(_E_MEMO_NOPS, pos, index, nops, data, limits)
    if index > limits.max_memo:
        raise _error(_E_MAX_MEMO, pos, index, 0, data, limits)
    if index > info.max_memo_index:
        info.max_memo_index = index
