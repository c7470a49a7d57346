"""Rewrite safe-format archives for tests: edit members, keep the manifest's hashes consistent.

:func:`rebuild` reads an archive with the strict reader's index and writes a new one member by
member with :class:`safeload.format.zipio.ZipWriter`, so the result is a well-formed safe file
whose content differs only where a test asked: a manifest claiming another scikit-learn
version, an array with other values (its SHA-256 updated), a hostile graph.
"""

from __future__ import annotations

import io
import json
import zlib
from collections.abc import Callable

from safeload.format.zipio import DEFLATED, ZipWriter, read_index

from ._safezip import member_entry

MANIFEST = "manifest.json"


def members(data: bytes) -> dict:
    """``name -> ZipMember`` of an archive, in archive order."""
    return read_index(data, max_members=100_000, name_ok=lambda name: True)


def member_bytes(data: bytes, name: str) -> bytes:
    """The uncompressed bytes of member ``name``."""
    m = members(data)[name]
    raw = data[m.data_offset : m.data_offset + m.compressed_size]
    return zlib.decompress(raw, -15) if m.method == DEFLATED else raw


def rebuild(
    data: bytes,
    edits: dict[str, Callable[[bytes], bytes]] | None = None,
    manifest: Callable[[dict], dict] | None = None,
    rehash: bool = True,
) -> bytes:
    """A copy of the archive ``data`` with members edited.

    Parameters
    ----------
    edits : dict of str to callable
        ``name -> f(old bytes) -> new bytes`` for members other than the manifest.
    manifest : callable, optional
        ``f(manifest dict) -> manifest dict``, applied after the hashes are updated.
    rehash : bool
        Record the SHA-256 and size of edited members in the manifest (a consistent file);
        False keeps the old entries (a tampered file).
    """
    edits = edits or {}
    index = members(data)
    contents = {name: member_bytes(data, name) for name in index}
    for name, edit in edits.items():
        contents[name] = edit(contents[name])
    doc = json.loads(contents[MANIFEST])
    if rehash:
        for name in edits:
            doc["members"][name] = member_entry(contents[name], doc["format_version"])
    if manifest is not None:
        doc = manifest(doc)
    contents[MANIFEST] = json.dumps(doc, separators=(",", ":")).encode()
    out = io.BytesIO()
    writer = ZipWriter(out)
    for name, m in index.items():
        writer.write_member(name, contents[name], m.method)
    writer.finish()
    return out.getvalue()
