"""``safeload.format._blockhash``: SHA-256 beside the loader without the GIL, against hashlib."""

from __future__ import annotations

import hashlib
import os
import time

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


# --------------------------------------------------------------------- reads (session 6)
# Hasher.read: the worker thread (hashing first, reading when nothing is to hash) preads large members into their arrays while the graph is
# decoded; Hasher.wait(k) is the decoder's barrier before a member's first use.


@pytest.fixture(scope="module")
def datafile(tmp_path_factory):
    """An open 5 MiB file and its bytes (only read: shared by every example)."""
    data = np.random.default_rng(1).integers(0, 256, 5 << 20, dtype=np.uint8).tobytes()
    path = tmp_path_factory.mktemp("reads") / "data.bin"
    path.write_bytes(data)
    with open(path, "rb") as fh:
        yield fh, data


@settings(max_examples=40, deadline=None, database=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 5 << 20), st.integers(0, 1 << 20), st.binary(max_size=40)),
        max_size=10,
    ),
    st.booleans(),
)
def test_reads_fill_the_buffers_and_hash_them_in_order(datafile, jobs, wait_each):
    fh, data = datafile
    jobs = [(off, min(n, len(data) - off), head) for off, n, head in jobs]
    hasher = _blockhash.Hasher()
    hasher.set_file(fh.fileno())
    bufs = [np.empty(n, np.uint8) for _, n, _ in jobs]
    ids = [hasher.read(off, head, buf) for (off, _, head), buf in zip(jobs, bufs, strict=True)]
    assert ids == list(range(len(jobs)))
    if wait_each:
        for k in reversed(ids):  # any order: each wait returns once that buffer is full
            hasher.wait(k)
            off, n, _ = jobs[k]
            assert bufs[k].tobytes() == data[off : off + n]
    assert hasher.join() == [
        hashlib.sha256(head + data[off : off + n]).hexdigest() for off, n, head in jobs
    ]
    for (off, n, _), buf in zip(jobs, bufs, strict=True):
        assert buf.tobytes() == data[off : off + n]


def test_reads_and_adds_mix_in_one_index_order(datafile):
    fh, data = datafile
    hasher = _blockhash.Hasher()
    hasher.set_file(fh.fileno())
    buf = np.empty(3 << 20, np.uint8)
    present = np.full(70_000, 7, np.uint8)
    assert hasher.read(1000, b"h", buf) == 0
    assert hasher.add(b"", present) == 1
    assert hasher.join() == [
        hashlib.sha256(b"h" + data[1000 : 1000 + (3 << 20)]).hexdigest(),
        hashlib.sha256(present.tobytes()).hexdigest(),
    ]


def test_a_short_read_raises_eof_on_wait_and_on_join(datafile):
    fh, data = datafile
    hasher = _blockhash.Hasher()
    hasher.set_file(fh.fileno())
    ok, short = np.empty(100, np.uint8), np.empty(1 << 20, np.uint8)
    hasher.read(0, b"", ok)
    k = hasher.read(len(data) - 10, b"", short)  # the file ends 10 bytes in
    with pytest.raises(EOFError, match=f"job {k}"):
        hasher.wait(k)
    hasher.wait(0)
    assert ok.tobytes() == data[:100]
    with pytest.raises(EOFError):
        hasher.join()
    short.resize(0, refcheck=False)  # every export released, even after a failed join


def test_the_hasher_reads_from_its_own_duplicate_of_the_descriptor(tmp_path):
    path = tmp_path / "d.bin"
    path.write_bytes(b"abc" * 100_000)
    hasher = _blockhash.Hasher()
    with open(path, "rb") as fh:
        hasher.set_file(fh.fileno())
    buf = np.empty(300_000, np.uint8)
    hasher.read(0, b"", buf)  # the caller's file is closed already
    assert hasher.join() == [hashlib.sha256(b"abc" * 100_000).hexdigest()]
    assert buf.tobytes() == b"abc" * 100_000


@pytest.mark.parametrize("started", [False, True])
def test_a_dropped_hasher_with_reads_queued_stops_its_threads_and_releases(datafile, started):
    # started: the first wait() started the worker, which may be reading or hashing the later
    # blocks when the hasher goes; without it no thread ever ran (read() starts none)
    fh, data = datafile
    before = set(os.listdir("/proc/self/task"))
    bufs = [bytearray(1 << 20) for _ in range(5)]
    hasher = _blockhash.Hasher()
    hasher.set_file(fh.fileno())
    ids = [hasher.read(k << 20, b"", buf) for k, buf in enumerate(bufs)]
    if started:
        hasher.wait(ids[0])
        assert bytes(bufs[0]) == data[: 1 << 20]
        assert len(set(os.listdir("/proc/self/task")) - before) == 1
    with pytest.raises(BufferError):
        bufs[-1].extend(b"!")  # exported until the hasher goes
    del hasher
    for buf in bufs:
        buf.extend(b"!")
    assert set(os.listdir("/proc/self/task")) - before == set()


