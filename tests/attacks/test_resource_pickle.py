"""Family *resource-pickle*: tiny streams that make a loader allocate, recurse or spin.

* memo "billion laughs": ``t0 = (0,)``, ``t[i] = (t[i-1],) * fan`` built with ``BINGET`` of the
  previous level, so ``levels`` levels reference ``fan ** levels`` leaves — in tuples, lists,
  dict values, frozensets, sets, ``REDUCE`` arguments, ``BUILD`` state and joblib wrapper
  state.  Every expanding walk must be bounded by ``max_items`` (shared references counted each
  time) and be refused in bounded time and memory;
* deep nesting (lists, tuples, dicts, frozensets, ``REDUCE`` arguments, ``BUILD`` state): refused
  by ``max_depth``, never with a ``RecursionError``;
* declared lengths and indices: ``LONG_BINPUT``/``PUT`` with a huge memo index (the C unpickler
  resizes its memo to it), ``BINBYTES8``/``BINUNICODE8``/``BYTEARRAY8``/``LONG4``/``FRAME``
  claiming terabytes with a few bytes present;
* trusted allocators: ``_reconstruct`` with shape ``2**40``, ``bytearray(2**36)``,
  ``set(range(2**40))``;
* decompression bombs for every compressor, refused by ``max_decompressed_bytes``.

Each test asserts the specific ``LimitExceededError.limit`` (or ``FormatError``), and that the
refusal came from a check, not from a ``MemoryError``; the bombs that could really exhaust the
machine run in a forked child with a memory cap and a timeout (``run_bounded``).

Public sources (CATALOG.md): G01 deep nesting; G02 numpy reconstruct with absurd shape; G03 huge
allocations; G04 memo/billion-laughs; G05 safe-builtins allocation; G06 Python docs "Restricting
Globals" example set; G07 https://github.com/python/cpython/issues/115952; G08 CVE-2018-20406,
https://github.com/protectai/modelscan/issues/86; zip/decompression bombs (Fifield 2019).
"""

from __future__ import annotations

import pickle
import struct

import pytest

import safeload

from ._pickle_builder import (
    G,
    New,
    Ops,
    call_chain,
    compress,
    dumps,
    gzip_members_bomb,
    joblib_array,
)
from .conftest import (
    Forbidden,
    Format,
    GiB,
    Limit,
    MiB,
    assert_refused,
    assert_refused_bounded,
    run_bounded,
)

FAN = 16
LEVELS = 8  # 16 ** 8 = 4.3e9 leaves; depth 8 stays below every nesting limit

#: A policy that trusts one harmless container, so these tests do not depend on the default
#: policy data (the bomb never reaches the audit in the joblib cases).
LIST_ONLY = safeload.Policy({("builtins", "list"): "test"})


def push_bomb(o: Ops, fan: int = FAN, levels: int = LEVELS) -> Ops:
    """Push one memo bomb (a tuple expanding to ``fan ** levels`` leaves) on the stack."""
    o.int_(0).tuple_(1).binput(0).pop()
    for i in range(1, levels + 1):
        o.mark()
        for _ in range(fan):
            o.binget(i - 1)
        o.tuple_marked().binput(i)
        if i < levels:
            o.pop()
    return o


_WRAPPER_FIELDS = {
    "subclass": lambda o: o.global_("numpy", "ndarray"),
    "shape": lambda o: o.int_(0).tuple_(1),
    "order": lambda o: o.unicode("C"),
    "dtype": lambda o: o.global_("numpy", "dtype").unicode("f8").tuple_(1).reduce(),
}


def joblib_wrapper_with_bomb(field: str) -> bytes:
    """A raw joblib stream: one ``NumpyArrayWrapper`` whose state ``field`` is a memo bomb."""
    o = Ops(4)
    o.global_("joblib.numpy_pickle", "NumpyArrayWrapper").tuple_(0).newobj()
    o.empty_dict().mark()
    for name, emit in _WRAPPER_FIELDS.items():
        o.unicode(name)
        if name == field:
            push_bomb(o)
        else:
            emit(o)
    o.setitems().build()
    return o.done()


