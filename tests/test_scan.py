"""``safeload.scan``: containers, fail-closed verdicts, offsets, report renderings.

Issue "Scanner and command line".  Every stream here is built in the test (real pickles of
fitted estimators, joblib dumps, hand-written hostile opcodes); the shared corpora are covered by
``tests/test_scan_corpus.py``.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import os
import pickle
import re
import struct
import subprocess
import sys
import textwrap
import tracemalloc
import uuid
import zipfile
import zlib

import joblib
import numpy as np
import pytest
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import LabelEncoder

import safeload
from safeload.report import RULES, SARIF_VERSION

from .attacks._pickle_builder import (
    B,
    G,
    Mark,
    New,
    Ops,
    dumps,
    joblib_array,
    make_zip,
    npy_bytes,
)

GLOBAL_OPCODES = (b"c", b"\x93", b"i")


@pytest.fixture(scope="module")
def logreg():
    X = np.arange(40, dtype=float).reshape(20, 2)
    return LogisticRegression().fit(X, np.arange(20) % 2)


def _rules(report, blocking_only=True):
    return {f.rule for f in report.findings if f.blocking or not blocking_only}


def _assert_offsets_point_at_globals(report, data):
    assert report.globals
    for g in report.globals:
        assert g.offset is not None, g
        assert data[g.offset : g.offset + 1] in GLOBAL_OPCODES, (g, data[g.offset : g.offset + 8])


# --------------------------------------------------------------------------- raw pickles
@pytest.mark.parametrize("protocol", range(6))
def test_fitted_estimator_every_protocol_is_safe(logreg, protocol):
    data = pickle.dumps(logreg, protocol=protocol)
    report = safeload.scan(data)
    assert report.safe, report.findings
    assert report.format == "pickle"
    assert report.protocol == (protocol if protocol >= 2 else 0)
    assert report.sklearn_version == sklearn.__version__
    names = {g.name: g for g in report.globals}
    assert names["sklearn.linear_model._logistic.LogisticRegression"].verdict == "trusted"
    assert all(g.verdict == "trusted" for g in report.globals)
    _assert_offsets_point_at_globals(report, data)
    assert report.findings == []


def test_stream_without_proto_opcode(logreg):
    data = pickle.dumps(logreg, protocol=2)[2:]  # protocol 2 opcodes, no PROTO
    report = safeload.scan(data)
    assert report.safe and report.protocol == 0
    _assert_offsets_point_at_globals(report, data)


def test_global_offsets_follow_every_occurrence_order():
    data = dumps([G("os", "system")("x"), G("builtins", "eval")("1")], 2)
    report = safeload.scan(data)
    offsets = {g.name: g.offset for g in report.globals}
    assert offsets["os.system"] == data.index(b"cos\nsystem")
    assert offsets["builtins.eval"] == data.index(b"cbuiltins\neval")
    assert report.untrusted_types == ["builtins.eval", "os.system"]
    assert {f.rule for f in report.findings} == {"dangerous-global"}
    assert {f.offset for f in report.findings} == set(offsets.values())


def test_python2_aliases_are_reported_as_spelled_with_the_canonical_name():
    data = dumps(G("__builtin__", "set")([1, 2]), 2)
    report = safeload.scan(data)
    assert report.safe
    (g,) = report.globals
    assert (g.name, g.canonical, g.verdict) == ("__builtin__.set", "builtins.set", "trusted")


# --------------------------------------------------------------------------- joblib
COMPRESSORS = ["zlib", "gzip", "bz2", "lzma", "xz", "lz4"]
DECOMPRESS = {
    "zlib": zlib.decompress,
    "gzip": gzip.decompress,
    "bz2": bz2.decompress,
    "lzma": lambda b: __import__("lzma").decompress(b),
    "xz": lambda b: __import__("lzma").decompress(b),
    "lz4": lambda b: __import__("lz4.frame").frame.decompress(b),
}


@pytest.mark.parametrize("compressor", COMPRESSORS)
def test_joblib_every_compressor(logreg, compressor, tmp_path):
    path = tmp_path / "m.joblib"
    joblib.dump(logreg, path, compress=(compressor, 3))
    report = safeload.scan(path)
    assert report.safe, report.findings
    assert report.format == f"joblib+{compressor}"
    assert report.protocol == pickle.DEFAULT_PROTOCOL
    assert report.sklearn_version == sklearn.__version__
    wrapper = {g.name: g for g in report.globals}["joblib.numpy_pickle.NumpyArrayWrapper"]
    assert wrapper.consumed and wrapper.verdict == "trusted"
    # offsets are positions in the decompressed stream
    assert {g.location for g in report.globals} == {f"{compressor} stream"}
    _assert_offsets_point_at_globals(report, DECOMPRESS[compressor](path.read_bytes()))


def test_uncompressed_joblib_offsets_are_file_offsets(logreg, tmp_path):
    path = tmp_path / "m.joblib"
    joblib.dump(logreg, path)
    report = safeload.scan(path)
    assert report.safe and report.format == "joblib"
    assert {g.location for g in report.globals} == {None}
    _assert_offsets_point_at_globals(report, path.read_bytes())


def test_joblib_object_array_streams_are_scanned(tmp_path):
    enc = LabelEncoder().fit(["a", "b", "c"])  # classes_ is an object array: a nested stream
    path = tmp_path / "enc.joblib"
    joblib.dump(enc, path)
    assert safeload.scan(path).safe
    hostile = dumps([joblib_array("O", (1,), dumps([G("os", "system")("id")], 2))], 4)
    report = safeload.scan(hostile)
    assert not report.safe
    assert report.untrusted_types == ["os.system"]
    assert report.format == "joblib"


def test_joblib_raw_array_bytes_are_stepped_over_in_bounded_memory(tmp_path):
    big = np.zeros((1 << 21,), dtype=np.float64)  # 16 MiB of raw bytes after the pickle
    path = tmp_path / "big.joblib"
    joblib.dump({"a": big, "b": np.arange(3)}, path)
    for data in (path, path.read_bytes()):
        tracemalloc.start()
        report = safeload.scan(data)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert report.safe, report.findings
        assert peak < (4 << 20), peak  # the 16 MiB array is never held


def test_truncated_joblib_array_is_unsafe(tmp_path):
    path = tmp_path / "big.joblib"
    joblib.dump(np.zeros(1000), path)
    data = path.read_bytes()[:-100]
    report = safeload.scan(data)
    assert not report.safe
    assert "truncated-stream" in _rules(report)
    assert "numpy.ndarray" in {g.name for g in report.globals}


@pytest.mark.parametrize("opener", [gzip.compress, bz2.compress], ids=["gzip", "bz2"])
def test_compressed_plain_pickles(logreg, opener):
    report = safeload.scan(opener(pickle.dumps(logreg, protocol=4)))
    assert report.safe
    assert report.format in ("pickle+gzip", "pickle+bz2")
    hostile = safeload.scan(opener(dumps(G("os", "system")("id"), 2)))
    assert not hostile.safe and hostile.untrusted_types == ["os.system"]


# --------------------------------------------------------------------------- big pickles
@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_big_pickles_are_scanned_without_their_payloads(protocol, tmp_path):
    """Payload-dominated streams are parsed from a copy without the array bytes."""
    arrays = [np.full((1 << 19,), i, dtype=np.float64) for i in range(6)]  # 24 MiB
    path = tmp_path / "big.pkl"
    path.write_bytes(pickle.dumps({"arrays": arrays, "f": np.float64(1.0)}, protocol=protocol))
    tracemalloc.start()
    report = safeload.scan(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert report.safe, report.findings
    assert peak < (4 << 20), peak
    full = safeload.scan(path.read_bytes(), limits=safeload.Limits())
    assert [g.to_dict() for g in report.globals] == [g.to_dict() for g in full.globals]
    _assert_offsets_point_at_globals(report, path.read_bytes())


# --------------------------------------------------------------------------- fail closed
def test_truncated_stream_is_unsafe_and_names_what_came_before():
    data = dumps(G("builtins", "exec")("import os"), 2)[:-2]
    report = safeload.scan(data)
    assert not report.safe
    assert "truncated-stream" in _rules(report)
    assert report.untrusted_types == ["builtins.exec"]


def test_invalid_opcode_after_a_payload_is_unsafe():
    data = dumps(G("os", "system")("id"), 2)[:-1] + b"\xff."
    report = safeload.scan(data)
    assert not report.safe
    assert "corrupt-stream" in _rules(report)
    assert report.untrusted_types == ["os.system"]


def test_trailing_data_is_unsafe(logreg):
    data = pickle.dumps(logreg, protocol=4) + dumps(G("os", "system")("id"), 2)
    report = safeload.scan(data)
    assert not report.safe
    assert "trailing-data" in _rules(report)


@pytest.mark.parametrize(
    "data,rule",
    [
        (b"", "unknown-format"),
        (b"hello, I am not a model\n", "unknown-format"),
        (b"\x7fELF\x02\x01\x01" + b"\0" * 57, "unknown-format"),
        (b"ZF0x" + b"\0" * 60, "unknown-format"),
        (gzip.compress(b"not a pickle at all"), "corrupt-stream"),
    ],
    ids=["empty", "text", "elf", "zfile", "gzip-text"],
)
def test_unknown_content_is_unsafe(data, rule):
    report = safeload.scan(data)
    assert not report.safe
    assert rule in _rules(report)


def test_unrecognised_pickle_is_unsafe_and_its_globals_listed():
    """No PROTO and a first opcode no pickler writes first: pickle.load still runs it."""
    ops = Ops().unicode("posix").unicode("system").op(pickle.STACK_GLOBAL)
    ops.unicode("id").tuple_(1).reduce().stop()
    report = safeload.scan(ops.value())
    assert not report.safe
    assert "unknown-format" in _rules(report)
    assert report.untrusted_types == ["posix.system"]


def test_limits_are_findings():
    deep = b"\x80\x02" + b"]" * 500 + b"a" * 499 + b"."  # 500 nested lists
    report = safeload.scan(deep)
    assert not report.safe and "limit-exceeded" in _rules(report)
    small = safeload.scan(b"\x80\x02]." * 1, limits=safeload.Limits(max_file_bytes=2))
    assert not small.safe and "max_file_bytes" in small.findings[0].message
    bomb = safeload.scan(_memo_bomb(40))
    assert not bomb.safe and "max_items" in bomb.findings[0].message


def _memo_bomb(levels: int) -> bytes:
    o = Ops(2).empty_list()
    o.raw(pickle.BINPUT + b"\x00")
    for i in range(levels):
        o.raw(pickle.BINGET + bytes([i]) + pickle.BINGET + bytes([i]) + pickle.TUPLE2)
        o.raw(pickle.BINPUT + bytes([i + 1]))
    return o.stop().value()


def test_huge_allocations_are_refused_statically():
    huge = dumps(
        G("numpy._core.multiarray", "_reconstruct")(G("numpy", "ndarray"), (2**40,), b"b"), 2
    )
    report = safeload.scan(huge)
    assert not report.safe
    assert "max_array_bytes" in " ".join(f.message for f in report.findings)
    nbytes = dumps(G("builtins", "bytearray")(2**36), 2)
    refused = safeload.scan(nbytes, trusted=["builtins.bytearray"])
    assert not refused.safe and _rules(refused) == {"limit-exceeded"}
    assert safeload.scan(
        dumps(G("builtins", "bytearray")(16), 2), trusted=["builtins.bytearray"]
    ).safe


# --------------------------------------------------------------------------- forbidden
def test_persistent_id_is_reported_with_its_offset():
    data = Ops(2).unicode("x").op(pickle.BINPERSID).stop().value()
    report = safeload.scan(data)
    (f,) = [f for f in report.findings if f.rule == "persistent-id"]
    assert not report.safe and f.offset == data.index(pickle.BINPERSID)


def test_extension_code_is_reported_and_globals_still_named():
    data = Ops(2).global_("os", "system").op(pickle.EXT1 + b"\x07").tuple_(2).stop().value()
    report = safeload.scan(data)
    assert not report.safe
    assert "extension-code" in _rules(report)
    assert report.untrusted_types == ["os.system"]
    assert report.streams[0].format == "pickle"


def test_build_on_a_global_and_call_of_result():
    patch = dumps(B(G("sklearn", "base"), {"clone": 1}), 2)
    assert "build-on-global" in _rules(safeload.scan(patch, trusted=["sklearn.base"]))
    chain = Ops(2).global_("builtins", "dict").tuple_(0).reduce().tuple_(0).reduce().stop()
    assert "call-of-result" in _rules(safeload.scan(chain.value()))


def test_value_function_called_at_load_time():
    data = dumps(G("sklearn.feature_selection._univariate_selection", "f_classif")([1], [1]), 2)
    report = safeload.scan(data)
    assert not report.safe
    assert report.untrusted_types == []  # trusted as a value
    assert any("call-of-value" in f.message for f in report.findings)


# --------------------------------------------------------------------------- policy
def test_trusted_names_and_get_untrusted_types():
    data = dumps(B(New(G("mypkg.features", "MyTransformer")), {"k": 1}), 4)
    assert safeload.get_untrusted_types(data) == ["mypkg.features.MyTransformer"]
    report = safeload.scan(data)
    assert not report.safe
    (g,) = report.globals
    assert g.verdict == "untrusted" and g.reason == "not in the trusted types of the policy"
    assert safeload.scan(data, trusted=["mypkg.features.MyTransformer"]).safe
    policy = safeload.Policy.default().extend(["mypkg.features.MyTransformer"])
    assert safeload.get_untrusted_types(data, policy=policy) == []
    with pytest.raises(safeload.PolicyError):
        safeload.scan(data, trusted=["os.system"])
    with pytest.raises(safeload.PolicyError):
        safeload.scan(data, trusted=True)


def test_dangerous_names_are_critical():
    report = safeload.scan(dumps(G("os", "system")("id"), 2))
    (g,) = report.globals
    assert g.verdict == "dangerous" and g.reason.startswith("dangerous:")
    assert report.findings[0].severity == "critical" and report.findings[0].rule_id == "SL002"


# --------------------------------------------------------------------------- inputs
def test_inputs_path_bytes_and_file_objects(logreg, tmp_path):
    data = pickle.dumps(logreg)
    path = tmp_path / "m.pkl"
    path.write_bytes(data)
    for source in (path, str(path), data, bytearray(data), memoryview(data), io.BytesIO(data)):
        report = safeload.scan(source)
        assert report.safe and len(report.globals) > 3
    assert safeload.scan(path).path == str(path)
    assert safeload.scan(data).path is None
    with pytest.raises(TypeError):
        safeload.scan(12)
    with pytest.raises(OSError):
        safeload.scan(tmp_path / "missing.pkl")


# --------------------------------------------------------------------------- zip archives
PAYLOAD = dumps(G("os", "system")("id"), 2)


def _zip_with_flag(members, flag_bit: int) -> bytes:
    data = bytearray(make_zip(members))
    for sig, at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        pos = data.find(sig)
        while pos >= 0:
            flags = struct.unpack_from("<H", data, pos + at)[0] | flag_bit
            struct.pack_into("<H", data, pos + at, flags)
            pos = data.find(sig, pos + 4)
    return bytes(data)


def _zip_with_bad_crc(members) -> bytes:
    data = bytearray(make_zip(members))
    for sig, at in ((b"PK\x03\x04", 14), (b"PK\x01\x02", 16)):
        pos = data.find(sig)
        struct.pack_into("<I", data, pos + at, 0xDEADBEEF)
    return bytes(data)


@pytest.mark.parametrize("name", ["archive/data.pkl", "archive/model_weights", "weights.bin", "x"])
def test_zip_members_are_scanned_by_content(name):
    report = safeload.scan(make_zip([(name, PAYLOAD), ("archive/version", b"3\n")]))
    assert not report.safe
    (g,) = report.globals
    assert g.name == "os.system" and g.location == f"member {name}"
    assert g.offset == PAYLOAD.index(b"cos")


def test_torch_like_zip_of_a_benign_pickle(logreg):
    data = make_zip([("archive/data.pkl", pickle.dumps(logreg, 2)), ("archive/version", b"3\n")])
    report = safeload.scan(data)
    assert report.safe and report.format == "zip:pytorch"
    assert _rules(report, blocking_only=False) == {"foreign-format"}
    assert report.sklearn_version == sklearn.__version__


@pytest.mark.parametrize(
    "data,rule",
    [
        (_zip_with_flag([("data.pkl", PAYLOAD)], 0x1), "zip-encrypted"),
        (make_zip([("a.json", b"{}"), ("a.json", b"[]")]), "zip-duplicate-name"),
        (make_zip([("../x", b"1")]), "zip-unsafe-path"),
        (make_zip([("/tmp/x", b"1")]), "zip-unsafe-path"),
        (make_zip([("C:/x", b"1")]), "zip-unsafe-path"),
        (make_zip([("a", b"\0" * (4 << 20))], compression=zipfile.ZIP_DEFLATED), "zip-bomb"),
        (_zip_with_bad_crc([("archive/data.pkl", dumps([1], 2))]), "zip-bad-crc"),
        (make_zip([("a.pkl", dumps([1], 2))]) + b"trailing", "trailing-data"),
        (b"PK\x03\x04" + b"\0" * 60, "zip-corrupt"),
        (make_zip([("m.json", b"[" * 100_000 + b"]" * 100_000)]), "json-malformed"),
        (make_zip([("m.json", b"[" + b"9" * 5000 + b"]")]), "json-malformed"),
    ],
    ids=[
        "encrypted", "duplicate", "dotdot", "absolute", "drive", "bomb", "crc", "trailing",
        "corrupt", "json-deep", "json-huge-int",
    ],
)  # fmt: skip
def test_zip_structure_findings(data, rule):
    report = safeload.scan(data)
    assert not report.safe
    assert rule in _rules(report), report.findings


def test_bad_crc_member_is_still_listed():
    report = safeload.scan(_zip_with_bad_crc([("archive/data.pkl", PAYLOAD)]))
    assert {"zip-bad-crc", "dangerous-global"} <= _rules(report)


def test_nested_archives_and_npz():
    nested = make_zip([("inner.zip", make_zip([("data.pkl", PAYLOAD)]))])
    report = safeload.scan(nested)
    assert report.untrusted_types == ["os.system"]
    assert report.globals[0].location == "member inner.zip / zip / member data.pkl"
    buf = io.BytesIO()
    np.savez_compressed(buf, a=np.arange(10), b=np.eye(3))
    npz = safeload.scan(buf.getvalue())
    assert npz.safe and npz.format == "npz" and npz.globals == []


def test_npy_object_dtypes_are_findings_with_their_globals():
    buf = io.BytesIO()
    np.save(buf, np.arange(4.0))
    plain = safeload.scan(buf.getvalue())
    assert plain.safe and plain.format == "npy"
    assert _rules(plain, blocking_only=False) == {"foreign-format"}
    obj = safeload.scan(npy_bytes("|O", (1,), PAYLOAD))
    assert not obj.safe and {"npy-object-dtype", "dangerous-global"} <= _rules(obj)
    structured = npy_bytes([("a", "<f8"), ("b", "|O")], (1,), dumps([(1.0, 2)], 3))
    assert "npy-object-dtype" in _rules(safeload.scan(structured))
    in_zip = safeload.scan(make_zip([("arrays/w.npy", npy_bytes("|O", (1,), PAYLOAD))]))
    assert "npy-object-dtype" in _rules(in_zip)


def test_npy_header_declaring_more_than_present():
    report = safeload.scan(make_zip([("a.npy", npy_bytes("<f8", (2**36,), b"\0" * 64))]))
    assert {"npy-malformed", "limit-exceeded"} <= _rules(report)
    short = safeload.scan(npy_bytes("<f8", (100,), b"\0" * 8))
    assert "npy-malformed" in _rules(short)


# --------------------------------------------------------------------------- skops, safeload
def test_skops_files_are_checked_on_their_type_names(logreg, monkeypatch):
    import skops.io

    def refuse(*args, **kwargs):  # pragma: no cover - must never be called
        raise AssertionError("skops.io.load called by the scanner")

    monkeypatch.setattr(skops.io, "load", refuse)
    data = skops.io.dumps(logreg)
    report = safeload.scan(data)
    assert report.format == "skops"
    names = {g.name: g.verdict for g in report.globals}
    assert names["sklearn.linear_model._logistic.LogisticRegression"] == "trusted"
    assert names["numpy.ndarray"] == "trusted"
    assert report.safe, report.findings
    schema = {
        "__class__": "Evil",
        "__module__": "mypkg",
        "__loader__": "ObjectNode",
        "protocol": 2,
        "content": {
            "__class__": "dict", "__module__": "builtins", "__loader__": "DictNode",
            "content": {
                "f": {"__class__": "Cls", "__module__": "m", "__loader__": "MethodNode",
                      "content": {"func": "run", "obj": {"__class__": "Cls", "__module__": "m",
                                                          "__loader__": "ObjectNode"}}},
                "g": {"__class__": "x", "__module__": "y", "__loader__": "EvalNode"},
            },
        },
    }  # fmt: skip
    hostile = safeload.scan(make_zip([("schema.json", json.dumps(schema).encode())]))
    assert hostile.format == "skops" and not hostile.safe
    assert {"mypkg.Evil", "m.Cls", "m.Cls.run"} <= set(hostile.untrusted_types)
    assert "skops-malformed" in _rules(hostile)


def test_safeload_manifest_is_recognised():
    manifest = {"format": "safeload", "version": 1, "estimator": "sklearn.svm._classes.SVC"}
    buf = io.BytesIO()
    np.save(buf, np.arange(3.0))
    data = make_zip(
        [("manifest.json", json.dumps(manifest).encode()), ("arrays/a.npy", buf.getvalue())]
    )
    report = safeload.scan(data)
    assert report.format == "safeload"
    assert report.safe
    assert "safeload-format" in _rules(report, blocking_only=False)
    assert [g.name for g in report.globals] == ["sklearn.svm._classes.SVC"]


# --------------------------------------------------------------------------- never imports
def test_scan_never_imports_or_calls_what_the_file_names():
    module = f"safeload_scan_probe_{uuid.uuid4().hex}"
    expr = [
        New(G(module, "Thing")),
        G(module, "run")("x"),
        B(New(G(module, "Other")), {"a": G(module, "f")}),
    ]
    streams = [dumps(expr, p) for p in range(6)]
    streams += [gzip.compress(streams[2]), make_zip([("data.pkl", streams[4])])]
    streams += [dumps([joblib_array("O", (1,), streams[2])], 4)]
    for data in streams:
        report = safeload.scan(data)
        assert not report.safe
        assert module in report.untrusted_types[0]
    assert not [m for m in sys.modules if m.startswith("safeload_scan_probe_")]


def test_scanning_a_forest_imports_no_estimator_module(tmp_path):
    """In a fresh interpreter: scanning names sklearn.ensemble but never imports it."""
    from sklearn.ensemble import RandomForestClassifier

    X = np.random.default_rng(0).random((30, 3))
    rf = RandomForestClassifier(n_estimators=2, random_state=0).fit(X, np.arange(30) % 2)
    path = tmp_path / "rf.pkl"
    path.write_bytes(pickle.dumps(rf))
    code = textwrap.dedent(
        f"""
        import sys, safeload
        before = set(sys.modules)
        report = safeload.scan({str(path)!r})
        assert report.safe, report.findings
        new = sorted(set(sys.modules) - before)
        print(new)
        assert not [m for m in new if m.startswith(("sklearn", "scipy", "numpy"))], new
        assert "sklearn.ensemble._forest" not in sys.modules
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