def test_one_thread_reads_and_hashes_from_the_first_wait(datafile):
    # session 10: a reader thread beside the hashing thread made three busy threads on two
    # vCPUs (and TLB-shootdown interrupts on each copy-on-write fault of a forked loader);
    # session 11: read() starts no thread (the decode's Python before its first wait ran at
    # half speed beside a busy worker), the first wait() starts the one worker
    fh, data = datafile
    before = set(os.listdir("/proc/self/task"))  # thread ids (others may come and go)
    bufs = [np.empty(1 << 20, np.uint8) for _ in range(4)]
    hasher = _blockhash.Hasher()
    hasher.set_file(fh.fileno())
    ids = [hasher.read(k << 20, b"h", buf) for k, buf in enumerate(bufs)]
    assert set(os.listdir("/proc/self/task")) - before == set()
    hasher.wait(ids[0])
    assert bufs[0].tobytes() == data[: 1 << 20]
    started = set(os.listdir("/proc/self/task")) - before
    assert len(started) == 1
    assert hasher.join() == [
        hashlib.sha256(b"h" + data[k << 20 : (k + 1) << 20]).hexdigest() for k in ids
    ]
    assert not started & set(os.listdir("/proc/self/task"))


def test_join_alone_reads_and_hashes_with_the_worker(datafile):
    # no wait() at all: join() starts the worker and both threads read and hash what is queued
    fh, data = datafile
    before = set(os.listdir("/proc/self/task"))
    bufs = [bytearray(1 << 20) for _ in range(4)]
    hasher = _blockhash.Hasher()
    hasher.set_file(fh.fileno())
    for k, buf in enumerate(bufs):
        hasher.read(k << 20, b"", buf)
    assert set(os.listdir("/proc/self/task")) - before == set()
    assert hasher.join() == [
        hashlib.sha256(data[k << 20 : (k + 1) << 20]).hexdigest() for k in range(4)
    ]
    assert [bytes(buf) for buf in bufs] == [data[k << 20 : (k + 1) << 20] for k in range(4)]
    assert set(os.listdir("/proc/self/task")) - before == set()


def test_join_of_a_single_zero_length_read_hashes_its_head(datafile):
    # nothing to read and one job to hash: join() does it on the calling thread
    fh, _ = datafile
    hasher = _blockhash.Hasher()
    hasher.set_file(fh.fileno())
    assert hasher.read(0, b"head", bytearray(0)) == 0
    assert hasher.join() == [hashlib.sha256(b"head").hexdigest()]


def test_buffers_of_done_jobs_are_given_back_before_join(datafile):
    # session 10: a member the decode is done with is freed as soon as it is hashed (a later
    # wait() or read() gives the buffers of the jobs done so far back), not at join()
    fh, data = datafile
    bufs = [bytearray(1 << 20) for _ in range(3)]
    hasher = _blockhash.Hasher()
    hasher.set_file(fh.fileno())
    ids = [hasher.read(k << 20, b"", buf) for k, buf in enumerate(bufs)]
    late = bytearray(1 << 20)
    deadline = time.monotonic() + 30
    while True:  # the worker hashes them in its own time
        for k in ids:
            hasher.wait(k)
        try:
            for buf in bufs:
                buf.extend(b"!")  # BufferError while the hasher still holds it
            break
        except BufferError:
            assert time.monotonic() < deadline
            time.sleep(0.001)
    hasher.read(3 << 20, b"", late)
    with pytest.raises(BufferError):
        late.extend(b"!")  # held: not hashed yet, or hashed but not given back yet
    assert hasher.join() == [
        hashlib.sha256(data[k << 20 : (k + 1) << 20]).hexdigest() for k in range(4)
    ]
    late.extend(b"!")


def test_read_needs_a_file_a_writable_buffer_and_an_open_hasher(datafile):
    fh, _ = datafile
    hasher = _blockhash.Hasher()
    with pytest.raises(RuntimeError, match="set_file"):
        hasher.read(0, b"", bytearray(10))
    hasher.set_file(fh.fileno())
    with pytest.raises(RuntimeError, match="once"):
        hasher.set_file(fh.fileno())
    with pytest.raises(BufferError):
        hasher.read(0, b"", b"read-only bytes")
    with pytest.raises(ValueError, match="offset"):
        hasher.read(-1, b"", bytearray(10))
    with pytest.raises(TypeError):
        hasher.read(0, "head", bytearray(10))
    with pytest.raises(IndexError):
        hasher.wait(0)  # no such job
    assert hasher.join() == []
    with pytest.raises(RuntimeError, match="after join"):
        hasher.read(0, b"", bytearray(10))
    with pytest.raises(ValueError):
        _blockhash.Hasher().set_file(-1)


def test_the_hashers_descriptor_is_not_inherited_by_child_processes(tmp_path):
    # review 6: set_file() used dup(), whose copy is inheritable: a process another thread
    # starts during a load (os.system, close_fds=False) kept the model file open
    import os

    path = tmp_path / "f"
    path.write_bytes(b"x" * 10)
    with open(path, "rb") as fh:
        hasher = _blockhash.Hasher()
        hasher.set_file(fh.fileno())
        ours = [
            fd
            for fd in range(3, 1024)
            if fd != fh.fileno()
            and os.path.exists(f"/proc/self/fd/{fd}")
            and os.path.realpath(f"/proc/self/fd/{fd}") == str(path.resolve())
        ]
        assert len(ours) == 1
        assert not os.get_inheritable(ours[0])
        hasher.join()
