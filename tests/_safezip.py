"""Rebuild and edit safe-format archives in tests, breaking exactly one rule at a time.

Members are read with the standard library's :mod:`zipfile` (an independent reader) and written
back with :class:`safeload.format.zipio.ZipWriter`, so the zip structure stays canonical unless a
test changes it on purpose.  By default the manifest's ``members`` table is recomputed (sizes
and SHA-256) after an edit, so that a test that changes ``graph.json`` meets the rule it aims
at, not the integrity check.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterable
from typing import Any

from safeload.format.zipio import DEFLATED, STORED, ZipWriter

__all__ = [
    "DEFLATED",
    "STORED",
    "build",
    "edit",
    "json_bytes",
    "member_entry",
    "member_offsets",
    "npy_bytes",
    "read_graph",
    "read_manifest",
    "read_members",
    "rehash",
]

MANIFEST = "manifest.json"
GRAPH = "graph.json"


def json_bytes(value: Any) -> bytes:
    """JSON the way the writer spells it (compact, UTF-8)."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def read_members(data: bytes) -> dict[str, bytes]:
    """Every member's uncompressed bytes, in archive order (read by :mod:`zipfile`)."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist()}


def read_graph(data: bytes) -> dict:
    return json.loads(read_members(data)[GRAPH])


def read_manifest(data: bytes) -> dict:
    return json.loads(read_members(data)[MANIFEST])


BLOCK = 1 << 20  # FORMAT.md §3: version 2 hashes members over 1 MiB per 1 MiB block


def member_entry(raw: bytes, version: int) -> dict:
    """The manifest's ``members`` entry for ``raw`` in format ``version``, written out here
    independently of :mod:`safeload.format.digest`."""
    if version >= 2 and len(raw) > BLOCK:
        blocks = [hashlib.sha256(raw[k : k + BLOCK]).hexdigest() for k in range(0, len(raw), BLOCK)]
        return {"size": len(raw), "sha256_blocks": blocks}
    return {"size": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}


def rehash(members: dict[str, bytes]) -> dict[str, bytes]:
    """Return ``members`` with the manifest's size/SHA-256 table recomputed for the others
    (in the form the manifest's ``format_version`` asks for)."""
    manifest = json.loads(members[MANIFEST])
    version = manifest.get("format_version")
    version = version if type(version) is int else 2
    manifest["members"] = {
        name: member_entry(raw, version) for name, raw in members.items() if name != MANIFEST
    }
    out = dict(members)
    out[MANIFEST] = json_bytes(manifest)
    return out


def build(
    members: dict[str, bytes] | Iterable[tuple[str, bytes]],
    *,
    method: int = STORED,
    methods: dict[str, int] | None = None,
) -> bytes:
    """A canonical archive of ``members`` (a dict, or pairs to allow duplicate names)."""
    pairs = list(members.items()) if isinstance(members, dict) else list(members)
    buf = io.BytesIO()
    writer = ZipWriter(buf)
    for name, raw in pairs:
        writer._names.discard(name)  # duplicates are the point of some tests
        writer.write_member(name, raw, (methods or {}).get(name, method))
    writer.finish()
    return buf.getvalue()


def edit(
    data: bytes,
    *,
    graph: Callable[[dict], Any] | None = None,
    manifest: Callable[[dict], Any] | None = None,
    members: Callable[[dict[str, bytes]], Any] | None = None,
    recompute_hashes: bool = True,
    method: int = STORED,
) -> bytes:
    """Rewrite ``data`` after applying edits; each callable edits its argument in place (or
    returns a replacement).  ``graph``/``manifest`` edit the parsed JSON, ``members`` the raw
    member table.  The manifest's hash table is recomputed unless ``recompute_hashes`` is
    False (it is recomputed *before* a ``manifest`` edit, so that edit can still break it)."""
    table = read_members(data)
    if graph is not None:
        doc = json.loads(table[GRAPH])
        result = graph(doc)
        doc = result if isinstance(result, dict) else doc
        table[GRAPH] = json_bytes(doc)
    if members is not None:
        result = members(table)
        table = result if isinstance(result, dict) else table
    if recompute_hashes:
        table = rehash(table)
    if manifest is not None:
        man = json.loads(table[MANIFEST])
        result = manifest(man)
        man = result if isinstance(result, dict) else man
        table[MANIFEST] = json_bytes(man)
    return build(table, method=method)


def member_offsets(data: bytes) -> dict[str, tuple[int, int]]:
    """``name -> (data offset, compressed size)`` from the local headers (via zipfile)."""
    out = {}
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for info in zf.infolist():
            off = info.header_offset
            name_len, extra_len = struct.unpack_from("<HH", data, off + 26)
            out[info.filename] = (off + 30 + name_len + extra_len, info.compress_size)
    return out


def npy_bytes(header: bytes, payload: bytes = b"") -> bytes:
    """A ``.npy`` member from a header (see ``safeload.format.npyio.header_for``) and data."""
    return header + payload


# ---------------------------------------------------------------------------- raw zips

_LOCAL = struct.Struct("<4sHHHHHIIIHH")
_CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")
_EOCD = struct.Struct("<4sHHHHIIH")
_FIXED_DATE = (0 << 9) | (1 << 5) | 1


def raw_member(name: str, data: bytes, *, method: int = STORED, **fields: Any) -> dict:
    """Fields of one member for :func:`raw_zip`, as the writer would set them.

    Override any of ``flags``, ``time``, ``date``, ``crc``, ``csize``, ``usize``, ``need``,
    ``extra`` (both headers), ``local`` (a dict of overrides for the local header only),
    ``after`` (bytes written after the data, a gap), ``comment``.
    """
    payload = data
    if method == DEFLATED:
        comp = zlib.compressobj(6, zlib.DEFLATED, -15)
        payload = comp.compress(data) + comp.flush()
    entry = {
        "name": name,
        "payload": payload,
        "method": method,
        "flags": 0x800,
        "time": 0,
        "date": _FIXED_DATE,
        "crc": zlib.crc32(data),
        "csize": len(payload),
        "usize": len(data),
        "need": 20,
        "extra": None,  # None: the alignment padding the writer would use
        "local": {},
        "after": b"",
        "comment": b"",
    }
    entry.update(fields)
    return entry


def raw_zip(
    entries: list[dict], *, prefix: bytes = b"", suffix: bytes = b"", comment: bytes = b""
) -> bytes:
    """A zip built field by field from :func:`raw_member` entries (for breaking one rule)."""
    from safeload.format.zipio import _extra_for

    out = bytearray(prefix)
    central = bytearray()
    for e in entries:
        name = e["name"].encode()
        offset = len(out)
        extra = e["extra"]
        if extra is None:
            extra = _extra_for(offset - len(prefix), len(name), e["method"] == STORED)
        local = {
            "need": e["need"],
            "flags": e["flags"],
            "method": e["method"],
            "time": e["time"],
            "date": e["date"],
            "crc": e["crc"],
            "csize": e["csize"],
            "usize": e["usize"],
            "name": name,
            "extra": extra,
        }
        local.update(e["local"])
        out += _LOCAL.pack(
            b"PK\x03\x04",
            local["need"],
            local["flags"],
            local["method"],
            local["time"],
            local["date"],
            local["crc"],
            local["csize"],
            local["usize"],
            len(local["name"]),
            len(local["extra"]),
        )
        out += local["name"] + local["extra"] + e["payload"] + e["after"]
        central += _CENTRAL.pack(
            b"PK\x01\x02",
            20,
            e["need"],
            e["flags"],
            e["method"],
            e["time"],
            e["date"],
            e["crc"],
            e["csize"],
            e["usize"],
            len(name),
            len(extra),
            len(e["comment"]),
            0,
            0,
            0,
            offset,
        )
        central += name + extra + e["comment"]
    cd_start = len(out)
    out += central
    n = len(entries)
    out += _EOCD.pack(b"PK\x05\x06", 0, 0, n, n, len(central), cd_start, len(comment))
    out += comment + suffix
    return bytes(out)


def raw_entries(data: bytes) -> list[dict]:
    """:func:`raw_member` entries that rebuild ``data`` (a stored archive) exactly."""
    return [raw_member(name, raw) for name, raw in read_members(data).items()]
