"""Families *wrapper-joblib* / *wrapper-compression*: the payload inside joblib or compression.

A plain malicious pickle saved as ``.joblib`` (F01); the same inside joblib's zlib, gzip, bz2,
xz, lzma or lz4 compression (F02-F05) — static scanners that do not decompress see only
compressed bytes; ``gzip.open``/``bz2.open`` pickles; a payload placed after real joblib arrays
(the part of the stream read by the joblib reader) or as the value of an estimator attribute.
safeload detects the compressor by magic bytes, decompresses with a size cap and audits the
decompressed stream exactly like a raw one.

Public sources (CATALOG.md): F01 https://github.com/joblib/joblib/issues/977; F02-F05 nullifAI
(7z) / compression-wrapped pickles (picklescan/modelscan do not decompress joblib).
"""

from __future__ import annotations

import io

import joblib
import numpy as np
import pytest

import safeload

from ._pickle_builder import B, G, New, compress, dumps, joblib_array, variants
from .conftest import Forbidden, Format, Untrusted, assert_refused

CMD = 'touch "$SAFELOAD_CANARY_DIR/wrapper"'
COMPRESSORS = ["zlib", "gzip", "bz2", "xz", "lzma", "lz4"]
LOGREG = G("sklearn.linear_model._logistic", "LogisticRegression")

PAYLOADS = {
    "os.system": (G("os", "system")(CMD), Untrusted("os.system")),
    "exec-partial": (
        G("functools", "partial")(G("builtins", "exec"), "1"),
        Untrusted("builtins.exec"),
    ),
    "reconstructor-popen": (
        G("copyreg", "_reconstructor")(LOGREG, G("subprocess", "Popen"), ["true"]),
        Untrusted("subprocess.Popen"),
    ),
    "value-call": (G("numpy", "log1p")(1.0), Forbidden("call-of-value")),
    "build-on-global": (B(G("numpy", "log1p"), {"x": 1}), Forbidden("build-on-global")),
}


@pytest.mark.parametrize("comp", COMPRESSORS)
@pytest.mark.parametrize("payload", list(PAYLOADS))
@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_compressed_plain_pickle(protocol, payload, comp):
    expr, expected = PAYLOADS[payload]
    assert_refused(compress(dumps(expr, protocol), comp), expected)


@pytest.mark.parametrize("comp", COMPRESSORS)
def test_every_spelling_compressed(comp):
    for data in variants(G("os", "system")(CMD), (0, 2, 4)).values():
        assert_refused(compress(data, comp), Untrusted("os.system"))


@pytest.mark.parametrize("comp", [None, *COMPRESSORS])
@pytest.mark.parametrize("payload", list(PAYLOADS))
@pytest.mark.parametrize("where", ["after-arrays", "before-arrays", "in-estimator"])
def test_payload_in_a_joblib_file_with_arrays(where, payload, comp):
    """The joblib reader (pure-Python path after the first wrapper) audits the same way."""
    expr, expected = PAYLOADS[payload]
    arrays = [joblib_array("f8", (3,)), joblib_array("i4", (2, 2), order="F")]
    if where == "after-arrays":
        doc = [*arrays, expr]
    elif where == "before-arrays":
        doc = [expr, *arrays]
    else:
        doc = B(New(LOGREG), {"coef_": arrays[0], "intercept_": arrays[1], "classes_": expr})
    data = dumps(doc, 4)
    assert_refused(data if comp is None else compress(data, comp), expected)


@pytest.mark.parametrize("comp", COMPRESSORS)
def test_sklearn_externals_joblib_module_spelling(comp):
    """Old files name ``sklearn.externals.joblib.numpy_pickle``; same reader, same audit."""
    arr = joblib_array("f8", (2,), module="sklearn.externals.joblib.numpy_pickle")
    data = dumps([arr, G("os", "system")(CMD)], 2)
    assert_refused(compress(data, comp), Untrusted("os.system"))


@pytest.mark.parametrize("comp", COMPRESSORS)
def test_real_joblib_dump_then_payload_appended_inside_the_compression(comp):
    """A benign ``joblib.dump`` stream re-compressed with a payload spliced before STOP."""
    buf = io.BytesIO()
    joblib.dump({"w": np.arange(4.0)}, buf)
    benign = buf.getvalue()
    assert safeload.loads(compress(benign, comp))["w"].tolist() == [0.0, 1.0, 2.0, 3.0]
    spliced = benign[:-1] + dumps(G("os", "system")(CMD), 2)[2:-1] + b"\x86."  # TUPLE2, STOP
    assert_refused(compress(spliced, comp), Untrusted("os.system"))


@pytest.mark.parametrize("comp", ["zlib", "gzip", "bz2", "xz", "lzma"])
def test_wrapper_subclass_and_dtype_are_audited(comp):
    """The wrapper's own ``subclass``/``dtype`` globals go through the same checks."""
    cases = {
        ("numpy", "memmap"): Untrusted("numpy.memmap"),
        ("os", "system"): Format("subclass"),
        ("sklearn.linear_model._logistic", "LogisticRegression"): Format("subclass"),
    }
    for subclass, expected in cases.items():
        data = dumps([joblib_array(subclass=subclass)], 4)
        assert_refused(compress(data, comp), expected)
    data = dumps([joblib_array(dtype_global=("os", "system"))], 4)
    assert_refused(compress(data, comp), Format("dtype"))
