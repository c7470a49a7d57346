"""joblib files (and compressed pickles) → inert object graph.

joblib writes each numpy array as a ``NumpyArrayWrapper`` object followed, right after its
``BUILD`` opcode, by the array's raw bytes — or, for object dtypes, by a *nested pickle stream*
(joblib ``numpy_pickle.py``: ``NumpyArrayWrapper.write_array``/``read_array``).  Only the
pure-Python unpickler can stop after that ``BUILD`` and read the bytes, so this reader subclasses
``pickle._Unpickler`` exactly as joblib's ``NumpyUnpickler`` does, with the inert ``find_class``
of :mod:`safeload.graph` and one changed opcode:

* ``BUILD`` on a ``NumpyArrayWrapper``: evaluate its dtype (only ``numpy.dtype`` is allowed in
  that tiny subgraph), check the declared size against the limits, then read the raw bytes
  straight into a new array (``readinto``: no intermediate copy).  Object arrays are parsed as a
  nested stream *with the same inert machinery and the same context*, so their globals are
  audited like every other.
* ``BUILD`` on a ``NDArrayWrapper`` (joblib < 0.10 multi-file format): read the side ``.npy``
  file next to the pickle with :func:`~safeload.readers.npy.read_npy_file` (numeric only, never
  ``allow_pickle``); the file name must be a plain name in the same folder.
* ``EXT1/2/4`` are refused; persistent ids are recorded as forbidden.

No opcode pre-scan runs on these streams (they are read as they decompress), so the reader
enforces what :func:`~safeload.readers.opscan.scan_opcodes` enforces for raw pickles:
``max_opcodes`` (counted in :meth:`_JoblibUnpickler.load`; for a *compressed* stream with the
default limit also at most :data:`OPCODE_FLOOR` plus :data:`OPCODES_PER_COMPRESSED_BYTE` per
compressed byte consumed, over all the streams of the file: this unpickler runs at about
0.5-2 us per opcode, so a 600 KiB gzip of 2**28 cheap opcodes would otherwise keep it busy for
minutes before ``max_opcodes``), ``max_memo`` (same rule for
``PUT``/``LONG_BINPUT``), ``max_int_bytes`` (``LONG1``/``LONG4``), and the hash-bomb budget:
the keys and items that ``SETITEM(S)``, ``DICT``, ``ADDITEMS`` and ``FROZENSET`` hash are
weighed first (a tuple visits ``1 + its items' weights`` objects, shared tuples each time) and
their total may not exceed ``max_items``; values whose hash can be chosen to collide (big ints
and tuples and frozensets of such or mixing floats with other numbers: the hash classes of
:mod:`~safeload.readers.opscan`,
taken from the values) are charged the pre-scan's worst case of hash flooding to the same total
whenever they are hashed or enter a list or a tuple.  Declared lengths (``BINBYTES8``, ``BINUNICODE8``,
``BYTEARRAY8``) are compared with what the frame or the bounded reader can still produce before
anything is allocated or buffered (``pickle._Unpickler`` zero-fills a ``BYTEARRAY8``'s declared
size first).

The same reader handles gzip/bz2/xz/lzma/zlib/lz4-compressed plain pickles, which are just
pickle streams without wrappers.
"""

from __future__ import annotations

import math
import os
import pickle
import struct
from typing import IO, Any

import numpy as np

from .._dtypestate import dtype_state_problem
from .._hashing import key_nesting
from .._text import describe
from ..errors import FormatError, LimitExceededError, SafeloadError
from ..graph import ATOMIC_TYPES, OP_BUILD, Call, New, ParseContext
from ..limits import DEFAULT_LIMITS, Limits
from .compression import _CHUNK
from .npy import read_npy_file, read_npy_header
from .opscan import (
    _H_COLLIDE,
    _H_NARROW,
    _H_OPAQUE,
    _H_WIDE,
    _MAX_PUT_DIGITS,
    _W_CAP,
    MAX_KEY_DEPTH,
    OPCODE_NAMES,
    _combine,
    _int_class,
)
from .pickle_reader import ParsedStream, _Forbidden, _inert_hooks

__all__ = [
    "parse_joblib",
    "JOBLIB_MODULES",
    "SkippedArray",
    "SCAN_KEEP_BYTES",
    "OPCODE_FLOOR",
    "OPCODES_PER_COMPRESSED_BYTE",
]

