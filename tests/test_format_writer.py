"""The safe-format writer's fast paths give the bytes the plain paths give.

* ``safeload.format._crc32`` (optional C extension, carry-less multiplication) agrees with
  ``zlib.crc32``, its reference, and its fold constants are the ones derived here;
* the writer falls back to ``zlib.crc32`` without it, with byte-identical files;
* array members hashed on worker threads in batches get the plain SHA-256 of their bytes;
* a dump that fails after arrays were queued leaves no thread and no file behind.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib
import io
import json
import os
import random
import sys
import threading
import zipfile
import zlib

import numpy as np
import pytest

import safeload
from safeload.errors import UntrustedTypesError
from safeload.format import archive, zipio

from ._safezip import member_entry

try:
    from safeload.format import _crc32  # type: ignore[attr-defined]
except ImportError:  # optional C extension not built
    _crc32 = None

needs_ext = pytest.mark.skipif(_crc32 is None, reason="C extension _crc32 not built")

CREATED = datetime.datetime(2024, 1, 2, 3, 4, 5)

# ---------------------------------------------------------------------------- CRC-32

_P = 0x104C11DB7  # the CRC-32 polynomial, bit d = coefficient of x**d


def _x_pow_mod_p(n: int) -> int:
    r = 1
    for _ in range(n):
        r <<= 1
        if r >> 32:
            r ^= _P
    return r


def _reflect64(v: int) -> int:
    return int(f"{v:064b}"[::-1], 2)


@needs_ext
def test_fold_constants_are_derived():
    """reflect64(x**(n-1) mod P) for the 512-bit (n = 576, 512) and 128-bit folds."""
    if not hasattr(_crc32, "FOLD_CONSTANTS"):
        pytest.skip("no carry-less multiply path in this build")
    expected = tuple(_reflect64(_x_pow_mod_p(n - 1)) for n in (576, 512, 192, 128))
    assert expected == _crc32.FOLD_CONSTANTS


@needs_ext
def test_crc32_agrees_with_zlib_on_every_short_length_and_alignment():
    rng = random.Random(0)
    data = bytes(rng.getrandbits(8) for _ in range(700))
    for n in range(0, 400):
        for offset in (0, 1, 7, 15):
            view = memoryview(data)[offset : offset + n]
            assert _crc32.crc32(view) == zlib.crc32(view), (n, offset)
            value = rng.getrandbits(32)
            assert _crc32.crc32(view, value) == zlib.crc32(view, value), (n, offset, value)


@needs_ext
def test_crc32_agrees_with_zlib_on_large_buffers_and_arrays():
    rng = np.random.default_rng(0)
    for n in (1 << 16, (1 << 20) + 13, 5_000_003):
        raw = rng.integers(0, 256, n, dtype=np.uint8)
        assert _crc32.crc32(raw) == zlib.crc32(raw)
        assert _crc32.crc32(raw[3:], 12345) == zlib.crc32(raw[3:], 12345)
    for special in (b"", b"\0" * 4096, b"\xff" * 4099):
        assert _crc32.crc32(special) == zlib.crc32(special)
    # chained updates, as the deflate sink makes them
    raw = rng.integers(0, 256, 300_000, dtype=np.uint8)
    crc = 0
    for start in range(0, raw.nbytes, 70_001):
        crc = _crc32.crc32(raw[start : start + 70_001], crc)
    assert crc == zlib.crc32(raw)


@needs_ext
def test_crc32_refuses_what_zlib_refuses():
    with pytest.raises(TypeError):
        _crc32.crc32("text")
    with pytest.raises((TypeError, BufferError, ValueError)):
        _crc32.crc32(np.zeros((4, 4))[:, ::2])  # not contiguous


def test_writer_falls_back_to_zlib_without_the_extension(monkeypatch):
    monkeypatch.setitem(sys.modules, "safeload.format._crc32", None)  # import fails
    monkeypatch.delattr(safeload.format, "_crc32", raising=False)
    assert zipio._pick_crc32() is zlib.crc32


def test_files_are_identical_with_either_crc(monkeypatch):
    obj = {"w": np.arange(100_000, dtype=np.float64), "small": np.arange(7), "s": "x"}
    fast = safeload.dumps(obj, created=CREATED)
    monkeypatch.setattr(zipio, "crc32", zlib.crc32)
    monkeypatch.setattr(archive, "crc32", zlib.crc32)
    assert safeload.dumps(obj, created=CREATED) == fast
    with zipfile.ZipFile(io.BytesIO(fast)) as zf:
        assert zf.testzip() is None  # every CRC-32 right


# ---------------------------------------------------------------------------- hashing


def _check_manifest_hashes(data: bytes) -> dict:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None
        manifest = json.loads(zf.read("manifest.json"))
        names = [n for n in zf.namelist() if n != "manifest.json"]
        assert list(manifest["members"]) == names
        for name in names:
            raw = zf.read(name)
            entry = manifest["members"][name]
            assert entry == member_entry(raw, 2)
            if len(raw) > 1 << 20:  # hashed per 1 MiB block, on both workers
                assert len(entry["sha256_blocks"]) == -(-len(raw) // (1 << 20)) >= 2
            else:
                assert entry["sha256"] == hashlib.sha256(raw).hexdigest()
    return manifest


@pytest.mark.parametrize("compression", [None, "deflate"])
def test_batched_hashes_are_plain_sha256_of_each_member_or_block(compression):
    rng = np.random.default_rng(1)
    # sizes around the batch size: small batches, one member per batch, members over it
    # (300_000 float64: 2.4 MB, three blocks)
    arrays = [rng.random(n) for n in (9_000, 20_000, 131_072, 150_000, 300_000, 5)]
    arrays.append(np.asfortranarray(rng.random((400, 300))))
    data = safeload.dumps(arrays, created=CREATED, compression=compression)
    manifest = _check_manifest_hashes(data)
    assert len(manifest["members"]) >= 7
    loaded = safeload.load(io.BytesIO(data))
    for a, b in zip(arrays, loaded, strict=True):
        np.testing.assert_array_equal(a, b)


def test_many_members_hash_in_order():
    arrays = [np.full(9_000, i, dtype=np.float64) for i in range(40)]  # 72 KB each
    _check_manifest_hashes(safeload.dumps(arrays, created=CREATED))


class _Untrusted:
    pass


def test_failure_after_queued_arrays_leaves_no_file_and_no_thread(tmp_path):
    before = {t.ident for t in threading.enumerate()}
    target = tmp_path / "m.safe"
    target.write_bytes(b"old")
    obj = [np.zeros(3_000_000), np.ones(200_000), _Untrusted()]
    with pytest.raises(UntrustedTypesError):
        safeload.dump(obj, target)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safe"]
    assert {t.ident for t in threading.enumerate()} <= before


# ---------------------------------------------------------------------------- zip writer


def test_write_stored_writes_what_the_sink_writes():
    parts = (b"head", np.arange(50_000, dtype=np.uint8), b"", memoryview(b"tail"))
    joined = b"".join(bytes(p) for p in parts)
    a, b = io.BytesIO(), io.BytesIO()
    wa, wb = zipio.ZipWriter(a), zipio.ZipWriter(b)
    wa.write_member("graph.json", b"{}")
    wb.write_member("graph.json", b"{}")
    sink = wa.begin("arrays/000000.npy")
    sink.write(joined)
    ma = sink.close()
    mb = wb.write_stored("arrays/000000.npy", parts, zlib.crc32(joined))
    assert ma == mb
    wa.finish()
    wb.finish()
    assert a.getvalue() == b.getvalue()
    with pytest.raises(ValueError, match="duplicate"):
        wb.write_stored("graph.json", (b"x",), zlib.crc32(b"x"))


# ---------------------------------------------------------------------------- atomic replace

dump_module = importlib.import_module("safeload.dump")  # the module, not the function


@pytest.mark.skipif(os.name != "posix", reason="POSIX only")
def test_hold_replaced_opens_only_large_plain_files(tmp_path):
    big = tmp_path / "big.safe"
    big.write_bytes(b"\0" * dump_module._RELEASE_LATER)
    (tmp_path / "small.safe").write_bytes(b"x")
    (tmp_path / "link.safe").symlink_to(big)
    (tmp_path / "dir.safe").mkdir()
    os.mkfifo(tmp_path / "fifo.safe")
    for name in ("missing.safe", "small.safe", "link.safe", "dir.safe", "fifo.safe"):
        assert dump_module._hold_replaced(str(tmp_path / name)) is None, name
    fd = dump_module._hold_replaced(str(big))
    assert fd is not None
    try:
        assert os.path.samestat(os.fstat(fd), big.stat())
    finally:
        os.close(fd)


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="posix_fadvise only")
def test_the_replaced_files_cache_is_dropped_only_for_large_plain_files(tmp_path, monkeypatch):
    calls = []
    real = os.posix_fadvise

    def record(fd, offset, length, advice):
        calls.append((os.fstat(fd).st_ino, offset, length, advice))
        return real(fd, offset, length, advice)

    monkeypatch.setattr(os, "posix_fadvise", record)
    big = tmp_path / "big.safe"
    big.write_bytes(b"\0" * dump_module._RELEASE_LATER)
    (tmp_path / "small.safe").write_bytes(b"x")
    (tmp_path / "link.safe").symlink_to(big)
    os.mkfifo(tmp_path / "fifo.safe")
    for name in ("missing.safe", "small.safe", "link.safe", "fifo.safe"):
        dump_module._drop_replaced_cache(str(tmp_path / name))
    assert calls == []
    inode = big.stat().st_ino
    safeload.dump([np.arange(3)], big, created=CREATED)  # drops the old file's cache first
    assert calls == [(inode, 0, 0, os.POSIX_FADV_DONTNEED)]
    assert big.stat().st_ino != inode  # then replaced it, as before
    np.testing.assert_array_equal(safeload.load(big)[0], np.arange(3))


def test_dump_over_a_large_file_replaces_it(tmp_path):
    target = tmp_path / "m.safe"
    target.write_bytes(b"\1" * (dump_module._RELEASE_LATER + 10))
    target.chmod(0o640)
    obj = {"w": np.arange(1_000_000, dtype=np.float64)}
    safeload.dump(obj, target, created=CREATED)
    assert target.read_bytes() == safeload.dumps(obj, created=CREATED)
    assert target.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safe"]
    # the new file is replaced in turn (the old one is let go of on a thread)
    safeload.dump({"w": np.zeros(3)}, target, created=CREATED)
    np.testing.assert_array_equal(safeload.load(target)["w"], np.zeros(3))
