"""Family *broken-stream*: payload first, then an invalid opcode or a truncation (nullifAI).

``pickle.load`` executes opcodes as it reads them: a payload placed before an invalid opcode,
a missing ``STOP`` or a corrupt compressed tail has already run when the loader raises, and a
scanner that gives up on the parse error reports "no issues".  safeload parses the whole stream
inertly before anything is imported or called, so a broken stream is a plain ``FormatError``
whatever precedes the breakage, in every container; trailing bytes after ``STOP`` are refused
too (a polyglot or a concatenation).

Public sources (CATALOG.md): D09 ReversingLabs nullifAI (Feb 2025); D10 CVE-2025-71325
(exception paths), nullifAI variant.
"""

from __future__ import annotations

import gzip
import pickle

import pytest

from ._pickle_builder import G, Ops, compress, dumps, joblib_array
from .conftest import Format, assert_refused

CMD = 'touch "$SAFELOAD_CANARY_DIR/broken"'
PAYLOAD = {p: dumps([G("os", "system")(CMD), G("builtins", "exec")("1")], p) for p in (0, 2, 4, 5)}
BOXES = ["raw", "zlib", "gzip", "bz2", "xz", "lzma", "lz4"]


def _box(data: bytes, box: str) -> bytes:
    return data if box == "raw" else compress(data, box)


def breakages(stream: bytes) -> dict[str, bytes]:
    """Ways to break a stream after its payload."""
    body = stream[:-1]  # without STOP
    return {
        "invalid-0xff": body + b"\xff" + b".",
        "invalid-0xd0": body + b"\xd0",
        "no-stop": body,
        "cut-in-half": stream[: len(stream) // 2],
        "cut-last-arg": body[:-1],
        "pop-empty": body + b"0" * 5 + b".",
        "append-no-list": body + b"0" * 3 + b"Na.",
        "tuple-no-mark": body + b"0" * 3 + b"t.",
        "stop-empty": body + b"0" * 3 + b".",
        "bad-proto": body + b"\x80\x09.",
        "get-missing": body + b"h\xfe.",
        "setitem-on-str": body
        + b"0" * 3
        + Ops().unicode("x").none().none().setitem().value()
        + b".",
        "trailing-garbage": stream + b"garbage",
        "second-pickle": stream + dumps([1], 2),
    }


CASES = [
    pytest.param(data, id=f"p{p}-{name}-{box}")
    for p, stream in PAYLOAD.items()
    for name, broken in breakages(stream).items()
    for box in (BOXES if p == 4 else ["raw", "gzip"])
    for data in [_box(broken, box)]
]


@pytest.mark.parametrize("data", CASES)
def test_payload_then_breakage_is_a_format_error(data):
    assert_refused(data, Format())


@pytest.mark.parametrize("box", ["zlib", "gzip", "bz2", "xz", "lzma", "lz4"])
@pytest.mark.parametrize("cut", [1, 4, 9, 20])
def test_truncated_compressed_container(box, cut):
    data = compress(PAYLOAD[4], box)
    assert_refused(data[:-cut], Format())


def test_gzip_with_wrong_crc():
    data = bytearray(gzip.compress(PAYLOAD[4], mtime=0))
    data[-8] ^= 0xFF  # CRC32 of the member
    assert_refused(bytes(data), Format())


def test_gzip_with_wrong_length():
    data = bytearray(gzip.compress(PAYLOAD[4], mtime=0))
    data[-4] ^= 0xFF  # ISIZE
    assert_refused(bytes(data), Format())


@pytest.mark.parametrize("box", ["zlib", "gzip", "bz2", "xz", "lzma", "lz4"])
def test_corrupted_compressed_body(box):
    data = bytearray(compress(PAYLOAD[4] * 4, box))
    mid = len(data) // 2
    data[mid : mid + 8] = b"\x00\xff" * 4
    assert_refused(bytes(data), Format())


@pytest.mark.parametrize(
    "inner",
    [
        PAYLOAD[4][:-1] + b"\xff",
        PAYLOAD[4][:-1],
        PAYLOAD[4][: len(PAYLOAD[4]) // 2],
        b"",
    ],
    ids=["invalid-op", "no-stop", "half", "empty"],
)
@pytest.mark.parametrize("box", ["raw", "zlib", "gzip"])
def test_broken_joblib_object_array_inner_stream(inner, box):
    data = dumps([joblib_array("O", (1,), inner)], 4)
    assert_refused(_box(data, box), Format())


@pytest.mark.parametrize("box", ["raw", "zlib", "bz2"])
def test_joblib_array_data_truncated(box):
    data = dumps([joblib_array("f8", (4,), b"\0" * 16)], 4)  # 32 bytes declared
    assert_refused(_box(data[:-1] if box == "raw" else data, box), Format())


@pytest.mark.parametrize("box", ["raw", "gzip"])
def test_payload_after_joblib_wrapper_then_breakage(box):
    """The pure-Python path (after a joblib marker) also parses everything first."""
    data = dumps([joblib_array(), G("os", "system")(CMD)], 4)[:-1] + b"\xff."
    assert_refused(_box(data, box), Format())


@pytest.mark.parametrize(
    "byte",
    sorted(
        set(range(256))
        - {
            op[0]
            for op in (
                pickle.MARK,
                pickle.STOP,
                pickle.POP,
                pickle.POP_MARK,
                pickle.DUP,
                pickle.NONE,
                pickle.NEWTRUE,
                pickle.NEWFALSE,
                pickle.EMPTY_TUPLE,
                pickle.EMPTY_LIST,
                pickle.EMPTY_DICT,
                pickle.EMPTY_SET,
                pickle.MEMOIZE,
                pickle.TUPLE,
                pickle.LIST,
                pickle.DICT,
                pickle.FROZENSET,
                pickle.APPENDS,
                pickle.SETITEMS,
                pickle.ADDITEMS,
                pickle.NEXT_BUFFER,
                pickle.READONLY_BUFFER,
                pickle.TUPLE1,
                pickle.TUPLE2,
                pickle.TUPLE3,
                pickle.REDUCE,
                pickle.BUILD,
                pickle.NEWOBJ,
                pickle.NEWOBJ_EX,
                pickle.STACK_GLOBAL,
                pickle.OBJ,
                pickle.APPEND,
                pickle.SETITEM,
                pickle.BINPERSID,
            )
        }
    )[::7],
)
def test_payload_followed_by_any_single_byte(byte):
    """Every opcode with a (now missing) argument and every non-opcode is a FormatError."""
    assert_refused(PAYLOAD[4][:-1] + bytes([byte]), Format())
