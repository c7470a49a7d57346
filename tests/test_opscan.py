"""The opcode pre-scan: the C scanner (``_opscan.c``) against the Python reference.

``opscan._scan_opcodes_py`` defines the semantics; ``opscan._scan_opcodes_c`` must give the same
:class:`StreamInfo` and raise the same exception (class, message, ``limit``/``actual``/
``allowed``) for every input.  The corpus files are only *scanned* here, never unpickled.
"""

from __future__ import annotations

import array
import collections
import datetime
import decimal
import fractions
import gzip
import io
import mmap
import os
import pickle
import pickletools
import shutil
import subprocess
import sysconfig
import time
from pathlib import Path

import joblib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import safeload
from safeload.errors import FormatError, LimitExceededError, SafeloadError
from safeload.limits import DEFAULT_LIMITS, Limits
from safeload.readers import opscan
from safeload.readers.opscan import JOBLIB_MARKERS, StreamInfo, scan_opcodes

# Same location rule as conftest.py (not imported: works with or without tests/__init__.py).
CORPUS = Path(
    os.environ.get("SAFELOAD_CORPUS", Path(__file__).resolve().parents[2] / "shared" / "corpus")
)
MALICIOUS = CORPUS / "malicious"


def corpus_or_skip(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared corpus not found at {path}")
    return path


C = opscan._opscan
needs_c = pytest.mark.skipif(
    C is None,
    reason="the C extension safeload.readers._opscan was not built (no C compiler when the "
    "package was installed?); only the pure-Python scanner can be tested",
)
SCANNERS = [
    pytest.param(opscan._scan_opcodes_py, id="py"),
    pytest.param(opscan._scan_opcodes_c, id="c", marks=needs_c),
]


def outcome(scan, data, limits=DEFAULT_LIMITS, start=0, allow_trailing=False):
    """What a scanner did, as a comparable value: its result or its exception's details."""
    try:
        return scan(data, limits, start, allow_trailing=allow_trailing)
    except SafeloadError as exc:
        return (
            type(exc).__name__,
            str(exc),
            getattr(exc, "limit", None),
            getattr(exc, "actual", None),
            getattr(exc, "allowed", None),
        )


def same(data, limits=DEFAULT_LIMITS, start=0, allow_trailing=False):
    """Assert both scanners agree on ``data``; return the Python outcome."""
    want = outcome(opscan._scan_opcodes_py, data, limits, start, allow_trailing)
    if C is not None:
        got = outcome(opscan._scan_opcodes_c, data, limits, start, allow_trailing)
        assert got == want, (bytes(data[:200]), limits, start, allow_trailing)
    return want


# --------------------------------------------------------------------------------------------
# The C tables are the Python ones (and the Python ones are pickletools').


@needs_c
def test_c_opcode_table_matches_pickletools():
    kinds, sizes = C.KINDS, C.SIZES
    assert kinds == bytes(opscan._KIND)
    assert sizes == bytes(opscan._SIZE)
    # SPECIAL only matters for fixed-size opcodes (opscan's list also names text ones)
    fixed = [c for c in range(256) if kinds[c] == opscan._FIXED]
    assert [C.SPECIAL[c] for c in fixed] == [int(opscan._SPECIAL[c]) for c in fixed]
    assert set(C.JOBLIB_MARKERS) == set(JOBLIB_MARKERS)
    # independently of opscan's derivation
    by_n = {
        pickletools.UP_TO_NEWLINE: opscan._LINE,
        pickletools.TAKEN_FROM_ARGUMENT1: opscan._LEN1,
        pickletools.TAKEN_FROM_ARGUMENT4: opscan._LEN4S,
        pickletools.TAKEN_FROM_ARGUMENT4U: opscan._LEN4U,
        pickletools.TAKEN_FROM_ARGUMENT8U: opscan._LEN8U,
    }
    seen = set()
    for op in pickletools.opcodes:
        code = ord(op.code)
        seen.add(code)
        if op.arg is None or op.arg.n >= 0:
            expected = (opscan._FIXED, 0 if op.arg is None else op.arg.n)
        else:
            kind = by_n[op.arg.n]
            if op.name in ("GLOBAL", "INST"):
                kind = opscan._LINE2
            expected = (kind, 0)
        assert (kinds[code], sizes[code]) == expected, op.name
    for code in set(range(256)) - seen:
        assert (kinds[code], sizes[code]) == (opscan._INVALID, 0), hex(code)


@needs_c
def test_c_path_is_in_use(monkeypatch):
    assert Path(C.__file__).name.startswith("_opscan")

    def boom(*args, **kwargs):
        raise AssertionError("the pure-Python scanner ran")

    monkeypatch.delenv("SAFELOAD_PURE_PYTHON", raising=False)
    monkeypatch.setattr(opscan, "_scan_opcodes_py", boom)
    data = pickle.dumps({"a": [1, 2.0, None]}, protocol=5)
    for buf in (data, bytearray(data), memoryview(data)):
        assert scan_opcodes(buf, DEFAULT_LIMITS).n_opcodes > 3


def test_pure_python_env_forces_python(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("the C scanner ran")

    monkeypatch.setenv("SAFELOAD_PURE_PYTHON", "1")
    monkeypatch.setattr(opscan, "_scan_opcodes_c", boom)
    assert scan_opcodes(pickle.dumps([1, 2]), DEFAULT_LIMITS).protocol == pickle.DEFAULT_PROTOCOL


@needs_c
@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
def test_c_source_compiles_warning_free(tmp_path):
    src = Path(opscan.__file__).with_name("_opscan.c")
    cmd = ["gcc", "-Wall", "-Wextra", "-Werror", "-fsyntax-only"]
    cmd += ["-I", sysconfig.get_paths()["include"], str(src)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


# --------------------------------------------------------------------------------------------
# (a) every error path, exact class / limit / actual / allowed, on both scanners


def u64(x):
    return x.to_bytes(8, "little")


def u32(x):
    return x.to_bytes(4, "little")


ERRORS = [
    # (id, data, limits, exception, limit, actual, allowed, message fragment)
    ("invalid-opcode", b"N\xff.", None, FormatError, None, None, None, "opcode 0xff at offset 1"),
    ("binstring-neg", b"T\xff\xff\xff\xff", None, FormatError, None, None, None, "length -1 "),
    ("binstring-neg-short", b"NT\xfe", None, FormatError, None, None, None, "-2 for BINSTRING"),
    ("long4-neg", b"\x8b\x00\x00\x00\x80", None, FormatError, None, None, None, "for LONG4"),
    ("proto-6", b"\x80\x06N.", None, FormatError, None, None, None, "protocol 6 at offset 0"),
    ("proto-6-at-end", b"N\x80\x06", None, FormatError, None, None, None, "6 at offset 1"),
    ("proto-255", b"\x80\xff", None, FormatError, None, None, None, "protocol 255"),
    (
        "frame-too-long",
        b"\x80\x04\x95" + u64(100) + b"N.",
        None,
        FormatError,
        None,
        None,
        None,
        "declares 100 bytes, 2 remain",
    ),
    ("frame-short-header", b"\x95\x01", None, FormatError, None, None, None, "1 bytes, -7 remain"),
    (
        "frame-2**64-1",
        b"\x95" + u64(2**64 - 1) + b"N.",
        None,
        FormatError,
        None,
        None,
        None,
        f"declares {2**64 - 1} bytes",
    ),
    (
        "bytes8-past-2**64",
        b"\x80\x05\x8e" + u64(2**64 - 1) + b".",
        None,
        FormatError,
        None,
        None,
        None,
        f"runs {2**64 - 2} bytes past",
    ),
    (
        "bytes8-short-length",
        b"\x96\x01\x02",
        None,
        FormatError,
        None,
        None,
        None,
        f"runs {0x0201 + 6} bytes past",
    ),
    ("binint-short", b"J\x01", None, FormatError, None, None, None, "runs 3 bytes past"),
    ("binunicode-4g", b"X" + u32(2**32 - 1), None, FormatError, None, None, None, "runs"),
    ("short-bytes-past", b"C\x05ab", None, FormatError, None, None, None, "runs 3 bytes past"),
    ("line-no-newline", b"I12", None, FormatError, None, None, None, "runs 1 bytes past"),
    ("global-one-line", b"cos\nsystem", None, FormatError, None, None, None, "runs 1 bytes"),
    ("proto-last-byte", b"\x80", None, FormatError, None, None, None, "runs 1 bytes past"),
    ("empty", b"", None, FormatError, None, None, None, "no STOP opcode"),
    ("no-stop", b"N", None, FormatError, None, None, None, "(1 bytes)"),
    ("len1-last-byte", b"NC", None, FormatError, None, None, None, "no STOP opcode"),
    ("trailing", b"N.xx", None, FormatError, None, None, None, "2 bytes of trailing data"),
    ("put-empty", b"Np\n.", None, FormatError, None, None, None, "invalid PUT memo index b''"),
    ("put-negative", b"Np-1\n.", None, FormatError, None, None, None, "b'-1' at offset 1"),
    ("put-space", b"Np 1\n.", None, FormatError, None, None, None, "invalid PUT"),
    ("put-trailing-space", b"Np1 \n.", None, FormatError, None, None, None, "invalid PUT"),
    ("put-underscore", b"NNp1_0\n.", None, FormatError, None, None, None, "invalid PUT"),
    ("put-plus", b"Np+1\n.", None, FormatError, None, None, None, "invalid PUT"),
    ("put-cr", b"Np1\r\n.", None, FormatError, None, None, None, "invalid PUT"),
    ("put-arabic-digit", "Np\u0661\n.".encode(), None, FormatError, None, None, None, "PUT"),
    ("put-20-digits", b"Np" + b"1" * 20 + b"\n.", None, FormatError, None, None, None, "PUT"),
    ("put-5000-digits", b"Np" + b"9" * 5000 + b"\n.", None, FormatError, None, None, None, "PUT"),
    (
        "put-beyond-nops",
        b"Np5\n.",
        None,
        LimitExceededError,
        "max_memo",
        5,
        2,
        "larger than the 2 opcodes",
    ),
    (
        "put-19-digits",
        b"Np" + b"9" * 19 + b"\n.",
        None,
        LimitExceededError,
        "max_memo",
        10**19 - 1,
        2,
        "CVE-2018-20406",
    ),
    (
        "long-binput-beyond-nops",
        b"Nr" + u32(2**30) + b".",
        None,
        LimitExceededError,
        "max_memo",
        2**30,
        2,
        "offset 1",
    ),
    (
        "long-binput-short",
        b"NNNNNr\x10\x01",
        None,
        LimitExceededError,
        "max_memo",
        0x110,
        6,
        "offset 5",
    ),
    (
        "max-memo",
        b"NNNr" + u32(3) + b".",
        Limits(max_memo=1),
        LimitExceededError,
        "max_memo",
        3,
        1,
        "memo index at offset 3",
    ),
    (
        "max-memo-put",
        b"NNNp3\n.",
        Limits(max_memo=2),
        LimitExceededError,
        "max_memo",
        3,
        2,
        "memo index at offset 3",
    ),
    (
        "max-int-bytes",
        b"\x8b" + u32(5) + b"\x01" * 5 + b".",
        Limits(max_int_bytes=4),
        LimitExceededError,
        "max_int_bytes",
        5,
        4,
        "LONG4 at offset 0",
    ),
    (
        "max-int-bytes-zero",
        b"N\x8b" + u32(1) + b"\x01.",
        Limits(max_int_bytes=0),
        LimitExceededError,
        "max_int_bytes",
        1,
        0,
        "LONG4 at offset 1",
    ),
    (
        "max-opcodes-fixed-only",
        b"NNN.",
        Limits(max_opcodes=2),
        LimitExceededError,
        "max_opcodes",
        4,
        2,
        "pickle opcodes",
    ),
    (
        "max-opcodes-in-loop",
        b"C\x00C\x00C\x00C\x00.",
        Limits(max_opcodes=2),
        LimitExceededError,
        "max_opcodes",
        3,
        2,
        "pickle opcodes",
    ),
    (
        "max-opcodes-before-truncation",
        b"NNN\x8e" + u64(2**63),
        Limits(max_opcodes=3),
        LimitExceededError,
        "max_opcodes",
        4,
        3,
        "pickle opcodes",
    ),
]


@pytest.mark.parametrize("scan", SCANNERS)
@pytest.mark.parametrize(
    "case", ERRORS, ids=[c[0] for c in ERRORS]
)  # fmt: skip
def test_error_paths(scan, case):
    _, data, limits, exc_type, limit, actual, allowed, fragment = case
    with pytest.raises(exc_type) as info:
        scan(data, limits or DEFAULT_LIMITS, 0)
    assert fragment in str(info.value)
    if exc_type is LimitExceededError:
        assert (info.value.limit, info.value.actual, info.value.allowed) == (limit, actual, allowed)
    same(data, limits or DEFAULT_LIMITS)


def test_error_paths_agree_with_trailing_allowed_and_offsets():
    for case in ERRORS:
        for start in (0, 1, 2):
            same(case[1], case[2] or DEFAULT_LIMITS, start, allow_trailing=True)


@pytest.mark.parametrize("scan", SCANNERS)
def test_start_beyond_end(scan):
    with pytest.raises(FormatError, match="runs 3 bytes past"):
        scan(b"N.", DEFAULT_LIMITS, 5)
    with pytest.raises(FormatError, match="no STOP"):
        scan(b"N.", DEFAULT_LIMITS, 2)


def test_negative_start_uses_python():
    for data in (b"N.", b"NN."):
        want = outcome(opscan._scan_opcodes_py, data, start=-2, allow_trailing=True)
        assert outcome(scan_opcodes, data, start=-2, allow_trailing=True) == want


# --------------------------------------------------------------------------------------------
# Results field by field


@pytest.mark.parametrize("scan", SCANNERS)
def test_result_fields(scan):
    data = b"xx" + pickle.dumps([collections.OrderedDict(a=1), "s" * 300], protocol=2)
    info = scan(data, DEFAULT_LIMITS, 2)
    assert info == opscan._scan_opcodes_py(data, DEFAULT_LIMITS, 2)
    assert info.start == 2 and info.end == len(data) and info.trailing == 0
    assert info.protocol == 2
    assert info.global_offsets and {data[o] for o in info.global_offsets} == {ord("c")}
    assert info.max_memo_index == -1  # BINPUT's one-byte indices are not counted
    data = pickle.dumps(["a", "b", "c"], protocol=0)
    assert scan(data, DEFAULT_LIMITS, 0).max_memo_index == 3

    stream = (
        b"\x80\x05\x95" + u64(9) + b"\x8c\x01a\x8c\x01b\x93\x94"
        b"K\x01\x82\x01\x83\x01\x00\x84\x01\x00\x00\x00Pid\nQ\x97\x98"
        b"r\x00\x00\x00\x00.tail"
    )
    info = scan(stream, DEFAULT_LIMITS, 0, allow_trailing=True)
    assert info.protocol == 5 and info.trailing == 4 and info.end == len(stream) - 4
    assert info.global_offsets == [17]
    assert info.ext_offsets == [21, 23, 26]
    assert info.persid_offsets == [31, 35]
    assert info.buffer_offsets == [36, 37]
    assert info.max_memo_index == 0
    assert info.n_opcodes == 16


JOBLIB_STREAMS = {
    "short-binunicode": b"\x80\x04\x8c\x13joblib.numpy_pickle\x94",
    "long1-len1": b"\x8a\x13joblib.numpy_pickle",
    "short-binbytes": b"NC\x1ajoblib.numpy_pickle_compat",
    "binunicode": b"X%sjoblib.numpy_pickle" % u32(19),
    "binstring": b"T%ssklearn.externals.joblib.numpy_pickle" % u32(37),
    "global": b"(csklearn.externals.joblib.numpy_pickle_compat\nNDArrayWrapper\n",
    "inst": b"ijoblib.numpy_pickle\nX\n",
}


@pytest.mark.parametrize("scan", SCANNERS)
@pytest.mark.parametrize("name", sorted(JOBLIB_STREAMS))
def test_joblib_markers(scan, name):
    data = JOBLIB_STREAMS[name] + b"\xff garbage without STOP"
    info = scan(data, DEFAULT_LIMITS, 0)
    assert info.joblib and info.end == 0 and info.trailing == 0
    assert info == opscan._scan_opcodes_py(data, DEFAULT_LIMITS, 0)


@pytest.mark.parametrize("scan", SCANNERS)
def test_not_joblib_markers(scan):
    # BINBYTES is not a string opcode; a marker must be complete and exact
    assert not scan(b"B%sjoblib.numpy_pickle." % u32(19), DEFAULT_LIMITS).joblib
    assert not scan(b"\x8c\x12joblib.numpy_pickl.", DEFAULT_LIMITS).joblib
    assert not scan(b"cjoblib.numpy_pickle2\nX\n.", DEFAULT_LIMITS).joblib
    with pytest.raises(FormatError, match="runs 1 bytes past"):
        scan(b"\x8c\x13joblib.numpy_pickl", DEFAULT_LIMITS)
    # a truncated argument whose remaining bytes spell a shorter marker is no marker
    with pytest.raises(FormatError, match="runs 7 bytes past"):
        scan(b"\x8c\x1ajoblib.numpy_pickle", DEFAULT_LIMITS)
    with pytest.raises(FormatError, match="runs 18 bytes past"):
        scan(b"X%sjoblib.numpy_pickle" % u32(37), DEFAULT_LIMITS)


# --------------------------------------------------------------------------------------------
# (b) real pickles


class Plain:
    def __init__(self):
        self.x = [1, 2, 3]
        self.y = {"k": (1.5, b"bytes", bytearray(b"ba"))}


def _objects():
    objs = [
        None,
        True,
        0,
        -1,
        255,
        65535,
        2**31,
        -(2**31) - 1,
        2**64,
        -(2**200),
        10**2000,
        1.5,
        float("nan"),
        "",
        "text",
        "é" * 300,
        "x" * 70000,
        b"",
        b"\x00" * 300,
        b"y" * 70000,
        bytearray(b"abc"),
        (),
        (1,),
        (1, 2),
        (1, 2, 3),
        (1, 2, 3, 4),
        [],
        list(range(2000)),
        {},
        {i: str(i) for i in range(1500)},
        set(range(30)),
        frozenset({1, 2}),
        complex(1, 2),
        decimal.Decimal("1.25"),
        fractions.Fraction(1, 3),
        datetime.datetime(2020, 1, 2, 3, 4, 5),
        collections.OrderedDict(a=1),
        collections.Counter("hello"),
        array.array("d", [1.0, 2.0]),
        Plain(),
        np.arange(100, dtype=np.int32),
        np.zeros((3, 4), dtype=">f8"),
        np.array(["a", "bc"], dtype=object),
        np.float64(2.5),
    ]
    shared = [1, 2]
    objs.append([shared, shared, {"s": shared}])
    return objs


def _estimators():
    from sklearn.cluster import KMeans
    from sklearn.datasets import make_classification
    from sklearn.decomposition import PCA
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from sklearn.svm import SVC
    from sklearn.tree import DecisionTreeRegressor

    X, y = make_classification(n_samples=120, n_features=6, random_state=0)
    return [
        LogisticRegression().fit(X, y),
        RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y),
        make_pipeline(StandardScaler(), SVC()).fit(X, y),
        KMeans(n_clusters=3, n_init=1, random_state=0).fit(X),
        PCA(n_components=2).fit(X),
        DecisionTreeRegressor(max_depth=4).fit(X, y),
        HistGradientBoostingClassifier(max_iter=3).fit(X, y),
        OneHotEncoder().fit([["a"], ["b"], ["c"]]),
        TfidfVectorizer().fit(["the cat sat", "the dog ran", "a cat and a dog"]),
    ]


@pytest.fixture(scope="module")
def real_pickles():
    out = {}
    for i, obj in enumerate(_objects()):
        for proto in range(6):
            out[f"obj{i}-p{proto}"] = pickle.dumps(obj, protocol=proto)
    for est in _estimators():
        for proto in range(6):
            out[f"{type(est).__name__}-p{proto}"] = pickle.dumps(est, protocol=proto)
        buf = io.BytesIO()
        joblib.dump(est, buf)
        out[f"{type(est).__name__}-joblib"] = buf.getvalue()
    out.update(PY2_STREAMS)
    return out


# Streams as Python 2 pickled them (the protocol 0-2 idioms Python 3 no longer writes).
PY2_STREAMS = {
    "py2-p0-old-style-instance": b"(i__main__\nOld\np0\n(dp1\nS'a'\np2\nI1\nsS'b'\np3\n"
    b"F1.5\nsS'c'\np4\nL12345678901234567890L\nsS'u'\np5\nVunicode \\u20ac\np6\nsb.",
    "py2-p0-reconstructor": b"ccopy_reg\n_reconstructor\np0\n(c__main__\nNew\np1\n"
    b"c__builtin__\nobject\np2\nNtp3\nRp4\n(dp5\nS'x'\np6\nI01\nsb.",
    "py2-p1-binstring": b"(dq\x00U\x01aq\x01(K\x01T\x05\x00\x00\x00helloq\x02tq\x03s"
    b"U\x01bq\x04G?\xf8\x00\x00\x00\x00\x00\x00s.",
    "py2-p2-set": b"\x80\x02c__builtin__\nset\nq\x00]q\x01(K\x01K\x02e\x85q\x02Rq\x03.",
    "py2-p2-numpy": b"\x80\x02cnumpy.core.multiarray\n_reconstruct\nq\x01cnumpy\nndarray\n"
    b"q\x02K\x00\x85U\x01b\x87Rq\x03(K\x01K\x02\x85cnumpy\ndtype\nq\x04U\x02f8K\x00K\x01"
    b"\x87Rq\x05(K\x03U\x01<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89U\x10"
    + b"\x00" * 16
    + b"tb.",
    "py2-p0-persid": b"(lp0\nPkey1\naI2\na.",
}


def test_real_pickles_agree(real_pickles):
    assert len(real_pickles) > 300
    for name, data in real_pickles.items():
        want = same(data)
        if name.endswith("-joblib"):
            assert isinstance(want, StreamInfo) and want.joblib, name
        else:
            assert isinstance(want, StreamInfo) and want.end == len(data), (name, want)
        assert want.stack_error == -1, name  # the stack model follows every real pickle
        # a truncated copy and a copy with trailing data
        same(data[: len(data) // 2])
        same(data + b"\x00\x01", allow_trailing=True)


def test_python2_streams_are_valid(real_pickles):
    for name in PY2_STREAMS:
        info = same(real_pickles[name])
        assert isinstance(info, StreamInfo) and info.end == len(real_pickles[name]), name
        pickletools.dis(real_pickles[name], out=io.StringIO())  # well-formed per pickletools
    assert same(PY2_STREAMS["py2-p0-persid"]).persid_offsets == [5]


def test_frames_agree():
    data = pickle.dumps([list(range(20000)), b"x" * 100_000, "y" * 70_000], protocol=5)
    assert data[2] == 0x95  # framed
    info = same(data)
    assert isinstance(info, StreamInfo) and info.protocol == 5


def test_buffer_types_agree(tmp_path, real_pickles):
    data = real_pickles["RandomForestClassifier-p5"]
    path = tmp_path / "f.pkl"
    path.write_bytes(data)
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        views = [data, bytearray(data), memoryview(data), mm, memoryview(bytearray(data))]
        results = [same(v) for v in views]
        results += [scan_opcodes(v, DEFAULT_LIMITS) for v in views]
        assert all(r == results[0] for r in results)
    # not handed to C: a non-byte memoryview and a strided one take the Python path
    strided = memoryview(data + data)[::2]
    assert not opscan._c_buffer(strided)
    assert not opscan._c_buffer(memoryview(b"abcd").cast("I"))


@needs_c
def test_c_takes_any_buffer():
    data = pickle.dumps([1, 2], protocol=4)
    res = C.scan(np.frombuffer(data, dtype=np.uint8), 0, 100, 100, 100, 100, False)
    assert res[0] == 0 and res[2] == len(data)
    with pytest.raises(TypeError):
        C.scan("not a buffer", 0, 1, 1, 1, 1, False)
    with pytest.raises(ValueError):
        C.scan(data, -1, 1, 1, 1, 1, False)
    released = memoryview(data)
    released.release()
    with pytest.raises(ValueError):
        C.scan(released, 0, 1, 1, 1, 1, False)


@pytest.mark.parametrize("scan", SCANNERS)
def test_limits_are_inclusive(scan):
    long4 = b"\x8b" + u32(3) + b"\x01\x02\x03."
    assert scan(long4, Limits(max_int_bytes=3), 0).n_opcodes == 2
    memo = b"NNp2\nr\x03\x00\x00\x00."
    assert scan(memo, Limits(max_memo=3), 0).max_memo_index == 3
    assert scan(b"NN.", Limits(max_opcodes=3), 0).n_opcodes == 3
    assert scan(b"Np1\n.", DEFAULT_LIMITS, 0).max_memo_index == 1  # index == opcodes read


def test_huge_limits_agree():
    big = Limits(max_opcodes=2**80, max_memo=2**70, max_int_bytes=2**65)
    zero = Limits(max_opcodes=0, max_memo=0, max_int_bytes=0)
    data = pickle.dumps({"a": 10**400, "b": [1, 2]}, protocol=4)
    assert isinstance(same(data, big), StreamInfo)
    assert same(data, zero)[0] == "LimitExceededError"


# --------------------------------------------------------------------------------------------
# (e) corpora: scanned only, never unpickled


def _corpus_files(root):
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix != ".json")


def test_malicious_corpus_agrees():
    files = [p for p in _corpus_files(corpus_or_skip(MALICIOUS / "files")) if p.suffix == ".pkl"]
    assert files
    for path in files:
        data = path.read_bytes()
        for start in (0, 1):
            same(data, start=start)
            same(data, start=start, allow_trailing=True)
            same(data, Limits(max_opcodes=20, max_memo=3), start=start)


def test_legacy_and_wild_corpora_agree():
    files = _corpus_files(corpus_or_skip(CORPUS / "legacy"))
    if (CORPUS / "wild").exists():
        files += _corpus_files(CORPUS / "wild")
    for path in files:
        same(path.read_bytes(), allow_trailing=True)


# --------------------------------------------------------------------------------------------
# (c) mutated pickles


_SEEDS = [
    pickle.dumps(obj, protocol=proto)
    for proto in range(6)
    for obj in (
        {"a": [1, 2.5, "x"], "b": (None, True, b"by")},
        [10**30, -5, 2**40, bytearray(b"z"), frozenset({1})],
        Plain(),
        np.arange(6, dtype=np.int16),
    )
]
_SEEDS += [
    pickle.dumps(obj, protocol=proto)
    for proto in (0, 2, 4)
    for obj in (
        {(1, (2, 3)): {4, (5,)}, "k": frozenset({(6, 7)})},
        {(i, (i,)): i for i in range(3)},
    )
]
_SEEDS += list(PY2_STREAMS.values()) + list(JOBLIB_STREAMS.values())
_VALID_OPS = sorted(ord(op.code) for op in pickletools.opcodes)
_INSERTS = [
    b"\x8e" + u64(2**64 - 1),
    b"\x96" + u64(2**63),
    b"X\xff\xff\xff\xff",
    b"T\xff\xff\xff\x7f",
    b"T\x00\x00\x00\x80",
    b"\x8b\xff\xff\xff\x7f",
    b"\x8b\x05\x00\x00\x00\x01\x02\x03\x04\x05",
    b"\x95" + u64(2**64 - 1),
    b"\x95" + u64(3),
    b"r\xff\xff\xff\x7f",
    b"r\x02\x00\x00\x00",
    b"p2\n",
    b"p99999999999999999999\n",
    b"p\n",
    b"\x80\x07",
    b"\x80\x02",
    b"c" + b"joblib.numpy_pickle" + b"\nX\n",
    b"\x8c\x13joblib.numpy_pickle",
    b"Pid\n",
    b"\x82\x01",
    b"\x97",
    b".",
    b"\n",
    # the stack model: marks, tuples, memo, hashing
    b"(",
    b"t",
    b"\x85",
    b"\x87",
    b"0",
    b"1",
    b"2",
    b"\x94",
    b"h\x00",
    b"h\x05",
    b"g1\n",
    b"g 1\n",
    b"\x90",
    b"\x91",
    b"d",
    b"s",
    b"u",
    b"\x8f",
    b"}",
    # hash classes: collidable, wide and narrow ints, floats (hash flooding)
    b"\x8a\x09\x07\x00\x00\x00\x00\x00\x00\x20\x00",
    b"\x8a\x08\x01\x02\x03\x04\x05\x06\x07\x08",
    b"\x8a\x05\x01\x02\x03\x04\x05",
    b"\x8b\x08\x00\x00\x00\x01\x02\x03\x04\x05\x06\x07\x08",
    b"G\x43\xe0\x00\x00\x00\x00\x00\x00",
    b"I123456789012345678\n",
    b"L0x1fffffffffffffffL\n",
    b"I1234567890\n",
    b"F1e300\n",
    b"\x86",
    b"e",
    b"a",
    b"l",
]


@st.composite
def mutated(draw):
    buf = bytearray(draw(st.sampled_from(_SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(buf)))
        how = draw(
            st.sampled_from(["flip", "truncate", "insert-op", "insert-known", "delete", "set"])
        )
        if how == "flip" and buf:
            i = min(at, len(buf) - 1)
            buf[i] ^= 1 << draw(st.integers(0, 7))
        elif how == "set" and buf:
            buf[min(at, len(buf) - 1)] = draw(st.integers(0, 255))
        elif how == "truncate":
            del buf[at:]
        elif how == "insert-op":
            op = draw(st.sampled_from(_VALID_OPS + [0xFF, 0x00]))
            buf[at:at] = bytes([op]) + draw(st.binary(max_size=9))
        elif how == "insert-known":
            buf[at:at] = draw(st.sampled_from(_INSERTS))
        elif how == "delete":
            del buf[at : at + draw(st.integers(1, 8))]
    return bytes(buf)


_LIMITS = [
    DEFAULT_LIMITS,
    Limits(max_opcodes=6),
    Limits(max_memo=2),
    Limits(max_int_bytes=3),
    Limits(max_opcodes=0, max_memo=0, max_int_bytes=0),
    Limits(max_items=3),
    Limits(max_items=40),
]


@needs_c
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=mutated(),
    limits=st.sampled_from(_LIMITS),
    start=st.sampled_from([0, 0, 0, 1, 2, 50]),
    allow_trailing=st.booleans(),
)
def test_mutated_pickles_agree(data, limits, start, allow_trailing):
    same(data, limits, start, allow_trailing)


@needs_c
@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=64), allow_trailing=st.booleans())
def test_random_bytes_agree(data, allow_trailing):
    same(data, allow_trailing=allow_trailing)
    same(bytes([0x80, 5]) + data, allow_trailing=allow_trailing)


def test_no_bare_value_error_from_put():
    # int() would raise ValueError (or accept " 1", "+1", "1_0"); the scan refuses all of them
    for line in (b"x", b"1 ", b"\xff", b"1\x00", b"0x10", b"1e3", b"9" * 5000, b"/", b"1:"):
        with pytest.raises(FormatError, match="invalid PUT memo index"):
            opscan._scan_opcodes_py(b"Np" + line + b"\n.", DEFAULT_LIMITS)
        same(b"Np" + line + b"\n.")


# --------------------------------------------------------------------------------------------
# (f) the stack model: hash weights, hash bombs, and agreement with the real unpicklers


def test_stack_tables_are_pickletools():
    """The model's pops/pushes are pickletools' stack_before/stack_after (PUT aside)."""
    mark, sl = pickletools.markobject, pickletools.stackslice
    for op in pickletools.opcodes:
        code = ord(op.code)
        before, after = op.stack_before, op.stack_after
        pushes = len([x for x in after if x is not mark])
        if mark in before:
            k = before.index(mark)
            want = (True, k, len([x for x in before[k + 1 :] if x is not sl]), pushes)
        elif op.name in ("PUT", "BINPUT", "LONG_BINPUT"):
            assert (before, after) == ([], [])  # read the top, like MEMOIZE
            want = (False, 1, 0, 1)
        else:
            want = (False, len(before), 0, pushes)
        got = (opscan._MARKED[code], opscan._NPOP[code], opscan._ABOVE[code], opscan._NPUSH[code])
        assert got == want, op.name
    hashing = {n: opscan._SEM[opscan._OP[n]] for n in ("SETITEM", "SETITEMS", "DICT")}
    assert hashing == {"SETITEM": opscan._S_KEY, "SETITEMS": opscan._S_PAIRS, "DICT": 6}
    assert opscan._SEM[opscan._OP["ADDITEMS"]] == opscan._SEM[opscan._OP["FROZENSET"]]


@needs_c
def test_c_stack_tables_match_python():
    tables = {"SEM": "_SEM", "MARKED": "_MARKED", "NPOP": "_NPOP", "ABOVE": "_ABOVE"}
    tables.update(NPUSH="_NPUSH", ENTERS="_ENTERS", PUSH_CLASS="_PUSH_CLASS")
    for c_name, py_name in tables.items():
        assert getattr(C, c_name) == bytes(int(x) for x in getattr(opscan, py_name)), c_name


def bomb_ops(levels: int = 9, fan: int = 16, text: bool = False) -> bytes:
    """Push ``t[levels]`` with ``t[0] = (0,)`` and ``t[i] = (t[i-1],) * fan`` (memo ``i``)."""
    if text:
        out = b"(I0\ntp0\n0"
        for i in range(1, levels + 1):
            out += b"(" + b"g%d\n" % (i - 1) * fan + b"tp%d\n" % i + (b"0" if i < levels else b"")
        return out
    out = b"K\x00\x85q\x000"
    for i in range(1, levels + 1):
        out += b"(" + (b"h" + bytes([i - 1])) * fan + b"tq" + bytes([i])
        out += b"0" if i < levels else b""
    return out


B = bomb_ops()
BIG_INT = b"\x8b" + u32(1 << 20) + b"\x01" * (1 << 20)  # 1 MiB int: weight 1 + 2**17
HASH_BOMBS = {
    # the brief's reproducer: 344 bytes
    "set-additems": b"\x80\x04\x8f(" + B + b"\x90.",
    "frozenset": b"\x80\x04(" + B + b"\x91.",
    "setitem-key": b"\x80\x04}" + B + b"Ns.",
    "setitems-key": b"\x80\x04}(" + B + b"Nu.",
    "dict-key": b"\x80\x04(" + B + b"Nd.",
    "dict-key-not-first": b"\x80\x04(K\x01N" + B + b"Nd.",
    "inside-a-tuple-key": b"\x80\x04}K\x01" + B + b"\x86Ns.",
    "nested-frozenset": b"\x80\x04((" + B + b"\x85\x91\x91.",
    "memo-fetched-later": b"\x80\x04" + B + b"0" + b"N0" * 50 + b"\x8f(K\x01h\x09\x90.",
    "long-binget": b"\x80\x04" + B + b"0(j\x09\x00\x00\x00\x91.",
    "dup": b"\x80\x04(" + B + b"2\x91.",
    "memoize": b"\x80\x04" + B + b"\x940(h\x0a\x91.",
    "text-protocol-0": b"(" + bomb_ops(text=True) + b"I1\nd.",
    "text-get-odd-spelling": bomb_ops(text=True) + b"0(g 9\nI1\nd.",
    # a key under the limit (2.1M visits), repeated 25 times: the limit counts the stream
    "repeated-moderate-key": b"\x80\x04\x8f(" + bomb_ops(5) + b"h\x05" * 24 + b"\x90.",
}
# a big int's hash reads every digit, each time a shared tuple reaches it: 16 refs to a 1 MiB
# int in one tuple, that tuple 16 times in a set: 16 * (1 + 16 * (1 + 2**17)) > 20M
HASH_BOMBS["big-int-leaves"] = (
    b"\x80\x04" + BIG_INT + b"q\x00(" + b"h\x00" * 16 + b"tq\x01\x8f(" + b"h\x01" * 16 + b"\x90."
)


@pytest.mark.parametrize("scan", SCANNERS)
@pytest.mark.parametrize("name", list(HASH_BOMBS))
def test_hash_bombs_are_refused_by_the_scan(scan, name):
    data = HASH_BOMBS[name]
    start = time.perf_counter()
    with pytest.raises(LimitExceededError) as info:
        scan(data, DEFAULT_LIMITS)
    assert time.perf_counter() - start < 1.0
    exc = info.value
    assert exc.limit == "max_items" and exc.allowed == DEFAULT_LIMITS.max_items
    assert exc.actual > exc.allowed
    assert "hash" in str(exc)
    same(data)
    same(data, Limits(max_items=2**70))  # no refusal: the C weights saturate like Python's


@pytest.mark.parametrize("name", list(HASH_BOMBS))
def test_hash_bombs_are_refused_end_to_end(name):
    for data in (HASH_BOMBS[name], gzip.compress(HASH_BOMBS[name], 1)):
        start = time.perf_counter()
        with pytest.raises(LimitExceededError) as info:
            safeload.loads(data)
        assert info.value.limit == "max_items", str(info.value)
        assert time.perf_counter() - start < 2.0


def test_the_bomb_weight_is_the_expanded_size():
    data = b"\x80\x04\x8f(" + bomb_ops(4) + b"\x90."  # t4 expands to 1 + 16 + ... + 16**4 + 16**4
    want = sum(16**i for i in range(5)) + 16**4
    assert same(data).hash_visits == want
    assert isinstance(same(data, Limits(max_items=want)), StreamInfo)  # inclusive
    err = same(data, Limits(max_items=want - 1))
    assert err[0] == "LimitExceededError" and err[2:] == ("max_items", want, want - 1)
    assert "ADDITEMS at offset" in err[1]


@pytest.mark.parametrize("scan", SCANNERS)
def test_hash_visits_of_small_streams(scan):
    def visits(obj, proto=4):
        return scan(pickle.dumps(obj, protocol=proto), DEFAULT_LIMITS).hash_visits

    assert visits({"a": 1, "b": 2}) == 2
    assert visits({(1, 2): 3}) == 3
    assert visits({(1, (2, 3)): 0}) == 5
    assert visits(frozenset({(1, 2), "x"})) == 4
    assert visits({1, 2, 3}) == 3
    assert visits([(1, 2), (3, 4)]) == 0  # lists hash nothing
    assert visits({2**100: 1}) == 1 + 13 // 8  # LONG1 of 13 bytes
    shared = (1, 2, 3)
    assert visits({(shared, shared): 1}) == 1 + 2 * 4  # a shared tuple counts each time
    for proto in range(6):
        # protocols < 4 pickle a set as set([...]) (REDUCE): its items are hashed later
        want = 5 + 1 + (2 if proto >= 4 else 0)
        assert visits({(1, (2, 3)): 0, "k": {(4,)}}, proto) == want, proto


# values of each hash class (opscan._H_*), for the hash-flooding charge
_CLASS_TOKENS = [
    b"\x8a\x09\x07\x00\x00\x00\x00\x00\x00\x20\x00",  # 2**69 + 7: collidable
    b"\x8a\x08\xff\xff\xff\xff\xff\xff\xff\x7f",  # 2**63 - 1: collidable (8 bytes)
    b"\x8a\x05\x01\x02\x03\x04\x05",  # wide
    b"G\x3f\xf8\x00\x00\x00\x00\x00\x00",  # 1.5: wide
    b"F2.5\n",  # wide
    b"I1234567890123456789\n",  # collidable text
    b"I12345\n",  # narrow
    b"\x88",  # narrow
    b"\x8c\x01x",  # opaque
]


@pytest.mark.parametrize("scan", SCANNERS)
def test_hash_classes_and_the_collision_charge(scan):
    """Collidable values hashed or placed in a list or tuple: the n-th is charged n - 1."""

    def info(obj, proto=4):
        got = scan(pickle.dumps(obj, protocol=proto), DEFAULT_LIMITS)
        return got.collidable, got.hash_visits

    big = 2**100  # LONG1 of 13 bytes: weight 2
    assert info({big: 1}) == (1, 2)
    assert info({big: 1, big + 1: 2}) == (2, 2 + 2 + 1)
    assert info([big, big + 1]) == (2, 1)  # a list may reach set(...) in the builder
    assert info({big}, 2) == (1, 0)  # protocol 2: set([...]), charged at APPENDS
    assert info({(big, "x"): 0}) == (2, 1 + 2 + 1 + 1)  # entering the tuple, then its hash
    assert info({(1.5, 2): 0}) == (1, 3)  # a wide item next to another number
    assert info({(2**40, None): 0}) == (1, 3)
    assert info({((1.5,), 2): 0}) == (1, 4)
    assert info({frozenset({1.5, 2.5})}) == (1, 3)
    for obj in ({(1, 2): 0}, {(2**40, "a"): 0}, {((1.5,), "x"): 0}, {2.0**70: 0}, {10**8: 0}):
        assert info(obj)[0] == 0, obj  # narrow, opaque beside a wide one, floats alone
    assert info({2**70: 0}, 0) == (1, 2)  # text LONG of 18+ characters
    assert info({10**8: 0}, 0) == (0, 1)
    # text ints are parsed with base 0: 18 characters reach 2**61 - 1 in hex
    assert same(b"(I0x1fffffffffffffff\nI0x1fffffffffffffff\nt.").collidable == 2
    assert same(b"(I0xfffffffffffffff\nI0xfffffffffffffff\nt.").collidable == 0
    data = b"\x80\x04(" + _CLASS_TOKENS[0] * 3 + b"\x91."
    assert same(data).hash_visits == 3 * 2 + 0 + 1 + 2
    err = same(data, Limits(max_items=8))
    assert err[0] == "LimitExceededError" and err[2:] == ("max_items", 9, 8)
    assert "hash collisions: FROZENSET at offset 36" in err[1]
    assert same(data, Limits(max_items=5))[1].startswith("limit max_items exceeded (hashing")


@pytest.mark.parametrize("scan", SCANNERS)
def test_stack_errors_are_recorded_not_raised(scan):
    """Opcodes the unpickler can not execute stop the model; the scan itself still passes (the
    unpickler reports the corruption, the scanners still name the globals it meets first)."""
    cases = {  # stream: (stack_error, the C unpickler loads it)
        b"0N.": (0, False),  # POP on an empty stack
        b"N(t0.": (-1, True),  # POP after a TUPLE
        b"N(0.": (-1, True),  # POP drops the empty frame's mark
        b"t.": (0, False),  # no MARK
        b"N(N(t\x86\x86.": (6, False),  # TUPLE2 reaching below the mark
        b"N(N\x86.": (3, False),
        b"]N(Na.": (4, False),  # APPEND below the mark
        b"N(}N\x85Ns.": (-1, True),
        b"}(NNN\x85u.": (6, False),  # odd number of items
        b"(Nd.": (2, False),
        b"h\x00.": (0, False),  # a memo entry never stored
        b"Nq\x01h\x00.": (3, False),
        b"Nq\x01h\x01g1\n.": (-1, True),
        b"Nq\x01g 0\n.": (-1, False),  # an odd spelling fetches *some* entry (or fails)
        b"(q\x00.": (1, False),  # BINPUT on an empty frame
        b"(.": (1, False),  # STOP on an empty frame
        b"N(N2\x86\x86.": (5, False),
        b"(N(N\x90.": (-1, False),  # ADDITEMS on None: not a stack error
        b"(Nl(o.": (4, False),  # OBJ needs a class
        b"(o.": (1, False),
        b"N\x94\x94h\x01.": (-1, True),  # MEMOIZE numbers the entries 0, 1
        b"Nq\x01\x94\x94h\x02.": (5, False),  # ... after a 1: 1 (again), then 1
        b"Nq\x01\x94h\x02.": (4, False),
    }
    for data, (err, loads) in cases.items():
        info = scan(data, DEFAULT_LIMITS)
        assert info.stack_error == err, data
        assert same(data) == info
        assert _c_loads(data) is loads, data


def test_no_hash_check_past_a_stack_error():
    """After the unpickler's failure point nothing runs, so a bomb there costs nothing; the
    refusal is the unpickler's (bounded: it stops at the bad opcode)."""
    data = b"\x80\x040" + HASH_BOMBS["set-additems"][2:]
    info = same(data)
    assert info.stack_error == 2 and info.hash_visits == 0
    start = time.perf_counter()
    with pytest.raises(FormatError, match="underflow"):
        safeload.loads(data)
    assert time.perf_counter() - start < 1.0


def test_every_legacy_pickle_scans_cleanly():
    files = sorted(corpus_or_skip(CORPUS / "legacy").glob("*/*.pkl"))
    assert len(files) > 100
    for path in files:
        info = scan_opcodes(path.read_bytes(), DEFAULT_LIMITS)
        assert info.stack_error == -1 and info.hash_visits < 10_000, path


# Random streams of whole opcodes, checked against the C unpickler itself.

_MODEL_TOKENS = [
    b"N", b"K\x01", b"K\x07", b")", b"]", b"}", b"\x8f", b"\x8c\x01a", b"C\x01b", b"\x88",
    b"(", b"(", b"(", b"0", b"1", b"2", b"t", b"\x85", b"\x86", b"\x87", b"l", b"d", b"\x91",
    b"a", b"e", b"s", b"u", b"\x90", b"\x94", b"cm\nAny\n", b"R", b"b", b"\x81", b"\x92",
    b"\x8c\x01m\x8c\x01n\x93", b"\x93", b"im\nAny\n", b"o", b"Q", b"Pid\n", b"I12\n",
    b"\x8a\x02\x01\x01",
]  # fmt: skip


def _memo_token(r, nops: int, odd_gets: bool) -> bytes:
    i = r.randrange(0, 6)
    choices = [
        b"q" + bytes([i]),
        b"h" + bytes([i]),
        b"j" + u32(i),
        b"r" + u32(min(i, nops)),
        b"p%d\n" % min(i, nops),
        b"g%d\n" % i,
        b"g0%d\n" % i,
    ]
    if odd_gets:
        choices += [b"g %d\n" % i, b"g+%d\n" % i]
    return r.choice(choices)


class _Any:
    """Stands for every global: callable, instantiable, settable, appendable."""

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return _Any()

    def __setstate__(self, state):
        pass

    def append(self, item):
        pass

    def extend(self, items):
        pass

    def add(self, item):
        pass

    def __setitem__(self, key, value):
        pass


class _AnyUnpickler(pickle.Unpickler):  # the C unpickler
    def find_class(self, module, name):
        return _Any

    def persistent_load(self, pid):
        return _Any()


class _CountingUnpickler(pickle._Unpickler):
    """The Python unpickler, counting the objects its hashes visit (tuples expanded)."""

    dispatch = dict(pickle._Unpickler.dispatch)
    visits = 0
    find_class = _AnyUnpickler.find_class
    persistent_load = _AnyUnpickler.persistent_load

    def _count(self, items):
        def weight(x):
            return 1 + sum(weight(y) for y in x) if type(x) is tuple else 1

        self.visits += sum(weight(x) for x in items)

    def _wrap(code, keys):  # noqa: N805
        base = pickle._Unpickler.dispatch[code]

        def load(self):
            self._count(keys(self.stack))
            base(self)

        return load

    for _code, _keys in (
        (pickle.SETITEM[0], lambda st: st[-2:-1]),
        (pickle.SETITEMS[0], lambda st: st[0::2]),
        (pickle.DICT[0], lambda st: st[0::2]),
        (pickle.ADDITEMS[0], lambda st: st),
        (pickle.FROZENSET[0], lambda st: st),
    ):
        dispatch[_code] = _wrap(_code, _keys)
    del _wrap, _code, _keys


def _c_loads(data: bytes) -> bool:
    try:
        _AnyUnpickler(io.BytesIO(data)).load()
    except Exception:  # noqa: BLE001 - any failure of the real unpickler
        return False
    return True


def _random_streams(seed: int, count: int, odd_gets: bool = True):
    """Opcode sequences that the C unpickler mostly accepts (a token is kept when the prefix
    still loads, or 1 time in 50 regardless), so the model is exercised deep into streams."""
    r = __import__("random").Random(seed)
    for _ in range(count):
        toks, prefix = [], b""
        for k in range(r.randrange(1, 50)):
            for _attempt in range(30):
                t = _memo_token(r, k, odd_gets) if r.random() < 0.3 else r.choice(_MODEL_TOKENS)
                if _c_loads(prefix + t + b"N.") or r.random() < 0.02:
                    break
            toks.append(t)
            prefix += t
        yield toks


def _failing_prefix(toks: list[bytes], info: StreamInfo) -> bytes:
    """The stream up to and including the opcode at ``info.stack_error``, then ``N.``."""
    off = 0
    for t in toks:
        off += len(t)
        if off > info.stack_error:
            return b"".join(toks)[:off] + b"N."
    return b"".join(toks) + b"."  # STOP itself


def test_stack_model_against_the_unpicklers():
    """On random opcode sequences: where the model stops, the C unpickler fails at that opcode
    or before (so nothing after it can hash); where it runs to the end and both unpicklers
    load the stream, its hash total is exactly what the Python unpickler's hashes visit."""
    dead = exact = 0
    for seed in range(3):
        for toks in _random_streams(seed, 300, odd_gets=seed == 2):
            data = b"".join(toks) + b"."
            try:
                info = same(data, Limits(max_items=2**70))
            except AssertionError:
                raise
            if not isinstance(info, StreamInfo):
                continue
            if info.stack_error >= 0:
                dead += 1
                assert not _c_loads(_failing_prefix(toks, info)), data
            elif _c_loads(data):
                counting = _CountingUnpickler(io.BytesIO(data))
                try:
                    counting.load()
                except Exception:  # noqa: BLE001 - e.g. ADDITEMS of nothing on a non-set
                    continue  # (the C unpickler skips it, the Python one looks up .add)
                if seed == 2:  # odd GET spellings: the heaviest memo entry, an upper bound
                    assert info.hash_visits >= counting.visits, data
                else:
                    assert info.hash_visits == counting.visits, data
                    exact += 1
    assert dead > 100 and exact > 200


_OTHER_PYTHONS = sorted(
    str(p)
    for p in Path.home().glob(".pyenv/versions/3.1[0-9]*/bin/python3")
    if p.resolve() != Path(os.path.realpath(__import__("sys").executable))
)
_CHILD = """
import io, pickle, sys
class Any:
    def __new__(cls, *a, **k): return object.__new__(cls)
    def __init__(self, *a, **k): pass
    def __call__(self, *a, **k): return Any()
    def __setstate__(self, s): pass
    def append(self, x): pass
    def extend(self, x): pass
    def add(self, x): pass
    def __setitem__(self, k, v): pass
class U(pickle.Unpickler):
    def find_class(self, m, n): return Any
    def persistent_load(self, pid): return Any()
def loads(b):
    try:
        U(io.BytesIO(b)).load()
        return True
    except Exception:
        return False
sys.stdout.buffer.write(pickle.dumps([loads(b) for b in pickle.load(sys.stdin.buffer)], 2))
"""


@pytest.mark.skipif(not _OTHER_PYTHONS, reason="no other CPython installed (pyenv)")
def test_stack_model_is_sound_for_other_cpythons():
    """The underflow rules are those of every supported CPython's ``_pickle.c``: where the model
    stops, each interpreter's C unpickler fails too."""
    probes = []
    for toks in _random_streams(7, 400):
        data = b"".join(toks) + b"."
        info = same(data, Limits(max_items=2**70))
        if isinstance(info, StreamInfo) and info.stack_error >= 0:
            probes.append(_failing_prefix(toks, info))
    assert len(probes) > 50
    for python in _OTHER_PYTHONS:
        out = subprocess.run(
            [python, "-c", _CHILD], input=pickle.dumps(probes, 2), capture_output=True, check=True
        )
        loaded = pickle.loads(out.stdout)
        assert not any(loaded), (
            python,
            [p for p, ok in zip(probes, loaded, strict=True) if ok][:3],
        )


@st.composite
def op_streams(draw):
    """Whole opcodes in any order (mostly inconsistent stacks): both scanners must agree."""
    toks = draw(
        st.lists(
            st.one_of(
                st.sampled_from(_MODEL_TOKENS),
                st.builds(
                    lambda i, k: (
                        [b"q", b"h", b"g", b"p"][k] + (bytes([i]) if k < 2 else b"%d\n" % i)
                    ),
                    st.integers(0, 6),
                    st.integers(0, 3),
                ),
                st.sampled_from([b"\x8f(" + bomb_ops(2, 3), b"(" + bomb_ops(3, 4), b"\x80\x04"]),
                st.sampled_from(_CLASS_TOKENS),
            ),
            max_size=40,
        )
    )
    return b"".join(toks) + draw(st.sampled_from([b".", b"", b".N"]))


@needs_c
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=op_streams(),
    limits=st.sampled_from([DEFAULT_LIMITS, Limits(max_items=0), Limits(max_items=7),
                            Limits(max_items=60), Limits(max_opcodes=10)]),
    allow_trailing=st.booleans(),
)  # fmt: skip
def test_op_streams_agree(data, limits, allow_trailing):
    same(data, limits, 0, allow_trailing)
