"""SHA-256 of safe-format members as ``manifest.json`` records them (``docs/FORMAT.md`` §3,
rule M4).

Format version 1 records one SHA-256 per member.  From version 2 a member larger than
:data:`BLOCK_SIZE` records the SHA-256 of each consecutive :data:`BLOCK_SIZE`-byte block of its
uncompressed bytes instead (``sha256_blocks``, the last block shorter), so a reader can check
one large member on several cores: SHA-256 itself is sequential, and one 8 MB member's hash
(~4.5 ms) takes longer than ``pickle.load`` of the whole model.  Each block is an ordinary
SHA-256, so a block list changes when any byte changes, as a whole-member digest does; outside
safeload, ``unzip -p FILE MEMBER | split -b 1M --filter=sha256sum`` prints the same list.
"""

from __future__ import annotations

import hashlib
from typing import Any

__all__ = [
    "BLOCK_SIZE",
    "BLOCKS_SINCE",
    "MemberHash",
    "block_count",
    "digest",
    "expected",
    "uses_blocks",
]

#: bytes per hashed block (fixed by the format: part of the file's meaning, not a setting)
BLOCK_SIZE = 1 << 20
#: the first format version that hashes members larger than BLOCK_SIZE per block
BLOCKS_SINCE = 2


def uses_blocks(version: int, size: int) -> bool:
    """Whether a member of ``size`` bytes is hashed per block in format ``version``."""
    return version >= BLOCKS_SINCE and size > BLOCK_SIZE


def block_count(size: int) -> int:
    """Blocks of a ``size``-byte member: ``ceil(size / BLOCK_SIZE)``."""
    return -(-size // BLOCK_SIZE)


def expected(entry: dict) -> str | list[str]:
    """What a checked ``members`` entry records: the hex digest, or the list of block digests."""
    found = entry.get("sha256")
    return found if found is not None else entry["sha256_blocks"]


def digest(data: Any, blocked: bool) -> str | list[str]:
    """The SHA-256 (hex) of ``data``, or of each of its blocks when ``blocked``.

    Parameters
    ----------
    data : bytes-like
        The member's uncompressed bytes.
    blocked : bool
        From :func:`uses_blocks`.
    """
    if not blocked:
        return hashlib.sha256(data).hexdigest()
    with memoryview(data) as view:
        flat = view.cast("B") if view.ndim != 1 or view.format != "B" else view
        return [
            hashlib.sha256(flat[pos : pos + BLOCK_SIZE]).hexdigest()
            for pos in range(0, len(flat), BLOCK_SIZE)
        ]


class MemberHash:
    """Incremental :func:`digest`: feed a member's bytes in chunks of any size.

    Parameters
    ----------
    blocked : bool
        From :func:`uses_blocks`.
    """

    __slots__ = ("_blocked", "_h", "_filled", "_done")

    def __init__(self, blocked: bool) -> None:
        self._blocked = blocked
        self._h = hashlib.sha256()
        self._filled = 0
        self._done: list[str] = []

    def update(self, data: Any) -> None:
        """Hash the next bytes of the member."""
        if not self._blocked:
            self._h.update(data)
            return
        with memoryview(data) as view:
            flat = view.cast("B") if view.ndim != 1 or view.format != "B" else view
            pos = 0
            while pos < len(flat):
                take = min(BLOCK_SIZE - self._filled, len(flat) - pos)
                self._h.update(flat[pos : pos + take])
                self._filled += take
                pos += take
                if self._filled == BLOCK_SIZE:
                    self._done.append(self._h.hexdigest())
                    self._h = hashlib.sha256()
                    self._filled = 0

    def result(self) -> str | list[str]:
        """The hex digest, or the block digests (a partial last block included)."""
        if not self._blocked:
            return self._h.hexdigest()
        if self._filled:
            return [*self._done, self._h.hexdigest()]
        return list(self._done)
