"""Family *zip-wrapper*: a malicious pickle inside a zip archive (torch-style ``.pt`` layout).

A torch-style zip holds ``archive/data.pkl``; tricks on the container make readers disagree:
a member with a wrong CRC (Python's ``zipfile`` raises only at EOF, after a streaming
``pickle.load`` ran the payload; miniz ignores it, Z02), the "encrypted" flag bit on a plain
member (``zipfile`` refuses, lenient readers load, Z03), a pickle member without a ``.pkl`` name
(Z04).  safeload does not unpickle zip members at all: any zip archive given to ``load`` is a
``FormatError``, whatever its members, flags, compression or file name — and nothing in it is
parsed, so no payload is reached.

Public sources (CATALOG.md): Z01 PyTorch zip layout, nullifAI; Z02 CVE-2025-10156; Z03
CVE-2025-1945; Z04 CVE-2025-1889 / CVE-2025-10155.
"""

from __future__ import annotations

import struct
import zipfile

import pytest

from ._pickle_builder import G, compress, dumps, make_zip
from .conftest import Format, assert_refused

CMD = 'touch "$SAFELOAD_CANARY_DIR/zipwrap"'
PAYLOAD = dumps(G("os", "system")(CMD), 2)


def torch_zip(pkl: bytes, *, name: str = "archive/data.pkl", compression=zipfile.ZIP_STORED):
    return make_zip(
        [(name, pkl), ("archive/version", b"3\n"), ("archive/byteorder", b"little")],
        compression=compression,
    )


def flip_crc(data: bytes) -> bytes:
    """Corrupt the CRC-32 of the first member in both its local and central headers."""
    out = bytearray(data)
    local = out.index(b"PK\x03\x04")
    out[local + 14 : local + 18] = b"\xde\xad\xbe\xef"
    central = out.index(b"PK\x01\x02")
    out[central + 16 : central + 20] = b"\xde\xad\xbe\xef"
    return bytes(out)


def set_flag(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    local = out.index(b"PK\x03\x04")
    flags = struct.unpack_from("<H", out, local + 6)[0] | bit
    struct.pack_into("<H", out, local + 6, flags)
    central = out.index(b"PK\x01\x02")
    struct.pack_into("<H", out, central + 8, flags)
    return bytes(out)


VARIANTS = {
    "data.pkl": torch_zip(PAYLOAD),
    "data.pkl-deflated": torch_zip(PAYLOAD, compression=zipfile.ZIP_DEFLATED),
    "data.pkl-bz2": torch_zip(PAYLOAD, compression=zipfile.ZIP_BZIP2),
    "data.pkl-lzma": torch_zip(PAYLOAD, compression=zipfile.ZIP_LZMA),
    "bad-crc": flip_crc(torch_zip(PAYLOAD)),
    "encrypted-flag": set_flag(torch_zip(PAYLOAD), 0x1),
    "strong-encryption-flag": set_flag(torch_zip(PAYLOAD), 0x40),
    "data-descriptor-flag": set_flag(torch_zip(PAYLOAD), 0x8),
    "member-without-pkl-name": torch_zip(PAYLOAD, name="archive/data"),
    "member-named-weights": torch_zip(PAYLOAD, name="model.weights"),
    "text-pickle-member": torch_zip(dumps(G("os", "system")(CMD), 0), name="archive/data"),
    "joblib-member": make_zip([("model.joblib", compress(PAYLOAD, "zlib"))]),
    "nested-zip": make_zip([("inner.zip", torch_zip(PAYLOAD))]),
    "only-pickle-member": make_zip([("data.pkl", PAYLOAD)]),
    "empty-archive": make_zip([]),
    "benign-member": torch_zip(dumps([1, 2, 3], 2)),
}


@pytest.mark.parametrize("ext", ["zip", "pt", "pth", "pkl", "joblib", "bin"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_zip_archives_are_refused_unread(variant, ext, tmp_path):
    path = tmp_path / f"model.{ext}"
    path.write_bytes(VARIANTS[variant])
    assert_refused(path, Format("zip"))


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_zip_archive_bytes(variant):
    assert_refused(VARIANTS[variant], Format("zip"))


@pytest.mark.parametrize("comp", ["zlib", "gzip", "bz2", "xz"])
def test_compressed_zip_is_not_a_pickle(comp):
    """A zip inside a compressor decompresses to a zip, which is no pickle stream."""
    assert_refused(compress(VARIANTS["data.pkl"], comp), Format())


@pytest.mark.parametrize("magic", [b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08"])
def test_zip_magic_alone(magic):
    assert_refused(magic + b"\0" * 60, Format("zip"))
