"""Tampered, truncated and hostile safe-format files.

The only allowed outcomes of loading any of them are a correct object or a
:class:`safeload.errors.SafeloadError` subclass; each test names the error (and where it matters
the rule) it expects.  Archives are rebuilt with ``tests/_safezip.py`` so that only the intended
rule is broken (the manifest's hashes are recomputed unless the test is about them).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import os
import sys
import time

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.lib import format as npformat
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

import safeload
from safeload.errors import (
    ForbiddenOperationError,
    FormatError,
    IntegrityError,
    LimitExceededError,
    SafeloadError,
    UntrustedTypesError,
)
from safeload.format.npyio import header_for

from . import _safezip as sz

CREATED = dt.datetime(2024, 5, 6, 7, 8, 9)
BIG = 20000  # float64 elements: 160 KB, above the pooling threshold, so one member per array


def load(data: bytes, **kwargs):
    """``safeload.load``; anything but a SafeloadError escaping is a failure of the test."""
    try:
        return safeload.load(data, **kwargs)
    except SafeloadError:
        raise
    except BaseException as exc:  # pragma: no cover - the bug the tests look for
        pytest.fail(f"load raised {type(exc).__name__} (not a SafeloadError): {exc}")


@pytest.fixture(scope="module")
def empty() -> bytes:
    """A valid file holding ``None``: no array member."""
    return safeload.dumps(None, created=CREATED)


@pytest.fixture(scope="module")
def one_array() -> bytes:
    """A valid file whose root is one large array stored as ``arrays/000000.npy``."""
    data = safeload.dumps(np.arange(BIG, dtype=np.float64), created=CREATED)
    assert sz.read_graph(data)["root"] == {"$": "ndarray", "i": 0}
    return data


@pytest.fixture(scope="module")
def model_file() -> bytes:
    rng = np.random.RandomState(0)
    X = rng.rand(50, 3)
    y = (X[:, 0] > 0.5).astype(int)
    value = {
        "tree": DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, y),
        "lr": LogisticRegression().fit(X, y),
        "sparse": sp.csr_matrix(np.eye(4)),
        "big": rng.rand(BIG),
        "list": [1, "a", 2.5],
    }
    return safeload.dumps(value, created=CREATED)


def graph_file(empty: bytes, root, globals_=(), dtypes=(), arrays=(), members=None) -> bytes:
    """A file with the given graph.json (and extra array members), hashes recomputed."""
    doc = {"globals": list(globals_), "dtypes": list(dtypes), "arrays": list(arrays), "root": root}
    table = {**(members or {}), "graph.json": sz.json_bytes(doc)}
    table["manifest.json"] = sz.read_members(empty)["manifest.json"]
    return sz.build(sz.rehash(table))


# ---------------------------------------------------------------------------- zip structure


@pytest.mark.parametrize(
    "name",
    ["../x", "/abs", "arrays/../graph.json", "arrays\\000001.npy", "C:/x", "x.pkl", "a.npz", ""],
)
def test_zip_slip_and_foreign_member_names_are_refused(one_array, name):
    members = list(sz.read_members(one_array).items())
    hostile = sz.build([members[0], (name, b"payload"), *members[1:]])
    with pytest.raises(FormatError, match="Z5"):
        load(hostile)


@pytest.mark.parametrize("which", [0, 1, 2])
def test_duplicate_members_are_refused(one_array, which):
    members = list(sz.read_members(one_array).items())
    hostile = sz.build([*members[: which + 1], members[which], *members[which + 1 :]])
    with pytest.raises(FormatError, match="Z5.*duplicate"):
        load(hostile)


def test_raw_rebuild_is_exact(one_array):
    assert sz.raw_zip(sz.raw_entries(one_array)) == one_array


def _modified(data: bytes, index: int, **fields) -> bytes:
    entries = sz.raw_entries(data)
    entries[index].update(fields)
    return sz.raw_zip(entries)


@pytest.mark.parametrize(
    ("fields", "rule"),
    [
        ({"flags": 0x808}, "Z4"),  # data descriptor
        ({"flags": 0x801}, "Z4"),  # encrypted
        ({"flags": 0x000}, "Z4"),  # name not flagged UTF-8
        ({"method": 12}, "Z4"),  # bzip2
        ({"time": 1}, "Z4"),
        ({"date": 0x5821}, "Z4"),
        ({"need": 45}, "Z4"),  # ZIP64 version needed
        ({"comment": b"hi"}, "Z4"),
        ({"extra": b"\x01\x00\x10\x00" + b"\0" * 16}, "Z6"),  # ZIP64 extra field
        ({"extra": b"UT\x05\x00\x01\0\0\0\0"}, "Z6"),  # extended timestamp
        ({"local": {"crc": 0}}, "Z8"),
        ({"local": {"usize": 1}}, "Z8"),
        ({"local": {"name": b"graph.jsoN"}}, "Z8"),
        ({"local": {"method": 8}}, "Z8"),
        ({"local": {"extra": b""}}, "Z8"),
        ({"after": b"\0" * 64}, "Z7"),  # data between members
        ({"usize": 0xFFFFFFFF, "csize": 0xFFFFFFFF}, "Z"),  # ZIP64 marker sizes
    ],
    ids=lambda v: str(v)[:40],
)
def test_zip_rule_violations_are_refused_naming_the_rule(one_array, fields, rule):
    hostile = _modified(one_array, 1, **fields)  # graph.json, after an array member
    with pytest.raises(FormatError, match=f"rule {rule}"):
        load(hostile)


def test_stored_member_with_disagreeing_sizes_is_refused(empty):
    with pytest.raises(FormatError, match="Z4|Z7|Z8"):
        load(_modified(empty, 0, usize=5))


def test_data_between_last_member_and_central_directory(empty):
    with pytest.raises(FormatError, match="Z7"):
        load(_modified(empty, 1, after=b"hidden"))


@pytest.mark.parametrize(
    "prefix",
    [b"#!/bin/sh\nexec python -c 'x'\n", b"\x80\x04N.", b"GIF89a", b"PK\x03\x04" + b"\0" * 60],
    ids=["shell", "pickle", "gif", "fake-local-header"],
)
def test_prepended_bytes_polyglot_is_refused(one_array, prefix):
    with pytest.raises(FormatError):
        load(prefix + one_array)


def test_prepended_bytes_with_fixed_offsets_are_refused(one_array):
    """Even with every offset shifted to stay consistent, the archive must start at 0."""
    with pytest.raises(FormatError):
        load(sz.raw_zip(sz.raw_entries(one_array), prefix=b"PK\x03\x04junk"))


@pytest.mark.parametrize(
    "suffix", [b"\0", b"x" * 100, b"PK\x05\x06" + b"\0" * 18], ids=["byte", "text", "eocd"]
)
def test_trailing_data_after_end_record_is_refused(one_array, suffix):
    with pytest.raises(FormatError, match="Z2|Z3"):
        load(one_array + suffix)


def test_archive_comment_is_refused(one_array):
    with pytest.raises(FormatError, match="Z2"):
        load(sz.raw_zip(sz.raw_entries(one_array), comment=b"hello"))


def test_every_truncation_is_refused(model_file):
    size = len(model_file)
    cuts = sorted({*range(0, 200), *range(0, size, max(1, size // 150)), size - 1, size - 22})
    for n in cuts:
        with pytest.raises(FormatError):
            load(model_file[:n])


def test_too_many_members_is_a_limit(model_file):
    with pytest.raises(LimitExceededError) as info:
        load(model_file, limits=safeload.Limits(max_members=2))
    assert info.value.limit == "max_members"


def test_member_order_is_enforced(one_array):
    members = sz.read_members(one_array)
    reordered = {k: members[k] for k in ("graph.json", "arrays/000000.npy", "manifest.json")}
    with pytest.raises(FormatError, match="M1"):
        load(sz.build(reordered))
    no_manifest = {k: v for k, v in members.items() if k != "manifest.json"}
    with pytest.raises(FormatError, match="M1"):
        load(sz.build(no_manifest))


def test_array_member_not_in_the_table_is_refused(one_array):
    members = sz.read_members(one_array)
    extra = {
        "arrays/000000.npy": members["arrays/000000.npy"],
        "arrays/000001.npy": members["arrays/000000.npy"],
        "graph.json": members["graph.json"],
        "manifest.json": members["manifest.json"],
    }
    with pytest.raises(FormatError, match="M1|M4"):
        load(sz.build(sz.rehash(extra)))


# ---------------------------------------------------------------------------- bombs


def _manifest_size(entries: list[dict], name: str, size: int) -> None:
    """Record ``size`` for ``name`` in the manifest entry of ``entries`` (as a forger would, so
    the file meets the rule M4 size check and reaches the rule under test)."""
    manifest = json.loads(entries[-1]["payload"])
    if size > 1 << 20:  # in the form rule M4 asks for at that size (the digests are not read)
        blocks = ["0" * 64] * -(-size // (1 << 20))
        manifest["members"][name] = {"size": size, "sha256_blocks": blocks}
    else:
        manifest["members"][name]["size"] = size
    entries[-1] = sz.raw_member("manifest.json", sz.json_bytes(manifest))


def test_deflate_bomb_declaring_a_small_size_is_refused_fast(empty):
    entries = sz.raw_entries(empty)
    bomb = sz.raw_member("graph.json", b"[" + b"0," * 5_000_000 + b"0]", method=sz.DEFLATED)
    bomb["usize"] = 100
    entries[0] = bomb
    _manifest_size(entries, "graph.json", 100)
    start = time.perf_counter()
    with pytest.raises(FormatError, match="Z9"):
        load(sz.raw_zip(entries))
    assert time.perf_counter() - start < 1.0


def test_deflate_bomb_under_an_array_header(one_array):
    entries = sz.raw_entries(one_array)
    raw = sz.read_members(one_array)["arrays/000000.npy"]
    bomb = sz.raw_member("arrays/000000.npy", raw + b"\0" * 20_000_000, method=sz.DEFLATED)
    bomb["usize"] = len(raw)
    entries[0] = bomb
    with pytest.raises(FormatError, match="Z9"):
        load(sz.raw_zip(entries))


def test_huge_declared_json_size_is_a_limit_before_inflating(empty):
    entries = sz.raw_entries(empty)
    member = sz.raw_member("graph.json", sz.read_members(empty)["graph.json"], method=sz.DEFLATED)
    member["usize"] = 0xFFFFFF00
    entries[0] = member
    _manifest_size(entries, "graph.json", 0xFFFFFF00)
    with pytest.raises(LimitExceededError) as info:
        load(sz.raw_zip(entries))
    assert info.value.limit == "max_json_bytes" and info.value.actual == 0xFFFFFF00


def test_json_larger_than_the_limit(model_file):
    with pytest.raises(LimitExceededError) as info:
        load(model_file, limits=safeload.Limits(max_json_bytes=100))
    assert info.value.limit == "max_json_bytes"


def test_stored_member_declaring_more_bytes_than_the_file(empty):
    with pytest.raises(FormatError, match="Z7"):
        load(_modified(empty, 0, usize=10**9, csize=10**9))


# ---------------------------------------------------------------------------- arrays


def _array_spec_file(one_array: bytes, spec: dict, dtype_descr=None, member: bytes | None = None):
    def graph(doc):
        doc["arrays"][0] = spec
        if dtype_descr is not None:
            doc["dtypes"][0] = dtype_descr

    def members(table):
        if member is not None:
            table["arrays/000000.npy"] = member

    return sz.edit(one_array, graph=graph, members=members)


@pytest.mark.parametrize("shape", [[2**60], [2**30, 2**30], [2**20] * 4, [2**62, 2**62, 3]])
def test_huge_declared_shape_is_a_limit_fast_without_allocating(one_array, shape):
    hostile = _array_spec_file(one_array, {"dtype": 0, "shape": shape, "order": "C"})
    start = time.perf_counter()
    with pytest.raises(LimitExceededError) as info:
        load(hostile)
    assert time.perf_counter() - start < 0.5
    assert info.value.limit in ("max_array_bytes", "max_total_array_bytes")
    assert info.value.actual >= 2**60


def test_total_array_bytes_limit(model_file):
    with pytest.raises(LimitExceededError) as info:
        load(model_file, limits=safeload.Limits(max_total_array_bytes=1000))
    assert info.value.limit in ("max_total_array_bytes", "max_array_bytes")


@pytest.mark.parametrize(
    "shape", [[0, 2**200], [0, 2**63], [2**70, 0]], ids=["0x2**200", "0x2**63", "2**70x0"]
)
def test_zero_size_array_with_huge_dimension_is_refused_cleanly(one_array, shape):
    header = header_for(repr("<f8"), False, tuple(shape))
    hostile = _array_spec_file(one_array, {"dtype": 0, "shape": shape, "order": "C"}, member=header)
    with pytest.raises(SafeloadError):
        load(hostile)


@pytest.mark.parametrize(
    "descr",
    [
        pytest.param(
            "<U0",
        ),
        pytest.param(
            "|S0",
        ),
    ],
)
def test_zero_itemsize_dtype_with_huge_shape_is_refused_cleanly(one_array, descr):
    dtype = np.dtype(descr)
    header = header_for(repr(npformat.dtype_to_descr(dtype)), False, (2**62,))
    hostile = _array_spec_file(
        one_array, {"dtype": 0, "shape": [2**62], "order": "C"}, descr, header
    )
    with pytest.raises(SafeloadError):
        load(hostile)


@pytest.mark.parametrize(
    "descr", ["|O", [["a", "<i4"], ["b", "|O"]], [["a", [["b", "|O"]]]]], ids=str
)
def test_object_dtype_in_the_dtypes_table_is_refused(one_array, descr):
    hostile = _array_spec_file(one_array, {"dtype": 0, "shape": [BIG], "order": "C"}, descr)
    with pytest.raises(FormatError, match="object"):
        load(hostile)


def test_npy_member_holding_a_pickled_object_array_is_refused(one_array):
    buf = io.BytesIO()
    np.save(buf, np.array([os.system, "x"], dtype=object), allow_pickle=True)
    hostile = sz.edit(one_array, members=lambda t: t.update({"arrays/000000.npy": buf.getvalue()}))
    with pytest.raises(FormatError, match="A2|A3"):
        load(hostile)


def test_npy_header_claiming_object_dtype_is_refused(one_array):
    raw = sz.read_members(one_array)["arrays/000000.npy"]
    header = header_for(repr("|O"), False, (BIG,))
    hostile = sz.edit(
        one_array,
        members=lambda t: t.update({"arrays/000000.npy": header + raw[len(header) :]}),
    )
    with pytest.raises(FormatError, match="A2"):
        load(hostile)


@pytest.mark.parametrize(
    "edit",
    [
        lambda h: h.replace(b"'fortran_order': False", b"'fortran_order': True "),
        lambda h: h.replace(b"'<f8'", b"'>f8'"),
        lambda h: h.replace(b"(20000,)", b"(10000, 2)"),
        lambda h: h.replace(b"\x01\x00", b"\x02\x00", 1),
    ],
    ids=["fortran", "byteorder", "shape", "version"],
)
def test_npy_header_must_be_the_canonical_one(one_array, edit):
    raw = sz.read_members(one_array)["arrays/000000.npy"]
    header_len = len(raw) - BIG * 8
    new_header = edit(raw[:header_len])
    assert new_header != raw[:header_len]
    hostile = sz.edit(
        one_array,
        members=lambda t: t.update({"arrays/000000.npy": new_header + raw[header_len:]}),
    )
    with pytest.raises(FormatError, match="A2|A3"):
        load(hostile)


def test_array_member_size_must_match_its_spec(one_array):
    raw = sz.read_members(one_array)["arrays/000000.npy"]
    hostile = sz.edit(one_array, members=lambda t: t.update({"arrays/000000.npy": raw[:-8]}))
    with pytest.raises(FormatError, match="A3"):
        load(hostile)


@pytest.mark.parametrize(
    "spec",
    [
        {"dtype": 5, "shape": [BIG], "order": "C"},
        {"dtype": 0, "shape": [-1], "order": "C"},
        {"dtype": 0, "shape": [BIG], "order": "K"},
        {"dtype": 0, "shape": [BIG]},
        {"dtype": 0, "shape": [BIG], "order": "C", "x": 1},
        {"dtype": True, "shape": [BIG], "order": "C"},
        {"dtype": 0, "shape": [1] * 65, "order": "C"},
        {"dtype": 0, "shape": "20000", "order": "C"},
        [0, [BIG], "C"],
    ],
    ids=str,
)
def test_malformed_array_specs_are_refused(one_array, spec):
    with pytest.raises(FormatError, match="A1"):
        load(_array_spec_file(one_array, spec))


@pytest.mark.parametrize(
    "descr",
    ["x" * 100, "<f3", [["a"]], [[1, "<f8"]], [["a", "<f8", [-1]]], {"a": 1}, 5],
    ids=str,
)
def test_malformed_dtype_descriptions_are_refused(one_array, descr):
    with pytest.raises(FormatError, match="G7|A1"):
        load(_array_spec_file(one_array, {"dtype": 0, "shape": [BIG], "order": "C"}, descr))


def test_deeply_nested_dtype_is_refused(one_array):
    descr: object = "<f8"
    for _ in range(200):
        descr = [["a", descr]]
    with pytest.raises(SafeloadError):
        load(_array_spec_file(one_array, {"dtype": 0, "shape": [1], "order": "C"}, descr))


def test_ndarray_member_used_twice_is_refused(one_array):
    hostile = sz.edit(
        one_array,
        graph=lambda d: d.update(root=[{"$": "ndarray", "i": 0}, {"$": "ndarray", "i": 0}]),
    )
    with pytest.raises(FormatError, match="G8"):
        load(hostile)


@pytest.mark.parametrize(
    "tag",
    [
        {"$": "ndarray", "i": 1},
        {"$": "ndarray", "i": -1},
        {"$": "ndarray", "i": "0"},
        {"$": "ndarray"},
        {"$": "ndarray", "i": 0, "at": 19999, "shape": [2]},
        {"$": "ndarray", "i": 0, "at": -1, "shape": [2]},
        {"$": "ndarray", "i": 0, "at": 0, "shape": [2], "order": "X"},
    ],
    ids=str,
)
def test_bad_ndarray_tags_are_refused(one_array, tag):
    with pytest.raises(FormatError, match="G8|G3"):
        load(sz.edit(one_array, graph=lambda d: d.update(root=tag)))


def test_overlapping_pooled_slices_do_not_alias(one_array):
    root = [
        {"$": "ndarray", "i": 0, "at": 0, "shape": [4]},
        {"$": "ndarray", "i": 0, "at": 2, "shape": [4]},
    ]
    try:
        a, b = load(sz.edit(one_array, graph=lambda d: d.update(root=root)))
    except FormatError:
        return
    assert not np.shares_memory(a, b)
    a[:] = -1
    assert list(b) == [2.0, 3.0, 4.0, 5.0]


# ---------------------------------------------------------------------------- JSON


def test_deep_json_is_refused_without_recursion_error(empty):
    for n in (100_000, 5_000, 1_000, 300):
        hostile = graph_file(empty, None)
        hostile = sz.edit(
            empty,
            members=lambda t, n=n: t.update(
                {
                    "graph.json": (
                        '{"globals":[],"dtypes":[],"arrays":[],"root":' + "[" * n + "]" * n + "}"
                    ).encode()
                }
            ),
        )
        with pytest.raises((LimitExceededError, FormatError)):
            load(hostile)


def test_deep_tagged_values_are_refused(empty):
    for n in (250, 2000):
        root: object = 1
        for _ in range(n):
            root = {"$": "tuple", "v": [root]}
        text = json.dumps(root) if n < 900 else None
        if text is None:
            text = '{"$":"tuple","v":[' * n + "1" + "]}" * n
        hostile = sz.edit(
            empty,
            members=lambda t, text=text: t.update(
                {
                    "graph.json": (
                        '{"globals":[],"dtypes":[],"arrays":[],"root":' + text + "}"
                    ).encode()
                }
            ),
        )
        with pytest.raises((LimitExceededError, FormatError)):
            load(hostile)


def test_nesting_below_the_limit_loads(empty):
    n = 150
    out = load(graph_file(empty, json.loads("[" * n + "]" * n)))
    for _ in range(n - 1):
        assert len(out) == 1
        out = out[0]
    assert out == []


def test_deep_json_limit_error_carries_the_limit(empty):
    hostile = sz.edit(
        empty,
        members=lambda t: t.update(
            {"graph.json": b'{"globals":[],"dtypes":[],"arrays":[],"root":' + b"[" * 100_000}
        ),
    )
    with pytest.raises(LimitExceededError) as info:
        load(hostile)
    assert info.value.allowed == safeload.Limits().max_depth
    assert info.value.actual > info.value.allowed


@pytest.mark.parametrize(
    "number", ["1" * 5000, "1" * 100_000, "-" + "9" * 4400], ids=["5k", "100k", "neg"]
)
def test_long_json_numbers_are_refused(empty, number):
    hostile = sz.edit(
        empty,
        members=lambda t: t.update(
            {
                "graph.json": (
                    '{"globals":[],"dtypes":[],"arrays":[],"root":' + number + "}"
                ).encode()
            }
        ),
    )
    start = time.perf_counter()
    with pytest.raises((FormatError, LimitExceededError)):
        load(hostile)
    assert time.perf_counter() - start < 1.0


def test_huge_tagged_int_is_a_limit(empty):
    hostile = graph_file(empty, {"$": "int", "v": "f" * 100_000})
    with pytest.raises(LimitExceededError) as info:
        load(hostile, limits=safeload.Limits(max_int_bytes=1000))
    assert info.value.limit == "max_int_bytes"


@pytest.mark.parametrize(
    "raw",
    [b"\xff\xfe", b"{'a': 1}", b'{"a": NaN}', b'{"a": Infinity}', b""],
    ids=["not-utf8", "python-literal", "nan", "infinity", "empty"],
)
def test_invalid_json_is_refused(empty, raw):
    hostile = sz.edit(empty, members=lambda t: t.update({"graph.json": raw}))
    with pytest.raises(FormatError, match="J1|J2"):
        load(hostile)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"globals":[],"dtypes":[],"arrays":[],"root":{"$":"dict","v":{"a":1,"a":2}}}',
        b'{"globals":[],"dtypes":[],"arrays":[],"root":null,"root":[1]}',
        b'{"globals":[],"dtypes":[],"arrays":[],"root":{"$":"tuple","$":"set","v":[1]}}',
    ],
    ids=["in-value", "top-level", "tag"],
)
def test_duplicate_json_keys_in_graph_load_as_python_json_does_and_verify_reports_them(empty, raw):
    """Rule J2: writers never repeat a key.  The loader parses graph.json once with Python's
    json (the last repeat wins, as every safeload tool sees it: no parser differential inside
    safeload); ``safeload.verify`` checks J2 strictly and fails the file."""
    import json

    hostile = sz.edit(empty, members=lambda t: t.update({"graph.json": raw}))
    doc = json.loads(raw)
    loaded = load(hostile)
    expected = {"in-value": {"a": 2}, "top-level": [1], "tag": {1}}
    assert loaded in expected.values()
    assert loaded == load(
        sz.edit(empty, members=lambda t: t.update({"graph.json": json.dumps(doc).encode()}))
    )
    report = safeload.verify(hostile)
    assert not report.ok


def test_duplicate_json_keys_in_manifest_are_refused(empty):
    man = sz.read_members(empty)["manifest.json"]
    hostile = sz.edit(
        empty,
        members=lambda t: t.update({"manifest.json": man[:-1] + b',"format_version":2}'}),
        recompute_hashes=False,
    )
    with pytest.raises(FormatError, match="J2"):
        load(hostile)


@pytest.mark.parametrize(
    "doc",
    [
        [],
        {"globals": [], "dtypes": [], "arrays": []},
        {"globals": [], "dtypes": [], "arrays": [], "root": None, "extra": 1},
        {"globals": {}, "dtypes": [], "arrays": [], "root": None},
        {"globals": [], "dtypes": {}, "arrays": [], "root": None},
        {"globals": [], "dtypes": [], "arrays": {}, "root": None},
        {"globals": [["os"]], "dtypes": [], "arrays": [], "root": None},
        {"globals": [["", "x"]], "dtypes": [], "arrays": [], "root": None},
        {"globals": [["a", 1]], "dtypes": [], "arrays": [], "root": None},
        {"globals": [["builtins", "dict"]] * 2, "dtypes": [], "arrays": [], "root": None},
    ],
    ids=str,
)
def test_malformed_graph_documents_are_refused(empty, doc):
    hostile = sz.edit(empty, members=lambda t: t.update({"graph.json": sz.json_bytes(doc)}))
    with pytest.raises(FormatError, match="G1|G2|A1|M1"):
        load(hostile)


@pytest.mark.parametrize(
    "root",
    [
        {"$": "pickle", "v": "gASVAAAAAAAAAE4u"},
        {"$": "eval", "v": "1"},
        {"a": 1},
        {"$": 1},
        {"$": None},
        {"$": "tuple", "v": [], "extra": 1},
        {"$": "int", "v": "ff", "base": 16},
        {"$": "ref", "id": 0, "x": 1},
        {"$": "obj", "g": 0, "code": "x"},
        {"$": "global", "g": 0, "setitems": [["x", 1]]},  # setitems on a global
        {"$": "global", "g": 0, "state": {"$": "dict", "v": {"x": 1}}},  # state on a global
        {"$": "global", "g": 0, "items": [1]},
        {"$": "dtype", "v": "<f8", "state": [3]},  # state on a dtype value
        {"$": "ndarray", "i": 0, "state": 1},
    ],
    ids=str,
)
def test_unknown_tags_and_keys_are_refused(empty, root):
    with pytest.raises(FormatError, match="G3"):
        load(graph_file(empty, root, globals_=[["builtins", "dict"]]))


@pytest.mark.parametrize(
    "root",
    [
        {"$": "int", "v": "0x10"},
        {"$": "int", "v": 16},
        {"$": "int", "v": "FF"},
        {"$": "float", "v": "NaN"},
        {"$": "float", "v": 1.5},
        {"$": "bytes", "v": "not base64!"},
        {"$": "bytes", "v": 5},
        {"$": "complex", "v": [1]},
        {"$": "complex", "v": ["1", 2]},
        {"$": "slice", "v": [1, 2]},
        {"$": "const", "v": "None"},
        {"$": "const", "v": "__import__"},
        {"$": "tuple", "v": {}},
        {"$": "set", "v": [1, 1]},
        {"$": "set", "v": [[1]]},
        {"$": "frozenset", "v": [[1]]},
        {"$": "dict", "v": {}, "items": []},
        {"$": "dict", "items": [[1]]},
        {"$": "dict", "items": [[1, 2], [1, 3]]},
        {"$": "dict", "items": [[[1], 2]]},
        {"$": "dict", "k": ["a"]},
        {"$": "dict", "v": []},
        {"$": "scalar", "dtype": "<f8", "v": "x"},
        {"$": "scalar", "dtype": "<i4", "v": 2**40},
        {"$": "scalar", "dtype": "|O", "v": 1},
        {"$": "scalar", "dtype": "<i4", "b64": "AAA="},
        {"$": "scalar", "dtype": "<i4", "v": 1, "b64": "AAAAAA=="},
        {"$": "dtype", "v": "|X9"},
        {"$": "objarray", "shape": [3], "order": "C", "v": [1]},
        {"$": "objarray", "shape": [-1], "order": "C", "v": []},
        {"$": "objarray", "shape": [2**64, 0], "order": "C", "v": []},
        {"$": "masked", "data": None, "mask": None, "fill_value": None},
        {"$": "global", "g": 5},
        {"$": "global", "g": "builtins.dict"},
    ],
    ids=str,
)
def test_malformed_values_are_refused(empty, root):
    with pytest.raises(FormatError):
        load(graph_file(empty, root, globals_=[["builtins", "dict"]]))


# ---------------------------------------------------------------------------- references


@pytest.mark.parametrize(
    "root",
    [
        [{"$": "ref", "id": 5}, [1]],  # forward
        [{"$": "ref", "id": 1}],  # itself not yet... id 1 does not exist yet
        [{"$": "ref", "id": -1}],
        [{"$": "ref", "id": True}],
        [{"$": "ref", "id": "0"}],
        [{"$": "ref"}],
    ],
    ids=str,
)
def test_references_must_name_earlier_values(empty, root):
    with pytest.raises(FormatError, match="G5"):
        load(graph_file(empty, root))


@pytest.mark.parametrize(
    "root",
    [
        {"$": "tuple", "v": [{"$": "ref", "id": 0}]},
        {"$": "frozenset", "v": [{"$": "ref", "id": 0}]},
        {"$": "slice", "v": [{"$": "ref", "id": 0}, None, None]},
        {"$": "objarray", "shape": [1], "order": "C", "v": [{"$": "ref", "id": 0}]},
        {"$": "obj", "g": 0, "args": [{"$": "ref", "id": 0}]},
    ],
    ids=str,
)
def test_references_to_values_in_construction_are_refused(empty, root):
    with pytest.raises(SafeloadError):
        load(graph_file(empty, root, globals_=[["builtins", "dict"]]))


def test_reference_to_a_list_under_construction_is_a_cycle(empty):
    out = load(graph_file(empty, [1, {"$": "ref", "id": 0}]))
    assert out[1] is out


# ---------------------------------------------------------------------------- globals


CANARY_MODULE = "safeload_canary_module_4"


@pytest.fixture
def canary(tmp_path, monkeypatch):
    """An importable module that records any import; fails the test if it was imported."""
    (tmp_path / f"{CANARY_MODULE}.py").write_text(
        "import os\n"
        "open(os.environ['SAFELOAD_TEST_CANARY'], 'w').write('imported')\n"
        "def f(*a, **k):\n"
        "    open(os.environ['SAFELOAD_TEST_CANARY'], 'w').write('called')\n"
        "class C:\n"
        "    pass\n"
    )
    marker = tmp_path / "canary.txt"
    monkeypatch.setenv("SAFELOAD_TEST_CANARY", str(marker))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop(CANARY_MODULE, None)
    yield
    assert not marker.exists(), "the canary module was imported or called"
    assert CANARY_MODULE not in sys.modules


@pytest.mark.parametrize(
    ("pair", "node"),
    [
        (["os", "system"], {"$": "call", "g": 0, "args": ["touch pwned"]}),
        (["builtins", "eval"], {"$": "call", "g": 0, "args": ["1+1"]}),
        (["builtins", "exec"], {"$": "call", "g": 0, "args": ["x=1"]}),
        (["builtins", "__import__"], {"$": "call", "g": 0, "args": ["os"]}),
        (["builtins", "getattr"], {"$": "call", "g": 0, "args": [1, "real"]}),
        (["subprocess", "Popen"], {"$": "obj", "g": 0}),
        (["pickle", "loads"], {"$": "call", "g": 0, "args": [{"$": "bytes", "v": "gARLAS4="}]}),
        (["numpy", "load"], {"$": "call", "g": 0, "args": ["x.npy"]}),
        (["os", "system"], {"$": "global", "g": 0}),
        ([CANARY_MODULE, "f"], {"$": "call", "g": 0}),
        ([CANARY_MODULE, "C"], {"$": "obj", "g": 0}),
        ([CANARY_MODULE, "f"], {"$": "global", "g": 0}),
    ],
    ids=lambda v: ".".join(v) if isinstance(v, list) else v["$"],
)
def test_untrusted_globals_are_refused_before_anything_is_imported(empty, canary, pair, node):
    modules_before = set(sys.modules)
    with pytest.raises(UntrustedTypesError) as info:
        load(graph_file(empty, node, globals_=[pair]))
    assert info.value.types == [".".join(pair)]
    assert "Nothing was imported" in str(info.value)
    assert set(sys.modules) - modules_before == set()


def test_every_untrusted_global_is_listed_even_if_unused(empty, canary):
    globals_ = [["os", "system"], ["builtins", "dict"], [CANARY_MODULE, "f"], ["posix", "execv"]]
    with pytest.raises(UntrustedTypesError) as info:
        load(graph_file(empty, None, globals_=globals_))
    assert info.value.types == sorted(["os.system", f"{CANARY_MODULE}.f", "posix.execv"])


def test_untrusted_global_is_refused_before_arrays_are_read(one_array):
    """The audit runs before any array member is read (a corrupt member is never reached)."""

    def graph(doc):
        doc["globals"] = [["os", "system"]]
        doc["root"] = {"$": "call", "g": 0, "args": [{"$": "ndarray", "i": 0}]}

    hostile = sz.edit(one_array, graph=graph)
    hostile = hostile.replace(b"\x00\x00\x00\x00\x00\x00\xf0?", b"\xff" * 8, 1)  # a payload byte
    with pytest.raises(UntrustedTypesError):
        load(hostile)


@pytest.mark.parametrize(
    "node",
    [
        {"$": "call", "g": 0, "args": [1.0]},
        {"$": "call", "g": 0, "kwargs": {"C": 1.0}},
        {"$": "call", "g": 0, "args": [{"$": "ndarray", "i": 0}]},
    ],
    ids=["args", "kwargs", "array-arg"],
)
def test_calling_a_trusted_class_with_arguments_is_forbidden(one_array, node):
    def graph(doc):
        doc["globals"] = [["sklearn.linear_model._logistic", "LogisticRegression"]]
        doc["root"] = node

    with pytest.raises(ForbiddenOperationError) as info:
        load(sz.edit(one_array, graph=graph))
    assert info.value.operation == "class-call-with-arguments"


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.InconsistentVersionWarning")
def test_allocating_a_trusted_class_with_state_loads(empty):
    node = {"$": "obj", "g": 0, "state": {"$": "dict", "v": {"C": 2.5}}}
    out = load(
        graph_file(empty, node, globals_=[["sklearn.linear_model._logistic", "LogisticRegression"]])
    )
    assert isinstance(out, LogisticRegression) and out.C == 2.5


@pytest.mark.parametrize("kind", ["obj", "call"])
def test_obj_or_call_of_a_trusted_function_is_forbidden(empty, kind):
    with pytest.raises(ForbiddenOperationError) as info:
        load(graph_file(empty, {"$": kind, "g": 0, "args": [1.0]}, globals_=[["numpy", "log1p"]]))
    assert info.value.operation in ("newobj-on-non-class", "call-of-value")


def test_obj_of_a_function_is_forbidden(empty):
    with pytest.raises(ForbiddenOperationError) as info:
        load(graph_file(empty, {"$": "obj", "g": 0}, globals_=[["numpy", "log1p"]]))
    assert info.value.operation == "newobj-on-non-class"


@pytest.mark.parametrize(
    "node",
    [
        {"$": "call", "g": 0, "setitems": [["x", 1]]},
        {"$": "obj", "g": 1, "state": {"$": "dict", "v": {"__class__": 1}}, "setitems": []},
    ],
    ids=["setitems-on-class", "state-dunder"],
)
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.InconsistentVersionWarning")
def test_setitems_or_state_on_a_global_never_mutates_it(empty, node):
    globals_ = [["builtins", "dict"], ["sklearn.linear_model._logistic", "LogisticRegression"]]
    before = dict(vars(LogisticRegression))
    try:
        out = load(graph_file(empty, node, globals_=globals_))
    except SafeloadError:
        out = None
    assert dict(vars(LogisticRegression)) == before
    assert not isinstance(out, type)


def test_setitems_on_a_class_value_is_forbidden(empty):
    """A ``call`` whose result is a class (``numpy.dtype`` returning a type is impossible, so
    use a reconstructor that would): the decoder refuses item assignment on any class."""
    from safeload.format.decode import _setitem

    with pytest.raises(ForbiddenOperationError):
        _setitem(dict, "x", 1, "builtins.dict")


@pytest.mark.parametrize(
    "state",
    [
        {"$": "tuple", "v": [3, "|", None, ["a"], {"$": "dict", "v": {}}, -1, -1, 0]},
        {"$": "tuple", "v": [3, "<", None, None, None, 999, 999, 0]},
        {"$": "tuple", "v": [3, "<", {"$": "ndarray", "i": 0}, None, None, -1, -1, 0]},
        {"$": "dict", "v": {"a": 1}},
        "x",
    ],
    ids=["fields-list", "bad-sizes", "array-inside", "dict", "str"],
)
def test_state_on_a_dtype_is_refused(one_array, state):
    def graph(doc):
        doc["globals"] = [["numpy", "dtype"]]
        doc["root"] = {"$": "call", "g": 0, "args": ["f8", False, True], "state": state}

    try:
        out = load(sz.edit(one_array, graph=graph))
    except SafeloadError:
        return
    assert out == np.dtype("f8") and out.itemsize == 8  # only numpy's own state is applied


def test_state_on_a_global_value_is_forbidden(empty):
    node = {"$": "call", "g": 0, "args": [{"$": "global", "g": 1}], "state": {"$": "dict", "v": {}}}
    globals_ = [
        ["copyreg", "_reconstructor"],
        ["sklearn.linear_model._logistic", "LogisticRegression"],
    ]
    with pytest.raises(SafeloadError):
        load(graph_file(empty, node, globals_=globals_))


def test_reconstructor_with_untrusted_base_is_forbidden(empty):
    node = {
        "$": "call",
        "g": 0,
        "args": [{"$": "global", "g": 1}, {"$": "global", "g": 2}, None],
    }
    globals_ = [
        ["copyreg", "_reconstructor"],
        ["sklearn.linear_model._logistic", "LogisticRegression"],
        ["builtins", "type"],
    ]
    with pytest.raises((ForbiddenOperationError, UntrustedTypesError)):
        load(graph_file(empty, node, globals_=globals_))


def test_unknown_global_index_in_node(empty):
    with pytest.raises(FormatError, match="G2"):
        load(graph_file(empty, {"$": "obj", "g": 3}, globals_=[["builtins", "dict"]]))


# ---------------------------------------------------------------------------- integrity


def _flip(data: bytes, pos: int) -> bytes:
    out = bytearray(data)
    out[pos] ^= 0x01
    return bytes(out)


def _positions(start: int, size: int, count: int = 12) -> list[int]:
    return sorted({start + (size - 1) * k // max(1, count - 1) for k in range(count)})


def test_flipped_byte_in_any_array_payload_or_graph_names_the_member(model_file):
    offsets = sz.member_offsets(model_file)
    members = sz.read_members(model_file)
    for name, (start, size) in offsets.items():
        if name == "manifest.json":
            continue
        header_len = 0
        if name.endswith(".npy"):
            raw = members[name]
            header_len = len(raw) - np.load(io.BytesIO(raw)).nbytes
        for pos in _positions(start + header_len, size - header_len):
            hostile = _flip(model_file, pos)
            with pytest.raises(IntegrityError) as info:
                load(hostile)
            assert info.value.members == [name], (name, pos)
            assert name in str(info.value)
            # verify=False never crashes: a correct object or a SafeloadError
            with contextlib.suppress(SafeloadError):
                load(hostile, verify=False)


def test_flipped_byte_in_an_npy_header_is_an_integrity_error(one_array):
    start, _ = sz.member_offsets(one_array)["arrays/000000.npy"]
    for pos in _positions(start, 128):
        with pytest.raises(IntegrityError) as info:
            load(_flip(one_array, pos))
        assert info.value.members == ["arrays/000000.npy"]


def test_flipped_byte_in_the_manifest_is_detected():
    data = safeload.dumps(
        [1], created=CREATED, metadata={"owner": "alice"}, source="https://x/commit/1"
    )
    start, size = sz.member_offsets(data)["manifest.json"]
    pos = start + data[start : start + size].index(b"alice")
    with pytest.raises(FormatError):
        load(_flip(data, pos), verify=True)


def test_wrong_crc_is_refused(empty):
    hostile = _modified(empty, 0, crc=0x12345678)
    import zipfile

    assert zipfile.ZipFile(io.BytesIO(hostile)).testzip() == "graph.json"
    with pytest.raises(FormatError):
        load(hostile)


def test_flipped_bytes_in_deflated_members_are_refused(model_file):
    packed = sz.edit(model_file, method=sz.DEFLATED)
    assert load(packed)["list"] == [1, "a", 2.5]
    for name, (start, size) in sz.member_offsets(packed).items():
        for pos in _positions(start, size, 6):
            with pytest.raises(FormatError) as info:
                load(_flip(packed, pos))
            if name != "manifest.json":
                assert name in str(info.value) or isinstance(info.value, IntegrityError)
            with contextlib.suppress(SafeloadError):
                load(_flip(packed, pos), verify=False)


def test_flipped_byte_in_every_file_position_never_crashes(model_file):
    """A sweep over the whole file: only a correct object or a SafeloadError."""
    for pos in range(0, len(model_file), 97):
        for verify in (None, False):
            with contextlib.suppress(SafeloadError):
                load(_flip(model_file, pos), verify=verify)


def test_manifest_hash_table_must_match_members(one_array):
    def drop(man):
        man["members"].pop("graph.json")

    with pytest.raises(FormatError, match="M4"):
        load(sz.edit(one_array, manifest=drop))

    def bad_hash(man):
        man["members"]["graph.json"]["sha256"] = "0" * 64

    with pytest.raises(IntegrityError) as info:
        load(sz.edit(one_array, manifest=bad_hash))
    assert info.value.members == ["graph.json"]

    def bad_array_hash(man):
        man["members"]["arrays/000000.npy"]["sha256"] = "0" * 64

    with pytest.raises(IntegrityError) as info:
        load(sz.edit(one_array, manifest=bad_array_hash))
    assert info.value.members == ["arrays/000000.npy"]
    assert load(sz.edit(one_array, manifest=bad_array_hash), verify=False)[5] == 5.0

    def bad_size(man):
        man["members"]["arrays/000000.npy"]["size"] += 1

    with pytest.raises(FormatError, match="M4"):
        load(sz.edit(one_array, manifest=bad_size))

    def upper_hash(man):
        entry = man["members"]["graph.json"]
        entry["sha256"] = entry["sha256"].upper()

    with pytest.raises(FormatError):  # M4 (lowercase hex only) or a mismatch
        load(sz.edit(one_array, manifest=upper_hash))


@pytest.mark.parametrize(
    "change",
    [
        {"extra": 1},
        {"metadata": {"a": 1}},
        {"metadata": ["a"]},
        {"format": "skops"},
        {"members": []},
    ],
    ids=str,
)
def test_manifest_rule_violations_are_refused(empty, change):
    with pytest.raises(FormatError, match="M2|M4|M5"):
        load(sz.edit(empty, manifest=lambda m: m.update(change)))


@pytest.mark.parametrize(
    "change",
    [
        {"created": 5},
        {"created": "yesterday"},
        {"producer": "x"},
        {"cv_score": "good"},
        {"training_data": 5},
        {"source": ["x"]},
    ],
    ids=str,
)
def test_manifest_fields_are_validated_against_the_schema(empty, change):
    with pytest.raises(FormatError):
        load(sz.edit(empty, manifest=lambda m: m.update(change)))


@pytest.mark.parametrize(
    "key",
    [
        "created",
        "producer",
        "members",
        "format",
        "format_version",
        "metadata",
        "training_data",
        "source",
        "cv_score",
    ],
)
def test_required_manifest_keys_are_enforced_by_the_loader_and_the_schema(empty, key):
    import jsonschema

    from safeload.verify import manifest_schema

    def drop(man):
        del man[key]

    hostile = sz.edit(empty, manifest=drop)
    with pytest.raises(FormatError):
        load(hostile)
    errors = list(
        jsonschema.Draft202012Validator(manifest_schema()).iter_errors(sz.read_manifest(hostile))
    )
    assert [e.message for e in errors] == [f"'{key}' is a required property"]


def test_format_version_3_says_to_upgrade(model_file):
    hostile = sz.edit(model_file, manifest=lambda m: m.update(format_version=3))
    with pytest.raises(FormatError, match="upgrade safeload"):
        load(hostile)
    with pytest.raises(FormatError, match="upgrade safeload"):
        load(hostile, verify=False)


def test_verify_false_still_checks_structure_limits_and_types(one_array):
    def graph(doc):
        doc["globals"] = [["os", "system"]]

    with pytest.raises(UntrustedTypesError):
        load(sz.edit(one_array, graph=graph), verify=False)
    with pytest.raises(LimitExceededError):
        load(
            _array_spec_file(one_array, {"dtype": 0, "shape": [2**60], "order": "C"}),
            verify=False,
        )


# ---------------------------------------------------------------------------- sanity


def test_unmodified_fixtures_load(model_file, one_array, empty):
    out = load(model_file)
    assert out["list"] == [1, "a", 2.5]
    assert np.array_equal(load(one_array), np.arange(BIG, dtype=np.float64))
    assert load(empty) is None


@pytest.mark.parametrize("container", ["dict", "set", "frozenset", "tuple-keys"])
def test_colliding_hash_keys_are_refused_before_insertion(container):
    """Hash flooding: ints equal modulo 2**61 - 1 share one hash; 40,000 of them would take
    minutes to insert.  The decoder counts colliding hashes in one linear pass first and charges
    the quadratic insertion to ``max_items``."""
    keys = [i * (2**61 - 1) for i in range(1, 40_000)]
    if container == "tuple-keys":
        keys = [(k,) for k in keys]
    value = {"dict": dict.fromkeys(keys, 0), "set": set(keys), "frozenset": frozenset(keys)}.get(
        container, dict.fromkeys(keys, 0)
    )
    data = safeload.dumps(value)
    start = time.perf_counter()
    with pytest.raises(LimitExceededError) as info:
        load(data)
    assert time.perf_counter() - start < 5
    assert info.value.limit == "max_items" and "colliding hashes" in str(info.value)
    assert info.value.actual > info.value.allowed == safeload.DEFAULT_LIMITS.max_items


def test_a_few_colliding_keys_still_load():
    keys = [i * (2**61 - 1) for i in range(1, 3_000)]  # ~4.5M probes: under max_items
    assert load(safeload.dumps(dict.fromkeys(keys, 1))) == dict.fromkeys(keys, 1)
    plain = {i: str(i) for i in range(50_000)}  # distinct hashes: no charge at all
    assert load(safeload.dumps(plain)) == plain


# ---------------------------------------------------------------- review findings (new user)
def _forge(graph: dict) -> bytes:
    """A well-formed, correctly hashed safe file holding ``graph`` as graph.json."""
    return _forge_with_arrays(graph, [])


def _doubling_tuples(levels: int) -> list:
    root: list = [{"$": "tuple", "v": ["a", "a"]}]  # the list is id 0, this tuple id 1
    root += [
        {"$": "tuple", "v": [{"$": "ref", "id": k}, {"$": "ref", "id": k}]}
        for k in range(1, levels)
    ]
    return root


@pytest.mark.parametrize("container", ["set", "frozenset", "dict-key", "list"])
def test_shared_reference_bombs_are_charged_to_max_items(container):
    """A reference repeats its whole value: 60 levels of tuples each holding the previous one
    twice is a 2**60-leaf value in 4 KB; hashing it (set item, dict key) or walking it never
    ends.  Each reference is charged the size of what it repeats, as the pickle path's memo."""
    root = _doubling_tuples(60)
    top = {"$": "ref", "id": 60}
    root.append(
        {
            "set": {"$": "set", "v": [top]},
            "frozenset": {"$": "frozenset", "v": [top]},
            "dict-key": {"$": "dict", "items": [[top, 1]]},
            "list": [top, top],
        }[container]
    )
    data = _forge({"globals": [], "dtypes": [], "arrays": [], "root": root})
    start = time.perf_counter()
    with pytest.raises(LimitExceededError) as info:
        load(data)
    assert info.value.limit == "max_items" and time.perf_counter() - start < 2
    assert not safeload.scan(data).safe