def test_bomb_in_plain_pickle_is_refused_by_the_builder():
    """Control: the same bomb as the argument of a trusted call stops at ``max_items``."""
    o = Ops(4).global_("builtins", "list")
    push_bomb(o)
    data = o.tuple_(1).reduce().done()
    assert len(data) < 400
    assert_refused(data, Limit("max_items"), policy=LIST_ONLY)


@pytest.mark.parametrize("field", ["subclass", "shape", "order", "dtype"])
def test_joblib_wrapper_state_bomb_is_refused_quickly(field):
    data = joblib_wrapper_with_bomb(field)
    assert len(data) < 600
    out = run_bounded(data, policy=LIST_ONLY, timeout=3.0)
    assert not out.timed_out, "no answer within 3 s"
    assert out.error in ("FormatError", "LimitExceededError"), out.message
    assert not out.memory_error_cause, out.message
    assert out.rss_growth < 256 << 20


def test_joblib_wrapper_bomb_message_is_bounded():
    """Regression: the message used to hold the fully expanded repr of the shared tuple
    (``{value!r:.80}`` renders everything before truncating); it is now bounded."""
    o = Ops(4)
    o.global_("joblib.numpy_pickle", "NumpyArrayWrapper").tuple_(0).newobj()
    o.empty_dict().mark().unicode("subclass")
    push_bomb(o, fan=2, levels=12)
    o.setitems().build()
    exc = assert_refused(
        o.done(), Format("joblib array subclass must be numpy.ndarray"), policy=LIST_ONLY
    )
    assert len(str(exc)) < 200
    assert "((((((((((((" not in str(exc)


# =========================================================================== memo bombs
SMALL = safeload.Limits(max_items=100_000)
COMPRESSORS = ["zlib", "gzip", "bz2", "xz", "lzma", "lz4"]


def bomb_list(o: Ops, fan: int = FAN, levels: int = LEVELS) -> Ops:
    """Lists: ``l[i] = [l[i-1]] * fan``."""
    o.empty_list().binput(0).pop()
    for i in range(1, levels + 1):
        o.empty_list().binput(i).mark()
        for _ in range(fan):
            o.binget(i - 1)
        o.appends()
        if i < levels:
            o.pop()
    return o


def bomb_dict(o: Ops, fan: int = FAN, levels: int = LEVELS) -> Ops:
    """Dict values: ``d[i] = {k: d[i-1] for k in range(fan)}``."""
    o.empty_dict().binput(0).pop()
    for i in range(1, levels + 1):
        o.empty_dict().binput(i).mark()
        for k in range(fan):
            o.int_(k).binget(i - 1)
        o.setitems()
        if i < levels:
            o.pop()
    return o


def bomb_frozenset(o: Ops, fan: int = FAN, levels: int = LEVELS) -> Ops:
    """Frozensets of ``(k, previous)`` pairs."""
    o.int_(0).tuple_(1).binput(0).pop()
    for i in range(1, levels + 1):
        o.mark()
        for k in range(fan):
            o.int_(k).binget(i - 1).tuple_(2)
        o.op(pickle.FROZENSET).binput(i)
        if i < levels:
            o.pop()
    return o


def _wrap(kind: str, push) -> bytes:
    o = Ops(4)
    if kind == "root":
        push(o)
    elif kind == "reduce-args":
        o.global_("builtins", "list")
        push(o)
        o.tuple_(1).reduce()
    elif kind == "build-state":
        o.global_("sklearn.model_selection._split", "KFold").tuple_(0).newobj()
        o.empty_dict().unicode("n_splits")
        push(o)
        o.setitem().build()
    elif kind == "newobj-args":
        o.global_("collections", "OrderedDict")
        push(o)
        o.tuple_(1).newobj()
    elif kind == "set-additems":
        o.empty_set().mark()
        push(o)
        o.additems()
    elif kind == "setitem-value":
        o.global_("collections", "OrderedDict").tuple_(0).reduce().unicode("k")
        push(o)
        o.setitem()
    return o.done()


