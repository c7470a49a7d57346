"""Large array members read by a thread while the graph is decoded (session 6).

``read_arrays`` hands every stored member of 64 KiB or more of a file over 1 MiB to
``_blockhash.Hasher.read``: its worker thread (and the decoder while it waits) fill them with
``pread`` and each block is hashed once read.  The decoder calls ``ready(i)`` before the first
use of member ``i``.  These tests hold the three things that must stay true: the decoder never
uses a member before it is read, the values equal the hashlib reference path's, and a member
cut short while loading is a ``SafeloadError`` (never garbage, never a crash).
"""

from __future__ import annotations

import os
import struct
import threading
import zipfile

import numpy as np
import pytest

import safeload
from safeload.build import Builder
from safeload.errors import FormatError, IntegrityError
from safeload.format import archive
from safeload.format.decode import Decoder
from safeload.limits import Limits
from safeload.policy import Policy

from . import _child

pytestmark = pytest.mark.skipif(archive._blockhash is None, reason="_blockhash not built")


def _data_offset(path, name: str) -> tuple[int, int]:
    """(offset of the member's data in the file, its size), read with :mod:`zipfile`."""
    with zipfile.ZipFile(path) as zf, open(path, "rb") as fh:
        info = zf.getinfo(name)
        fh.seek(info.header_offset + 26)
        name_len, extra_len = struct.unpack("<HH", fh.read(4))
    return info.header_offset + 30 + name_len + extra_len, info.file_size


def _decoder(arrays: list[np.ndarray], ready) -> Decoder:
    return Decoder([], Builder(Policy.default(), Limits(), {}), arrays, ready)


def test_the_decoder_waits_for_each_member_once_before_its_first_use():
    pools = [np.zeros(8), np.zeros(6), np.zeros(4)]  # "unread": zeros until ready(i)
    calls = []

    def ready(i):
        calls.append(i)
        pools[i][:] = np.arange(pools[i].size) + 10 * i  # the read lands now

    graph = [
        {"$": "ndarray", "i": 0, "at": 0, "shape": [4]},  # first slice: Python _pooled
        {"$": "ndarray", "i": 0, "at": 4, "shape": [2, 2]},  # later ones: the C walk
        {"$": "ndarray", "i": 1},  # a whole member
        [{"$": "ndarray", "i": 2, "at": 0, "shape": [2]}, {"$": "ndarray", "i": 2, "at": 2, "shape": [2]}],
    ]  # fmt: skip
    out = _decoder(pools, ready).decode_root(graph)
    assert calls == [0, 1, 2]
    np.testing.assert_array_equal(out[0], [0, 1, 2, 3])
    np.testing.assert_array_equal(out[1], [[4, 5], [6, 7]])
    np.testing.assert_array_equal(out[2], [10, 11, 12, 13, 14, 15])
    np.testing.assert_array_equal(out[3][1], [22, 23])


def test_a_failed_wait_stops_the_decode_with_its_error():
    def ready(i):
        raise FormatError("A3: arrays/000000.npy: file ended inside the array")

    with pytest.raises(FormatError, match="A3"):
        _decoder([np.zeros(3)], ready).decode_root({"$": "ndarray", "i": 0})


@pytest.fixture(scope="module")
def forest_file(tmp_path_factory):
    """A random forest whose file is over 1 MiB with many members of 64 KiB and more (the
    reader's path), and its predictions."""
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    X, y = make_classification(20_000, 12, flip_y=0.2, random_state=0)
    rf = RandomForestClassifier(12, random_state=0).fit(X, y)
    path = tmp_path_factory.mktemp("reader") / "rf.safeload"
    safeload.dump(rf, path)
    assert path.stat().st_size > 2 << 20
    return path, X, rf.predict_proba(X)


@pytest.mark.parametrize("reader", ["c", "python"])
def test_a_forest_read_by_the_reader_predicts_as_fitted(forest_file, reader, monkeypatch):
    path, X, expected = forest_file
    if reader == "python":
        monkeypatch.setattr(archive, "_blockhash", None)
    np.testing.assert_array_equal(safeload.load(path).predict_proba(X), expected)


def test_the_reader_path_is_the_one_taken_for_large_members(forest_file, monkeypatch):
    path, _, _ = forest_file
    reads = []
    real = archive._blockhash.Hasher

    class Counting:
        def __init__(self):
            self._h = real()

        def __getattr__(self, name):
            if name == "read":
                return lambda *a: reads.append(a[0]) or self._h.read(*a)
            return getattr(self._h, name)

    monkeypatch.setattr(archive._blockhash, "Hasher", Counting)
    safeload.load(path)
    assert len(reads) >= 12  # each tree's node array at least