@pytest.mark.parametrize("form", ["call-setitems", "obj-setitems"])
def test_hash_flooding_through_setitems_is_refused(form):
    """The collision check covers every way the format inserts keys, not only the dict tag."""
    keys = [i * (2**61 - 1) for i in range(1, 20_001)]
    g = ["builtins", "dict"] if form == "call-setitems" else ["collections", "OrderedDict"]
    node = {"$": "call" if form == "call-setitems" else "obj", "g": 0}
    node["setitems"] = [[k, 0] for k in keys]
    data = _forge({"globals": [g], "dtypes": [], "arrays": [], "root": node})
    start = time.perf_counter()
    with pytest.raises(SafeloadError) as info:
        load(data)
    assert time.perf_counter() - start < 5
    if isinstance(info.value, LimitExceededError):
        assert "colliding hashes" in str(info.value)
    small = _forge(
        {"globals": [g], "dtypes": [], "arrays": [], "root": {**node, "setitems": [[1, 2]]}}
    )
    with contextlib.suppress(SafeloadError):  # the class itself may be untrusted
        assert load(small) == {1: 2}
    with pytest.raises(LimitExceededError):
        load(data.replace(b"", b""), limits=safeload.Limits(max_items=1000))


def test_a_scalar_dtype_is_bounded_before_allocating():
    """A unicode scalar declaring a 2 GiB dtype was allocated whatever the limits."""
    root = [{"$": "scalar", "dtype": "<U536870000", "v": "a"}]
    data = _forge({"globals": [], "dtypes": [], "arrays": [], "root": root})
    with pytest.raises(LimitExceededError) as info:
        load(data, limits=safeload.Limits(max_array_bytes=1 << 20))
    assert info.value.limit == "max_array_bytes" and info.value.actual == 4 * 536_870_000


