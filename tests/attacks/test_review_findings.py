"""Regression tests for the bypasses an adversarial review found (one per finding).

* numpy dtype states: ``dtype.__setstate__`` trusts its input — a malformed state (57 bytes)
  or a version-3 state on a datetime dtype crashes the interpreter; a dtype whose state holds
  an array built with that same dtype is changed under the array (forged object pointers).
* time of check / time of use: a second ``BUILD`` replaced a ``TreePredictor``'s nodes after
  the estimator holding it had been validated, so the model loaded and crashed on ``predict``.
* non-``SafeloadError`` escapes: unhashable keys built from the file, shapes of 5,000 digits
  (int-to-str conversion limit in messages), a trusted constructor rejecting its arguments.

Each runs in a bounded child process where a crash would take the test runner down.
"""

from __future__ import annotations

import io
import pickle
import struct

import numpy as np
import pytest

import safeload

from .conftest import run_bounded

DTYPE_MALFORMED = (
    b"\x80\x02cnumpy\ndtype\n\x8c\x02f8\x89\x88\x87R(K\x03\x8c\x01<NJ\xff\xff\xff\xff"
    b"J\xff\xff\xff\xffK\x00tb."
)
DTYPE_DATETIME_V3 = (
    b"\x80\x02cnumpy\ndtype\n\x8c\x02M8\x89\x88\x87R(K\x03\x8c\x01<NNNJ\xff\xff\xff\xff"
    b"J\xff\xff\xff\xffK\x00tb."
)
DTYPE_OBJECT_POINTER = (
    b"\x80\x02cnumpy\ndtype\n\x8c\x02V8\x89\x88\x87Rq\x00(K\x04\x8c\x01|N\x8c\x01a\x85}(\x8c"
    b"\x01acnumpy\ndtype\n\x8c\x01O\x89\x88\x87RK\x00\x86uK\x08K\x01K\x1b}\x8c\x01xcnumpy."
    b"_core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85C\x01b\x87R(K\x01K\x01\x85h"
    b"\x00\x89C\x08AAAAAAAAtbq\x01stb."
)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (DTYPE_MALFORMED, "dtype state"),
        (DTYPE_DATETIME_V3, "datetime dtype state"),
        (DTYPE_OBJECT_POINTER, "may only hold"),
    ],
    ids=["malformed", "datetime-v3", "array-in-state"],
)
def test_hostile_dtype_states_are_refused_without_crashing(data, fragment):
    out = run_bounded(data, timeout=20)
    assert out.error == "FormatError", out.message
    assert fragment in out.message


def test_real_dtype_states_still_load():
    values = [np.zeros(2, dtype=d) for d in ("f8", ">f8", "<U3", "M8[s]", "m8[ms]", "O", "?")]
    values.append(np.zeros(2, dtype=[("a", "<i4"), ("b", ">f8", (2,))]))
    for protocol in (0, 2, 5):
        data = pickle.dumps(values, protocol=protocol)
        reference = pickle.loads(data)  # our own objects: what the stdlib restores
        loaded = safeload.loads(data)
        for got, want in zip(loaded, reference, strict=True):
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)


def _hgb_second_build_stream() -> bytes:
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor
    from sklearn.pipeline import Pipeline

    rng = np.random.RandomState(0)
    X = rng.rand(200, 3)
    est = HistGradientBoostingRegressor(max_iter=2, max_depth=2).fit(X, X[:, 0])
    pred = est._predictors[0][0]
    good = dict(pred.__dict__)
    bad_nodes = pred.nodes.copy()
    bad_nodes["feature_idx"][np.flatnonzero(bad_nodes["is_leaf"] == 0)] = 1 << 28
    pipe = Pipeline([("hgb", est)])

    class TwoBuilds(pickle._Pickler):  # type: ignore[name-defined]
        def save(self, obj, save_persistent_id=True):
            if obj is pipe:
                state = {"_x": pred, **pipe.__dict__}
                self.save(Pipeline)
                self.save(())
                self.write(pickle.NEWOBJ)
                self.memoize(obj)
                self.save(state)
                self.write(pickle.BUILD)
                return None
            if obj is pred and id(obj) not in self.memo:
                self.save(TreePredictor)
                self.save(())
                self.write(pickle.NEWOBJ)
                self.memoize(obj)
                self.save(good)
                self.write(pickle.BUILD)
                self.save({"x": est, "nodes": bad_nodes})
                self.write(pickle.BUILD)
                return None
            return super().save(obj, save_persistent_id)

    buf = io.BytesIO()
    TwoBuilds(buf, protocol=2).dump(pipe)
    return buf.getvalue()


def test_second_build_after_validation_is_refused():
    out = run_bounded(_hgb_second_build_stream(), timeout=30)
    assert out.error == "ForbiddenOperationError", out.message
    assert "repeated-build" in out.message


HUGE = pickle.encode_long(10**5000)


@pytest.mark.parametrize(
    "data",
    [
        b"\x80\x02}(cbuiltins\nslice\nK\x01K\x02\x86RK\x01u.",
        b"\x80\x02csklearn.tree._tree\nTree\nK\x01](](K\x01e](K\x01K\x02eeK\x01\x87R.",
        b"\x80\x02cnumpy._core.numeric\n_frombuffer\n(C\x08"
        + b"\0" * 8
        + b"cnumpy\ndtype\n\x8c\x02i8\x89\x88\x87RK\x01\x8c\x01CK\x00\x85tR.",
        b"\x80\x02cnumpy._core.multiarray\n_reconstruct\ncnumpy\nndarray\n\x8b"
        + struct.pack("<i", len(HUGE))
        + HUGE
        + b"\x85C\x01b\x87R.",
        b"\x80\x02cbuiltins\nbytearray\n\x8b" + struct.pack("<i", len(HUGE)) + HUGE + b"\x85R.",
    ],
    ids=[
        "unhashable-key",
        "tree-ragged-classes",
        "frombuffer-int-shape",
        "huge-shape",
        "huge-bytearray",
    ],
)
def test_only_safeload_errors_leave_a_load(data):
    with pytest.raises(safeload.SafeloadError):
        safeload.loads(data)
