"""Structural pre-scan of a pickle stream: one pass over the opcodes, no objects built.

Why this exists: the C unpickler (``_pickle.Unpickler``) is what makes parsing fast, but a few
opcodes hurt *it* before any ``find_class`` hook runs:

* ``LONG_BINPUT`` with a huge index makes it resize and zero its memo array to twice that index
  (CVE-2018-20406; 2**30 → 16 GiB touched).
* ``EXT1/2/4`` fetch objects from the process-wide ``copyreg`` extension cache, bypassing
  ``find_class`` for any code some other library registered.
* Length prefixes (``BINBYTES8`` ...) larger than the data make older CPythons preallocate
  (python/cpython#115952).

* ``SETITEM(S)``/``DICT``/``ADDITEMS``/``FROZENSET`` hash their keys and items while parsing.
  Tuple hashes are not cached and visit every item, so a 344-byte tuple memo bomb (a tuple
  holding the previous one 16 times, 9 levels deep) used as a set item or dict key keeps the C
  unpickler busy for hours.

So every stream goes through :func:`scan_opcodes` first; it checks each opcode's framing against
the bytes present, collects what the audit and the scanner need (protocol, offsets of the opcodes
that name globals, persistent ids, extension codes, out-of-band buffers, trailing data) and
raises :class:`~safeload.errors.FormatError` / :class:`~safeload.errors.LimitExceededError` on
anything that would make the C unpickler misbehave.  The opcode table is derived from
``pickletools.opcodes`` (the stdlib's declarative description of the protocol).

Hash bombs are caught by a *stack model*: the scan follows the unpickler's stack, mark stack
and memo, keeping for each value only its *hash weight*, the number of objects a hash of it
visits (``1 + the items' weights`` for a tuple, saturating at ``2**62``; 1 for everything else:
str and bytes cache their hash, frozensets too, lists and dicts are unhashable and the inert
placeholders hash by identity; an int counts one more per 8 bytes of its encoding, as its hash
reads every digit).  The hashing opcodes add the weights of what they hash to a running total,
which may not exceed ``Limits.max_items``: a per-key bound would let a stream hash one key just
under the limit a thousand times.  The builder counts every key, tuple items included, against
the same limit, so a legitimate file refused here would be refused there too.  The stack effects come from
``pickletools``' ``stack_before``/``stack_after``; the underflow rules are those of
``Modules/_pickle.c``.  When the model finds an opcode the unpickler can not execute (stack
underflow, no MARK, a memo entry never stored, an odd number of key/value items) it stops and
records the offset in :attr:`StreamInfo.stack_error`: the unpickler fails at that opcode, so no
later opcode ever runs, and the scan itself still accepts the stream (the error is the
unpickler's to report, and the scanners still name the globals it would import first).

Hash flooding is caught by the same model.  str and bytes hashes are randomised per process
and placeholders hash by identity, but int, float and tuple hashes are fixed functions of the
value: ints equal modulo ``2**61 - 1`` hash alike, so 100,000 such dict keys make insertion
quadratic (minutes).  Each value also carries a *hash class* (``_H_*``): opaque (str, bytes,
placeholders, containers), narrow (ints of at most 4 bytes, ``None``, bools, ``()``: few
values, no useful collisions), wide (floats, ints of 5 to 7 bytes: a value with any chosen
hash is easy to find, but distinct values of one hash are few: a float's mantissa has 53 bits,
so at most about 200 floats share a hash) or *collidable* (ints whose encoding has 8 bytes or
more or text of 18 characters or more, and tuples and frozensets holding a collidable item or a
wide item next to another non-opaque one: xxHash and the frozenset hash can be inverted lane by
lane).  Every time a
collidable value is hashed by a hashing opcode, or enters a list or a tuple (the builder may
hand those to ``set``, ``frozenset`` or ``dict``: protocols 0 to 3 pickle sets that way), the
worst case is charged to the same running total: all of them in one hash table, so the
``n``-th costs ``n - 1`` probes and ``n`` of them ``n (n - 1) / 2``.  The default
``max_items`` (20M) thus admits about 6,300 collidable values (a fraction of a second of
insertion); legitimate scikit-learn pickles hold big ints as dict *values* (PCG64 and
SeedSequence states), not keys.
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
_BINBYTES = _OP["BINBYTES"]
_BYTES8_OPS = frozenset({_OP["BINBYTES8"], _OP["BYTEARRAY8"]})
#: bytes payloads at least this large are recorded (StreamInfo.payload_offsets)
LARGE_PAYLOAD = 64 * 1024
_GLOBAL_OPS = frozenset({_OP["GLOBAL"], _OP["STACK_GLOBAL"], _OP["INST"]})
_EXT_OPS = frozenset({_OP["EXT1"], _OP["EXT2"], _OP["EXT4"]})
_PERSID_OPS = frozenset({_OP["PERSID"], _OP["BINPERSID"]})
_BUFFER_OPS = frozenset({_OP["NEXT_BUFFER"], _OP["READONLY_BUFFER"]})
_LONG_BINPUT = _OP["LONG_BINPUT"]
_PUT = _OP["PUT"]
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

_GET = _OP["GET"]
_LONG1 = _OP["LONG1"]
_LONG4 = _OP["LONG4"]

# -- the stack model's tables ----------------------------------------------------------------
# Semantic class of each opcode for the stack model (same numbers in _opscan.c):
_S_NONE = 0  # no stack effect (PROTO, FRAME, STOP)
_S_PUSH = 1  # pushes one value of weight 1
_S_NEW = 2  # pops values (or a marked slice) and pushes a new object of weight 1: a list, a
#             dict, a frozenset (its hash is cached) or the result of a call (the inert
#             placeholders and their results hash by identity)
_S_KEEP = 3  # in place (APPEND, BUILD, READONLY_BUFFER) or a copy (DUP): pushes the lowest
#              popped value's weight back
_S_SUM = 4  # a tuple: 1 + the weights of its items
_S_KEY = 5  # SETITEM: hashes the key, keeps the dict
_S_PAIRS = 6  # DICT, SETITEMS: hashes every key (even positions after the mark)
_S_ALL = 7  # ADDITEMS, FROZENSET: hashes every item
_S_POP = 8  # POP: drops the top mark when the current frame is empty, else a value
_S_MARK = 9
_S_GET = 10  # pushes a memo entry's weight
_S_PUT = 11  # stores the top's weight in the memo (the unpicklers read the top: no pop)
_S_INT = 12  # an int: 1 + one per 8 bytes (LONG1/LONG4) or 16 characters (INT/LONG text) of
#              its encoding: its hash reads every digit, each time a shared tuple reaches it

#: Weights and the hash total saturate here (no overflow in C).
_W_CAP = 1 << 62

# Hash classes of the stack model's values (same numbers in _opscan.c; see the module
# docstring): a tuple's or frozenset's class follows from its items' (:func:`_combine`).
_H_OPAQUE = 0  # randomised (str, bytes), identity (placeholders) or unhashable
_H_NARROW = 1  # fixed hash, few values: ints of at most 4 bytes (or 9 text characters), None,
#                bools, (); tuples of only these
_H_WIDE = 2  # fixed hash, any hash value can be reached: floats, ints of 5 to 7 bytes (or 10
#              to 17 text characters); tuples of non-opaque items with one of these.  A float's
#              hash is ``m * 2**(e % 61) mod (2**61 - 1)`` with a 53-bit ``m``: at most about
#              200 floats share one hash, so floats alone never flood
_H_COLLIDE = 3  # many values can share one hash: ints of 8 bytes or more (or 18 text
#                 characters: ``0x1fffffffffffffff`` is 2**61 - 1); tuples and frozensets
#                 holding one, or a wide item and another non-opaque one

#: Opcodes whose items enter a list or a tuple, which the builder may pass to ``set``,
#: ``frozenset`` or ``dict`` (hashing their items then): collidable items are charged there too.
_ENTERS = [False] * 256
for _name in ("APPEND", "APPENDS", "LIST", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3"):
    _ENTERS[_OP[_name]] = True
#: Class of the value each push-only opcode pushes.
_PUSH_CLASS = [_H_OPAQUE] * 256
for _name in ("NONE", "NEWTRUE", "NEWFALSE", "EMPTY_TUPLE", "BININT", "BININT1", "BININT2"):
    _PUSH_CLASS[_OP[_name]] = _H_NARROW
_PUSH_CLASS[_OP["BINFLOAT"]] = _PUSH_CLASS[_OP["FLOAT"]] = _H_WIDE
_APPEND = _OP["APPEND"]


def _int_class(nbytes: int) -> int:
    """Class of a LONG1/LONG4 int of ``nbytes`` bytes (two's complement, little-endian)."""
    return _H_NARROW if nbytes <= 4 else _H_WIDE if nbytes < 8 else _H_COLLIDE


def _text_int_class(nchars: int) -> int:
    """Class of a text INT/LONG of ``nchars`` characters (the unpicklers parse it with base 0,
    so ``0x1fffffffffffffff``, 18 characters, is already 2**61 - 1; 17 never reach it)."""
    return _H_NARROW if nchars <= 9 else _H_WIDE if nchars < 18 else _H_COLLIDE


def _nest(depths: list[int]) -> int:
    """The tuple nesting of a tuple of items nested ``depths`` deep (``tuple_depth`` in
    ``_opscan.c``: saturating one past :data:`MAX_KEY_DEPTH`)."""
    return min(MAX_KEY_DEPTH + 1, 1 + max(depths, default=0))


def _combine(classes: list[int]) -> int:
    """Class of a tuple or frozenset with items of these classes.

    One lane of xxHash (tuples) or of the frozenset's xor is a bijection of the item's hash, so
    a single deterministic item does not collide; two of them, one wide, can be solved for a
    chosen hash (the other items, even randomised, only need to be the same each time).
    Tuples of narrow items only stay narrow (a colliding family costs about 2**32 hash
    evaluations per member).
    """
    det = wide = 0
    for c in classes:
        if c == _H_COLLIDE:
            return _H_COLLIDE
        if c:
            det += 1
            if c == _H_WIDE:
                wide += 1
    if wide and det >= 2:
        return _H_COLLIDE
    if det < len(classes):
        return _H_OPAQUE
    return _H_WIDE if wide else _H_NARROW


_SEM = [_S_NONE] * 256
_MARKED = [False] * 256  # pops to the last MARK (the values above it are its stack slice)
_NPOP = [0] * 256  # values popped (for a marked opcode: values just below the mark)
_ABOVE = [0] * 256  # marked opcodes: values the slice must hold at least (OBJ's class)
_NPUSH = [0] * 256
for _op in pickletools.opcodes:
    _code = ord(_op.code)
    _before, _after = _op.stack_before, _op.stack_after
    if pickletools.markobject in _before:
        _k = _before.index(pickletools.markobject)
        _MARKED[_code] = True
        _NPOP[_code] = _k
        _ABOVE[_code] = sum(1 for x in _before[_k + 1 :] if x is not pickletools.stackslice)
    else:
        _NPOP[_code] = len(_before)
    _NPUSH[_code] = sum(1 for x in _after if x is not pickletools.markobject)
    if _MARKED[_code] or _NPOP[_code]:
        _SEM[_code] = _S_NEW
    elif _NPUSH[_code]:
        _SEM[_code] = _S_PUSH
for _names, _sem in (
    (("APPEND", "BUILD", "READONLY_BUFFER", "DUP"), _S_KEEP),
    (("TUPLE", "TUPLE1", "TUPLE2", "TUPLE3"), _S_SUM),
    (("SETITEM",), _S_KEY),
    (("DICT", "SETITEMS"), _S_PAIRS),
    (("ADDITEMS", "FROZENSET"), _S_ALL),
    (("POP",), _S_POP),
    (("MARK",), _S_MARK),
    (("GET", "BINGET", "LONG_BINGET"), _S_GET),
    (("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"), _S_PUT),
    (("INT", "LONG", "LONG1", "LONG4"), _S_INT),
    (("STOP",), _S_NONE),
):
    for _name in _names:
        _SEM[_OP[_name]] = _sem
# pickletools gives PUT no stack effect, but the unpicklers read the top value (underflow on an
# empty frame): model them as MEMOIZE, "pop one, push it back".
for _name in ("PUT", "BINPUT", "LONG_BINPUT"):
    _NPOP[_OP[_name]] = _NPUSH[_OP[_name]] = 1
del _names, _sem, _name, _before, _after, _k

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
_E_MAX_INT = 11  # offset, length, opcode (LONG1 or LONG4)
_E_MAX_OPS = 12  # opcodes read so far
_E_MAX_HASH = 13  # offset, objects hashed so far, opcode
_E_MAX_COLLIDE = 14  # offset, objects hashed so far (collision probes included), opcode
_E_KEY_DEPTH = 15  # offset, tuple nesting of the key, opcode

#: Deepest tuple nesting of a dict key or set item the stream may hash (``KEY_DEPTH_MAX`` in
#: ``_opscan.c``).  CPython's tuple hash recurses once per level with no stack guard: 40,000
#: nested tuples as a dict key crashed a thread with a 1 MiB stack, with every default limit
#: (review 7).  No scikit-learn pickle hashes a key nested more than a few levels.
MAX_KEY_DEPTH = 1000

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
        return LimitExceededError(
            "max_int_bytes", b, limits.max_int_bytes, f"{OPCODE_NAMES[c]} at offset {a}"
        )
    if code == _E_MAX_OPS:
        return LimitExceededError("max_opcodes", a, limits.max_opcodes, "pickle opcodes")
    if code == _E_MAX_HASH:
        return LimitExceededError(
            "max_items",
            b,
            limits.max_items,
            f"hashing the keys or set items of {OPCODE_NAMES[c]} at offset {a}: a tuple's hash "
            "visits every item, a shared tuple each time it is reached (hash bomb); objects "
            "visited by all the hashes so far",
        )
    if code == _E_KEY_DEPTH:
        return LimitExceededError(
            "max_depth",
            b,
            MAX_KEY_DEPTH,
            f"a key or set item of {OPCODE_NAMES[c]} at offset {a} is a tuple nested {b:,} "
            "levels deep (or more): hashing a tuple recurses once per level without a stack "
            "guard, so keys are bounded whatever the limits say",
        )
    if code == _E_MAX_COLLIDE:
        return LimitExceededError(
            "max_items",
            b,
            limits.max_items,
            f"hash collisions: {OPCODE_NAMES[c]} at offset {a} places a value whose hash can "
            "be chosen to collide (an int of 8 bytes or more, a tuple or frozenset holding one "
            "or mixing a float with other numbers) in a dict, set, list or tuple; each is charged "
            "the number placed before it (the worst case, all in one hash table, is quadratic: "
            "hash flooding); objects visited by all the hashes so far",
        )
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
    stack_error : int
        Offset of the first opcode the unpickler can not execute with the stack, marks and memo
        it would have there (stack underflow, no MARK, a memo entry never stored, an odd number
        of key/value items), -1 when there is none.  The unpickler fails at that opcode.
    hash_visits : int
        Objects visited by the hashes of all the dict keys and set items of the stream (tuples
        expanded, shared ones each time they are reached; saturates at ``2**62``), plus the
        worst-case collision probes of the collidable values (``collidable * (collidable - 1)
        / 2``), up to ``stack_error``.  At most ``Limits.max_items``.
    payload_offsets : list of int
        Offsets of the ``BINBYTES``/``BINBYTES8``/``BYTEARRAY8`` opcodes whose payload has
        :data:`LARGE_PAYLOAD` bytes or more, up to where the scan stopped: the opcodes the
        restricted loader may leave in the file (:mod:`safeload.readers.payloads`).
    collidable : int
        Values whose hash can be chosen to collide (see the module docstring) hashed as dict
        keys or set items or placed in lists and tuples, up to ``stack_error``.
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
    stack_error: int = -1
    hash_visits: int = 0
    collidable: int = 0
    payload_offsets: list[int] = field(default_factory=list)


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
        ``max_opcodes``, ``max_memo``, ``max_int_bytes`` and, for the hashes of dict keys and
        set items, ``max_items`` are enforced here.
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
        so far (a legitimate pickler numbers its memo 0, 1, 2, ...), an oversized integer, or
        keys and set items whose hashes would visit more than ``max_items`` objects (a hash
        bomb), counting the worst-case probes of values whose hashes can be chosen to collide
        (hash flooding; see the module docstring).

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
        min(limits.max_items, _U64_MAX),
        bool(allow_trailing),
    )
    if res[0]:
        raise _error(res[0], res[1], res[2], res[3], data, limits)
    return StreamInfo(res[1], start, *res[2:])