SHAPES = {
    "tuple": push_bomb,
    "list": bomb_list,
    "dict": bomb_dict,
    "frozenset": bomb_frozenset,
}
PLACES = ["root", "reduce-args", "build-state", "newobj-args", "set-additems", "setitem-value"]


@pytest.mark.parametrize(
    ("shape", "place"),
    [
        (shape, place)
        for shape in SHAPES
        for place in PLACES
        # set items must be hashable: lists/dicts are not, tuples are a hash bomb (see below)
        if place != "set-additems" or shape == "frozenset"
    ],
)
def test_memo_bomb_shapes_are_bounded_by_max_items(shape, place):
    data = _wrap(place, SHAPES[shape])
    assert len(data) < 1200
    assert_refused(data, Limit("max_items"), limits=SMALL)


@pytest.mark.parametrize("comp", COMPRESSORS)
@pytest.mark.parametrize("shape", list(SHAPES))
def test_memo_bomb_compressed(shape, comp):
    assert_refused(compress(_wrap("root", SHAPES[shape]), comp), Limit("max_items"), limits=SMALL)


@pytest.mark.parametrize("shape", ["tuple", "dict"])
@pytest.mark.parametrize("protocol", [0, 2])
def test_memo_bomb_text_protocols(shape, protocol):
    """PUT/GET (protocol 0) and BINPUT/BINGET without PROTO 4."""
    o = Ops(protocol if protocol else None)
    o.mark().int_(0).tuple_marked().put(0).pop() if protocol == 0 else o.int_(0).tuple_(1).binput(
        0
    ).pop()
    for i in range(1, LEVELS + 1):
        o.mark()
        for _ in range(FAN):
            o.get(i - 1) if protocol == 0 else o.binget(i - 1)
        o.tuple_marked()
        o.put(i) if protocol == 0 else o.binput(i)
        if i < LEVELS:
            o.pop()
    assert_refused(o.done(), Limit("max_items"), limits=SMALL)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_memo_bomb_with_default_limits_is_bounded(shape):
    """4.3e9 references in < 1 KiB, default limits: refused quickly in a bounded child."""
    data = _wrap("reduce-args", SHAPES[shape])
    assert_refused_bounded(data, Limit("max_items"), max_seconds=10, max_rss_growth=512 * MiB)


def hash_bomb(kind: str, levels: int = 9) -> bytes:
    o = Ops(4)
    if kind == "set":
        o.empty_set().mark()
        push_bomb(o, FAN, levels)
        o.additems()
    elif kind == "dict-key":
        o.empty_dict()
        push_bomb(o, FAN, levels)
        o.none().setitem()
    elif kind == "setitems-key":
        o.empty_dict().mark().int_(1).none()
        push_bomb(o, FAN, levels)
        o.none().setitems()
    elif kind == "dict-op-key":
        o.mark()
        push_bomb(o, FAN, levels)
        o.none().op(pickle.DICT)
    elif kind == "memo-fetched-later":
        push_bomb(o, FAN, levels).pop()
        for _ in range(100):
            o.none().pop()
        o.empty_set().mark().binget(levels).additems()
    elif kind == "nested-frozenset":
        o.mark().mark()
        push_bomb(o, FAN, levels)
        o.tuple_(1).op(pickle.FROZENSET).op(pickle.FROZENSET)
    elif kind == "repeated-small-key":
        # each key is under max_items (16**5 visits), 30 of them are not: the budget is shared
        o.empty_set().mark()
        push_bomb(o, FAN, levels - 4)
        for _ in range(29):
            o.binget(levels - 4)
        o.additems()
    else:
        o.mark()
        push_bomb(o, FAN, levels)
        o.op(pickle.FROZENSET)
    return o.done()


HASH_BOMB_KINDS = [
    "set",
    "dict-key",
    "frozenset",
    "setitems-key",
    "dict-op-key",
    "memo-fetched-later",
    "nested-frozenset",
    "repeated-small-key",
]


