"""Families *resource-zip* / *resource-npy* / *resource-json*: container-level exhaustion.

A ~1 MB deflate member inflates to 1 GiB (Z10); a ``.npy`` header claims shape ``(2**36,)``
(512 GiB) with 64 data bytes and ``numpy.load`` preallocates before reading (Z11); JSON nested
300k deep raises ``RecursionError`` (Z12); a 2M-digit JSON integer costs quadratic time on old
Pythons (Z13).  safeload reads no zip and no standalone ``.npy``: each is refused as a
``FormatError`` without inflating, allocating or parsing anything — checked in a forked child
bounded in time and memory.  The one ``.npy`` reader (joblib < 0.10 side files) checks the
declared size against ``max_array_bytes`` and against the bytes present before allocating.

Public sources (CATALOG.md): Z10 zip bombs (Fifield 2019); Z11 numpy ``read_array``
preallocation for non-file objects; Z12 JSON bombs; Z13 CVE-2020-10735.
"""

from __future__ import annotations

import zipfile

import pytest

import safeload

from ._pickle_builder import B, G, New, dumps, make_zip, npy_bytes
from .conftest import Format, Limit, MiB, assert_refused, assert_refused_bounded


@pytest.fixture(scope="module")
def zip_bomb() -> bytes:
    """A deflated .npy member of 256 MiB of zeros (~250 KiB on disk)."""
    size = 256 * MiB
    member = npy_bytes("<f8", (size // 8,), b"") + b"\0" * size
    return make_zip([("manifest.json", b"{}"), ("w.npy", member)], compression=zipfile.ZIP_DEFLATED)


def test_zip_bomb_is_refused_without_inflating(zip_bomb, tmp_path):
    assert len(zip_bomb) < 2 * MiB
    path = tmp_path / "bomb.zip"
    path.write_bytes(zip_bomb)
    out = assert_refused_bounded(path, Format("zip"), max_seconds=5, max_rss_growth=64 * MiB)
    assert out.seconds < 1


def test_zip_bomb_bytes(zip_bomb):
    assert_refused_bounded(zip_bomb, Format("zip"), max_seconds=5, max_rss_growth=64 * MiB)


@pytest.mark.parametrize("shape", [(2**36,), (2**20, 2**20), (2**62,), (2**31, 2**31, 4)])
def test_npy_header_claiming_huge_shape(shape):
    data = npy_bytes("<f8", shape, b"\0" * 64)
    assert_refused_bounded(data, Format(), max_seconds=5, max_rss_growth=64 * MiB)
    zipped = make_zip([("w.npy", data)])
    assert_refused_bounded(zipped, Format("zip"), max_seconds=5, max_rss_growth=64 * MiB)


@pytest.mark.parametrize(
    "doc",
    [
        b"[" * 300_000 + b"]" * 300_000,
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
        b"1" * 2_000_000,
        b'{"n": ' + b"9" * 2_000_000 + b"}",
    ],
    ids=["deep-list", "deep-dict", "huge-int", "huge-int-field"],
)
def test_json_bombs_in_a_zip(doc):
    zipped = make_zip([("manifest.json", doc)], compression=zipfile.ZIP_DEFLATED)
    assert_refused_bounded(zipped, Format("zip"), max_seconds=5, max_rss_growth=64 * MiB)


def side_file_pickle(filename: str) -> bytes:
    wrapper = New(G("joblib.numpy_pickle", "NDArrayWrapper"))
    state = {"filename": filename, "subclass": G("numpy", "ndarray"), "allow_mmap": False}
    return dumps([B(wrapper, state)], 2)


@pytest.mark.parametrize(
    ("shape", "descr", "expected"),
    [
        ((2**36,), "<f8", Limit("max_array_bytes")),
        ((2**20, 2**20), "<f8", Limit("max_array_bytes")),
        ((2**28,), "<f8", Format("declares")),  # 2 GiB declared, 64 bytes present
        ((1024,), "V2147483647", Limit("max_array_bytes")),
    ],
    ids=["2**36", "2d", "2GiB-short", "huge-itemsize"],
)
def test_joblib_side_file_with_huge_header(shape, descr, expected, tmp_path):
    (tmp_path / "m.pkl_01.npy").write_bytes(npy_bytes(descr, shape, b"\0" * 64))
    (tmp_path / "m.pkl").write_bytes(side_file_pickle("m.pkl_01.npy"))
    assert_refused_bounded(tmp_path / "m.pkl", expected, max_seconds=5, max_rss_growth=64 * MiB)


def test_side_file_limit_is_the_callers(tmp_path):
    (tmp_path / "m.pkl_01.npy").write_bytes(npy_bytes("<f8", (1024,), b"\0" * 8192))
    (tmp_path / "m.pkl").write_bytes(side_file_pickle("m.pkl_01.npy"))
    safeload.load(tmp_path / "m.pkl")
    assert_refused(
        tmp_path / "m.pkl", Limit("max_array_bytes"), limits=safeload.Limits(max_array_bytes=4096)
    )
