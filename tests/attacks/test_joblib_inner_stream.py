"""Family *joblib-inner-stream*: an object-dtype array whose body is a second pickle stream.

joblib writes an object array as a ``NumpyArrayWrapper`` with an object dtype followed by a
*complete nested pickle stream*, which ``read_array`` unpickled with plain ``pickle.load``
before joblib 1.6 (F06), also inside compression (F07).  A ``find_class``-only restriction on
the outer unpickler does not cover it.  safeload parses the inner stream with the same inert
machinery and the same context, so its globals are audited with the outer ones, its forbidden
constructs are refused, its trusted calls keep their argument checks, nesting is bounded, and
a broken inner stream is a ``FormatError``.

Public sources (CATALOG.md): F06 CVE-2024-34997, https://github.com/joblib/joblib/issues/1582,
GHSA-m62q-453p-gv66 (joblib PR 1795); F07 the same + compression.
"""

from __future__ import annotations

import io
import pickle

import joblib
import numpy as np
import pytest

import safeload

from ._pickle_builder import B, G, New, compress, dumps, joblib_array
from .conftest import Forbidden, Format, Limit, Untrusted, assert_refused

CMD = 'touch "$SAFELOAD_CANARY_DIR/inner"'
BOXES = ["raw", "zlib", "gzip", "bz2", "xz", "lzma", "lz4"]
LOGREG = G("sklearn.linear_model._logistic", "LogisticRegression")


def _box(data: bytes, box: str) -> bytes:
    return data if box == "raw" else compress(data, box)


INNER = {
    "os.system": (G("os", "system")(CMD), Untrusted("os.system")),
    "exec": (G("builtins", "exec")("1"), Untrusted("builtins.exec")),
    "pickle.loads": (
        G("pickle", "loads")(dumps(G("os", "system")(CMD), 2)),
        Untrusted("pickle.loads"),
    ),
    "dotted": (
        G("numpy", "lib._npyio_impl.os.system")(CMD),
        Untrusted("numpy.lib._npyio_impl.os.system"),
    ),
    "randomstate-ctor": (
        G("numpy.random._pickle", "__randomstate_ctor")("MT19937", G("numpy", "log1p")),
        Forbidden("untrusted-argument"),
    ),
    "value-call": (
        G("sklearn.feature_selection._univariate_selection", "f_classif")(1),
        Forbidden("call-of-value"),
    ),
    "build-on-global": (B(G("numpy", "sum"), {"x": 1}), Forbidden("build-on-global")),
    "huge-array": (
        G("numpy._core.multiarray", "_reconstruct")(G("numpy", "ndarray"), (2**40,), b"b"),
        Limit("max_array_bytes"),
    ),
    "set-range": (G("builtins", "set")(G("builtins", "range")(2**40)), Forbidden("lazy-iterable")),
}


def object_array_file(inner_stream: bytes, *, count: int = 1, outer=None) -> bytes:
    """A joblib file: a list holding one object array whose nested stream is ``inner_stream``."""
    items = [joblib_array("O", (count,), inner_stream)]
    if outer is not None:
        items.append(outer)
    return dumps(items, 4)


@pytest.mark.parametrize("box", BOXES)
@pytest.mark.parametrize("inner_protocol", [2, 4, 5])
@pytest.mark.parametrize("payload", list(INNER))
def test_inner_stream_is_audited(payload, inner_protocol, box):
    expr, expected = INNER[payload]
    data = object_array_file(dumps([expr], inner_protocol))
    assert_refused(_box(data, box), expected)


@pytest.mark.parametrize("box", ["raw", "zlib", "gzip"])
def test_inner_and_outer_globals_in_one_report(box):
    data = object_array_file(
        dumps([G("os", "system")(CMD)], 4), outer=G("subprocess", "call")(["true"])
    )
    assert_refused(_box(data, box), Untrusted("os.system", "subprocess.call"))


@pytest.mark.parametrize("box", ["raw", "gzip", "xz"])
def test_inner_stream_inside_an_estimator_attribute(box):
    """F06 as it appears in a real model: ``LabelEncoder.classes_`` is an object array."""
    inner = dumps([G("os", "system")(CMD)], 4)
    doc = B(
        New(G("sklearn.preprocessing._label", "LabelEncoder")),
        {"classes_": joblib_array("O", (1,), inner)},
    )
    assert_refused(_box(dumps(doc, 4), box), Untrusted("os.system"))


@pytest.mark.parametrize("box", ["raw", "gzip"])
@pytest.mark.parametrize("depth", [2, 3, 4])
def test_nested_object_arrays_within_the_limit_are_audited(depth, box):
    stream = dumps([G("os", "system")(CMD)], 4)
    for _ in range(depth):
        stream = object_array_file(stream)
    assert_refused(_box(stream, box), Untrusted("os.system"))


@pytest.mark.parametrize("box", ["raw", "gzip"])
@pytest.mark.parametrize("depth", [5, 8, 40])
def test_nesting_object_arrays_is_bounded(depth, box):
    stream = dumps([1], 4)
    for _ in range(depth):
        stream = object_array_file(stream)
    assert_refused(_box(stream, box), Limit("max_depth"))


@pytest.mark.parametrize("box", ["raw", "zlib"])
def test_object_array_count_bounded_by_max_items(box):
    data = object_array_file(dumps([1], 4), count=10**9)
    assert_refused(_box(data, box), Limit("max_items"))


@pytest.mark.parametrize(
    "inner",
    [
        dumps(G("os", "system")(CMD), 4)[:-1] + b"\xff.",
        dumps(G("os", "system")(CMD), 4)[:-1],
        dumps([1], 4)[: len(dumps([1], 4)) // 2],
    ],
    ids=["invalid-op", "no-stop", "truncated"],
)
@pytest.mark.parametrize("box", ["raw", "zlib", "bz2"])
def test_broken_inner_stream(inner, box):
    assert_refused(_box(object_array_file(inner), box), Format())


@pytest.mark.parametrize("box", ["raw", "zlib", "gzip"])
def test_structured_dtype_with_object_field_is_an_inner_stream_too(box):
    """``hasobject`` (not ``descr == '|O'``) decides: a record with an object field."""
    assert np.dtype("f8,O").hasobject and np.dtype("f8,O").str != "|O"
    inner = dumps([G("os", "system")(CMD)], 4)
    data = dumps([joblib_array("f8,O", (1,), inner)], 4)
    assert_refused(_box(data, box), Untrusted("os.system"))


def test_real_joblib_object_array_loads():
    """Control: ``joblib.dump`` of an object array of str (LabelEncoder.classes_) loads."""
    buf = io.BytesIO()
    joblib.dump({"c": np.array(["a", "b"], dtype=object)}, buf)
    out = safeload.loads(buf.getvalue())
    assert out["c"].tolist() == ["a", "b"]


def test_real_joblib_object_array_with_payload_spliced_in():
    """Take a real ``joblib.dump`` file and replace its inner stream by a payload."""
    buf = io.BytesIO()
    joblib.dump([np.array(["a"], dtype=object)], buf)
    real = buf.getvalue()
    benign_inner = pickle.dumps(np.array(["a"], dtype=object), protocol=5)
    assert benign_inner[:2] == b"\x80\x05"
    start = real.index(b"\x80\x05", 2)
    evil = real[:start] + dumps(G("os", "system")(CMD), 5) + b"."  # outer STOP
    assert_refused(evil, Untrusted("os.system"))
