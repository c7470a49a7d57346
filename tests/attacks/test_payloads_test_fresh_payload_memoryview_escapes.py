"""Regression tests from the second attack review of deferred payloads (session 3).
Fixed: the fresh buffer is passed to that one _frombuffer call and never memoized; another reference gets its own bytes/bytearray.

The finding as reported:

A deferred payload shared between numpy's ``_frombuffer`` and any other place in the file is
memoized by ``Builder._fresh_payload`` as a *memoryview* (``PayloadSource.fresh``); every other
reference then receives that memoryview instead of the ``bytearray``/``bytes`` that
``pickle.loads`` gives.  (A protocol-5 stream; the payload is written between frames, as
picklers do for anything >= 64 KiB.)"""

import io
import os
import pickle

import numpy as np
import pytest

import safeload

try:
    from numpy._core.numeric import _frombuffer
except ImportError:  # numpy < 2
    from numpy.core.numeric import _frombuffer

N = 1 << 17


def _stream(mutable: bool) -> tuple[bytes, object]:
    raw = os.urandom(N)
    buf_obj = bytearray(raw) if mutable else raw
    marker = object()

    class P(pickle.Pickler):
        def reducer_override(self, obj):
            if obj is marker:  # exactly what ndarray.__reduce_ex__(5) writes, on a shared buffer
                return (_frombuffer, (buf_obj, np.dtype("u1"), (N,), "C"))
            return NotImplemented

    out = io.BytesIO()
    P(out, protocol=5).dump([marker, buf_obj])  # the array first, then the buffer again (GET)
    return out.getvalue(), buf_obj


@pytest.mark.parametrize("mutable", [True, False], ids=["bytearray8", "binbytes8"])
@pytest.mark.parametrize("how", ["load", "loads"])
def test_shared_payload_is_what_pickle_gives(tmp_path, mutable, how):
    data, expected = _stream(mutable)
    ref = pickle.loads(data)
    assert type(ref[1]) is type(expected)
    path = tmp_path / "shared.pkl"
    path.write_bytes(data)
    got = safeload.load(path) if how == "load" else safeload.loads(data)
    np.testing.assert_array_equal(got[0], ref[0])
    # fails: got[1] is a memoryview of the array's np.empty buffer
    assert type(got[1]) is type(ref[1]), type(got[1])
    assert bytes(got[1]) == bytes(ref[1])
