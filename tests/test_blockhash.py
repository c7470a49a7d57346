"""``safeload.format._blockhash``: SHA-256 beside the loader without the GIL, against hashlib."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safeload.format import archive

_blockhash = archive._blockhash
pytestmark = pytest.mark.skipif(_blockhash is None, reason="_blockhash not built")

_items = st.lists(
    st.tuples(st.binary(max_size=80), st.integers(0, 300_000), st.integers(0, 255)), max_size=12
)


@settings(max_examples=60, deadline=None, database=None)
@given(_items)
def test_digests_equal_hashlib_in_add_order(items):
    hasher = _blockhash.Hasher()
    datas = []
    for k, (head, n, fill) in enumerate(items):
        data = np.full(n, fill, dtype=np.uint8)
        datas.append(data)  # alive until join, as the loader keeps its arrays
        assert hasher.add(head, data) == k
    assert hasher.join() == [
        hashlib.sha256(head + data.tobytes()).hexdigest()
        for (head, _, _), data in zip(items, datas, strict=True)
    ]


def test_views_and_structured_arrays_are_hashed_as_their_bytes():
    nodes = np.zeros(7, dtype=[("a", "<i8"), ("b", "u1")])
    nodes["a"] = np.arange(7)
    raw = nodes.view(np.uint8)
    big = np.arange(3 << 20, dtype=np.uint8)
    hasher = _blockhash.Hasher()
    hasher.add(b"h", raw)
    hasher.add(b"", memoryview(big)[1 << 20 : 2 << 20])
    assert hasher.join() == [
        hashlib.sha256(b"h" + nodes.tobytes()).hexdigest(),
        hashlib.sha256(big[1 << 20 : 2 << 20].tobytes()).hexdigest(),
    ]


def test_buffers_are_held_until_join_and_released_after():
    data = bytearray(b"x" * 100_000)
    hasher = _blockhash.Hasher()
    hasher.add(b"", data)
    with pytest.raises(BufferError):
        data.extend(b"y")  # exported: nothing can move the bytes being hashed
    assert hasher.join() == [hashlib.sha256(b"x" * 100_000).hexdigest()]
    data.extend(b"y")


def test_a_dropped_hasher_cancels_and_releases():
    datas = [bytearray(b"z" * 400_000) for _ in range(20)]
    hasher = _blockhash.Hasher()
    for d in datas:
        hasher.add(b"", d)
    del hasher
    for d in datas:
        d.extend(b"!")  # every export released


def test_finished_hasher_refuses_more_work():
    hasher = _blockhash.Hasher()
    assert hasher.join() == []
    with pytest.raises(RuntimeError, match="after join"):
        hasher.add(b"", b"")
    with pytest.raises(RuntimeError, match="twice"):
        hasher.join()


@pytest.mark.parametrize("args", [("", b""), (b"",), (b"", 5), (bytearray(), b"")])
def test_bad_arguments_are_type_errors(args):
    with pytest.raises(TypeError):
        _blockhash.Hasher().add(*args)
