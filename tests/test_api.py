"""Public API of the restricted loader: inputs, format detection, policy, errors."""

from __future__ import annotations

import fractions
import gzip
import io
import pickle
import pickletools

import joblib
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import safeload
from safeload.errors import (
    ForbiddenOperationError,
    FormatError,
    LimitExceededError,
    PolicyError,
    SafeloadError,
    UntrustedTypesError,
)
from tests.attacks._pickle_builder import Ops


@pytest.fixture(scope="module")
def model():
    rng = np.random.RandomState(0)
    X = rng.randn(40, 3)
    y = (X[:, 0] > 0).astype(int)
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y), X


def _same(a, b, X):
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_every_protocol_loads(model, protocol):
    est, X = model
    _same(safeload.loads(pickle.dumps(est, protocol=protocol)), est, X)


def test_path_pathlike_fileobj_and_bytes(model, tmp_path):
    est, X = model
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps(est))
    _same(safeload.load(str(path)), est, X)
    _same(safeload.load(path), est, X)
    with open(path, "rb") as fh:
        _same(safeload.load(fh), est, X)
    _same(safeload.load(io.BytesIO(path.read_bytes())), est, X)
    _same(safeload.loads(path.read_bytes()), est, X)


def test_format_is_detected_from_content_not_name(model, tmp_path):
    est, X = model
    for name, payload in [
        ("model.joblib", pickle.dumps(est)),  # a plain pickle named .joblib
        ("model.pkl", _joblib_bytes(est, tmp_path, 3)),  # zlib joblib named .pkl
        ("model.bin", gzip.compress(pickle.dumps(est))),  # gzip pickle, odd name
        ("model", _joblib_bytes(est, tmp_path, 0)),
    ]:
        p = tmp_path / name
        p.write_bytes(payload)
        _same(safeload.load(p), est, X)


def _joblib_bytes(est, tmp_path, compress):
    p = tmp_path / f"tmp-{compress}.joblib"
    joblib.dump(est, p, compress=compress)
    return p.read_bytes()


@pytest.mark.parametrize(
    "compress", [0, 3, ("zlib", 3), ("gzip", 3), ("bz2", 3), ("lzma", 3), ("xz", 3), ("lz4", 3)]
)
def test_joblib_compressors(model, tmp_path, compress):
    pytest.importorskip("lz4") if compress == ("lz4", 3) else None
    est, X = model
    p = tmp_path / "m.joblib"
    joblib.dump(est, p, compress=compress)
    _same(safeload.load(p), est, X)


def test_joblib_object_array_inner_stream_is_audited(tmp_path):
    arr = np.array(["a", "bb", None], dtype=object)
    p = tmp_path / "obj.joblib"
    joblib.dump({"labels": arr}, p)
    out = safeload.load(p)
    assert out["labels"].dtype == object
    assert out["labels"].tolist() == ["a", "bb", None]


def test_untrusted_lists_every_global_sorted_and_imports_nothing():
    # two untrusted globals; modules that do not even exist must not be imported
    data = b"\x80\x02cnot_a_module_xyz\nfunc\nq\x00cos\nsystem\nq\x01\x86q\x02."
    with pytest.raises(UntrustedTypesError) as info:
        safeload.loads(data)
    assert info.value.types == ["not_a_module_xyz.func", "os.system"]
    assert isinstance(info.value, pickle.UnpicklingError)
    assert set(info.value.reasons) == {"not_a_module_xyz.func", "os.system"}
    import sys

    assert "not_a_module_xyz" not in sys.modules


def test_trusted_extends_one_call_only():
    data = pickle.dumps(fractions.Fraction)  # a class the default policy does not trust
    with pytest.raises(UntrustedTypesError) as info:
        safeload.loads(data)
    assert info.value.types == ["fractions.Fraction"]
    assert safeload.loads(data, trusted=["fractions.Fraction"]) is fractions.Fraction
    with pytest.raises(UntrustedTypesError):
        safeload.loads(data)


def test_trusted_true_and_wildcards_are_refused():
    with pytest.raises(PolicyError, match="trusted=True"):
        safeload.loads(pickle.dumps(1), trusted=True)
    with pytest.raises(PolicyError, match="exact"):
        safeload.loads(pickle.dumps(1), trusted=["numpy.*"])
    with pytest.raises(PolicyError, match="never be trusted"):
        safeload.loads(pickle.dumps(1), trusted=["builtins.eval"])


def test_policy_is_immutable_and_reusable():
    base = safeload.Policy.default()
    extended = base.extend([fractions.Fraction])
    assert extended is not base
    assert extended.is_trusted(("fractions", "Fraction"))
    assert not base.is_trusted(("fractions", "Fraction"))
    with pytest.raises(TypeError):
        base.trusted[("os", "system")] = "x"  # type: ignore[index]
    assert safeload.loads(pickle.dumps(fractions.Fraction), policy=extended) is fractions.Fraction