def test_a_changed_byte_in_a_member_read_by_the_reader_is_refused(forest_file, tmp_path):
    path, _, _ = forest_file
    with zipfile.ZipFile(path) as zf:
        big = max(
            (i for i in zf.infolist() if i.filename.startswith("arrays/")),
            key=lambda i: i.file_size,
        )
    offset, size = _data_offset(path, big.filename)
    assert size > 64 << 10  # the reader's path
    data = bytearray(path.read_bytes())
    data[offset + size - 3] ^= 1  # the last block of the largest member
    changed = tmp_path / "changed.safeload"
    changed.write_bytes(bytes(data))
    with pytest.raises(IntegrityError) as info:
        safeload.load(changed)
    assert big.filename in str(info.value)


def test_a_member_cut_short_while_loading_is_a_format_error(tmp_path):
    # the file shrinks after its index and headers were read: pread comes back short
    proc = _child.load_in_child(
        f"""
        import os
        from safeload.format import archive
        path = {str(tmp_path / "cut.safeload")!r}
        big = np.random.default_rng(0).random(600_000)  # 4.8 MB, the last member
        with open(path, "wb") as fh:
            fh.write(safeload.dumps(big))  # its only member (a later one would be read
            # through the map, where a cut file is SIGBUS: test_format_review4_truncated.py)
        import zipfile, struct
        with zipfile.ZipFile(path) as zf, open(path, "rb") as fh:
            info = zf.getinfo("arrays/000000.npy")
            fh.seek(info.header_offset + 26)
            n, e = struct.unpack("<HH", fh.read(4))
        start = info.header_offset + 30 + n + e
        real = archive.read_arrays

        def cut_then_read(*args, **kwargs):
            os.truncate(path, start + (2 << 20))  # inside its data, after its header
            return real(*args, **kwargs)

        archive.read_arrays = cut_then_read
        try:
            safeload.load(path)
        except safeload.SafeloadError as exc:
            print("refused", type(exc).__name__, "A3" in str(exc))
        else:
            print("loaded")
        raise SystemExit
        data = None
        """
    )
    assert proc.returncode == 0, proc.stderr[-800:]
    assert proc.stdout.split() == ["refused", "FormatError", "True"], proc.stdout + proc.stderr


def test_no_reader_thread_or_descriptor_outlives_a_load(forest_file):
    path, _, _ = forest_file
    fds = len(os.listdir("/proc/self/fd"))
    threads = threading.active_count()
    for _ in range(3):
        safeload.load(path)
    assert len(os.listdir("/proc/self/fd")) == fds
    assert threading.active_count() == threads


def test_ready_waits_for_every_block_of_a_member_not_only_its_last(tmp_path):
    # review 6: Hasher.wait(k) also reads blocks on the waiting thread, so a member's short
    # last block can be read (and wait() return) while the reader thread still fills an
    # earlier block; the decoder then handed a half-read member to __setstate__ (zeros where
    # the bytes had not landed) and the load passed its hash check.  ready(i) must wait for
    # each job of member i.
    from . import _safezip as z
    from ._hostilenode import NAMES

    pool = np.arange((1 << 20) // 8 + 10, dtype="<f8") + 7  # 2 blocks, the last 208 bytes
    base = safeload.dumps([pool, np.arange(3 << 17, dtype="<f8")])
    copying = NAMES.index("tests._hostilenode.Copying")

    def graph(doc):
        doc["globals"] = [n.rsplit(".", 1) for n in NAMES]
        doc["root"] = [
            {"$": "obj", "g": copying, "state": {"$": "dict", "v": {"a": 1}}},
            {
                "$": "obj",
                "g": copying,
                "state": {"$": "ndarray", "i": 0, "at": 0, "shape": [pool.size]},
            },
            {"$": "ndarray", "i": 1},
        ]

    path = tmp_path / "pool.safeload"
    path.write_bytes(z.edit(base, graph=graph))
    for _ in range(40):
        out = safeload.load(path, trusted=NAMES)
        np.testing.assert_array_equal(out[1].state, pool)  # the copy __setstate__ took


def test_ready_waits_for_each_job_of_a_blocked_member(monkeypatch):
    calls = []
    real = archive._blockhash.Hasher

    class Recording:
        def __init__(self):
            self._h = real()

        def wait(self, k):
            calls.append(k)
            return self._h.wait(k)

        def __getattr__(self, name):
            return getattr(self._h, name)

    monkeypatch.setattr(archive._blockhash, "Hasher", Recording)
    big = np.arange(3 << 17, dtype="<f8")  # 3 MiB + header: 4 blocks
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "big.safeload")
        safeload.dump(big, path)
        np.testing.assert_array_equal(safeload.load(path), big)
    assert calls == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("method", "raised", "expected", "text"),
    [
        ("join", RuntimeError("OpenSSL SHA-256 failed"), "SafeloadLoadIOError", "OpenSSL"),
        ("join", MemoryError(), "LimitExceededError", "max_total_array_bytes"),
        ("wait", RuntimeError("OpenSSL SHA-256 failed"), "SafeloadLoadIOError", "OpenSSL"),
        ("wait", MemoryError(), "LimitExceededError", "max_total_array_bytes"),
        ("read", MemoryError(), "LimitExceededError", "max_total_array_bytes"),
        ("wait", OSError(5, "Input/output error"), "SafeloadLoadIOError", "Input/output"),
        ("wait", EOFError(), "FormatError", "A3"),
        ("set_file", OSError(24, "Too many open files"), "SafeloadLoadIOError", "Too many"),
    ],
)
def test_every_failure_of_the_reader_leaves_a_load_as_a_safeload_error(
    forest_file, monkeypatch, method, raised, expected, text
):
    # review 6: an OpenSSL failure (RuntimeError) or an allocation failing (MemoryError)
    # inside the C hasher escaped the load as themselves, not as a SafeloadError
    path, _, _ = forest_file
    real = archive._blockhash.Hasher

    class Failing:
        def __init__(self):
            self._h = real()

        def __getattr__(self, name):
            if name != method:
                return getattr(self._h, name)

            def fail(*args):
                getattr(self._h, name)(*args)  # the real work first: threads end cleanly
                raise raised

            return fail

    monkeypatch.setattr(archive._blockhash, "Hasher", Failing)
    with pytest.raises(safeload.SafeloadError) as info:
        safeload.load(path)
    assert type(info.value).__name__ == expected
    assert text in str(info.value)