def _forge_with_arrays(graph: dict, arrays: list) -> bytes:
    import hashlib
    import zipfile

    from safeload.format.zipio import STORED, ZipWriter

    manifest = json.loads(zipfile.ZipFile(io.BytesIO(safeload.dumps(0))).read("manifest.json"))
    members = {}
    for i, a in enumerate(arrays):
        buf = io.BytesIO()
        np.save(buf, a, allow_pickle=False)
        members[f"arrays/{i:06d}.npy"] = buf.getvalue()
    members["graph.json"] = json.dumps(graph, separators=(",", ":")).encode()
    manifest["members"] = {
        n: {"size": len(b), "sha256": hashlib.sha256(b).hexdigest()} for n, b in members.items()
    }
    members["manifest.json"] = json.dumps(manifest, separators=(",", ":")).encode()
    out = io.BytesIO()
    writer = ZipWriter(out)
    for name, raw in members.items():
        writer.write_member(name, raw, STORED)
    writer.finish()
    return out.getvalue()


_LR = [["sklearn.linear_model._logistic", "LogisticRegression"]]
_CALL = {"$": "call", "g": 0, "args": [5.0]}
_NODE = {"$": "call", "g": 0, "items": list(range(600))}


@pytest.mark.parametrize(
    ("graph", "arrays", "max_items"),
    [
        pytest.param({"globals": _LR, "root": _CALL}, [], None, id="call-at-top"),
        pytest.param(
            {"globals": _LR, "root": {"$": "objarray", "shape": [1], "order": "C", "v": [_CALL]}},
            [],
            None,
            id="call-inside-objarray",
        ),
        pytest.param(
            {"globals": _LR, "root": {"$": "slice", "v": [_CALL, None, None]}},
            [],
            None,
            id="call-inside-slice",
        ),
        pytest.param(
            {
                "globals": [["builtins", "set"]],
                "root": [{"$": "call", "g": 0, "args": [[1]]}, {"$": "call", "g": 0.0}],
            },
            [],
            None,
            id="global-index-0.0",
        ),
        pytest.param(
            {"globals": [["builtins", "list"]], "root": [_NODE, _NODE]}, [], 1000, id="items"
        ),
        pytest.param(
            {"globals": [["builtins", "set"]], "root": {"$": "call", "g": 0, "kwargs": {}}},
            [],
            None,
            id="empty-kwargs",
        ),
        pytest.param(
            {
                "globals": [],
                "dtypes": ["<f8"],
                "arrays": [{"dtype": 0, "shape": [3], "order": "C"}],
                "root": [{"$": "ndarray", "i": 0, "at": 5, "shape": [2]}],
            },
            [np.zeros(3)],
            None,
            id="pooled-out-of-order",
        ),
        pytest.param(
            {
                "globals": [],
                "dtypes": ["<f8"],
                "arrays": [{"dtype": 0, "shape": [1], "order": "C"}],
                "root": {"$": "dict", "k": ["a"], "vi": {"$": "ndarray", "i": 0}},
            },
            [np.zeros(1)],
            None,
            id="float-vocabulary-values",
        ),
    ],
)
def test_scan_refuses_what_load_refuses_for_static_reasons(graph, arrays, max_items):
    """Second review: the scanner's inert reading of graph.json walked neither object arrays
    nor slices, skipped some of the decoder's checks, and read ``"g": 0.0`` differently."""
    doc = {"globals": [], "dtypes": [], "arrays": [], **graph}
    data = _forge_with_arrays(doc, arrays)
    limits = safeload.Limits(max_items=max_items) if max_items else safeload.DEFAULT_LIMITS
    with pytest.raises(SafeloadError):
        safeload.load(data, limits=limits)
    assert not safeload.scan(data, limits=limits).safe


def test_masked_arrays_scan_safe_and_load():
    data = safeload.dumps(np.ma.masked_array([1, 2], mask=[0, 1]))
    assert safeload.scan(data).safe
    loaded = safeload.load(data)
    assert loaded.mask.tolist() == [False, True] and loaded.data.tolist() == [1, 2]
