"""Deferred payloads (safeload/readers/payloads.py): large array bytes stay in the file until
the builder reads them; a tree's node and value bytes go through a reused scratch buffer.

Every test compares with what ``pickle.loads`` gives for the same bytes (these are our own
pickles of trusted objects, never corpus files).
"""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.tree._tree import Tree

import safeload
from safeload.errors import FormatError
from safeload.limits import DEFAULT_LIMITS
from safeload.readers import payloads as P
from safeload.readers import pickle_reader, read_source
from safeload.readers.opscan import scan_opcodes
from safeload.source import open_source


@pytest.fixture(scope="module")
def forest():
    """Trees of ~3,500 nodes: node (64 bytes each) and value (3 classes x 8 bytes) arrays over
    MIN_PAYLOAD."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(6000, 6))
    y = rng.integers(0, 3, size=6000)
    model = RandomForestClassifier(n_estimators=6, random_state=0).fit(X, y)
    return model, X


def _tree_arrays(model):
    return [(e.tree_.__getstate__()["nodes"], e.tree_.__getstate__()["values"]) for e in model]


def _same_forest(got, model, X):
    np.testing.assert_array_equal(got.predict_proba(X), model.predict_proba(X))
    for (n1, v1), (n2, v2) in zip(_tree_arrays(got), _tree_arrays(model), strict=True):
        assert n1.tobytes() == n2.tobytes()
        np.testing.assert_array_equal(v1, v2)


def test_forest_payloads_are_deferred_and_lent(forest, tmp_path):
    model, X = forest
    path = tmp_path / "rf.pkl"
    path.write_bytes(pickle.dumps(model, protocol=5))
    with open_source(path, DEFAULT_LIMITS) as src:
        parsed = read_source(src, DEFAULT_LIMITS, defer_payloads=True)
        assert parsed.payloads is not None
    sizes = [e.tree_.node_count * 24 for e in model]
    assert min(sizes) >= P.MIN_PAYLOAD  # the fixture exercises what it claims to

    lent = []
    original = P.PayloadSource.borrow

    def spy(self, p, slot):
        view = original(self, p, slot)
        lent.append((slot, len(view), len(self._scratch)))
        return view

    P.PayloadSource.borrow = spy
    try:
        got = safeload.load(path)
    finally:
        P.PayloadSource.borrow = original
    _same_forest(got, model, X)
    assert len(lent) == 2 * len(model)  # nodes and values of every tree
    assert {slot for slot, _, _ in lent} == {0, 1}
    assert max(n for _, _, n in lent) == 2  # two scratch buffers, reused


@pytest.mark.parametrize("how", ["path", "bytes", "fileobj"])
def test_forest_loads_from_every_kind_of_source(forest, tmp_path, how):
    model, X = forest
    data = pickle.dumps(model, protocol=5)
    path = tmp_path / "rf.pkl"
    path.write_bytes(data)
    source = {"path": path, "bytes": data, "fileobj": io.BytesIO(data)}[how]
    _same_forest(safeload.load(source), model, X)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_large_array_outside_a_tree_is_fresh_and_writable(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 400))
    y = rng.integers(0, 40, size=300)
    model = LogisticRegression(max_iter=5).fit(X, y)  # coef_: 40 x 400 float64 = 128 KB
    path = tmp_path / "lr.pkl"
    path.write_bytes(pickle.dumps(model, protocol=5))
    got = safeload.load(path)
    np.testing.assert_array_equal(got.coef_, model.coef_)
    assert got.coef_.flags.writeable  # as pickle.load gives it (a bytearray payload)
    got.coef_[0, 0] = 42.0
    again = safeload.load(path)
    assert again.coef_[0, 0] == model.coef_[0, 0]


@pytest.mark.parametrize("protocol", [4, 5])
def test_large_bytes_and_bytearrays_keep_their_type(tmp_path, protocol):
    obj = {
        "b": bytes(range(256)) * 400,
        "ba": bytearray(b"x" * 100_000),
        "a": np.arange(20_000, dtype=np.int64),
        "ro": np.frombuffer(bytes(80_000), dtype=np.uint8),
    }
    data = pickle.dumps(obj, protocol=protocol)
    path = tmp_path / "obj.pkl"
    path.write_bytes(data)
    got = safeload.load(path)
    want = pickle.loads(data)
    assert type(got["b"]) is bytes and got["b"] == want["b"]
    assert type(got["ba"]) is bytearray and got["ba"] == want["ba"]
    np.testing.assert_array_equal(got["a"], want["a"])
    assert got["a"].flags.writeable == want["a"].flags.writeable
    assert got["ro"].flags.writeable == want["ro"].flags.writeable


def test_a_tree_array_referenced_again_is_refused(forest, tmp_path):
    """scikit-learn never shares a tree's node array; a file that does is refused rather than
    handing out a view of the reused scratch buffer."""
    model, _ = forest
    tree = model.estimators_[0].tree_
    nodes = tree.__getstate__()["nodes"]

    class SharedTree:
        def __reduce__(self):
            cls, args, state = tree.__reduce__()
            return cls, args, dict(state, nodes=nodes)

    SharedTree.__module__ = "sklearn.tree._tree"
    data = pickle.dumps([SharedTree(), nodes], protocol=5)
    path = tmp_path / "shared.pkl"
    path.write_bytes(data)
    assert isinstance(pickle.loads(data)[0], Tree)  # plain pickle accepts it
    with pytest.raises(FormatError, match="refers again to a tree's node or value array"):
        safeload.load(path)


def test_payload_read_past_the_end_is_a_format_error(tmp_path):
    path = tmp_path / "short.bin"
    path.write_bytes(b"\0" * 1000)
    with open(path, "rb") as fh:
        src = P.PayloadSource(None, fh)
        p = P.Payload(0, 100, 5000, mutable=False)
        for read in (src.read, src.fresh, lambda q: src.borrow(q, 0)):
            with pytest.raises(FormatError, match="inside a payload of 5000 bytes"):
                read(p)
        with pytest.raises(FormatError, match="inside a payload"):
            src.read(P.Payload(0, 100, 5000, mutable=True))


def test_scratch_buffer_is_not_reused_while_a_view_is_alive(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(bytes(range(256)) * 1024)
    with open(path, "rb") as fh:
        src = P.PayloadSource(None, fh)
        first = src.borrow(P.Payload(0, 0, 1000, mutable=False), 0)
        kept = bytes(first)
        second = src.borrow(P.Payload(0, 5, 1000, mutable=False), 0)
        assert bytes(first) == kept  # a new scratch buffer: the live view is untouched
        assert bytes(second) == (bytes(range(256)) * 8)[5:1005]
        del first, second
        third = src.borrow(P.Payload(0, 7, 900, mutable=False), 0)
        assert bytes(third) == (bytes(range(256)) * 8)[7:907]
        assert third.readonly


def _straddling_stream() -> bytes:
    """A frame that ends inside a SHORT_BINBYTES payload whose bytes look like a BYTEARRAY8 of
    70,000 bytes to a walker that hops from frame to frame.  Valid for the C unpickler."""
    n = 70_000
    fake = b"\x96" + n.to_bytes(8, "little")
    small = fake + b"z" * (40 - len(fake))
    filler = b"f" * (n + 100)
    return (
        b"\x80\x04"
        + b"\x95"
        + (2).to_bytes(8, "little")
        + b"C"
        + bytes([len(small)])
        + small
        + b"\x8e"
        + len(filler).to_bytes(8, "little")
        + filler
        + b"\x86."  # TUPLE2, STOP
    )


def test_a_stream_whose_opcodes_straddle_frames_is_parsed_as_it_is():
    data = _straddling_stream()
    info = scan_opcodes(data, DEFAULT_LIMITS)
    found = P.find_payloads(data, info.start, info.end)
    assert [p.op for p in found] == [13]  # the walker is fooled ...
    assert pickle_reader._defer(data, info, DEFAULT_LIMITS) is None  # ... the re-scan is not
    assert safeload.loads(data) == pickle.loads(data)


def test_skeleton_replaces_each_payload_by_one_next_buffer():
    big = np.arange(10_000, dtype=np.float64)
    data = pickle.dumps([big, "x", big * 2], protocol=5)
    info = scan_opcodes(data, DEFAULT_LIMITS)
    found = P.find_payloads(data, info.start, info.end)
    assert [p.length for p in found] == [80_000, 80_000]
    assert all(p.mutable for p in found)
    skel, offsets = P.skeleton(data, info.start, info.end, found)
    assert len(skel) == len(data) - 2 * (9 + 80_000) + 2
    assert [skel[o] for o in offsets] == [0x97, 0x97]
    assert scan_opcodes(skel, DEFAULT_LIMITS).buffer_offsets == offsets


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.integers(0, 3).map(lambda k: np.arange(k * 9000, dtype=np.int64)),
            st.integers(60_000, 70_000).map(lambda n: bytes(n)),
            st.integers(60_000, 70_000).map(lambda n: bytearray(b"\x01" * n)),
            st.text(max_size=20),
        ),
        max_size=6,
    ),
    st.sampled_from([2, 3, 4, 5]),
)
def test_deferred_loads_equal_pickle(tmp_path_factory, values, protocol):
    data = pickle.dumps(values, protocol=protocol)
    path = tmp_path_factory.mktemp("p") / "v.pkl"
    path.write_bytes(data)
    got, want = safeload.load(path), pickle.loads(data)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert type(g) is type(w)
        if isinstance(w, np.ndarray):
            np.testing.assert_array_equal(g, w)
            assert g.flags.writeable == w.flags.writeable
        else:
            assert g == w


def _bytes_ops_stream() -> bytes:
    """Unframed protocol-4 stream: BINBYTES8/BYTEARRAY8/BINBYTES just below and at 64 KiB."""
    n = P.MIN_PAYLOAD
    parts = [b"\x80\x04(", b"\x8e" + (n - 1).to_bytes(8, "little") + b"a" * (n - 1)]
    parts.append(b"\x8e" + n.to_bytes(8, "little") + b"b" * n)
    parts.append(b"\x96" + (n + 1).to_bytes(8, "little") + b"c" * (n + 1))
    parts.append(b"B" + n.to_bytes(4, "little") + b"d" * n)
    parts.append(b"B" + (n - 1).to_bytes(4, "little") + b"e" * (n - 1))
    return b"".join(parts) + b"l."


def test_prescan_records_large_payload_opcodes_in_c_and_python():
    from safeload.readers import opscan

    data = _bytes_ops_stream()
    n = P.MIN_PAYLOAD
    want = [3 + 9 + n - 1, 3 + 2 * 9 + 2 * n - 1, 3 + 3 * 9 + 3 * n]
    py = opscan._scan_opcodes_py(data, DEFAULT_LIMITS)
    assert py.payload_offsets == want
    if opscan._opscan is not None:
        assert opscan._scan_opcodes_c(data, DEFAULT_LIMITS) == py
    assert safeload.loads(data) == pickle.loads(data)
