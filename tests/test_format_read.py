"""The safe-format reader's fast paths give what the plain ones gave.

Arrays of a file held in memory are copied as bytes (structured dtypes included) and the large
members hashed after the loop, on a thread when they are large enough; graph.json is parsed
with cached decoders while the cycle collector is paused.  Each path must keep the results and
errors of the straightforward code.
"""

from __future__ import annotations

import gc
import hashlib

import numpy as np
import pytest

import safeload
from safeload.errors import FormatError, IntegrityError
from safeload.format import archive

from . import _safezip as sz

NODE = np.dtype([("left", "<i8"), ("value", "<f8"), ("leaf", "u1"), ("", "V7")])


def _arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    nodes = np.zeros(40_000, dtype=NODE)  # 960 KB: hashed on the thread
    nodes["left"] = rng.integers(-1, 100, nodes.shape[0])
    nodes["value"] = rng.random(nodes.shape[0])
    return {
        "nodes": nodes,
        "medium": np.asfortranarray(rng.random((100, 200))),  # 160 KB: hashed inline
        "small": np.arange(10.0),  # pooled
    }


def _flip(data: bytes, pos: int) -> bytes:
    out = bytearray(data)
    out[pos] ^= 0x01
    return bytes(out)


def test_in_memory_arrays_load_equal_owned_and_in_their_order():
    value = _arrays()
    loaded = safeload.load(safeload.dumps(value))
    for key, arr in value.items():
        assert loaded[key].dtype == arr.dtype and loaded[key].shape == arr.shape, key
        assert np.array_equal(loaded[key], arr), key
        assert loaded[key].flags.writeable, key
    assert loaded["medium"].flags.f_contiguous
    assert loaded["nodes"].flags.owndata and loaded["medium"].flags.owndata