#: Opcodes a compressed stream may always use (about 0.5 s of this unpickler), whatever its
#: compressed size.  Together with :data:`OPCODES_PER_COMPRESSED_BYTE` this bounds the work of
#: a compressed file by its size on disk when ``Limits.max_opcodes`` is the default; a caller
#: who sets ``max_opcodes`` explicitly gets exactly that limit instead.
OPCODE_FLOOR = 1 << 20
#: Opcodes allowed per compressed byte beyond :data:`OPCODE_FLOOR`.  Real models stay below 8
#: (a 200,000-term TfidfVectorizer: 0.5 with bz2; a dict of 300,000 ints: 7.6 with xz); a
#: stream of cheap opcodes (``N0`` repeated) compresses to about 1,000 opcodes per byte.
OPCODES_PER_COMPRESSED_BYTE = 32
_CHECK_EVERY = 0xFFFF  # the ratio is checked every 65,536 opcodes (and when a stream ends)

#: In the scanner's mode (``materialize=False``) arrays up to this size are still read, so that
#: the static checks can look at small arguments (a tree's ``n_classes``); larger ones are
#: stepped over and stand in as an empty :class:`SkippedArray`.
SCAN_KEEP_BYTES = 1 << 16


class SkippedArray(np.ndarray):
    """Empty stand-in for an array whose raw bytes the scanner stepped over (never built)."""


#: Module spellings of joblib's pickling helpers (joblib itself, and the copy vendored as
#: ``sklearn.externals.joblib`` in scikit-learn 0.20–0.22).
JOBLIB_MODULES = frozenset(
    {
        "joblib.numpy_pickle",
        "sklearn.externals.joblib.numpy_pickle",
        "joblib.numpy_pickle_compat",
        "sklearn.externals.joblib.numpy_pickle_compat",
    }
)
#: Array classes a wrapper may name.  joblib 1.6 with numpy 2 returns a plain ndarray for each
#: (``__array_prepare__`` is gone, so its subclass branch is never taken); so does safeload.
_ARRAY_SUBCLASSES = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "memmap"),
        ("numpy", "matrix"),
        ("numpy.core.memmap", "memmap"),
        ("numpy._core.memmap", "memmap"),
        ("numpy.matrixlib.defmatrix", "matrix"),
    }
)

_Base = pickle._Unpickler  # type: ignore[attr-defined]

_NESTED = (tuple, frozenset)


#: the exact types _hashing and _collidable look into; any other key is one visit, never collidable
_ONE_VISIT = frozenset({tuple, frozenset, int})


def _value_class(x: Any, tp: type) -> int:
    """Hash class (``opscan._H_*``) of an atom, from its value: the class the pre-scan gives
    the opcode a pickler writes for it (for an int, from its LONG1 length)."""
    if tp is int:
        return _int_class(((x if x >= 0 else ~x).bit_length() >> 3) + 1)
    if tp is float:
        return _H_WIDE  # at most about 200 floats share a hash (opscan._H_WIDE)
    if tp is bool or x is None:
        return _H_NARROW
    return _H_OPAQUE


