"""Attacks on the deferred payloads (safeload/readers/payloads.py) and on the vocabulary
check, found by the attack review of the session that added them; each was a real bypass or
a difference from pickle before its fix.

* A vocabulary vouched for by the builder's atomic-items pass and changed afterwards (bytes
  keys that collapse when rebuilt; a ``__setstate__`` popping from a dict shared as its state):
  ``CountVectorizer.transform`` then indexed out of bounds.  The fused check was reverted; the
  validator checks the final dict.
* A ``BUILD`` on a deferred payload marker set its offset and length (slot state): the builder
  read any part of the file, and allocated any size the file chose, past every limit.
* A tree state holding another reference to its node array kept a view of the reused scratch
  buffer in the result.
"""

from __future__ import annotations

import copyreg
import io
import pickle
import struct
import subprocess
import sys
import textwrap
from pickle import EMPTY_DICT, _Pickler

import numpy as np
import pytest
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

import safeload
from safeload.errors import FormatError, ValidationError

N = 2048


def _dedup_file(tmp_path):
    """Protocol 2: bytes keys are ``_codecs.encode`` calls, distinct until built, equal after."""
    target = {"tt": 0}
    pairs = [(bytes(bytearray(b"xy")), i) for i in range(N - 1)] + [("tt", N - 1)]

    class P(_Pickler):
        dispatch = dict(_Pickler.dispatch)

        def save_dict(self, obj):
            if obj is not target:
                return _Pickler.save_dict(self, obj)
            self.write(EMPTY_DICT)
            self.memoize(obj)
            self._batch_setitems(iter(pairs))

        dispatch[dict] = save_dict

    cv = CountVectorizer().fit(["tt uu"])
    cv.vocabulary_ = target
    buf = io.BytesIO()
    P(buf, protocol=2).dump(cv)
    path = tmp_path / "cv.pkl"
    path.write_bytes(buf.getvalue())
    return path


def _pop_file(tmp_path):
    """A StandardScaler whose BUILD state is the vocabulary itself (its __setstate__ pops)."""
    vocab = {"_sklearn_version": 0, **{f"t{i}": i for i in range(1, N)}}
    scaler = StandardScaler()

    class P(pickle.Pickler):
        def reducer_override(self, obj):
            if obj is scaler:
                return (copyreg.__newobj__, (StandardScaler,), vocab)
            return NotImplemented

    cv = CountVectorizer().fit(["t1 t2"])
    cv.vocabulary_ = vocab
    buf = io.BytesIO()
    P(buf, protocol=5).dump((scaler, cv))
    path = tmp_path / "pop.pkl"
    path.write_bytes(buf.getvalue())
    return path


def test_vocabulary_deduplicated_while_building_is_refused(tmp_path):
    with pytest.raises(ValidationError, match="vocabulary_"):
        safeload.load(_dedup_file(tmp_path))


@pytest.mark.filterwarnings("ignore")
def test_vocabulary_shrunk_by_a_setstate_is_refused(tmp_path):
    with pytest.raises(ValidationError, match="vocabulary_"):
        safeload.load(_pop_file(tmp_path))


def _marker_build_stream(length, offset=None, mutable=True):
    """A 70,000-byte payload between frames, then BUILD (None, {slots}) on it."""
    slots = {"length": length}
    if offset is not None:
        slots["offset"] = offset
    state = pickle.dumps((None, slots), protocol=2)[2:-1]  # opcodes only
    body = state + b"b"  # BUILD
    return (
        b"\x80\x05"
        + (b"\x96" if mutable else b"\x8e")
        + struct.pack("<Q", 70000)
        + b"A" * 70000
        + b"\x95"
        + struct.pack("<Q", len(body))
        + body
        + b"."
    )


@pytest.mark.parametrize("mutable", [True, False])
def test_build_on_a_payload_marker_is_a_format_error(tmp_path, mutable):
    data = _marker_build_stream(100, offset=0, mutable=mutable)
    with pytest.raises(AttributeError):
        pickle.loads(data)  # bytes and bytearray have no state to set
    path = tmp_path / "m.pkl"
    path.write_bytes(data)
    assert not safeload.scan(path).safe
    with pytest.raises(FormatError, match="corrupt pickle stream: AttributeError"):
        safeload.load(path)


def test_a_payload_marker_can_not_steer_an_allocation(tmp_path):
    path = tmp_path / "m.pkl"
    path.write_bytes(_marker_build_stream(3_000_000_000))  # a 70 KB file
    # VmHWM reset in the child (ru_maxrss would include the forking pytest worker's RSS)
    code = textwrap.dedent(
        f"""
        import safeload

        def status(key):
            with open("/proc/self/status") as fh:
                for line in fh:
                    if line.startswith(key):
                        return int(line.split()[1]) // 1024

        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        start = status("VmRSS:")
        try:
            safeload.load({str(path)!r})
        except safeload.errors.SafeloadError as e:
            print(type(e).__name__)
        print(status("VmHWM:") - start)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    error, growth_mb = out.stdout.split()
    assert error == "FormatError"
    assert int(growth_mb) < 50, f"a 70 KB file made the load grow by {growth_mb} MB"


class _TreeWithState:
    def __init__(self, tree, state):
        self.tree, self.state = tree, state

    def __reduce__(self):
        cls, args, _ = self.tree.__reduce__()
        return cls, args, self.state


def test_a_tree_node_array_kept_elsewhere_in_its_state_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(6000, 6))
    y = rng.integers(0, 3, size=6000)
    tree = DecisionTreeClassifier(random_state=0).fit(X, y).tree_
    state = tree.__getstate__()
    assert state["nodes"].nbytes >= 65536  # deferred and lent
    leak = {"n": state["nodes"]}
    state["extra"] = leak
    data = pickle.dumps((_TreeWithState(tree, state), leak), protocol=5)
    path = tmp_path / "t.pkl"
    path.write_bytes(data)
    assert pickle.loads(data)[1]["n"].flags.writeable  # plain pickle: a writable copy
    with pytest.raises(FormatError, match="also referenced from elsewhere"):
        safeload.load(path)