@pytest.mark.parametrize("box", ["raw", "gzip"])
@pytest.mark.parametrize("kind", HASH_BOMB_KINDS)
def test_hash_bomb(kind, box):
    """A tuple memo bomb used as a set item, dict key or frozenset item is hashed while
    parsing; tuple hashes are not cached, so each costs fan**levels (9 levels: minutes, 10:
    hours) for a ~300-byte file.  The pre-scan (raw) and the compressed reader weigh what is
    hashed first and refuse it (``max_items``)."""
    data = hash_bomb(kind)
    assert len(data) < 600
    data = data if box == "raw" else compress(data, box)
    assert_refused_bounded(data, Limit("max_items"), max_seconds=1)


@pytest.mark.parametrize("kind", ["set", "dict-key", "frozenset"])
def test_small_hash_bomb_control(kind):
    """Five levels (16**5 hashes) still finish: the refusal itself is right."""
    assert_refused(hash_bomb(kind, 5), Limit("max_items"), limits=SMALL)


def test_memo_bomb_inside_joblib_object_array():
    o = Ops(4).empty_list()
    push_bomb(o)
    inner = o.append().done()
    data = dumps([joblib_array("O", (1,), inner)], 4)
    assert_refused(data, Limit("max_items"), limits=SMALL)
    assert_refused(compress(data, "gzip"), Limit("max_items"), limits=SMALL)


# =========================================================================== deep nesting
DEPTH = 100_000  # far beyond max_depth (200) and the interpreter's recursion limit