# --------------------------------------------------------------------------- renderings
def test_report_dict_json_and_repr(logreg):
    report = safeload.scan(dumps([G("os", "system")("id"), B(New(G("m", "C")), {})], 2))
    d = report.to_dict()
    assert set(d) == {
        "path", "safe", "format", "protocol", "sklearn_version", "size", "untrusted_types",
        "globals", "findings", "streams",
    }  # fmt: skip
    assert json.loads(report.to_json()) == d
    assert d["untrusted_types"] == ["m.C", "os.system"]
    assert [f["severity"] for f in d["findings"]] == ["critical", "high"]
    assert d["findings"][0]["rule_id"] == "SL002"
    assert "safe=False" in repr(report) and "2 globals" in repr(report)


def test_sarif_shape(logreg, tmp_path):
    path = tmp_path / "m.pkl"
    data = dumps([G("os", "system")("id"), G("m", "f")()], 2)
    path.write_bytes(data)
    zipped = tmp_path / "z.zip"
    zipped.write_bytes(make_zip([("data.pkl", PAYLOAD)]))
    reports = [safeload.scan(path), safeload.scan(zipped), safeload.scan(pickle.dumps(logreg))]
    log = safeload.report.sarif_log(reports)
    _validate_sarif(log)
    results = log["runs"][0]["results"]
    assert len(results) == sum(len(r.findings) for r in reports)
    first = results[0]
    assert first["ruleId"] == "SL002" and first["level"] == "error"
    region = first["locations"][0]["physicalLocation"]["region"]
    assert region["byteOffset"] == data.index(b"cos\nsystem")
    member = [r for r in results if r["locations"][0].get("logicalLocations")]
    assert member and "region" not in member[0]["locations"][0]["physicalLocation"]
    assert json.loads(json.dumps(reports[0].to_sarif())) == reports[0].to_sarif()