@pytest.mark.parametrize("verify", [None, True])
def test_changed_large_members_are_all_named_in_member_order(verify):
    data = safeload.dumps(_arrays())
    offsets = sz.member_offsets(data)
    names = sorted(n for n in offsets if n.endswith(".npy") and offsets[n][1] > 64 << 10)
    assert len(names) == 2
    hostile = data
    for name in reversed(names):
        start, size = offsets[name]
        hostile = _flip(hostile, start + size - 3)
    with pytest.raises(IntegrityError) as info:
        safeload.load(hostile, verify=verify)
    assert info.value.members == names
    for name in names:  # each alone, too
        start, size = offsets[name]
        with pytest.raises(IntegrityError) as info:
            safeload.load(_flip(data, start + size // 2))
        assert info.value.members == [name]
    assert safeload.load(hostile, verify=False)["small"][3] == 3.0


def test_hash_thread_reports_its_own_failure():
    job = archive._HashThread(b"abc", [("x", 0, 3, False)])
    assert job.digest("x") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    blocked = archive._HashThread(b"abc", [("x", 0, 3, True)])
    assert blocked.digest("x") == [
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    ]
    broken = archive._HashThread(None, [("x", 0, 3, False)])
    with pytest.raises(TypeError):
        broken.digest("x")
    broken.join()


def test_graph_json_errors_and_collector_state_are_kept():
    text = b'{"a": 1}'
    assert archive._parse_json(text, "graph.json") == {"a": 1}
    assert gc.isenabled()
    for bad, rule in [
        (b"\xef\xbb\xbf" + text, "J1"),  # a UTF-8 BOM, refused as json.loads refuses it
        (b'{"a": NaN}', "J1"),
        (b'{"a": 1', "J1"),
        (b"\xff", "J1"),
    ]:
        with pytest.raises(FormatError, match=rule):
            archive._parse_json(bad, "graph.json")
        assert gc.isenabled()
    with pytest.raises(FormatError, match="J2"):
        archive._parse_json(b'{"a": 1, "a": 2}', "manifest.json", strict_keys=True)
    gc.disable()
    try:
        archive._parse_json(text, "graph.json")
        assert not gc.isenabled()  # a caller's choice is left alone
    finally:
        gc.enable()


def test_block_hasher_fills_every_digest_from_both_threads():
    parts = [bytes([k]) * (1000 + k) for k in range(40)]
    digests = [""] * len(parts)
    job = archive._BlockHasher()
    for k, part in enumerate(parts):
        job.add(digests, k, b"head" if k == 0 else b"", part)
    job.finish()
    assert digests[0] == hashlib.sha256(b"head" + parts[0]).hexdigest()
    assert digests[1:] == [hashlib.sha256(p).hexdigest() for p in parts[1:]]
    job.close()  # idempotent


def test_block_hasher_reports_a_failed_hash_and_stops_its_worker():
    digests = [""] * 3
    job = archive._BlockHasher()
    job.add(digests, 0, b"", b"abc")
    job.add(digests, 1, b"", None)  # hashlib refuses None
    job.add(digests, 2, b"", b"def")
    with pytest.raises(TypeError):
        job.finish()
    # the worker released its exit lock (close() waited for it) and nothing is left queued
    assert job._exited.acquire(blocking=False)
    assert job._queue.empty()
    assert digests[0] == hashlib.sha256(b"abc").hexdigest()


def test_a_member_changed_between_its_hash_and_its_copy_is_refused(tmp_path, monkeypatch):
    # regression: small members of a mapped file were hashed from the map, then copied from it
    # again, so a writer in between gave an array the hash never covered (a silent change)
    small = np.arange(5_000, dtype=np.float64)  # 40 KB, copied from the map
    data = safeload.dumps([np.zeros(200_000), small])  # 1.6 MB: mapped, not read into memory
    path = tmp_path / "m.safeload"
    path.write_bytes(data)
    name = "arrays/000001.npy"
    start, _ = sz.member_offsets(data)[name]
    header = len(sz.read_members(data)[name]) - small.nbytes
    original = archive._from_bytes
    changed = []

    def write_then_copy(buf, offset, *args, **kwargs):
        if not changed and offset == start + header:
            with open(path, "r+b") as fh:  # the shared map shows the new bytes at once
                fh.seek(offset)
                fh.write(np.full(4, 7.0).tobytes())
            changed.append(offset)
        return original(buf, offset, *args, **kwargs)

    monkeypatch.setattr(archive, "_from_bytes", write_then_copy)
    with pytest.raises(IntegrityError) as info:
        safeload.load(path)
    assert changed == [start + header] and info.value.members == [name]


def _flip_member(data: bytes, name: str, at: int) -> bytes:
    start, _ = sz.member_offsets(data)[name]
    out = bytearray(data)
    out[start + at] ^= 0x01
    return bytes(out)


def _large_then_small(tmp_path, root=None, tamper=False):
    """A mapped file (over 1 MiB) whose member 0 is large (read with ``readinto``) and
    member 1 small; ``root`` replaces the graph's root list, given the two ndarray values."""
    big, small = np.arange(200_000, dtype=np.float64), np.arange(5.0)
    data = safeload.dumps([big, small])
    if root is not None:
        data = sz.edit(
            data,
            graph=lambda g: g.update(
                root=root(*g["root"]["v"]) if isinstance(g["root"], dict) else root(*g["root"])
            ),
        )
    if tamper:
        data = _flip_member(data, "arrays/000000.npy", 1_000_000)
    path = tmp_path / "m.safeload"
    path.write_bytes(data)
    return path, big, small


def test_a_large_member_the_graph_never_uses_is_still_hashed(tmp_path):
    only_small = lambda big, small: [small]  # noqa: E731
    path, _, small = _large_then_small(tmp_path, root=only_small)
    np.testing.assert_array_equal(safeload.load(path)[0], small)
    bad, _, _ = _large_then_small(tmp_path, root=only_small, tamper=True)
    with pytest.raises(IntegrityError) as info:
        safeload.load(bad)
    assert info.value.members == ["arrays/000000.npy"]


def test_a_graph_error_before_a_large_member_is_read_reports_the_changed_member_first(tmp_path):
    broken = lambda big, small: [{"$": "no-such-tag"}, big, small]  # noqa: E731
    path, _, _ = _large_then_small(tmp_path, root=broken)
    with pytest.raises(FormatError, match="G3"):
        safeload.load(path)
    bad, _, _ = _large_then_small(tmp_path, root=broken, tamper=True)
    with pytest.raises(IntegrityError):
        safeload.load(bad)


def test_a_small_file_is_read_once_with_pread_and_a_changed_size_is_refused(tmp_path):
    import mmap

    from safeload.source import Source

    data = safeload.dumps([np.arange(10.0)])
    path = tmp_path / "m.safeload"
    path.write_bytes(data)
    with open(path, "rb") as fh:
        mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            src = Source(mapped, fh, str(path), str(path))
            got = archive._read_small(src, len(data))
            # a writable copy, not the map: the loader may hand its array members out in place
            assert type(got) is np.ndarray and got.dtype == np.uint8 and got.flags.writeable
            assert got.tobytes() == data
            with pytest.raises(FormatError, match="Z1: the file changed size"):
                archive._read_small(src, len(data) + 7)  # as if it shrank after the map
        finally:
            mapped.close()
    archive._drop_pages(data)  # bytes: nothing to drop, no error


def _chain(arr: np.ndarray) -> list:
    out = []
    while arr is not None:
        out.append(arr)
        arr = getattr(arr, "base", None)
    return out


def test_a_small_files_arrays_are_writable_views_of_its_one_read(tmp_path):
    import mmap

    value = {"big": np.arange(60_000.0), "ints": np.arange(9, dtype=np.int32), "empty": np.zeros(0)}
    data = safeload.dumps(value)
    assert len(data) <= archive._SMALL_FILE
    path = tmp_path / "m.safeload"
    path.write_bytes(data)
    loaded = safeload.load(path)
    for key, arr in value.items():
        got = loaded[key]
        assert got.dtype == arr.dtype and np.array_equal(got, arr), key
        assert got.flags.writeable and got.flags.aligned, key
        assert not any(isinstance(b, mmap.mmap) for b in _chain(got)), key
    # one buffer, the file's read, holds the members; no two arrays share bytes
    assert _chain(loaded["big"])[-1] is _chain(loaded["ints"])[-1]
    assert not np.shares_memory(loaded["big"], loaded["ints"])
    loaded["big"][:] = -1.0
    assert path.read_bytes() == data and np.array_equal(safeload.load(path)["big"], value["big"])


def test_graph_json_of_a_loads_own_buffer_is_parsed_in_place_and_a_maps_from_a_copy(tmp_path):
    # raw bytes, text and parsed graph at once were a small model's peak: the load's own
    # buffer is hashed and decoded where it lies; a shared map is still copied first, so the
    # bytes hashed are the bytes parsed
    import mmap

    data = safeload.dumps({"words": [f"w{i}" for i in range(2000)], "a": np.arange(3.0)})
    buf = np.frombuffer(data, np.uint8).copy()
    member = archive.open_archive(buf, safeload.Limits()).index[archive.GRAPH]
    view = archive._member_bytes(buf, member, 1 << 30, "max_json_bytes", share=True)
    assert isinstance(view, memoryview) and np.shares_memory(np.asarray(view), buf)
    assert bytes(view) == data[member.data_offset : member.data_offset + member.size]
    copy = archive._member_bytes(buf, member, 1 << 30, "max_json_bytes")
    assert type(copy) is bytes and copy == bytes(view)
    assert archive._parse_json(view, "graph.json") == archive._parse_json(copy, "graph.json")
    path = tmp_path / "m.safeload"
    path.write_bytes(data)
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        safe = archive.open_archive(mapped, safeload.Limits())
        assert safe.doc == archive.open_archive(buf, safeload.Limits(), private=True).doc
    calls = []
    real = archive._graph_text

    def spy(data, limits, **kw):
        calls.append((type(data), len(data), kw.get("private"), kw.get("base")))
        return real(data, limits, **kw)

    import unittest.mock

    with unittest.mock.patch.object(archive, "_graph_text", spy):
        assert safeload.load(path)["words"][1999] == "w1999"
    # session 9: the load's own buffer is the file's tail, from graph.json's local header on
    import io
    import zipfile

    start = zipfile.ZipFile(io.BytesIO(data)).getinfo("graph.json").header_offset
    assert calls == [(np.ndarray, len(data) - start, True, start)]


def test_a_bad_graph_json_in_a_loads_own_buffer_is_the_same_format_error(tmp_path):
    view = memoryview(bytearray(b"\xef\xbb\xbf{}"))
    with pytest.raises(FormatError, match="J1.*BOM"):
        archive._parse_json(view, "graph.json")
    with pytest.raises(FormatError, match="J1.*UTF-8"):
        archive._parse_json(memoryview(b"\xff{}"), "graph.json")


def test_a_small_file_mostly_json_keeps_no_json_alive_with_its_arrays(tmp_path):
    # viewing the whole read (mostly graph.json) would keep it alive for one small array;
    # since session 9 the arrays come from a read of the file's head only, so they are used
    # in place and their buffer holds no graph.json
    value = {"text": ["word"] * 20_000, "arr": np.arange(70_000, dtype=np.uint8)}
    data = safeload.dumps(value)
    assert len(data) <= archive._SMALL_FILE
    members = sz.member_offsets(data)
    assert 2 * members["arrays/000000.npy"][1] < len(data)
    path = tmp_path / "m.safeload"
    path.write_bytes(data)
    loaded = safeload.load(path)
    assert loaded["arr"].flags.writeable
    np.testing.assert_array_equal(loaded["arr"], value["arr"])
    owner = loaded["arr"]
    while isinstance(owner.base, np.ndarray):
        owner = owner.base
    array_end = members["arrays/000000.npy"][0] + members["arrays/000000.npy"][1]
    assert array_end <= owner.nbytes < members["graph.json"][0]


@pytest.mark.parametrize("verify", [None, True])
def test_a_changed_byte_in_a_small_files_array_is_refused(tmp_path, verify):
    data = safeload.dumps({"big": np.arange(90_000.0), "small": np.arange(5.0)})
    assert len(data) <= archive._SMALL_FILE
    for name in ("arrays/000000.npy", "arrays/000001.npy"):
        _start, size = sz.member_offsets(data)[name]
        path = tmp_path / "m.safeload"
        path.write_bytes(_flip_member(data, name, size - 3))
        with pytest.raises(IntegrityError) as info:
            safeload.load(path, verify=verify)
        assert info.value.members == [name]


def test_the_padding_table_gives_the_z6_extra_field_for_every_offset_and_name():
    import struct

    from safeload.format import zipio

    for offset in range(0, 200):
        for name_len in (10, 17, 18, 63, 64):
            pad = -(offset + 30 + name_len + 4) % 64  # local header, name, extra id + length
            want = struct.pack("<HH", 0xD935, pad) + b"\0" * pad
            assert zipio._extra_for(offset, name_len, True) == want
            assert (offset + 30 + name_len + len(want)) % 64 == 0
        assert zipio._extra_for(offset, 17, False) == b""
    member = zipio.ZipMember("graph.json", 0, 1, 2, 2, 0, 64)
    assert (member.name, member.size, member.data_offset) == ("graph.json", 2, 64)
    with pytest.raises(AttributeError):
        member.size = 3  # type: ignore[misc]  # immutable, as the frozen dataclass was


def test_local_headers_read_through_the_file_give_the_same_index_and_errors(tmp_path):
    import mmap

    from safeload.format import zipio

    data = safeload.dumps([np.arange(200_000.0), np.arange(5.0)])  # 1.6 MB: the map path
    assert len(data) > archive._SMALL_FILE
    path = tmp_path / "m.safeload"
    path.write_bytes(data)
    name_ok = archive._MEMBER.match
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        through_fd = zipio.read_index(mapped, max_members=100, name_ok=name_ok, fd=fh.fileno())
    assert through_fd == zipio.read_index(data, max_members=100, name_ok=name_ok)
    start = through_fd["arrays/000001.npy"].header_offset
    hostile = bytearray(data)
    hostile[start + 14] ^= 0x01  # the local header's CRC-32 only: the directory is intact
    path.write_bytes(bytes(hostile))
    with pytest.raises(FormatError, match="rule Z8: arrays/000001.npy: local header disagrees"):
        safeload.load(path)


def test_an_unknown_graph_key_is_named_even_when_it_sorts_after_the_known_ones():
    # review 8: the message listed sorted(all keys)[:4], which cut off a key sorting last
    data = sz.edit(safeload.dumps([1, 2]), graph=lambda g: g.update({"zz": 0}))
    with pytest.raises(FormatError, match=r"G1: graph.json has unknown keys \['zz'\]"):
        archive.open_archive(data, safeload.Limits())


# --------------------------------------------------------------- session 9: a small file's
# tail (graph.json, manifest.json, central directory) is read and parsed before its arrays


def _small_file(tmp_path, value=None):
    value = value if value is not None else {"a": np.arange(20_000.0), "w": ["x"] * 3000}
    data = safeload.dumps(value)
    assert len(data) <= archive._SMALL_FILE
    path = tmp_path / "small.safeload"
    path.write_bytes(data)
    return path, data, value


def _graph_header(data: bytes) -> int:
    import io
    import zipfile

    return zipfile.ZipFile(io.BytesIO(data)).getinfo("graph.json").header_offset


def test_header_offset_finds_graph_json_in_the_tail_or_says_none(tmp_path):
    from safeload.format import zipio

    _, data, _ = _small_file(tmp_path)
    start = _graph_header(data)
    for probe in (300, 8192, len(data)):  # the directory and end record: 282 bytes
        tail = data[-probe:]
        assert zipio.header_offset(tail, len(data), "graph.json") == start
    assert zipio.header_offset(data[-100:], len(data), "graph.json") is None  # no directory
    assert zipio.header_offset(data[-400:], len(data), "nothing.json") is None
    assert zipio.header_offset(data[-400:], len(data) + 1, "graph.json") is None  # wrong size
    assert zipio.header_offset(b"PK\x05\x06" + b"\xff" * 18, 22, "graph.json") is None
    assert zipio.header_offset(b"", 0, "graph.json") is None


def test_read_index_of_the_tail_equals_the_index_of_the_whole_file(tmp_path):
    from safeload.format import zipio

    path, data, _ = _small_file(tmp_path)
    start = _graph_header(data)
    whole = zipio.read_index(data, max_members=100, name_ok=archive._MEMBER.match)
    with open(path, "rb") as fh:
        tail = zipio.read_index(
            data[start:], max_members=100, name_ok=archive._MEMBER.match, fd=fh.fileno(),
            base=start,
        )  # fmt: skip
    assert tail == whole
    with pytest.raises(ValueError, match="fd"):
        zipio.read_index(data[start:], max_members=100, name_ok=archive._MEMBER.match, base=start)


def test_a_local_header_before_the_tail_is_still_checked(tmp_path):
    # the headers before graph.json are read with pread, and must repeat the directory (Z8)
    path, data, _ = _small_file(tmp_path)
    bad = bytearray(data)
    bad[4] ^= 0xFF  # "version needed" of the first local header
    path.write_bytes(bytes(bad))
    with pytest.raises(FormatError, match="Z8"):
        safeload.load(path)


@pytest.mark.parametrize("member", ["arrays/000000.npy", "graph.json"])
def test_a_small_file_changed_between_its_two_reads_is_refused(tmp_path, monkeypatch, member):
    # the tail is read and parsed first, the arrays after: a file rewritten in between fails
    # the hashes (each part is hashed from the bytes used), never loads other bytes silently
    path, data, value = _small_file(tmp_path)
    start, size = sz.member_offsets(data)[member]
    real = archive._read_head

    def rewrite_then_read(src, index):
        path.write_bytes(_flip_member(data, member, size - 5))
        return real(src, index)

    monkeypatch.setattr(archive, "_read_head", rewrite_then_read)
    if member == "graph.json":  # read before the change: the old graph with the old arrays
        loaded = safeload.load(path)
        np.testing.assert_array_equal(loaded["a"], value["a"])
    else:
        with pytest.raises(IntegrityError) as info:
            safeload.load(path)
        assert info.value.members == [member]


def test_a_small_files_arrays_are_not_in_memory_while_its_graph_is_parsed(tmp_path):
    # session 9: the whole file's buffer beside graph.json's text and parsed graph was the
    # load's allocation peak for ct_gbc (637 KiB against pickle's 544)
    import tracemalloc

    path, _, _ = _small_file(tmp_path, {"a": np.arange(90_000.0), "w": ["x"] * 3000})
    seen = []
    real = archive._parse_graph

    def spy(index, manifest, text):
        seen.append(tracemalloc.get_traced_memory()[0] - base)
        return real(index, manifest, text)

    import unittest.mock

    with unittest.mock.patch.object(archive, "_parse_graph", spy):
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            safeload.load(path)
        finally:
            tracemalloc.stop()
    assert len(seen) == 1
    assert seen[0] < 300_000  # the 720 KB array is read after the parse


def test_the_fallback_reads_the_whole_small_file_when_the_directory_is_not_in_the_probe(
    tmp_path, monkeypatch
):
    path, _, value = _small_file(tmp_path)
    monkeypatch.setattr(archive, "_TAIL_PROBE", 30)  # the end record only: no directory
    calls = []
    real = archive._read_small
    monkeypatch.setattr(archive, "_read_small", lambda src, n: calls.append(n) or real(src, n))
    loaded = safeload.load(path)
    assert calls == [path.stat().st_size]
    np.testing.assert_array_equal(loaded["a"], value["a"])


def test_a_directory_that_moved_between_the_probe_and_the_tail_read_is_a_format_error(
    tmp_path, monkeypatch
):
    # the probe's directory said where graph.json starts; a file rewritten before the tail
    # is read can have its directory start before that offset: a FormatError (Z1), never a
    # ValueError
    from safeload.format import zipio

    path, data, _ = _small_file(tmp_path)
    start = _graph_header(data)
    sig, disk, cd_disk, n_disk, n_total, cd_size, cd_start, comment = zipio._EOCD.unpack_from(
        data, len(data) - 22
    )
    moved = start - 64
    end = zipio._EOCD.pack(sig, 0, 0, n_disk, n_total, cd_size + cd_start - moved, moved, 0)
    path.write_bytes(data[:-22] + end)
    monkeypatch.setattr(archive, "header_offset", lambda tail, size, name: start)
    with pytest.raises(FormatError, match="Z1.*changed"):
        safeload.load(path)


def test_a_tail_that_starts_past_graph_json_is_a_format_error(tmp_path, monkeypatch):
    # review 9: a probe that saw another file can put the tail's start past graph.json's
    # header; the tail would then be sliced at a negative offset (caught by the CRC before)
    path, data, _ = _small_file(tmp_path)
    start = _graph_header(data)
    monkeypatch.setattr(archive, "header_offset", lambda tail, size, name: start + 64)
    for verify in (None, False):
        with pytest.raises(FormatError, match="Z1.*moved"):
            safeload.load(path, verify=verify)
