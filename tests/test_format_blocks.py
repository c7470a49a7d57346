"""Format version 2: members over 1 MiB are hashed per 1 MiB block (FORMAT.md §3, rule M4).

Every expected digest here is computed with :mod:`hashlib` on slices of the member's bytes as
:mod:`zipfile` reads them, independently of :mod:`safeload.format.digest`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import safeload
from safeload.errors import FormatError, IntegrityError
from safeload.format import archive
from safeload.format.digest import MemberHash, digest
from safeload.format.npyio import header_bytes

from . import _safezip as sz

CREATED = dt.datetime(2024, 5, 6, 7, 8, 9)
MIB = 1 << 20
BIG = "arrays/000000.npy"


def _blocks(raw: bytes) -> list[str]:
    return [hashlib.sha256(raw[k : k + MIB]).hexdigest() for k in range(0, len(raw), MIB)]


def _uint8_member(size: int) -> np.ndarray:
    """A uint8 array whose ``.npy`` member is exactly ``size`` bytes."""
    n = size - len(header_bytes(np.dtype(np.uint8), False, (size,)))
    assert len(header_bytes(np.dtype(np.uint8), False, (n,))) + n == size
    return np.random.default_rng(size).integers(0, 256, n, dtype=np.uint8)


@pytest.fixture(params=["c", "python"])
def hasher(request, monkeypatch) -> str:
    """Run a test with the C hasher (``_blockhash``, no GIL) and with the hashlib reference."""
    if request.param == "python":
        monkeypatch.setattr(archive, "_blockhash", None)
    elif archive._blockhash is None:
        pytest.skip("_blockhash not built")
    return request.param


@pytest.fixture(scope="module")
def big() -> tuple[np.ndarray, bytes]:
    arr = np.random.default_rng(0).random(450_000)  # 3.6 MB: four blocks, the last partial
    return arr, safeload.dumps([arr, np.arange(10)], created=CREATED)


@pytest.mark.parametrize(
    "size, blocks",
    [(MIB - 1, 0), (MIB, 0), (MIB + 1, 2), (3 * MIB, 3), (3 * MIB + 5, 4)],
)
def test_members_over_one_mib_record_the_sha256_of_each_block(size, blocks):
    data = safeload.dumps(_uint8_member(size), created=CREATED)
    members = sz.read_members(data)
    entry = json.loads(members["manifest.json"])["members"][BIG]
    raw = members[BIG]
    assert len(raw) == size
    if blocks:
        assert entry == {"size": size, "sha256_blocks": _blocks(raw)}
        assert len(entry["sha256_blocks"]) == blocks
    else:  # up to exactly 1 MiB: one digest of the whole member, as in version 1
        assert entry == {"size": size, "sha256": hashlib.sha256(raw).hexdigest()}
    assert safeload.dumps(_uint8_member(size), created=CREATED) == data  # still deterministic


def _flip(data: bytes, name: str, offset: int) -> bytes:
    start, _ = sz.member_offsets(data)[name]
    out = bytearray(data)
    out[start + offset] ^= 0x01
    return bytes(out)


@pytest.mark.parametrize("offset", [5, MIB - 1, MIB, 2 * MIB + 77, 3_600_100])
@pytest.mark.parametrize("how", ["path", "bytes", "mmap-verify"])
def test_a_changed_byte_in_any_block_is_refused(tmp_path, big, offset, how, hasher):
    _, data = big
    bad = _flip(data, BIG, offset)
    path = tmp_path / "m.safeload"
    path.write_bytes(bad)
    with pytest.raises(IntegrityError) as info:
        if how == "path":
            safeload.load(path)
        elif how == "bytes":
            safeload.loads(bad)
        else:
            safeload.load(path, mmap_mode="r", verify=True)
    assert info.value.members == [BIG]
    report = safeload.verify(path)
    hashes = next(c for c in report.checks if c.name == "hashes")
    assert hashes.status == "failed"
    k = offset // MIB
    assert hashes.figures["reasons"][BIG].startswith(
        f"block {k} (bytes {k * MIB:,}-{(k + 1) * MIB - 1:,}): SHA-256 "
    )


def test_compressed_members_are_hashed_per_block_too(big):
    arr, _ = big
    data = safeload.dumps([arr], created=CREATED, compression="deflate")
    raw = sz.read_members(data)[BIG]
    assert sz.read_manifest(data)["members"][BIG]["sha256_blocks"] == _blocks(raw)
    np.testing.assert_array_equal(safeload.loads(data)[0], arr)
    table = sz.read_members(data)
    table[BIG] = raw[:-8] + bytes(8)  # zeros in the last block; the manifest left as it was
    with pytest.raises(IntegrityError):
        safeload.loads(sz.build(table, method=sz.DEFLATED))


@pytest.mark.parametrize("how", ["path", "bytes", "mmap"])
def test_intact_blocked_file_loads_on_every_read_path(tmp_path, big, how, hasher):
    arr, data = big
    path = tmp_path / "m.safeload"
    path.write_bytes(data)
    if how == "path":
        out = safeload.load(path)
    elif how == "bytes":
        out = safeload.loads(data)
    else:
        out = safeload.load(path, mmap_mode="r", verify=True)
    np.testing.assert_array_equal(out[0], arr)
    assert safeload.verify(path).ok


def _as_version_1(data: bytes) -> bytes:
    table = sz.read_members(data)
    manifest = json.loads(table["manifest.json"])
    manifest["format_version"] = 1
    table["manifest.json"] = sz.json_bytes(manifest)
    return sz.build(sz.rehash(table))  # whole-member digests, as version 1 wrote them


def test_version_1_files_still_load_and_are_checked_as_strictly(tmp_path, big, hasher):
    arr, data = big
    old = _as_version_1(data)
    entry = sz.read_manifest(old)["members"][BIG]
    assert entry == {
        "size": entry["size"],
        "sha256": hashlib.sha256(sz.read_members(old)[BIG]).hexdigest(),
    }
    path = tmp_path / "v1.safeload"
    path.write_bytes(old)
    np.testing.assert_array_equal(safeload.load(path)[0], arr)
    np.testing.assert_array_equal(safeload.loads(old)[0], arr)
    assert safeload.verify(path).ok
    path.write_bytes(_flip(old, BIG, 2 * MIB + 3))
    with pytest.raises(IntegrityError):
        safeload.load(path)
    with pytest.raises(IntegrityError):
        safeload.load(path, mmap_mode="r", verify=True)


def _entry_edit(change):
    def edit(manifest: dict) -> None:
        change(manifest, manifest["members"][BIG], manifest["members"]["arrays/000001.npy"])

    return edit


@pytest.mark.parametrize(
    "change",
    [
        # a large member with one whole-member digest in version 2
        lambda m, big, small: big.update(sha256="0" * 64) or big.pop("sha256_blocks"),
        # a small member with a block list
        lambda m, big, small: small.update(sha256_blocks=[small.pop("sha256")]),
        # one block too few, one too many
        lambda m, big, small: big["sha256_blocks"].pop(),
        lambda m, big, small: big["sha256_blocks"].append("0" * 64),
        # not 64 lowercase hex digits
        lambda m, big, small: big["sha256_blocks"].__setitem__(1, big["sha256_blocks"][1].upper()),
        lambda m, big, small: big["sha256_blocks"].__setitem__(0, None),
        # both forms at once, or a block list as a string
        lambda m, big, small: big.update(sha256="0" * 64),
        lambda m, big, small: big.update(sha256_blocks="".join(big["sha256_blocks"])),
        # version 1 never had block lists
        lambda m, big, small: m.update(format_version=1),
    ],
)
def test_a_members_entry_in_the_wrong_form_is_refused(big, change):
    _, data = big
    hostile = sz.edit(data, manifest=_entry_edit(change))
    with pytest.raises(FormatError, match="M4"):
        safeload.loads(hostile)
    with pytest.raises(FormatError, match="M4"):
        safeload.load(hostile, verify=False)  # the manifest is checked either way


def test_reordered_block_digests_are_refused(big):
    _, data = big
    hostile = sz.edit(
        data, manifest=_entry_edit(lambda m, big, small: big["sha256_blocks"].reverse())
    )
    with pytest.raises(IntegrityError):
        safeload.loads(hostile)


def test_split_blocks_cut_across_the_header_and_the_data():
    header = bytes(range(200))
    raw = np.random.default_rng(3).integers(0, 256, 3 * MIB, dtype=np.uint8)
    blocks = archive._split_blocks((header, raw))
    whole = header + raw.tobytes()
    assert [len(b"".join(bytes(v) for v in block)) for block in blocks] == [MIB, MIB, MIB, 200]
    got = []
    for block in blocks:
        h = hashlib.sha256()
        for view in block:
            h.update(view)
        got.append(h.hexdigest())
    assert got == _blocks(whole)


_DATA = np.random.default_rng(4).integers(0, 256, 2 * MIB + 1234, dtype=np.uint8).tobytes()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cuts=st.lists(st.integers(0, len(_DATA)), max_size=12), blocked=st.booleans())
def test_member_hash_gives_the_same_digest_for_any_chunking(cuts, blocked):
    h = MemberHash(blocked)
    bounds = [0, *sorted(cuts), len(_DATA)]
    for a, b in zip(bounds, bounds[1:], strict=False):
        h.update(_DATA[a:b])
    expected = _blocks(_DATA) if blocked else hashlib.sha256(_DATA).hexdigest()
    assert h.result() == expected == digest(_DATA, blocked)
    assert digest(io.BytesIO(_DATA).getbuffer(), blocked) == expected


def test_every_large_member_is_checked_with_its_own_digest(tmp_path, hasher):
    """Members of 64 KiB to 1 MiB (one digest each) and over 1 MiB (blocks) read from a file:
    a byte changed in any one of them is reported for that member alone."""
    arrays = [np.full(n, i, dtype=np.uint8) for i, n in enumerate([70_000, 300_000, 1_500_000])]
    data = safeload.dumps(arrays, created=CREATED)
    path = tmp_path / "m.safeload"
    path.write_bytes(data)
    out = safeload.load(path)
    assert [a.tolist() == b.tolist() for a, b in zip(out, arrays, strict=True)] == [True] * 3
    for k, name in enumerate(f"arrays/{i:06d}.npy" for i in range(3)):
        path.write_bytes(_flip(data, name, 200 + k * 60_000))
        with pytest.raises(IntegrityError) as info:
            safeload.load(path)
        assert info.value.members == [name]


@pytest.mark.parametrize("how", ["path", "bytes"])
def test_large_members_of_a_small_file_are_hashed_from_the_bytes_used(tmp_path, hasher, how):
    """A file under 1 MiB is read once; members of 64 KiB and more (over 512 KiB in all) are
    hashed beside the decode from the very bytes the arrays hold."""
    arrays = [np.full(300_000, i + 1, dtype=np.uint8) for i in range(2)]
    data = safeload.dumps(arrays, created=CREATED)
    assert len(data) < MIB
    path = tmp_path / "m.safeload"

    def load(blob: bytes):
        if how == "bytes":
            return safeload.loads(blob)
        path.write_bytes(blob)
        return safeload.load(path)

    out = load(data)
    assert [int(a.sum()) for a in out] == [300_000, 600_000]
    for k in range(2):
        name = f"arrays/{k:06d}.npy"
        with pytest.raises(IntegrityError) as info:
            load(_flip(data, name, 1000 + k))
        assert info.value.members == [name]