class _StackModel:
    """The unpickler's stack, mark stack and memo, holding hash weights instead of objects.

    Follows ``Modules/_pickle.c``: one value stack with the marks as positions into it, the
    *fence* (top mark) below which no opcode may pop, ``APPENDS``/``SETITEMS``/``ADDITEMS``
    reaching the container just below their mark, ``POP`` dropping the top mark when nothing
    was pushed since, ``MEMOIZE`` storing at the number of memo entries.  Grows by at most two
    values per opcode; the memo by one entry per memo opcode (indices are bounded by the opcode
    count or 255).  Each value also has a hash class (``cs``, parallel to ``ws``; ``_H_*``).
    After the first opcode the unpickler can not execute, :attr:`stack_error` holds its offset
    and the model stops.
    """

    __slots__ = (
        "ws",
        "cs",
        "ds",
        "marks",
        "memo",
        "memo_cls",
        "memo_max",
        "memo_cmax",
        "memo_d",
        "memo_dmax",
        "hashed",
        "colliding",
        "max_items",
        "stack_error",
    )

    def __init__(self, max_items: int) -> None:
        self.ws: list[int] = []  # weights, bottom first
        self.cs: list[int] = []  # hash classes, parallel to ws
        self.ds: list[int] = []  # tuple nesting, parallel to ws (0: not a tuple, or empty)
        self.marks: list[int] = []  # positions in ws
        self.memo: dict[int, int] = {}
        self.memo_cls: dict[int, int] = {}
        self.memo_max = 0  # largest weight ever stored (a GET whose index C may parse otherwise)
        self.memo_cmax = 0  # highest class ever stored (same use)
        self.memo_d: dict[int, int] = {}
        self.memo_dmax = 0  # deepest nesting ever stored (same use)
        self.hashed = 0
        self.colliding = 0  # collidable values placed so far
        self.max_items = max_items
        self.stack_error = -1

    def step(self, op: int, pos: int, arg: int, data, limits: Limits, cls: int = 0) -> None:
        """Apply opcode ``op`` at ``pos``; ``arg`` is its memo index (-1: MEMOIZE, or a text GET
        whose line is not plain digits) or, for an int, its weight; ``cls`` is the hash class
        of the value a push-only opcode or an int pushes."""
        ws = self.ws
        cs = self.cs
        ds = self.ds
        marks = self.marks
        sem = _SEM[op]
        if sem == _S_PUT:  # the common case first (every memoized value)
            if len(ws) <= (marks[-1] if marks else 0):
                self.stack_error = pos  # stack underflow
                return
            w = ws[-1]
            c = cs[-1]
            memo = self.memo
            index = len(memo) if arg < 0 else arg
            memo[index] = w
            self.memo_cls[index] = c
            d = self.memo_d[index] = ds[-1]
            if d > self.memo_dmax:
                self.memo_dmax = d
            if w > self.memo_max:
                self.memo_max = w
            if c > self.memo_cmax:
                self.memo_cmax = c
            return
        if sem == _S_MARK:
            marks.append(len(ws))
            return
        if sem == _S_POP and marks and marks[-1] == len(ws):
            marks.pop()
            return
        if _MARKED[op]:
            if not marks:
                self.stack_error = pos  # "could not find MARK"
                return
            i = marks.pop()
            fence = marks[-1] if marks else 0
            below = _NPOP[op]
            if i > len(ws) or i - below < fence or len(ws) - i < _ABOVE[op]:
                self.stack_error = pos  # stack underflow
                return
            items = ws[i:]
            classes = cs[i:]
            depths = ds[i:]
            if sem == _S_PAIRS:
                if len(items) % 2:
                    self.stack_error = pos  # odd number of items
                    return
                self._hash(op, pos, items[0::2], depths[0::2], data, limits)
                self._collide(op, pos, classes[0::2], data, limits)
            elif sem == _S_ALL:
                self._hash(op, pos, items, depths, data, limits)
                self._collide(op, pos, classes, data, limits)
            elif _ENTERS[op]:
                self._collide(op, pos, classes, data, limits)
            del ws[i:]
            del cs[i:]
            del ds[i:]
            if _NPUSH[op] > below:
                if sem == _S_SUM:
                    ws.append(min(_W_CAP, 1 + sum(items)))
                    cs.append(_combine(classes))
                    ds.append(_nest(depths))
                else:
                    ws.append(1)
                    cs.append(_combine(classes) if sem == _S_ALL else _H_OPAQUE)  # FROZENSET
                    # a frozenset's hash is cached, but equal keys are compared through it
                    ds.append(_nest(depths) if sem == _S_ALL else 0)
            return
        npop = _NPOP[op]
        size = len(ws)
        if size - npop < (marks[-1] if marks else 0):
            self.stack_error = pos  # stack underflow
            return
        d = 0
        if npop:
            popped = ws[size - npop :]
            classes = cs[size - npop :]
            pdepths = ds[size - npop :]
            if sem == _S_SUM:
                w = min(_W_CAP, 1 + sum(popped))
                c = _combine(classes)
                d = _nest(pdepths)
                self._collide(op, pos, classes, data, limits)
            elif sem == _S_NEW:
                w = 1
                c = _H_OPAQUE
            else:
                w = popped[0]
                c = classes[0]
                d = pdepths[0]
                if op == _APPEND:
                    self._collide(op, pos, classes[1:], data, limits)
            if sem == _S_KEY:
                self._hash(op, pos, popped[1:2], pdepths[1:2], data, limits)
                self._collide(op, pos, classes[1:2], data, limits)
            del ws[size - npop :]
            del cs[size - npop :]
            del ds[size - npop :]
        elif sem == _S_GET:
            if arg < 0:
                w = max(1, self.memo_max)
                c = self.memo_cmax
                d = self.memo_dmax
            else:
                w = self.memo.get(arg, 0)
                if not w:
                    self.stack_error = pos  # "Memo value not found"
                    return
                c = self.memo_cls[arg]
                d = self.memo_d[arg]
        elif sem == _S_INT:
            w = arg
            c = cls
        else:
            w = 1
            c = cls
        for _ in range(_NPUSH[op]):
            ws.append(w)
            cs.append(c)
            ds.append(d)

    def _hash(
        self, op: int, pos: int, weights: list[int], depths: list[int], data, limits: Limits
    ) -> None:
        self.hashed = min(_W_CAP, self.hashed + sum(weights))
        if self.hashed > self.max_items:
            raise _error(_E_MAX_HASH, pos, self.hashed, op, data, limits)
        deepest = max(depths, default=0)
        if deepest > MAX_KEY_DEPTH:  # after the budget: a hash bomb is reported as one
            raise _error(_E_KEY_DEPTH, pos, deepest, op, data, limits)

    def _collide(self, op: int, pos: int, classes: list[int], data, limits: Limits) -> None:
        """Charge each collidable value the number placed before it (hash flooding)."""
        n = classes.count(_H_COLLIDE)
        if n:
            k = self.colliding
            self.colliding = k + n
            self.hashed = min(_W_CAP, self.hashed + n * k + n * (n - 1) // 2)
            if self.hashed > self.max_items:
                raise _error(_E_MAX_COLLIDE, pos, self.hashed, op, data, limits)


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
    sem_of = _SEM
    find = data.find if hasattr(data, "find") else bytes(data).find
    global_offsets = info.global_offsets
    model = _StackModel(limits.max_items)
    push = model.ws.append
    cpush = model.cs.append
    dpush = model.ds.append
    stopped = False
    while pos < n:
        op = data[pos]
        kind = kind_of[op]
        nops += 1
        if kind == _FIXED:
            if special[op]:
                if op == _STOP:
                    # STOP pops the result: an empty frame is an underflow too
                    if model.stack_error < 0 and len(model.ws) <= (
                        model.marks[-1] if model.marks else 0
                    ):
                        model.stack_error = pos
                    pos += 1
                    stopped = True
                    break
                _special(data, pos, op, info, nops, limits, n)
            nxt = pos + 1 + size_of[op]
            # the model follows complete opcodes only (a truncated one ends the stream)
            if model.stack_error < 0 and nxt <= n:
                sem = sem_of[op]
                if sem == _S_PUSH:
                    push(1)
                    cpush(_PUSH_CLASS[op])
                    dpush(0)
                elif sem in (_S_GET, _S_PUT):
                    size = size_of[op]
                    arg = -1 if not size else int.from_bytes(data[pos + 1 : nxt], "little")
                    model.step(op, pos, arg, data, limits)
                else:
                    model.step(op, pos, 0, data, limits)
            pos = nxt
            continue
        arg = 0
        cls = _H_OPAQUE
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
                return _finish(info, model)
            if op == _LONG1:
                if length > limits.max_int_bytes:
                    raise _error(_E_MAX_INT, pos, length, op, data, limits)
                arg = 1 + (length >> 3)
                cls = _int_class(length)
            nxt = pos + 2 + length
        elif kind in (_LEN4U, _LEN4S):
            length = int.from_bytes(data[pos + 1 : pos + 5], "little", signed=kind == _LEN4S)
            if length < 0:
                raise _error(_E_NEG_LENGTH, pos, op, length, data, limits)
            if op == _LONG4:
                if length > limits.max_int_bytes:
                    raise _error(_E_MAX_INT, pos, length, op, data, limits)
                arg = 1 + (length >> 3)
                cls = _int_class(length)
            elif op == _BINBYTES and length >= LARGE_PAYLOAD:
                info.payload_offsets.append(pos)
            elif (
                length in _MARKER_LENS
                and op in _STRING_OPS
                and pos + 5 + length <= n
                and bytes(data[pos + 5 : pos + 5 + length]) in JOBLIB_MARKERS
            ):
                info.joblib = True
                info.n_opcodes = nops
                return _finish(info, model)
            nxt = pos + 5 + length
        elif kind == _LEN8U:
            length = int.from_bytes(data[pos + 1 : pos + 9], "little")
            if op in _BYTES8_OPS and length >= LARGE_PAYLOAD:
                info.payload_offsets.append(pos)
            nxt = pos + 9 + length
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
                    return _finish(info, model)
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
                arg = int(line)
                _check_memo(arg, pos, nops, info, limits, data)
            elif op == _GET:
                # the unpickler parses more spellings (" 1", "+1", "1_0"): those fetch *some*
                # memo entry, so the model uses the heaviest (-1)
                line = bytes(data[pos + 1 : end]) if end - pos - 1 <= _MAX_PUT_DIGITS else b""
                arg = int(line) if line.isdigit() else -1
            elif op in _PERSID_OPS:
                info.persid_offsets.append(pos)
            elif sem_of[op] == _S_INT:
                arg = 1 + ((end - pos - 1) >> 4)
                cls = _text_int_class(end - pos - 1)
            nxt = end + 1
        else:
            raise _error(_E_INVALID_OP, pos, op, 0, data, limits)
        if model.stack_error < 0 and nxt <= n:
            sem = sem_of[op]
            if sem == _S_PUSH:
                push(1)
                cpush(_PUSH_CLASS[op])
                dpush(0)
            elif sem == _S_INT:
                push(arg)
                cpush(cls)
                dpush(0)
            else:
                model.step(op, pos, arg, data, limits)
        pos = nxt
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
    return _finish(info, model)


def _finish(info: StreamInfo, model: _StackModel) -> StreamInfo:
    info.stack_error = model.stack_error
    info.hash_visits = model.hashed
    info.collidable = model.colliding
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