@_inert_hooks
class _JoblibUnpickler(_Base):
    dispatch = dict(_Base.dispatch)

    def __init__(
        self,
        file: IO[bytes],
        context: ParseContext,
        limits: Limits,
        dirname: str | None,
        depth: int = 0,
        materialize: bool = True,
    ):
        super().__init__(file, encoding="latin1")
        self._safeload_context = context
        self._safeload_limits = limits
        self._file = file
        self._dirname = dirname
        self._depth = depth
        self._dtype_cache: dict[int, tuple[Any, Any]] = {}
        self.array_bytes = 0
        #: False for the scanner: raw array bytes are checked and stepped over, not kept
        self._materialize = materialize
        self._frame_start = 0
        self._nops = 0  # opcodes read so far (``load``)
        #: hash weight and class per tuple or frozenset (by id, with the object kept alive),
        #: the visits counted so far and the collidable values placed so far, shared with the
        #: nested streams of object arrays: one budget per file
        self._weights: dict[int, tuple[int, int, tuple | frozenset]] = {}
        self._hashed = [0]
        self._colliding = [0]
        #: opcodes of the finished 65,536-opcode blocks of every stream of the file (nested
        #: object-array streams share it), for the compressed-size budget
        self._opcount = [0]

    # -- BUILD -------------------------------------------------------------------------------
    def load_build(self) -> None:
        stack = self.stack
        state = stack.pop()
        inst = stack[-1]
        if type(inst) in (New, Call) and inst.func.module in JOBLIB_MODULES:
            kind = inst.func.qualname
            self._safeload_context.consumed.add((inst.func.module, kind))
            if kind == "NumpyArrayWrapper":
                stack[-1] = self._read_wrapper(state)
                return
            if kind == "NDArrayWrapper":
                stack[-1] = self._read_side_file(state)
                return
            raise FormatError(f"unsupported joblib object {inst.func.module}.{kind}")
        setstate = getattr(inst, "__setstate__", None)
        if setstate is None:
            raise FormatError(f"BUILD on a {type(inst).__name__}")
        setstate(state)

    dispatch[pickle.BUILD[0]] = load_build

    def _ext(size: int):  # noqa: N805 - builds one dispatch function per EXT opcode
        def load_ext(self) -> None:
            self._safeload_context.forbidden.append(
                (
                    "extension-code",
                    "EXT opcode: extension-registry codes fetch globals without "
                    "naming them (copyreg.add_extension)",
                )
            )
            self.read(size)
            self.append(_Forbidden("extension-code"))

        return load_ext

    dispatch[pickle.EXT1[0]] = _ext(1)
    dispatch[pickle.EXT2[0]] = _ext(2)
    dispatch[pickle.EXT4[0]] = _ext(4)
    del _ext

    # -- stream limits (the raw-pickle reader's pre-scan enforces the same ones) -------------
    def load(self) -> Any:
        """``pickle._Unpickler.load`` plus the opcode count of ``max_opcodes``.

        For a compressed stream with the default ``max_opcodes``, the opcodes of all the
        streams of the file are also bounded by the compressed bytes consumed
        (:meth:`_check_compressed_budget`).
        """
        self._unframer = pickle._Unframer(self._file_read, self._file_readline)
        self.read = self._unframer.read
        self.readinto = self._unframer.readinto
        self.readline = self._unframer.readline
        self.metastack = []
        self.stack = []
        self.append = self.stack.append
        self.proto = 0
        read = self.read
        dispatch = self.dispatch
        max_ops = self._safeload_limits.max_opcodes
        source = getattr(self._file, "source_bytes", None)
        budgeted = (
            source is not None and source() is not None and max_ops == DEFAULT_LIMITS.max_opcodes
        )
        nops = 0
        try:
            # the loop counts opcodes itself; one past max_ops ends it (below)
            for nops in range(1, max_ops + 1):  # noqa: B007 - nops is read after the loop
                key = read(1)
                if not key:
                    raise EOFError
                if not nops & _CHECK_EVERY:
                    self._opcount[0] += _CHECK_EVERY + 1
                    if budgeted:
                        self._check_compressed_budget(source())
                self._nops = nops
                dispatch[key[0]](self)
            nops = max_ops + 1
            raise LimitExceededError("max_opcodes", nops, max_ops, "pickle opcodes")
        except pickle._Stop as stopinst:
            self._opcount[0] += nops & _CHECK_EVERY
            nops = 0
            if budgeted:
                self._check_compressed_budget(source())
            return stopinst.value
        finally:
            self._opcount[0] += nops & _CHECK_EVERY

    def _check_compressed_budget(self, compressed: int) -> None:
        """Refuse more than ``OPCODE_FLOOR + OPCODES_PER_COMPRESSED_BYTE * compressed`` opcodes.

        Raises
        ------
        LimitExceededError
            ``max_opcodes``, with the budget as ``allowed``.
        """
        total = self._opcount[0]
        allowed = OPCODE_FLOOR + OPCODES_PER_COMPRESSED_BYTE * compressed
        if total > allowed:
            raise LimitExceededError(
                "max_opcodes",
                total,
                allowed,
                f"opcodes of a compressed stream: at most {OPCODE_FLOOR:,} plus "
                f"{OPCODES_PER_COMPRESSED_BYTE} per compressed byte ({compressed:,} read) with "
                "the default limit, as a small file of many cheap opcodes would keep the "
                "loader busy for minutes; an explicit Limits(max_opcodes=...) replaces this "
                "budget",
            )

    def _check_memo(self, index: int) -> None:
        """The pre-scan's rule (``opscan._check_memo``) for ``PUT`` and ``LONG_BINPUT``."""
        limits = self._safeload_limits
        if index > self._nops:
            raise LimitExceededError(
                "max_memo",
                index,
                self._nops,
                f"memo index larger than the {self._nops} opcodes read so far; a pickler "
                "numbers its memo 0, 1, 2, ... (CVE-2018-20406 memo resize)",
            )
        limits.check("max_memo", index, "memo index")

    def _load_put(self) -> None:
        line = self.readline()
        digits = line[:-1]
        if not (line[-1:] == b"\n" and 0 < len(digits) <= _MAX_PUT_DIGITS and digits.isdigit()):
            raise FormatError(
                f"invalid PUT memo index {bytes(digits[:40])!r}: expected 1 to "
                f"{_MAX_PUT_DIGITS} ASCII digits"
            )
        index = int(digits)
        self._check_memo(index)
        self.memo[index] = self.stack[-1]

    def _load_long_binput(self) -> None:
        (index,) = struct.unpack("<I", self.read(4))
        self._check_memo(index)
        self.memo[index] = self.stack[-1]

    def _long(size: int):  # noqa: N805 - builds LONG1 and LONG4
        fmt = "<B" if size == 1 else "<i"

        def load_long(self) -> None:
            (n,) = struct.unpack(fmt, self.read(size))
            if n < 0:
                raise FormatError(f"negative length {n} for LONG{size}")
            self._safeload_limits.check("max_int_bytes", n, f"LONG{size}")
            data = self.read(n)
            if len(data) != n:
                raise FormatError(f"truncated pickle stream: LONG{size} declares {n} bytes")
            self.append(pickle.decode_long(data))

        return load_long

    dispatch[pickle.PUT[0]] = _load_put
    dispatch[pickle.LONG_BINPUT[0]] = _load_long_binput
    dispatch[pickle.LONG1[0]] = _long(1)
    dispatch[pickle.LONG4[0]] = _long(4)
    del _long

    # -- declared lengths: checked before anything is allocated or buffered ----------------
    def _declared(self, length: int, what: str) -> None:
        """Refuse a length prefix that the stream can not satisfy, before reading it.

        Inside a frame the frame must hold it (FormatError).  Otherwise a length beyond what
        the bounded reader may still produce is refused after reading at most one chunk (then
        dropped): the stream ended first (FormatError, truncated) or it goes on past the limit
        (LimitExceededError).
        """
        frame = self._unframer.current_frame
        if frame is not None:
            with frame.getbuffer() as buf:
                left = buf.nbytes - frame.tell()
            if left:
                if length > left:
                    raise FormatError(
                        f"truncated pickle stream: {what} declares {length} bytes, its frame "
                        f"holds {left}"
                    )
                return
        remaining = getattr(self._file, "remaining", None)
        if remaining is None:
            return
        budget = remaining()
        if length <= budget:
            return
        consumed = self._file.consumed
        probe = min(length, _CHUNK)
        got = len(self._file.read(probe))  # may itself exceed the limit
        if got < probe:
            raise FormatError(
                f"truncated pickle stream: {what} declares {length} bytes, {got} present"
            )
        raise LimitExceededError(
            self._file.limit_name,
            consumed + length,
            consumed + budget,
            f"{what} declares {length} bytes",
        )

    def _read_declared(self, length: int, what: str) -> bytes:
        self._declared(length, what)
        data = self.read(length)  # the bounded reader reads in chunks
        if len(data) != length:
            raise FormatError(
                f"truncated pickle stream: {what} declares {length} bytes, {len(data)} present"
            )
        return data

    def _load_binbytes8_declared(self) -> None:
        (length,) = struct.unpack("<Q", self.read(8))
        self.append(self._read_declared(length, "BINBYTES8"))

    def _load_binunicode8_declared(self) -> None:
        (length,) = struct.unpack("<Q", self.read(8))
        self.append(str(self._read_declared(length, "BINUNICODE8"), "utf-8", "surrogatepass"))

    def _load_bytearray8_declared(self) -> None:
        # pickle._Unpickler zero-fills bytearray(length) first: never allocate a declared size
        (length,) = struct.unpack("<Q", self.read(8))
        self._declared(length, "BYTEARRAY8")
        out = bytearray()
        while len(out) < length:
            chunk = self.read(min(length - len(out), _CHUNK))
            if not chunk:
                raise FormatError(
                    f"truncated pickle stream: BYTEARRAY8 declares {length} bytes, "
                    f"{len(out)} present"
                )
            out += chunk
        self.append(out)

    dispatch[pickle.BINBYTES8[0]] = _load_binbytes8_declared
    dispatch[pickle.BINUNICODE8[0]] = _load_binunicode8_declared
    dispatch[pickle.BYTEARRAY8[0]] = _load_bytearray8_declared

    # -- hashing opcodes: bounded work (hash bombs, hash flooding) --------------------------
    def _hash_info(self, obj: tuple | frozenset) -> tuple[int, int]:
        """``(weight, class)`` of a tuple or frozenset: the objects a hash of it visits and
        its hash class (``opscan._H_*``, the pre-scan's rules applied to the values).

        Tuple hashes are not cached, so a tuple holding the previous one 16 times, 9 levels
        deep (a few hundred bytes through the memo) costs 16**9 visits per hash: a tuple weighs
        ``1 + the items' weights``, saturating; a frozenset caches its hash and weighs 1.
        Memoized by identity for the whole parse (the entries keep their objects alive) and
        iterative; a short flat one is weighed directly (at most 16 steps each time it is
        reached).
        """
        if len(obj) <= 16:  # a short flat tuple (most tuple keys): at most 16 steps, no memo
            w = 1
            classes = []
            for x in obj:
                tp = type(x)
                if tp is tuple or tp is frozenset:
                    break
                w += 1 + x.bit_length() // 64 if tp is int else 1
                classes.append(_value_class(x, tp))
            else:
                return (1 if type(obj) is frozenset else w), _combine(classes)
        memo = self._weights
        hit = memo.get(id(obj))
        if hit is not None:
            return hit[0], hit[1]
        todo = [obj]
        while todo:
            t = todo[-1]
            if id(t) in memo:
                todo.pop()
                continue
            pending = [x for x in t if type(x) in _NESTED and id(x) not in memo]
            if pending:  # built bottom-up: no cycle through tuples and frozensets alone
                todo.extend(pending)
                continue
            w = 1
            classes = []
            for x in t:
                tp = type(x)
                if tp is tuple or tp is frozenset:
                    xw, xc, _ = memo[id(x)]
                    w += xw
                    classes.append(xc)
                else:
                    w += 1 + x.bit_length() // 64 if tp is int else 1
                    classes.append(_value_class(x, tp))
            memo[id(t)] = (1 if type(t) is frozenset else min(w, _W_CAP), _combine(classes), t)
            todo.pop()
        hit = memo[id(obj)]
        return hit[0], hit[1]

    def _collidable(self, x: Any) -> bool:
        tp = type(x)
        if tp is tuple or tp is frozenset:
            return self._hash_info(x)[1] == _H_COLLIDE
        if tp is int:
            return _value_class(x, tp) == _H_COLLIDE
        return False

    def _hashing(self, items: list, code: int) -> None:
        """Count the hash visits of ``items`` against ``max_items`` (the whole file's budget,
        as in the raw reader's pre-scan: a key repeated many times counts each time), then
        charge the collidable ones (:meth:`_collide`)."""
        total = self._hashed[0]
        colliding = 0
        has_tuple = False
        if _ONE_VISIT.isdisjoint(set(map(type, items))):
            # no tuple, frozenset or exact int (str keys of a vocabulary): each key costs one
            # visit and none can collide, as in the loop below, at C speed
            total += len(items)
            items = ()
        for x in items:
            tp = type(x)
            if tp is tuple or tp is frozenset:
                w, c = self._hash_info(x)
                has_tuple = has_tuple or tp is tuple
                total += w
                colliding += c == _H_COLLIDE
            elif tp is int:
                total += 1 + x.bit_length() // 64
                colliding += _value_class(x, tp) == _H_COLLIDE
            else:
                total += 1
        total = min(total, _W_CAP)
        self._hashed[0] = total
        limit = self._safeload_limits.max_items
        if total > limit:
            raise LimitExceededError(
                "max_items",
                total,
                limit,
                f"hashing the keys or set items of {OPCODE_NAMES[code]}: a tuple's hash "
                "visits every item, a shared tuple each time it is reached (hash bomb); "
                "objects visited by all the hashes so far",
            )
        if has_tuple and (depth := key_nesting(items)) > MAX_KEY_DEPTH:
            # as the pre-scan: hashing a tuple recurses once per level without a stack guard
            raise LimitExceededError(
                "max_depth",
                depth,
                MAX_KEY_DEPTH,
                f"a key or set item of {OPCODE_NAMES[code]} is a tuple nested {depth:,} levels "
                "deep: hashing a tuple recurses once per level without a stack guard",
            )
        if colliding:
            self._collide(colliding, code)

    def _entering(self, items: list, code: int) -> None:
        """Charge the collidable values that enter a list or a tuple: the builder may pass it
        to ``set``, ``frozenset`` or ``dict`` (protocols 0 to 3 pickle sets that way)."""
        if _ONE_VISIT.isdisjoint(set(map(type, items))):
            return  # only tuples, frozensets and exact ints can be collidable (_collidable)
        colliding = 0
        for x in items:
            colliding += self._collidable(x)
        if colliding:
            self._collide(colliding, code)

    def _collide(self, n: int, code: int) -> None:
        """Charge ``n`` more collidable values the pre-scan's worst case (hash flooding): all
        in one hash table, each probing past every one placed before it."""
        k = self._colliding[0]
        self._colliding[0] = k + n
        total = min(_W_CAP, self._hashed[0] + n * k + n * (n - 1) // 2)
        self._hashed[0] = total
        limit = self._safeload_limits.max_items
        if total > limit:
            raise LimitExceededError(
                "max_items",
                total,
                limit,
                f"hash collisions: {OPCODE_NAMES[code]} places a value whose hash can be "
                "chosen to collide (an int of 8 bytes or more, a tuple or frozenset holding one "
                "or mixing a float with other numbers) in a dict, set, list or tuple; each is "
                "charged the number placed before it (the worst case, all in one hash table, "
                "is quadratic: hash flooding); objects visited by all the hashes so far",
            )

    def _marked(code: int, pairs: bool, container: bool, hashes: bool):  # noqa: N805
        """Wrap a marked opcode: hash (or place) the items of its slice first."""
        base = _Base.dispatch[code]

        def load_marked(self) -> None:
            # the current frame (``self.stack``) is the marked slice; streams that base() then
            # rejects anyway (no MARK, no container below it, an odd key/value list) are not
            # counted, so they fail as they always did
            stack = self.stack
            metastack = self.metastack
            if metastack and (metastack[-1] or not container):
                if not hashes:
                    self._entering(stack, code)
                elif not pairs:
                    self._hashing(stack, code)
                elif not len(stack) % 2:
                    self._hashing(stack[0::2], code)
            base(self)

        return load_marked

    def _top(code: int, count: int):  # noqa: N805 - APPEND (the item) and TUPLE1/2/3
        base = _Base.dispatch[code]
        need = 2 if code == pickle.APPEND[0] else count

        def load_top(self) -> None:
            stack = self.stack
            if len(stack) >= need:
                self._entering(stack[-count:], code)
            base(self)

        return load_top

    def _load_setitem(self) -> None:
        stack = self.stack
        if len(stack) >= 3:  # ... dict key value
            self._hashing(stack[-2:-1], pickle.SETITEM[0])
        _Base.dispatch[pickle.SETITEM[0]](self)

    dispatch[pickle.SETITEM[0]] = _load_setitem
    dispatch[pickle.SETITEMS[0]] = _marked(pickle.SETITEMS[0], True, True, True)
    dispatch[pickle.DICT[0]] = _marked(pickle.DICT[0], True, False, True)
    dispatch[pickle.ADDITEMS[0]] = _marked(pickle.ADDITEMS[0], False, True, True)
    dispatch[pickle.FROZENSET[0]] = _marked(pickle.FROZENSET[0], False, False, True)
    dispatch[pickle.APPENDS[0]] = _marked(pickle.APPENDS[0], False, True, False)
    dispatch[pickle.LIST[0]] = _marked(pickle.LIST[0], False, False, False)
    dispatch[pickle.TUPLE[0]] = _marked(pickle.TUPLE[0], False, False, False)
    dispatch[pickle.APPEND[0]] = _top(pickle.APPEND[0], 1)
    dispatch[pickle.TUPLE1[0]] = _top(pickle.TUPLE1[0], 1)
    dispatch[pickle.TUPLE2[0]] = _top(pickle.TUPLE2[0], 2)
    dispatch[pickle.TUPLE3[0]] = _top(pickle.TUPLE3[0], 3)
    del _marked, _top

    # -- opcode offsets, for the scanner's report --------------------------------------------
    def _position(self) -> int | None:
        """Offset of the next unread byte in the (decompressed) stream, when it is known."""
        consumed = getattr(self._file, "consumed", None)
        if type(consumed) is not int:
            return None
        frame = self._unframer.current_frame
        if frame is not None:
            return self._frame_start + frame.tell()
        return consumed

    def _load_frame(self) -> None:
        _Base.dispatch[pickle.FRAME[0]](self)
        consumed = getattr(self._file, "consumed", None)
        frame = self._unframer.current_frame
        if type(consumed) is int and frame is not None:
            self._frame_start = consumed - frame.getbuffer().nbytes

    dispatch[pickle.FRAME[0]] = _load_frame

    def _tracked(code: int):  # noqa: N805 - wraps one global-naming opcode
        base = _Base.dispatch[code]

        def load_global_tracked(self) -> None:
            pos = self._position()
            ctx = self._safeload_context
            before = len(ctx.global_order)
            try:
                base(self)
            finally:
                # one find_class call per opcode: record where its opcode starts
                if len(ctx.global_order) > before:
                    ctx.global_offsets.append(None if pos is None else pos - 1)

        return load_global_tracked

    for _code in (pickle.GLOBAL[0], pickle.STACK_GLOBAL[0], pickle.INST[0]):
        dispatch[_code] = _tracked(_code)
    del _tracked, _code

    # -- arrays ------------------------------------------------------------------------------
    def _wrapper_state(self, state: Any) -> dict:
        if type(state) is not dict:
            raise FormatError("joblib array wrapper state must be a dict")
        return state

    def _eval_dtype(self, obj: Any, depth: int = 0, budget: list[int] | None = None) -> Any:
        """Evaluate the ``numpy.dtype(...)`` subgraph of a wrapper (nothing else allowed).

        Shared sub-objects are evaluated once (memo by identity) and the walk visits at most
        10,000 items, so a memo bomb hidden in the wrapper state costs bounded time.
        """
        if budget is None:
            budget = [10_000]
        budget[0] -= 1
        if budget[0] < 0:
            raise LimitExceededError("max_items", 10_001, 10_000, "items in a joblib array dtype")
        if depth > 32:
            raise LimitExceededError("max_depth", depth, 32, "nested dtype")
        tp = type(obj)
        if tp in ATOMIC_TYPES:
            return obj
        cached = self._dtype_cache.get(id(obj))
        if cached is not None:
            return cached[1]
        if tp is tuple:
            result: Any = tuple(self._eval_dtype(x, depth + 1, budget) for x in obj)
        elif tp is list:
            result = [self._eval_dtype(x, depth + 1, budget) for x in obj]
        elif tp is dict:
            result = {
                self._eval_dtype(k, depth + 1, budget): self._eval_dtype(v, depth + 1, budget)
                for k, v in obj.items()
            }
        elif tp is Call and (obj.func.module, obj.func.qualname) == ("numpy", "dtype"):
            args = [self._eval_dtype(a, depth + 1, budget) for a in obj.args]
            if not args or not isinstance(args[0], str) or len(args) > 3:
                raise FormatError("joblib array dtype must be numpy.dtype(str, ...)")
            try:
                result = np.dtype(args[0], *[bool(a) for a in args[1:2]])
                for op in obj.ops or ():
                    if op[0] != OP_BUILD:
                        raise FormatError("unexpected operation on a dtype")
                    state = self._eval_dtype(op[1], depth + 1, budget)
                    problem = dtype_state_problem(state)
                    if problem is not None:  # numpy's __setstate__ crashes on some
                        raise FormatError(f"invalid dtype in joblib array wrapper: {problem}")
                    result.__setstate__(state)
            except SafeloadError:
                raise
            except Exception as exc:  # noqa: BLE001
                raise FormatError(
                    f"invalid dtype in joblib array wrapper: {type(exc).__name__}"
                ) from exc
        else:
            raise FormatError(
                f"joblib array dtype may only be built from numpy.dtype, found a "
                f"{type(obj).__name__}"
            )
        # keep obj alive with its result so the id can not be reused while the cache lives
        self._dtype_cache[id(obj)] = (obj, result)
        return result

    def _read_wrapper(self, state: Any) -> Any:
        state = self._wrapper_state(state)
        limits = self._safeload_limits
        subclass = state.get("subclass")
        if not (
            isinstance(subclass, type)
            and (getattr(subclass, "module", None), getattr(subclass, "qualname", None))
            in _ARRAY_SUBCLASSES
        ):
            raise FormatError(
                f"joblib array subclass must be numpy.ndarray, got {describe(subclass)}"
            )
        dtype = self._eval_dtype(state.get("dtype"))
        if not isinstance(dtype, np.dtype):
            raise FormatError("joblib array wrapper without a dtype")
        shape = state.get("shape")
        if type(shape) is not tuple or not all(type(d) is int and d >= 0 for d in shape):
            raise FormatError(f"joblib array shape must be a tuple of ints, got {describe(shape)}")
        order = state.get("order", "C")
        if order not in ("C", "F"):
            raise FormatError(f"joblib array order must be 'C' or 'F', got {describe(order)}")
        count = math.prod(shape)
        if dtype.hasobject:
            return self._read_object_array(count)
        nbytes = count * dtype.itemsize
        limits.check("max_array_bytes", nbytes, f"joblib array of shape {shape}")
        self.array_bytes += nbytes
        limits.check("max_total_array_bytes", self.array_bytes, "all arrays of the file")
        if "numpy_array_alignment_bytes" in state:
            pad = self._file.read(1)
            if len(pad) != 1:
                raise FormatError("truncated joblib array padding")
            if pad[0] and len(self._file.read(pad[0])) != pad[0]:
                raise FormatError("truncated joblib array padding")
        if not self._materialize and nbytes > SCAN_KEEP_BYTES:
            self._skip(nbytes)
            return np.empty(0, dtype=dtype).view(SkippedArray)
        array = np.empty(count, dtype=dtype)
        if nbytes:
            got = self._file.readinto(memoryview(array).cast("B"))
            if got != nbytes:
                raise FormatError(
                    f"truncated joblib array data: {nbytes} bytes declared, {got} present"
                )
        array = array.reshape(shape[::-1]).transpose() if order == "F" else array.reshape(shape)
        if not array.dtype.isnative:
            array = array.byteswap().view(array.dtype.newbyteorder("="))
        return array

    def _skip(self, nbytes: int) -> None:
        """Step over ``nbytes`` raw array bytes in bounded chunks (the scanner's mode)."""
        remaining = nbytes
        while remaining > 0:
            got = len(self._file.read(min(remaining, 1 << 20)))
            if not got:
                raise FormatError(
                    f"truncated joblib array data: {nbytes} bytes declared, "
                    f"{nbytes - remaining} present"
                )
            remaining -= got

    def _read_object_array(self, count: int) -> Any:
        if self._depth >= 4:
            raise LimitExceededError("max_depth", self._depth + 1, 4, "nested joblib streams")
        self._safeload_limits.check("max_items", count, "items of a joblib object array")
        inner = _JoblibUnpickler(
            self._file,
            self._safeload_context,
            self._safeload_limits,
            self._dirname,
            self._depth + 1,
            self._materialize,
        )
        inner._weights = self._weights
        inner._hashed = self._hashed
        inner._colliding = self._colliding
        inner._opcount = self._opcount
        return inner.load()

    def _read_side_file(self, state: Any) -> np.ndarray:
        state = self._wrapper_state(state)
        name = state.get("filename")
        if (
            not isinstance(name, str)
            or not name
            or os.path.basename(name) != name
            or name
            in (
                ".",
                "..",
            )
        ):
            raise FormatError(
                f"joblib < 0.10 side file name must be a plain file name, got {describe(name)}"
            )
        if self._dirname is None:
            raise FormatError(
                f"this joblib < 0.10 file keeps its arrays in side files ({name}); load it from "
                "a path so they can be found"
            )
        path = os.path.join(self._dirname, name)
        if not os.path.isfile(path):
            raise FormatError(f"joblib < 0.10 side file {describe(name)} is missing")
        try:
            if not self._materialize:
                return _check_side_file(path, self._safeload_limits)  # a SkippedArray
            return read_npy_file(path, self._safeload_limits)
        except FormatError as exc:
            raise FormatError(f"joblib < 0.10 side file {name}: {exc}") from exc


def _check_side_file(path: str, limits: Limits) -> np.ndarray:
    """Scanner mode of a side file: check header and size like ``read_npy_file``, read nothing."""
    with open(path, "rb") as fh:
        shape, _, dtype = read_npy_header(fh)
        nbytes = math.prod(shape) * dtype.itemsize
        limits.check("max_array_bytes", nbytes, f"array in {os.path.basename(path)}")
        remaining = os.fstat(fh.fileno()).st_size - fh.tell()
        if remaining < nbytes:
            raise FormatError(
                f"{os.path.basename(path)}: header declares {nbytes} data bytes, {remaining} present"
            )
    return np.empty(0, dtype=dtype).view(SkippedArray)


def parse_joblib(
    stream: IO[bytes],
    limits: Limits,
    *,
    dirname: str | None = None,
    fmt: str = "joblib",
    context: ParseContext | None = None,
    materialize: bool = True,
) -> ParsedStream:
    """Parse a joblib (or compressed pickle) stream into an inert graph.

    Parameters
    ----------
    stream : binary file object
        Decompressed and bounded (see :func:`~safeload.readers.compression.open_decompressed`).
    limits : Limits
    dirname : str, optional
        Folder of the file, for joblib < 0.10 side files.
    fmt : str
        Format label for reports (``"joblib"``, ``"joblib+zlib"`` ...).
    context : ParseContext, optional
        Record into this context (the scanner passes its own so that the globals named before
        a parse failure can still be reported).
    materialize : bool
        False (the scanner) steps over the raw bytes of arrays larger than
        :data:`SCAN_KEEP_BYTES` after checking their declared size, instead of reading them;
        each such array is then an empty :class:`SkippedArray` of its dtype.

    Returns
    -------
    ParsedStream

    Raises
    ------
    FormatError, LimitExceededError
    """
    ctx = context if context is not None else ParseContext()
    unpickler = _JoblibUnpickler(stream, ctx, limits, dirname, materialize=materialize)
    try:
        root = unpickler.load()
    except SafeloadError:
        raise
    except RecursionError as exc:
        raise LimitExceededError(
            "max_depth", limits.max_depth + 1, limits.max_depth, "nesting while parsing"
        ) from exc
    except MemoryError as exc:
        raise LimitExceededError(
            "max_decompressed_bytes",
            0,
            limits.max_decompressed_bytes,
            "the stream asked for more memory than is available",
        ) from exc
    except Exception as exc:  # noqa: BLE001
        raise FormatError(f"corrupt {fmt} stream: {type(exc).__name__}: {exc}") from exc
    finally:
        unpickler.memo = {}
        unpickler.stack = []
        unpickler.metastack = []
        unpickler._weights = {}
    trailing = stream.read(1)
    if trailing:
        raise FormatError(f"trailing data after the end of the {fmt} pickle stream")
    return ParsedStream(root, ctx, None, fmt)