def deep(kind: str, n: int = DEPTH) -> bytes:
    o = Ops(4)
    if kind == "list":
        o.raw(pickle.EMPTY_LIST + (pickle.EMPTY_LIST + pickle.APPEND) * 0)
        o.raw(pickle.MARK * n).raw(pickle.LIST * n)
    elif kind == "tuple":
        o.raw(pickle.EMPTY_TUPLE + pickle.TUPLE1 * n)
    elif kind == "dict":
        o.raw((pickle.EMPTY_DICT + pickle.SHORT_BINUNICODE + b"\x01k") * n + pickle.EMPTY_DICT)
        o.raw(pickle.SETITEM * n)
    elif kind == "frozenset":
        o.raw(pickle.MARK * n + pickle.MARK + pickle.FROZENSET * (n + 1))
    elif kind == "reduce-args":
        o.global_("builtins", "tuple").binput(0).pop()
        o.raw((pickle.BINGET + b"\x00") * n).raw(pickle.EMPTY_TUPLE)
        o.raw((pickle.TUPLE1 + pickle.TUPLE1 + pickle.REDUCE) * n)
    elif kind == "build-state":
        o.global_("sklearn.model_selection._split", "KFold").binput(0).pop()
        o.raw((pickle.BINGET + b"\x00" + pickle.EMPTY_TUPLE + pickle.NEWOBJ) * n).none()
        o.raw(pickle.BUILD * n)
    elif kind == "mixed":
        o.raw((pickle.EMPTY_LIST + pickle.MARK) * (n // 2)).none()
        o.raw((pickle.TUPLE1 + pickle.APPENDS) * (n // 2))
    return o.done()


DEEP_KINDS = ["list", "tuple", "dict", "frozenset", "reduce-args", "build-state", "mixed"]


@pytest.mark.parametrize("box", ["raw", "gzip", "bz2"])
@pytest.mark.parametrize("kind", DEEP_KINDS)
def test_deep_nesting_is_refused_by_max_depth(kind, box):
    data = deep(kind) if box == "raw" else compress(deep(kind, 10_000), box)
    assert_refused(data, Limit("max_depth"))


@pytest.mark.parametrize("kind", ["list", "reduce-args"])
def test_deep_nesting_bounded_child(kind):
    assert_refused_bounded(deep(kind), Limit("max_depth"), max_seconds=10, max_rss_growth=512 * MiB)


def test_depth_limit_is_the_callers():
    data = deep("tuple", 50)
    safeload.loads(data)
    assert_refused(data, Limit("max_depth"), limits=safeload.Limits(max_depth=20))


@pytest.mark.parametrize("box", ["raw", "gzip"])
@pytest.mark.parametrize("depth", [2_000, 100_000])
def test_call_of_result_chain(depth, box):
    data = call_chain("numpy", "log1p", depth)
    assert_refused(data if box == "raw" else compress(data, box), Forbidden("call-of-result"))


def test_short_call_of_result_chain_message_is_bounded():
    exc = assert_refused(call_chain("numpy", "log1p", 500), Forbidden("call-of-result"))
    assert len(str(exc)) < 2000


# =========================================================================== declared sizes
def huge_length(op: bytes, length: int, width: int, tail: bytes = b"abcd") -> bytes:
    fmt = {4: "<I", 8: "<Q"}[width]
    if op in (pickle.LONG4, pickle.BINSTRING):
        fmt = "<i"
    return Ops(5).op(op, struct.pack(fmt, length)).raw(tail).done()


DECLARED = {
    "BINBYTES8-1TiB": (huge_length(pickle.BINBYTES8, 2**40, 8), Format("truncated")),
    "BINBYTES8-max": (huge_length(pickle.BINBYTES8, 2**64 - 1, 8), Format("truncated")),
    "BINUNICODE8-1TiB": (huge_length(pickle.BINUNICODE8, 2**40, 8), Format("truncated")),
    "BYTEARRAY8-1TiB": (huge_length(pickle.BYTEARRAY8, 2**40, 8), Format("truncated")),
    "BINBYTES-4GiB": (huge_length(pickle.BINBYTES, 2**32 - 1, 4), Format("truncated")),
    "BINUNICODE-4GiB": (huge_length(pickle.BINUNICODE, 2**32 - 1, 4), Format("truncated")),
    "BINSTRING-2GiB": (huge_length(pickle.BINSTRING, 2**31 - 1, 4), Format("truncated")),
    "LONG4-2GiB": (huge_length(pickle.LONG4, 2**31 - 1, 4), Limit("max_int_bytes")),
    "LONG4-2MiB-present": (
        huge_length(pickle.LONG4, 2 * MiB, 4, b"\x01" * (2 * MiB)),
        Limit("max_int_bytes"),
    ),
    "FRAME-1TiB": (Ops(4).frame(2**40).raw(b"N.").done(), Format("FRAME")),
    "FRAME-max": (Ops(4).frame(2**64 - 1).raw(b"N.").done(), Format("FRAME")),
    "LONG_BINPUT-2**31": (
        Ops(2).none().op(pickle.LONG_BINPUT, struct.pack("<I", 2**31)).done(),
        Limit("max_memo"),
    ),
    "LONG_BINPUT-2**32-1": (
        Ops(2).none().op(pickle.LONG_BINPUT, struct.pack("<I", 2**32 - 1)).done(),
        Limit("max_memo"),
    ),
    "LONG_BINPUT-after-many-ops": (
        Ops(2).raw(b"N0" * 1000).none().op(pickle.LONG_BINPUT, struct.pack("<I", 2**30)).done(),
        Limit("max_memo"),
    ),
    "PUT-2**31": (Ops().none().put(2**31).done(), Limit("max_memo")),
    "PUT-20-digits": (Ops().none().op(pickle.PUT, b"9" * 20 + b"\n").done(), Format("PUT")),
    "PUT-sign": (Ops().none().op(pickle.PUT, b"-1\n").done(), Format("PUT")),
    "LONG_BINGET-missing": (
        Ops(2).none().op(pickle.LONG_BINGET, struct.pack("<I", 2**31)).done(),
        Format("Memo"),
    ),
}


@pytest.mark.parametrize("name", list(DECLARED))
def test_declared_sizes_raw(name):
    data, expected = DECLARED[name]
    assert_refused_bounded(data, expected, max_seconds=5, max_rss_growth=128 * MiB)


def test_memo_limit_is_the_callers():
    data = Ops(2).raw(b"N0" * 100).none().op(pickle.LONG_BINPUT, struct.pack("<I", 150)).done()
    safeload.loads(data)
    assert_refused(data, Limit("max_memo"), limits=safeload.Limits(max_memo=100))


@pytest.mark.parametrize("comp", ["gzip", "bz2", "xz"])
@pytest.mark.parametrize("op", ["BINBYTES8", "BINUNICODE8"])
def test_declared_sizes_compressed(op, comp):
    """The compressed reader reads in chunks: a missing terabyte is a truncated stream."""
    data = compress(huge_length(getattr(pickle, op), 2**40, 8), comp)
    assert_refused_bounded(data, Format(), max_seconds=5, max_rss_growth=128 * MiB)


@pytest.mark.parametrize("comp", ["gzip", "bz2"])
def test_frame_huge_compressed_is_harmless(comp):
    """A huge FRAME in the compressed reader only reads what is present (no refusal needed)."""
    data = compress(Ops(4).frame(2**40).raw(b"N.").done(), comp)
    out = run_bounded(data, timeout=5)
    assert not out.timed_out and out.rss_growth < 64 * MiB, out.message


@pytest.mark.parametrize("container", ["gzip", "bz2", "joblib-raw"])
def test_bytearray8_declared_size_in_the_compressed_reader(container):
    """``pickle._Unpickler`` does ``bytearray(declared_length)`` before reading, so a 34-byte
    gzip (or a 56-byte raw joblib file) would zero-fill the declared size (1.5 GiB here); the
    reader compares the length with its remaining budget first."""
    body = Ops().op(pickle.BYTEARRAY8, struct.pack("<Q", 3 * GiB // 2)).raw(b"abcd").done()
    if container == "joblib-raw":
        data = Ops(5).global_("joblib.numpy_pickle", "NumpyArrayWrapper").pop().raw(body).value()
    else:
        data = compress(Ops(5).raw(body).value(), container)
    assert len(data) < 100
    limits = safeload.Limits(max_decompressed_bytes=MiB, max_file_bytes=MiB)
    out = run_bounded(data, limits=limits, timeout=10)
    assert out.error in ("FormatError", "LimitExceededError"), out.message
    assert out.rss_growth < 256 * MiB, f"peak RSS grew by {out.rss_growth / MiB:.0f} MiB"


# ------------------------------------------------------------ limits of the compressed reader
@pytest.mark.parametrize(
    ("name", "stream", "limits"),
    [
        ("max_opcodes", Ops(4).raw(b"N0" * 5000).none().done(), safeload.Limits(max_opcodes=1000)),
        (
            "max_memo",
            Ops(4).raw(b"N0" * 10).none().op(pickle.LONG_BINPUT, struct.pack("<I", 2**31)).done(),
            safeload.Limits(),
        ),
        (
            "max_int_bytes",
            huge_length(pickle.LONG4, 4096, 4, b"\x01" * 4096),
            safeload.Limits(max_int_bytes=1024),
        ),
    ],
    ids=["max_opcodes", "max_memo", "max_int_bytes"],
)
def test_compressed_reader_enforces_the_stream_limits(name, stream, limits):
    """The joblib/compressed reader (pure-Python unpickler, no opcode pre-scan) enforces
    max_opcodes, max_memo and max_int_bytes like the raw-pickle reader."""
    assert_refused(stream, Limit(name), limits=limits)  # the raw reader does
    assert_refused(compress(stream, "gzip"), Limit(name), limits=limits)


# =========================================================================== trusted allocators
ALLOCATORS = {
    "_reconstruct-2**40": (
        G("numpy._core.multiarray", "_reconstruct")(G("numpy", "ndarray"), (2**40,), b"b"),
        Limit("max_array_bytes"),
    ),
    "_reconstruct-old-name": (
        G("numpy.core.multiarray", "_reconstruct")(G("numpy", "ndarray"), (2**33, 8), b"b"),
        Limit("max_array_bytes"),
    ),
    "ndarray-call": (G("numpy", "ndarray")((2**33,), "f8"), Forbidden("class-call-with-arguments")),
    "ndarray-newobj": (
        New(G("numpy", "ndarray"), ((2**33,),)),
        Forbidden("class-call-with-arguments"),
    ),
    "bytes-2**36": (G("builtins", "bytes")(2**36), Limit("max_array_bytes")),
    "set-range": (G("builtins", "set")(G("builtins", "range")(2**40)), Forbidden("lazy-iterable")),
    "frozenset-range": (
        G("builtins", "frozenset")(G("builtins", "range")(2**40)),
        Forbidden("lazy-iterable"),
    ),
    "list-range": (
        G("builtins", "list")(G("builtins", "range")(2**40)),
        Forbidden("lazy-iterable"),
    ),
    "tuple-range": (
        G("builtins", "tuple")(G("builtins", "range")(2**40)),
        Forbidden("lazy-iterable"),
    ),
    "dict-range": (
        G("builtins", "dict")(G("builtins", "range")(2**40)),
        Forbidden("lazy-iterable"),
    ),
    "bytes-range": (
        G("builtins", "bytes")(G("builtins", "range")(2**40)),
        Forbidden("lazy-iterable"),
    ),
    "defaultdict-range": (
        G("collections", "defaultdict")(None, G("builtins", "range")(2**40)),
        Forbidden("lazy-iterable"),
    ),
    "py2-set-xrange": (
        G("__builtin__", "set")(G("__builtin__", "xrange")(2**40)),
        Forbidden("lazy-iterable"),
    ),
    "str-range": (G("builtins", "str")(G("builtins", "range")(2**40)), Forbidden("bad-arguments")),
}


@pytest.mark.parametrize("protocol", [0, 2, 4])
@pytest.mark.parametrize("name", list(ALLOCATORS))
def test_trusted_allocators(name, protocol):
    expr, expected = ALLOCATORS[name]
    if isinstance(expr, New) and protocol < 2:
        protocol = 2
    assert_refused(dumps(expr, protocol), expected)


@pytest.mark.parametrize("name", ["_reconstruct-2**40", "set-range", "bytes-2**36"])
def test_trusted_allocators_bounded_child(name):
    expr, expected = ALLOCATORS[name]
    assert_refused_bounded(dumps(expr, 2), expected, max_seconds=5, max_rss_growth=128 * MiB)


def test_bytearray_is_trusted_but_its_int_form_is_bounded():
    """G05: ``bytearray`` values load (corpus b18); ``bytearray(2**36)`` is refused."""
    data = dumps(G("builtins", "bytearray")(2**36), 2)
    assert_refused(data, Limit("max_array_bytes"))
    assert safeload.loads(dumps(G("builtins", "bytearray")(b"abc"), 2)) == bytearray(b"abc")


#: Trusted classes (default policy) whose constructors iterate or convert their argument: a
#: ``builtins.range`` (trusted, O(1) in the file) makes them loop or allocate without bound.
RANGE_SINKS = {
    "numpy.random MT19937": ("numpy.random._mt19937", "MT19937"),
    "numpy.random SeedSequence": ("numpy.random.bit_generator", "SeedSequence"),
    "_CVIterableWrapper": ("sklearn.model_selection._split", "_CVIterableWrapper"),
    "PredefinedSplit": ("sklearn.model_selection._split", "PredefinedSplit"),
    "numpy.float64": ("numpy", "float64"),
    "BallTree": ("sklearn.neighbors._ball_tree", "BallTree"),
}
#: Regression (fixed): trusted classes used to be callable with any arguments.
RANGE_REASON = (
    "bypass (resource): trusted classes are called with any arguments; their constructors "
    "iterate a builtins.range (trusted) — MT19937/SeedSequence(range(2**40)) loop forever "
    "(62-72 byte files), _CVIterableWrapper(range(2**24)) takes 640 MiB from 79 bytes, "
    "PredefinedSplit/numpy.float64/BallTree allocate 8 bytes per element; the lazy-iterable "
    "rule covers only builtin containers"
)


@pytest.mark.parametrize("name", list(RANGE_SINKS))
def test_trusted_constructor_with_a_lazy_range(name):
    data = dumps(G(*RANGE_SINKS[name])(G("builtins", "range")(2**40)), 2)
    assert len(data) < 120
    assert_refused_bounded(data, Forbidden("class-call-with-arguments"), max_seconds=1)


def test_trusted_class_called_on_an_uninitialised_array():
    data = dumps(G("sklearn.neighbors._kd_tree", "KDTree")(G("numpy", "ndarray")((2**23, 8))), 2)
    assert len(data) < 120
    out = run_bounded(data, timeout=1.5)
    assert not out.timed_out, "no answer within 1.5 s"
    assert out.error is not None, "loaded"


# =========================================================================== decompression bombs
BOMB_BYTES = 4 * MiB
TINY = safeload.Limits(max_decompressed_bytes=256 << 10)
BOMBS = {
    "binbytes8": Ops(5)
    .op(pickle.BINBYTES8, struct.pack("<Q", BOMB_BYTES))
    .raw(b"\0" * BOMB_BYTES)
    .done(),
    "binunicode8": Ops(5)
    .op(pickle.BINUNICODE8, struct.pack("<Q", BOMB_BYTES))
    .raw(b"a" * BOMB_BYTES)
    .done(),
    "opcodes": Ops(4).raw(b"N0" * (BOMB_BYTES // 2)).none().done(),
    "text-line": Ops().op(pickle.INT, b"1" * BOMB_BYTES + b"\n").done(),
    "no-newline": Ops().op(pickle.UNICODE, b"a" * BOMB_BYTES).done(),
    "joblib-array": dumps([joblib_array("f8", (BOMB_BYTES // 8,))], 4),
    "joblib-object-array": dumps(
        [
            joblib_array(
                "O",
                (1,),
                Ops(5)
                .op(pickle.BINBYTES8, struct.pack("<Q", BOMB_BYTES))
                .raw(b"\0" * BOMB_BYTES)
                .done(),
            )
        ],
        4,
    ),
}


@pytest.mark.parametrize("comp", COMPRESSORS)
@pytest.mark.parametrize("bomb", list(BOMBS))
def test_decompression_bomb_small_limit(bomb, comp):
    data = compress(BOMBS[bomb], comp)
    assert len(data) < BOMB_BYTES // 50
    assert_refused(data, Limit("max_decompressed_bytes"), limits=TINY)


@pytest.mark.parametrize("bomb", ["binbytes8", "opcodes", "joblib-array"])
def test_raw_file_size_limit(bomb):
    limits = safeload.Limits(max_file_bytes=MiB)
    assert_refused(BOMBS[bomb], Limit("max_file_bytes"), limits=limits)


@pytest.mark.parametrize("comp", ["gzip", "bz2", "xz"])
def test_decompression_bomb_small_limit_bounded_child(comp):
    data = compress(BOMBS["binbytes8"], comp)
    assert_refused_bounded(
        data, Limit("max_decompressed_bytes"), limits=TINY, max_rss_growth=128 * MiB
    )


def test_decompression_bomb_default_limits_bounded_child():
    """With default limits (max_decompressed_bytes = 16 GiB, no ratio cap) a declared
    BINBYTES8 length (1 TiB here) beyond the remaining budget is refused after one chunk,
    instead of buffering every byte present (twice) before failing: a 0.5 MiB gzip used to
    peak at 1 GiB RSS (a 16 MiB one at 32 GiB)."""
    prefix = Ops(5).op(pickle.BINBYTES8, struct.pack("<Q", 2**40)).value()
    data = gzip_members_bomb(prefix, 512 * MiB, b".", member=16 * MiB)
    assert len(data) < MiB
    out = run_bounded(data, timeout=10)
    assert not out.timed_out
    assert out.rss_growth < 256 * MiB, f"peak RSS grew by {out.rss_growth / MiB:.0f} MiB"
    assert out.error == "LimitExceededError", out.message
    assert out.attrs["limit"] == "max_decompressed_bytes", out.message


def test_opcode_bomb_default_limits_bounded_child():
    """A 600 KiB gzip of 2**29 cheap opcodes: the compressed reader bounds the opcodes by the
    compressed bytes consumed (``joblib_reader.OPCODES_PER_COMPRESSED_BYTE``) with the default
    ``max_opcodes``, so it is refused after about a million opcodes instead of minutes."""
    data = gzip_members_bomb(b"\x80\x04", 2**29 + 2**26, b"N.", member=16 * MiB, fill=b"N0")
    assert len(data) < MiB
    assert_refused_bounded(data, Limit("max_opcodes"), max_seconds=5)
