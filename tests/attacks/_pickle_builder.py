"""Hand-written pickle streams for the attack tests (never produced by ``pickle.dumps``).

Two layers:

* :class:`Ops` — a byte buffer with one method per opcode (``PROTO``, ``GLOBAL``,
  ``STACK_GLOBAL``, strings, ints, tuples, ``REDUCE``, ``BUILD``, memo ops, ``FRAME`` ...), for
  streams that must be spelled exactly;
* :func:`dumps` — compiles a small expression tree (:class:`G` global, :class:`R` call,
  :class:`New` ``NEWOBJ``, :class:`B` ``BUILD``, :class:`Ref` memo reference, plain Python
  atoms and containers) into the opcodes of a chosen protocol, with the global spelled by
  ``GLOBAL`` or ``STACK_GLOBAL`` and calls made with ``REDUCE``, ``INST`` or ``OBJ``, so each
  test can generate several variants of one payload.

Plus container helpers: joblib-style compression with each compressor (the stdlib compressors
and joblib's magic bytes), gzip/bz2 pickles, zip archives, ``.npy`` headers, joblib
``NumpyArrayWrapper`` records followed by their raw (or, for object dtypes, nested pickle) data
(:func:`joblib_array`, :func:`joblib_dumps`), every container of one payload
(:func:`containers`) and cheap multi-gigabyte gzip bombs (:func:`gzip_members_bomb`).
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import pickle
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Ops",
    "G",
    "R",
    "New",
    "B",
    "Ref",
    "Mark",
    "dumps",
    "variants",
    "PROTOCOLS",
    "GLOBAL_STYLES",
    "CALL_STYLES",
    "compress",
    "COMPRESSORS",
    "make_zip",
    "npy_bytes",
    "canary_shell",
    "canary_python",
    "body",
    "joblib_array",
    "joblib_dumps",
    "containers",
    "gzip_members_bomb",
    "call_chain",
]

PROTOCOLS = (0, 1, 2, 3, 4, 5)
GLOBAL_STYLES = ("GLOBAL", "STACK_GLOBAL")
CALL_STYLES = ("REDUCE", "INST", "OBJ")


# --------------------------------------------------------------------------- canaries
def canary_shell(name: str = "x") -> str:
    """Shell command that creates ``$SAFELOAD_CANARY_DIR/<name>``."""
    return f'touch "$SAFELOAD_CANARY_DIR/{name}"'


def canary_python(name: str = "x") -> str:
    """Python source that creates ``$SAFELOAD_CANARY_DIR/<name>``."""
    return (
        f"import os; open(os.path.join(os.environ['SAFELOAD_CANARY_DIR'], {name!r}), 'w').close()"
    )


# --------------------------------------------------------------------------- raw opcodes
class Ops:
    """A pickle byte stream written opcode by opcode (every method returns ``self``)."""

    def __init__(self, protocol: int | None = None) -> None:
        self.buf = bytearray()
        if protocol is not None:
            self.proto(protocol)

    def raw(self, data: bytes) -> Ops:
        self.buf += data
        return self

    def op(self, code: bytes, arg: bytes = b"") -> Ops:
        self.buf += code + arg
        return self

    def proto(self, n: int) -> Ops:
        return self.op(pickle.PROTO, bytes([n]))

    def frame(self, length: int) -> Ops:
        return self.op(pickle.FRAME, struct.pack("<Q", length))

    def stop(self) -> Ops:
        return self.op(pickle.STOP)

    def mark(self) -> Ops:
        return self.op(pickle.MARK)

    # globals
    def global_(self, module: str, name: str) -> Ops:
        return self.op(pickle.GLOBAL, f"{module}\n{name}\n".encode())

    def stack_global(self, module: str, name: str) -> Ops:
        return self.unicode(module).unicode(name).op(pickle.STACK_GLOBAL)

    def inst(self, module: str, name: str) -> Ops:
        """``INST`` (the caller pushed ``MARK`` and the arguments)."""
        return self.op(pickle.INST, f"{module}\n{name}\n".encode())

    # atoms
    def unicode(self, text: str) -> Ops:
        data = text.encode("utf-8", "surrogatepass")
        if len(data) < 256:
            return self.op(pickle.SHORT_BINUNICODE, bytes([len(data)]) + data)
        return self.op(pickle.BINUNICODE, struct.pack("<I", len(data)) + data)

    def binunicode(self, text: str) -> Ops:
        data = text.encode("utf-8", "surrogatepass")
        return self.op(pickle.BINUNICODE, struct.pack("<I", len(data)) + data)

    def text_unicode(self, text: str) -> Ops:
        """Protocol-0 ``UNICODE`` (raw-unicode-escape, newline-terminated)."""
        data = text.encode("raw-unicode-escape")
        if b"\n" in data:
            data = data.replace(b"\n", b"\\u000a")
        return self.op(pickle.UNICODE, data + b"\n")

    def string(self, text: str) -> Ops:
        """Protocol-0 ``STRING`` (a Python 2 ``str`` literal in repr form)."""
        return self.op(pickle.STRING, repr(text).encode("ascii") + b"\n")

    def short_binstring(self, data: bytes) -> Ops:
        return self.op(pickle.SHORT_BINSTRING, bytes([len(data)]) + data)

    def binbytes(self, data: bytes) -> Ops:
        if len(data) < 256:
            return self.op(pickle.SHORT_BINBYTES, bytes([len(data)]) + data)
        return self.op(pickle.BINBYTES, struct.pack("<I", len(data)) + data)

    def int_(self, value: int) -> Ops:
        if 0 <= value < 256:
            return self.op(pickle.BININT1, bytes([value]))
        if 0 <= value < 65536:
            return self.op(pickle.BININT2, struct.pack("<H", value))
        if -(2**31) <= value < 2**31:
            return self.op(pickle.BININT, struct.pack("<i", value))
        data = _long_bytes(value)
        if len(data) < 256:
            return self.op(pickle.LONG1, bytes([len(data)]) + data)
        return self.op(pickle.LONG4, struct.pack("<i", len(data)) + data)

    def text_int(self, value: int) -> Ops:
        if -(2**31) <= value < 2**31:
            return self.op(pickle.INT, f"{value}\n".encode())
        return self.op(pickle.LONG, f"{value}L\n".encode())

    def none(self) -> Ops:
        return self.op(pickle.NONE)

    # containers
    def tuple_(self, n: int) -> Ops:
        """Tuple of the last ``n`` stack items (``TUPLE1/2/3``; ``n == 0``: ``EMPTY_TUPLE``)."""
        codes = {0: pickle.EMPTY_TUPLE, 1: pickle.TUPLE1, 2: pickle.TUPLE2, 3: pickle.TUPLE3}
        return self.op(codes[n])

    def tuple_marked(self) -> Ops:
        return self.op(pickle.TUPLE)

    def empty_list(self) -> Ops:
        return self.op(pickle.EMPTY_LIST)

    def empty_dict(self) -> Ops:
        return self.op(pickle.EMPTY_DICT)

    def empty_set(self) -> Ops:
        return self.op(pickle.EMPTY_SET)

    def appends(self) -> Ops:
        return self.op(pickle.APPENDS)

    def append(self) -> Ops:
        return self.op(pickle.APPEND)

    def setitems(self) -> Ops:
        return self.op(pickle.SETITEMS)

    def setitem(self) -> Ops:
        return self.op(pickle.SETITEM)

    def additems(self) -> Ops:
        return self.op(pickle.ADDITEMS)

    # calls and state
    def reduce(self) -> Ops:
        return self.op(pickle.REDUCE)

    def build(self) -> Ops:
        return self.op(pickle.BUILD)

    def newobj(self) -> Ops:
        return self.op(pickle.NEWOBJ)

    def newobj_ex(self) -> Ops:
        return self.op(pickle.NEWOBJ_EX)

    def obj(self) -> Ops:
        return self.op(pickle.OBJ)

    # stack and memo
    def pop(self) -> Ops:
        return self.op(pickle.POP)

    def pop_mark(self) -> Ops:
        return self.op(pickle.POP_MARK)

    def dup(self) -> Ops:
        return self.op(pickle.DUP)

    def put(self, index: int) -> Ops:
        return self.op(pickle.PUT, f"{index}\n".encode())

    def get(self, index: int) -> Ops:
        return self.op(pickle.GET, f"{index}\n".encode())

    def binput(self, index: int) -> Ops:
        if index < 256:
            return self.op(pickle.BINPUT, bytes([index]))
        return self.op(pickle.LONG_BINPUT, struct.pack("<I", index))

    def binget(self, index: int) -> Ops:
        if index < 256:
            return self.op(pickle.BINGET, bytes([index]))
        return self.op(pickle.LONG_BINGET, struct.pack("<I", index))

    def memoize(self) -> Ops:
        return self.op(pickle.MEMOIZE)

    def value(self) -> bytes:
        return bytes(self.buf)

    def done(self) -> bytes:
        """Append ``STOP`` and return the stream."""
        return bytes(self.stop().buf)


def _long_bytes(value: int) -> bytes:
    return pickle.encode_long(value)


# --------------------------------------------------------------------------- expressions
@dataclass(frozen=True)
class G:
    """A global ``module.name`` (pushed with ``GLOBAL`` or ``STACK_GLOBAL``)."""

    module: str
    name: str

    def __call__(self, *args: Any) -> R:
        return R(self, args)


@dataclass(frozen=True)
class R:
    """``func(*args)``: ``REDUCE`` (or ``INST``/``OBJ`` when ``func`` is a :class:`G`)."""

    func: Any
    args: tuple = ()


@dataclass(frozen=True)
class New:
    """``cls.__new__(cls, *args, **kwargs)``: ``NEWOBJ`` (``NEWOBJ_EX`` with kwargs)."""

    cls: G
    args: tuple = ()
    kwargs: dict | None = None


@dataclass(frozen=True)
class B:
    """``BUILD``: push ``obj``, push ``state``, ``BUILD`` (the value is ``obj``)."""

    obj: Any
    state: Any


@dataclass(frozen=True)
class Ref:
    """Store ``value`` in the memo under ``key`` the first time, fetch it afterwards."""

    key: str
    value: Any = None


@dataclass(frozen=True)
class Mark:
    """Raw opcodes pushed as one value (escape hatch: ``Mark(b"...")``)."""

    code: bytes


@dataclass
class _Compiler:
    protocol: int
    global_style: str
    call_style: str
    memo_style: str
    ops: Ops = field(default_factory=Ops)
    memo: dict = field(default_factory=dict)

    def emit(self, value: Any) -> None:
        o = self.ops
        p = self.protocol
        if isinstance(value, Mark):
            o.raw(value.code)
        elif isinstance(value, Ref):
            if value.key in self.memo:
                idx = self.memo[value.key]
                if p == 0:
                    o.get(idx)
                else:
                    o.binget(idx)
            else:
                self.emit(value.value)
                self.remember(value.key)
        elif isinstance(value, G):
            if self.global_style == "STACK_GLOBAL":
                self.emit(value.module)
                self.emit(value.name)
                o.op(pickle.STACK_GLOBAL)
            else:
                o.global_(value.module, value.name)
        elif isinstance(value, R):
            self.emit_call(value)
        elif isinstance(value, New):
            self.emit(value.cls)
            self.emit(tuple(value.args))
            if value.kwargs is not None:
                self.emit(dict(value.kwargs))
                o.newobj_ex()
            else:
                o.newobj()
        elif isinstance(value, B):
            self.emit(value.obj)
            self.emit(value.state)
            o.build()
        elif value is None:
            o.none()
        elif value is True or value is False:
            if p >= 2:
                o.op(pickle.NEWTRUE if value else pickle.NEWFALSE)
            else:
                o.op(pickle.INT, b"01\n" if value else b"00\n")
        elif isinstance(value, int):
            if p == 0 or p == 1 and not -(2**31) <= value < 2**31:
                o.text_int(value)
            else:
                o.int_(value)
        elif isinstance(value, float):
            if p == 0:
                o.op(pickle.FLOAT, repr(value).encode() + b"\n")
            else:
                o.op(pickle.BINFLOAT, struct.pack(">d", value))
        elif isinstance(value, str):
            if p == 0:
                o.text_unicode(value)
            else:
                o.unicode(value)
        elif isinstance(value, (bytes, bytearray)):
            o.binbytes(bytes(value))
        elif isinstance(value, tuple):
            if p >= 2 and len(value) <= 3:
                for item in value:
                    self.emit(item)
                o.tuple_(len(value))
            elif not value and p >= 1:
                o.tuple_(0)
            else:
                o.mark()
                for item in value:
                    self.emit(item)
                o.tuple_marked()
        elif isinstance(value, list):
            if p == 0:
                o.mark()
                for item in value:
                    self.emit(item)
                o.op(pickle.LIST)
            else:
                o.empty_list()
                if value:
                    o.mark()
                    for item in value:
                        self.emit(item)
                    o.appends()
        elif isinstance(value, dict):
            if p == 0:
                o.mark()
                for k, v in value.items():
                    self.emit(k)
                    self.emit(v)
                o.op(pickle.DICT)
            else:
                o.empty_dict()
                if value:
                    o.mark()
                    for k, v in value.items():
                        self.emit(k)
                        self.emit(v)
                    o.setitems()
        elif isinstance(value, (set, frozenset)):
            if p < 4:
                raise ValueError("sets need protocol 4 (or an explicit builtins.set call)")
            if isinstance(value, frozenset):
                o.mark()
                for item in value:
                    self.emit(item)
                o.op(pickle.FROZENSET)
            else:
                o.empty_set()
                if value:
                    o.mark()
                    for item in value:
                        self.emit(item)
                    o.additems()
        else:
            raise TypeError(f"cannot emit {type(value).__name__}")

    def remember(self, key: str) -> None:
        idx = len(self.memo)
        self.memo[key] = idx
        o = self.ops
        if self.memo_style == "MEMOIZE" and self.protocol >= 4:
            o.memoize()
        elif self.protocol == 0 or self.memo_style == "PUT":
            o.put(idx)
        else:
            o.binput(idx)

    def emit_call(self, call: R) -> None:
        o = self.ops
        style = self.call_style
        if isinstance(call.func, G) and style == "INST":
            o.mark()
            for arg in call.args:
                self.emit(arg)
            o.inst(call.func.module, call.func.name)
        elif isinstance(call.func, G) and style == "OBJ":
            o.mark()
            self.emit(call.func)
            for arg in call.args:
                self.emit(arg)
            o.obj()
        else:
            self.emit(call.func)
            self.emit(tuple(call.args))
            o.reduce()


def dumps(
    value: Any,
    protocol: int = 2,
    *,
    global_style: str | None = None,
    call_style: str = "REDUCE",
    memo_style: str = "BINPUT",
    frame: bool = False,
    header: bool | None = None,
) -> bytes:
    """Compile ``value`` to a pickle stream of ``protocol``.

    Parameters
    ----------
    value : expression
        Atoms, ``tuple``/``list``/``dict``/``set``, :class:`G`, :class:`R`, :class:`New`,
        :class:`B`, :class:`Ref`, :class:`Mark`.
    protocol : int
        Opcodes are chosen as that protocol's pickler would (text opcodes for 0, ...).
    global_style : {"GLOBAL", "STACK_GLOBAL"}, optional
        Default: ``STACK_GLOBAL`` for protocol 4+, ``GLOBAL`` otherwise.
    call_style : {"REDUCE", "INST", "OBJ"}
        How calls of a named global are spelled.
    memo_style : {"BINPUT", "PUT", "MEMOIZE"}
        How :class:`Ref` values are stored.
    frame : bool
        Wrap the body in one ``FRAME`` (protocol 4+).
    header : bool, optional
        Emit ``PROTO`` (default: for protocol 2+).
    """
    if global_style is None:
        global_style = "STACK_GLOBAL" if protocol >= 4 else "GLOBAL"
    comp = _Compiler(protocol, global_style, call_style, memo_style)
    comp.emit(value)
    comp.ops.stop()
    body = comp.ops.value()
    out = Ops()
    if header if header is not None else protocol >= 2:
        out.proto(protocol)
    if frame:
        out.frame(len(body))
    out.raw(body)
    return out.value()


def variants(value: Any, protocols: tuple[int, ...] = PROTOCOLS) -> dict[str, bytes]:
    """The same expression as every (protocol, global style, call style) combination.

    ``STACK_GLOBAL`` is only paired with protocol 4+, ``FRAME`` is added at protocol 4+.
    """
    out: dict[str, bytes] = {}
    for p in protocols:
        for gs in GLOBAL_STYLES:
            if gs == "STACK_GLOBAL" and p < 4:
                continue
            for cs in CALL_STYLES:
                if cs != "REDUCE" and gs == "STACK_GLOBAL":
                    continue
                out[f"p{p}-{gs}-{cs}"] = dumps(
                    value, p, global_style=gs, call_style=cs, frame=p >= 4
                )
    return out


# --------------------------------------------------------------------------- containers
def _lz4(data: bytes) -> bytes:
    import lz4.frame

    return lz4.frame.compress(data)


#: Compressors as joblib writes them: name → function producing the file bytes.  joblib's
#: ``zlib`` is a raw zlib stream (``78 xx``), ``gzip`` a gzip member, ``lzma`` FORMAT_ALONE.
COMPRESSORS = {
    "zlib": lambda data: zlib.compress(data, 3),
    "gzip": lambda data: gzip.compress(data, 3, mtime=0),
    "bz2": lambda data: bz2.compress(data, 3),
    "xz": lambda data: lzma.compress(data, format=lzma.FORMAT_XZ, preset=3),
    "lzma": lambda data: lzma.compress(data, format=lzma.FORMAT_ALONE, preset=3),
    "lz4": _lz4,
}


def compress(data: bytes, name: str) -> bytes:
    """Compress ``data`` the way ``joblib.dump(compress=(name, 3))`` frames it."""
    return COMPRESSORS[name](data)


def make_zip(members: list[tuple[str, bytes]], *, compression: int = zipfile.ZIP_STORED) -> bytes:
    """A zip archive with the given ``(name, data)`` members, in order (duplicates allowed)."""
    buf = io.BytesIO()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Duplicate name"
        with zipfile.ZipFile(buf, "w", compression) as zf:
            for name, data in members:
                info = zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0))
                info.compress_type = compression
                zf.writestr(info, data)
    return buf.getvalue()


def npy_bytes(descr: Any, shape: tuple, body: bytes, *, fortran: bool = False) -> bytes:
    """A version-1.0 ``.npy`` file with a hand-written header and ``body`` as data."""
    header = repr({"descr": descr, "fortran_order": fortran, "shape": shape}).encode("latin1")
    total = 10 + len(header) + 1
    header += b" " * ((64 - total % 64) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + body


# --------------------------------------------------------------------------- joblib
def body(stream: bytes) -> bytes:
    """The opcodes of a :func:`dumps` stream without ``PROTO`` and ``STOP`` (no ``FRAME``).

    Used to embed one stream in another with :class:`Mark` (its memo indices must not clash).
    """
    if stream[:1] == pickle.PROTO:
        stream = stream[2:]
    if stream[:1] == pickle.FRAME:
        stream = stream[9:]
    assert stream[-1:] == pickle.STOP
    return stream[:-1]


def joblib_array(
    dtype: str = "f8",
    shape: tuple = (1,),
    data: bytes | None = None,
    *,
    order: str = "C",
    align: bool = True,
    subclass: tuple[str, str] = ("numpy", "ndarray"),
    dtype_global: tuple[str, str] = ("numpy", "dtype"),
    module: str = "joblib.numpy_pickle",
) -> Mark:
    """One ``NumpyArrayWrapper`` exactly as ``joblib.dump`` writes it, then its data.

    ``NEWOBJ`` of the wrapper class, ``BUILD`` with the state dict (``subclass``, ``shape``,
    ``order``, ``dtype`` as a ``numpy.dtype(...)`` call, ``allow_mmap``, and with ``align`` the
    ``numpy_array_alignment_bytes`` key that makes the reader expect a padding byte count and
    padding), then ``data``: the raw array bytes (zeros of the declared size by default) or, for
    an object dtype, the nested pickle stream joblib's ``read_array`` unpickles.

    Returns a :class:`Mark` to place anywhere in a :func:`dumps` expression (protocol 2+).
    """
    import numpy as np

    dt = np.dtype(dtype)
    if data is None:
        count = 1
        for d in shape:
            count *= d
        data = b"\0" * (count * dt.itemsize)
    o = Ops()
    o.global_(module, "NumpyArrayWrapper").tuple_(0).newobj()
    o.empty_dict().mark()
    o.unicode("subclass").global_(*subclass)
    o.unicode("shape").mark()
    for d in shape:
        o.int_(d)
    o.tuple_marked()
    o.unicode("order").unicode(order)
    o.unicode("dtype").global_(*dtype_global).unicode(dtype)
    o.op(pickle.NEWFALSE).op(pickle.NEWTRUE).tuple_(3).reduce()
    o.unicode("allow_mmap").op(pickle.NEWFALSE)
    if align:
        o.unicode("numpy_array_alignment_bytes").int_(16)
    o.setitems().build()
    if align and not dt.hasobject:
        o.raw(b"\x03" + b"\xff" * 3)
    o.raw(data)
    return Mark(o.value())


def joblib_dumps(value: Any, protocol: int = 4) -> bytes:
    """A joblib-style file: ``value`` (with :func:`joblib_array` marks) as one stream."""
    return dumps(value, protocol)


def containers(stream: bytes) -> dict[str, bytes]:
    """One pickle stream in every byte container ``safeload`` reads: raw, and compressed with
    each of joblib's compressors (a compressed plain pickle is also what ``gzip.open(...)``
    / ``bz2.open(...)`` pickles look like)."""
    out = {"raw": stream}
    for name in COMPRESSORS:
        out[name] = compress(stream, name)
    return out


def gzip_members_bomb(
    prefix: bytes, zeros: int, suffix: bytes, member: int = 64 << 20, fill: bytes = b"\0"
) -> bytes:
    """``prefix + fill * (zeros // len(fill)) + suffix`` as a multi-member gzip file, fast.

    The filler is one gzip member of ``member`` bytes compressed once and repeated (a
    concatenation of gzip members is one gzip stream for ``gzip.GzipFile``), so a 2 GiB bomb
    costs one 64 MiB compression and a ~130 KiB/GiB file.  ``fill`` may be opcodes (``b"N0"``:
    push None, pop it) to make a bomb of cheap opcodes.
    """
    if zeros % member or member % len(fill):
        raise ValueError("zeros must be a multiple of member, member of len(fill)")
    block = gzip.compress(fill * (member // len(fill)), 9, mtime=0)
    return (
        gzip.compress(prefix, 1, mtime=0)
        + block * (zeros // member)
        + gzip.compress(suffix, 1, mtime=0)
    )


def call_chain(module: str, name: str, depth: int, protocol: int = 2) -> bytes:
    """``f()()()...`` ``depth`` times: ``REDUCE`` on the result of the previous ``REDUCE``."""
    ops = Ops(protocol).global_(module, name)
    return ops.raw((pickle.EMPTY_TUPLE + pickle.REDUCE) * depth).done()