def test_an_array_numpy_cannot_allocate_is_the_total_array_limit(forest_file, monkeypatch):
    path, _, _ = forest_file
    real = np.empty

    def empty(shape, *args, **kwargs):
        if np.prod(shape) * np.dtype(kwargs.get("dtype", float)).itemsize >= 64 << 10:
            raise MemoryError
        return real(shape, *args, **kwargs)

    monkeypatch.setattr(archive.np, "empty", empty)
    with pytest.raises(safeload.LimitExceededError) as info:
        safeload.load(path)
    assert info.value.limit == "max_total_array_bytes"
    assert info.value.allowed == Limits().max_total_array_bytes


def test_an_allocation_failing_in_a_hashing_thread_is_the_total_array_limit(monkeypatch):
    # review 7: a MemoryError re-raised by finish() from the hashlib worker escaped the load
    data = safeload.dumps({"a": np.arange(300_000.0)})  # in memory: hashed on a thread
    monkeypatch.setattr(archive, "_blockhash", None)
    monkeypatch.setattr(archive, "_THREAD_HASH", 1)

    def failing(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(archive._HashThread, "digest", failing)
    monkeypatch.setattr(archive._BlockHasher, "finish", failing)
    with pytest.raises(safeload.LimitExceededError) as info:
        safeload.loads(data)
    assert info.value.limit == "max_total_array_bytes"


class _FakeHasher:
    """Records the reads a :class:`archive._ReadQueue` queues: (offset, header, bytes)."""

    def __init__(self):
        self.reads: list[tuple[int, bytes, int]] = []

    def read(self, at, head, buf):
        self.reads.append((at, head, len(buf)))
        return len(self.reads) - 1


def test_large_members_are_queued_in_order_within_the_read_ahead_of_the_decode():
    # session 9: every large member was allocated and queued before the decode started, so
    # tfidf_svc's 8 MB coef_ was in memory while its 200k-term vocabulary was built (load
    # peak 1.09x pickle's); now only _READ_AHEAD bytes beyond the member last asked for
    mib = 1 << 20
    sizes = [1 * mib, 2 * mib, 8 * mib, 1 * mib, 2 * mib]
    fast, out, waits = _FakeHasher(), [None] * 6, {}
    queue = archive._ReadQueue(fast, out, waits)
    for i, n in enumerate(sizes):  # member 5 is small: never queued here
        queue.add(i, 1000 * i, b"H", (n // 8,), np.dtype("<f8"), "C", n, False)
    queue.fill()
    assert [r[0] for r in fast.reads] == [0, 1000]  # the first, then 2 MiB ahead of it
    assert [type(a) for a in out] == [np.ndarray, np.ndarray, type(None), type(None)] + [
        type(None)
    ] * 2
    queue.ask(0)
    assert len(fast.reads) == 2  # 2 + 8 MiB ahead would pass 4 MiB
    queue.ask(1)
    assert len(fast.reads) == 2  # nothing ahead now, but 8 MiB alone is more than 4
    queue.ask(2)  # asked for: queued whatever its size, then 1 + 2 MiB after it
    assert [r[0] for r in fast.reads] == [0, 1000, 2000, 3000, 4000]
    assert waits == {0: [0], 1: [1], 2: [2], 3: [3], 4: [4]}
    assert out[2].nbytes == 8 * mib and out[5] is None


def test_asking_for_a_later_member_queues_it_alone():
    # session 10: a forest asks for its value pool, the last member, first; queueing every
    # member before it had all 400 node arrays (106 MiB) allocated before the first tree
    mib = 1 << 20
    fast, out, waits = _FakeHasher(), [None] * 4, {}
    queue = archive._ReadQueue(fast, out, waits)
    for i in range(4):
        queue.add(i, 1000 * i, b"", (3 * mib,), np.dtype("u1"), "C", 3 * mib, i == 3)
    queue.fill()
    assert [r[0] for r in fast.reads] == [0, 1000]
    queue.ask(3)  # member 3 alone; 2 stays out of memory (3 MiB of 1 are ahead)
    # member 3 is hashed per 1 MiB block: its first block carries the header
    assert [(r[0], r[2]) for r in fast.reads[2:]] == [
        (3000, 1 << 20), (3000 + (1 << 20), 1 << 20), (3000 + (2 << 20), 1 << 20)
    ]  # fmt: skip
    assert waits[3] == [2, 3, 4] and out[2] is None
    queue.ask(1)  # no longer ahead: 2 fits now
    assert [r[0] for r in fast.reads[5:]] == [2000] and waits[2] == [5]
    queue.ask(2)
    queue.fill(everything=True)  # finish(): nothing left
    assert len(fast.reads) == 6


def test_finish_queues_every_member_the_decode_did_not_ask_for():
    mib = 1 << 20
    fast, out, waits = _FakeHasher(), [None] * 3, {}
    queue = archive._ReadQueue(fast, out, waits)
    for i in range(3):
        queue.add(i, 1000 * i, b"", (5 * mib,), np.dtype("u1"), "C", 5 * mib, False)
    queue.fill()
    assert [r[0] for r in fast.reads] == [0]
    queue.fill(everything=True)
    assert [r[0] for r in fast.reads] == [0, 1000, 2000]
    assert sorted(waits) == [0, 1, 2]


def _three_members(tmp_path, graph=None):
    """A file of three 3 MiB members (the third beyond the read-ahead when the decode
    starts) whose root lists them; ``graph`` edits the parsed graph."""
    from . import _safezip as z

    arrays = [np.full(3 << 17, float(k)) for k in range(3)]
    data = safeload.dumps(arrays)
    if graph is not None:
        data = z.edit(data, graph=graph)
    path = tmp_path / "three.safeload"
    path.write_bytes(data)
    return path, arrays


def _flip_last_byte(path, name):
    offset, size = _data_offset(path, name)
    data = bytearray(path.read_bytes())
    data[offset + size - 1] ^= 1
    path.write_bytes(bytes(data))


def test_members_queued_late_load_and_a_changed_one_is_refused(tmp_path):
    path, arrays = _three_members(tmp_path)
    for got, want in zip(safeload.load(path), arrays, strict=True):
        np.testing.assert_array_equal(got, want)
    _flip_last_byte(path, "arrays/000002.npy")
    with pytest.raises(IntegrityError, match="000002"):
        safeload.load(path)


def test_a_member_the_failed_decode_never_reached_is_still_hashed(tmp_path):
    # the decode fails before it asks for member 2; finish() queues it all the same, so a
    # changed member still explains the failure (IntegrityError first, as for the others)
    def graph(doc):
        doc["root"] = [doc["root"][0], {"$": "no such tag"}, doc["root"][2]]

    path, _ = _three_members(tmp_path, graph)
    with pytest.raises(FormatError, match="G3"):
        safeload.load(path)
    _flip_last_byte(path, "arrays/000002.npy")
    with pytest.raises(IntegrityError, match="000002"):
        safeload.load(path)


def test_a_member_allocated_during_the_decode_that_numpy_cannot_allocate_is_the_limit(
    tmp_path, monkeypatch
):
    path, _ = _three_members(tmp_path)
    real = np.empty
    calls = []

    def empty(shape, *args, **kwargs):
        calls.append(shape)
        if len(calls) == 3:  # member 2, queued once the decode asked for member 1
            raise MemoryError
        return real(shape, *args, **kwargs)

    monkeypatch.setattr(archive.np, "empty", empty)
    with pytest.raises(safeload.LimitExceededError) as info:
        safeload.load(path)
    assert info.value.limit == "max_total_array_bytes"
    assert "arrays/000002.npy" in str(info.value)