def _validate_sarif(log: dict) -> None:
    """The SARIF 2.1.0 properties GitHub code scanning and other consumers require."""
    assert log["version"] == SARIF_VERSION == "2.1.0"
    assert log["$schema"].endswith("sarif-2.1.0.json")
    assert len(log["runs"]) == 1
    run = log["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] == "safeload" and driver["version"] == safeload.__version__
    ids = [r["id"] for r in driver["rules"]]
    assert len(ids) == len(set(ids)) == len(RULES)
    for rule in driver["rules"]:
        assert re.fullmatch(r"SL\d{3}", rule["id"])
        assert rule["shortDescription"]["text"] and rule["fullDescription"]["text"]
        assert rule["defaultConfiguration"]["level"] in ("error", "warning", "note")
    for result in run["results"]:
        assert result["ruleId"] in ids
        assert ids[result["ruleIndex"]] == result["ruleId"]
        assert result["level"] in ("error", "warning", "note")
        assert result["message"]["text"]
        assert result["locations"]
        for loc in result["locations"]:
            assert loc["physicalLocation"]["artifactLocation"]["uri"]
            region = loc["physicalLocation"].get("region")
            if region is not None:
                assert isinstance(region["byteOffset"], int) and region["byteOffset"] >= 0
    for artifact in run["artifacts"]:
        assert artifact["location"]["uri"]


def test_rule_ids_are_stable():
    """Rule ids are part of the output format: never renumber them."""
    assert {name: r.id for name, r in RULES.items()} == {
        "untrusted-global": "SL001", "dangerous-global": "SL002", "build-on-global": "SL003",
        "persistent-id": "SL004", "extension-code": "SL005", "out-of-band-buffer": "SL006",
        "call-of-result": "SL007", "forbidden-call": "SL008", "limit-exceeded": "SL009",
        "truncated-stream": "SL010", "trailing-data": "SL011", "corrupt-stream": "SL012",
        "unknown-format": "SL013", "foreign-format": "SL014", "npy-object-dtype": "SL015",
        "npy-malformed": "SL016", "zip-encrypted": "SL017", "zip-bad-crc": "SL018",
        "zip-duplicate-name": "SL019", "zip-unsafe-path": "SL020", "zip-bomb": "SL021",
        "zip-corrupt": "SL022", "json-malformed": "SL023", "skops-malformed": "SL024",
        "safeload-format": "SL025", "graph-cycle": "SL026", "object-array-stream": "SL027",
        "removed-global": "SL028", "scan-error": "SL099",
    }  # fmt: skip
    assert os.path.basename(safeload.report.__file__) == "report.py"


def test_urls_are_scanned_through_fsspec(logreg):
    fsspec = pytest.importorskip("fsspec")
    name = f"memory://scan-{uuid.uuid4().hex}/model.pkl"
    with fsspec.open(name, "wb") as fh:
        fh.write(pickle.dumps(logreg))
    report = safeload.scan(name)
    assert report.safe and report.path == name and report.format == "pickle"


# --------------------------------------------------------------------------- dtype states
def test_numpy_dtype_states_are_checked_before_setstate():
    from safeload._dtypestate import dtype_state_problem

    for spec in ["f8", "<i4", ">u2", "U7", "S3", "O", "M8[ns]", "m8[s]", "c16", "?", "V12",
                 [("a", "<f8"), ("b", "<i4", (3,))], ("f8", (2, 3))]:  # fmt: skip
        assert dtype_state_problem(np.dtype(spec).__reduce__()[2]) is None, spec
    titled = np.dtype({"names": ["x", "y"], "formats": ["f4", "O"], "titles": ["T", None]})
    assert dtype_state_problem(titled.__reduce__()[2]) is None
    assert dtype_state_problem(np.dtype("f8", metadata={"k": 1}).__reduce__()[2]) is None
    for bad in [(3, "<", None, -1, -1, 0), (3, {}, None, None, None, -1, -1, 0),
                (3, "<", None, ("a",), None, -1, -1, 0), (5, "<", None, None, None, -1, -1, 0),
                (3, "<", None, ("a", "a"), {"a": 1}, 8, 1, 0), None, "x"]:  # fmt: skip
        assert dtype_state_problem(bad) is not None, bad


def test_malformed_dtype_state_is_unsafe_and_never_replayed():
    """numpy 2.4 segfaults on ``dtype('f8', False, True).__setstate__((3, '<', None, -1, -1,
    0))``: the scanner reports it and never calls ``__setstate__`` with it (run in a child, so
    a regression crashes the child, not the test session)."""
    bad_state = (3, "<", None, -1, -1, 0)
    raw = dumps([B(G("numpy", "dtype")("f8", False, True), bad_state)], 2)
    wrapped = dumps([_joblib_wrapper_with_dtype_state(bad_state)], 4)
    code = textwrap.dedent(
        f"""
        import safeload
        raw = safeload.scan({raw!r})
        assert not raw.safe and "bad-dtype-state" in raw.findings[0].message, raw.findings
        wrapped = safeload.scan({wrapped!r})
        assert not wrapped.safe, wrapped.findings
        assert "invalid dtype in joblib array wrapper" in wrapped.findings[0].message
        try:
            safeload.loads({wrapped!r})
        except safeload.FormatError:
            pass
        print("ok")
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "ok" in proc.stdout, (proc.returncode, proc.stderr[-2000:])


def _joblib_wrapper_with_dtype_state(state):
    """A NumpyArrayWrapper whose dtype carries ``state`` (then 8 raw bytes)."""
    o = Ops()
    o.global_("joblib.numpy_pickle", "NumpyArrayWrapper").tuple_(0).newobj()
    o.empty_dict().mark()
    o.unicode("subclass").global_("numpy", "ndarray")
    o.unicode("shape").int_(1).tuple_(1)
    o.unicode("order").unicode("C")
    o.unicode("dtype").global_("numpy", "dtype").unicode("f8")
    o.op(pickle.NEWFALSE).op(pickle.NEWTRUE).tuple_(3).reduce()
    o.raw(dumps(state, 2)[2:-1]).build()
    o.setitems().build()
    o.raw(b"\0" * 8)
    return Mark(o.value())