def test_empty_policy_trusts_nothing():
    with pytest.raises(UntrustedTypesError) as info:
        safeload.loads(pickle.dumps({1, 2}, protocol=2), policy=safeload.Policy({}))
    assert info.value.types == ["__builtin__.set"]  # protocol < 3 writes Python 2 names
    assert safeload.loads(pickle.dumps([1, 2], protocol=5), policy=safeload.Policy({})) == [1, 2]


def test_error_hierarchy():
    assert issubclass(safeload.LegacyFormatError, FormatError)
    for cls in (
        UntrustedTypesError,
        FormatError,
        safeload.LegacyFormatError,
        LimitExceededError,
        ForbiddenOperationError,
        safeload.ValidationError,
        PolicyError,
    ):
        assert issubclass(cls, SafeloadError)


@pytest.mark.parametrize(
    "data, fragment",
    [
        (b"", "empty"),
        (b"\x80\x05K\x01", "truncated"),  # no STOP
        (b"\x80\x05K\x01.trailing", "trailing"),
        (b"\x80\x05\xff.", "invalid pickle opcode"),
        (b"PK\x03\x04" + b"\0" * 30, "zip"),
        (b"\x93NUMPY\x01\x00", ".npy"),
        (b"hello world", "unknown file format"),
        (b"\x00\x01\x02", "unknown file format"),
    ],
)
def test_format_errors(data, fragment):
    with pytest.raises(FormatError, match=fragment):
        safeload.loads(data)


def test_protocol0_without_proto_opcode(model):
    est, X = model
    data = pickle.dumps(est, protocol=0)
    assert data[:1] != b"\x80"
    _same(safeload.loads(data), est, X)


def test_limits_are_enforced_before_allocation():
    arr = np.zeros(1000)
    data = pickle.dumps(arr, protocol=2)
    with pytest.raises(LimitExceededError) as info:
        safeload.loads(data, limits=safeload.Limits(max_array_bytes=4000))
    assert info.value.limit == "max_array_bytes"
    assert info.value.allowed == 4000


def test_build_on_trusted_class_is_forbidden():
    # BUILD with a dict state on the LogisticRegression *class* (would monkey-patch it)
    data = (
        Ops(4)
        .stack_global("sklearn.linear_model._logistic", "LogisticRegression")
        .empty_dict()
        .unicode("x")
        .int_(1)
        .setitem()
        .build()
        .done()
    )
    with pytest.raises(ForbiddenOperationError) as info:
        safeload.loads(data)
    assert info.value.operation == "build-on-global"
    assert not hasattr(LogisticRegression, "x")


def test_calling_a_value_only_function_is_forbidden():
    data = (
        Ops(4)
        .stack_global("sklearn.feature_selection._univariate_selection", "f_classif")
        .empty_list()
        .int_(1)
        .append()
        .empty_list()
        .int_(1)
        .append()
        .tuple_(2)
        .reduce()
        .done()
    )
    with pytest.raises(ForbiddenOperationError) as info:
        safeload.loads(data)
    assert info.value.operation == "call-of-value"


def test_fsspec_memory_filesystem(model):
    fsspec = pytest.importorskip("fsspec")
    est, X = model
    fs = fsspec.filesystem("memory")
    with fs.open("/models/m.pkl", "wb") as fh:
        fh.write(pickle.dumps(est))
    _same(safeload.load("memory://models/m.pkl"), est, X)


def test_python2_style_str_payloads_decode_as_latin1():
    # protocol 2 stream as Python 2 writes a numpy array: data as a BINSTRING
    arr = np.arange(4, dtype="<i4")
    raw = arr.tobytes()
    data = (
        b"\x80\x02cnumpy.core.multiarray\n_reconstruct\nq\x01cnumpy\nndarray\nq\x02K\x00"
        b"\x85U\x01b\x87Rq\x03(K\x01K\x04\x85cnumpy\ndtype\nU\x02i4K\x00K\x01\x87Rq\x04"
        b"(K\x03U\x01<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89U"
        + bytes([len(raw)])
        + raw
        + b"tb."
    )
    pickletools.dis(data, out=io.StringIO())  # well-formed
    np.testing.assert_array_equal(safeload.loads(data), arr)


def test_malformed_dtype_state_is_refused_not_a_segfault():
    """Regression: numpy 2.4 segfaults on dtype('f8').__setstate__((3, '<', None, -1, -1, 0))."""
    data = (
        b"\x80\x02](cnumpy\ndtype\n\x8c\x02f8\x89\x88\x87R(K\x03\x8c\x01<NJ\xff\xff\xff\xff"
        b"J\xff\xff\xff\xffK\x00tbe."
    )
    with pytest.raises(FormatError, match="dtype state"):
        safeload.loads(data)
