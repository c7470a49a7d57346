"""The zip container of the safe format: a strict streaming writer and a strict reader.

Only the subset of PKWARE's APPNOTE.TXT (6.3.10) that safeload writes is accepted:

* members stored (method 0) or deflated (method 8), never encrypted, no data descriptors,
  UTF-8 names only, version needed to extract 2.0, no ZIP64 (archives below 4 GiB);
* members packed back to back from offset 0, the central directory right after the last one and
  the end-of-central-directory record right after that, with an empty comment — no byte of the
  file belongs to nothing (no prepended stub, no hidden gap, no polyglot);
* every local header agrees field by field with its central directory entry;
* the only extra field is safeload's alignment padding (header id ``0xD935``, as Android's
  ``zipalign``), which puts the data of stored members on a 64-byte boundary so arrays can be
  memory-mapped in place.

Anything else raises :class:`~safeload.errors.FormatError` naming the rule (``FORMAT.md`` §
numbers).  The writer streams member data to the file and patches each local header's CRC and
sizes afterwards, so the archive is never held in memory.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Sequence
from typing import IO, Any, NamedTuple

import numpy as np

from ..errors import FormatError

__all__ = ["ZipWriter", "ZipMember", "read_index", "STORED", "DEFLATED", "ALIGNMENT"]

STORED = 0
DEFLATED = 8
ALIGNMENT = 64
_ALIGN_ID = 0xD935
_DOS_TIME = 0  # 00:00:00
_DOS_DATE = (0 << 9) | (1 << 5) | 1  # 1980-01-01: fixed timestamps, byte-identical dumps
_FLAG_UTF8 = 0x800

_LOCAL = struct.Struct("<4sHHHHHIIIHH")
_CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")
_EOCD = struct.Struct("<4sHHHHIIH")
_LOCAL_SIG = b"PK\x03\x04"
_CENTRAL_SIG = b"PK\x01\x02"
_EOCD_SIG = b"PK\x05\x06"
_U32 = 0xFFFFFFFF
_MAX_PLAIN = 0xFFFFFFFE  # sizes/offsets at or above 0xFFFFFFFF would need ZIP64
#: a first part this small is joined to the local header (one write call, not two)
_JOIN_BELOW = 1 << 16


def _pick_crc32() -> Any:
    try:
        from . import _crc32  # type: ignore[attr-defined]
    except ImportError:  # the optional C extension was not built
        return zlib.crc32
    return _crc32.crc32 if _crc32.ACCELERATED else zlib.crc32


#: ``zlib.crc32``, or the optional C extension's carry-less multiply version where the CPU has
#: it (same results, about 3x faster: the writer's main thread computes every member's CRC)
crc32 = _pick_crc32()


class ZipMember(NamedTuple):
    """One member as the central directory describes it (a named tuple: the reader makes one
    per member, and a frozen dataclass takes three times as long to build).

    Attributes
    ----------
    name : str
    method : int
        0 (stored) or 8 (deflated).
    crc : int
        CRC-32 of the uncompressed data.
    compressed_size, size : int
        In bytes.
    header_offset : int
        Offset of the local header in the file, in bytes.
    data_offset : int
        Offset of the member's (possibly compressed) data, in bytes.
    """

    name: str
    method: int
    crc: int
    compressed_size: int
    size: int
    header_offset: int
    data_offset: int


#: data of a stored member follows its local header, name and extra field, whose padding
#: ``pad`` makes ``offset + _PAD_BASE + name_len + pad`` a multiple of ALIGNMENT
_PAD_BASE = _LOCAL.size + 4  # 4 = extra header id + length
#: the padding extra field for each ``(offset + _PAD_BASE + name_len) % ALIGNMENT``: the reader
#: looks one up per member instead of packing it
_PADDING = tuple(
    struct.pack("<HH", _ALIGN_ID, (-k) % ALIGNMENT) + b"\0" * ((-k) % ALIGNMENT)
    for k in range(ALIGNMENT)
)


def _extra_for(offset: int, name_len: int, align: bool) -> bytes:
    """Padding extra field so that the data after the local header starts on ALIGNMENT."""
    return _PADDING[(offset + _PAD_BASE + name_len) % ALIGNMENT] if align else b""


class ZipWriter:
    """Write a safe-format zip to a seekable binary file, one member at a time.

    Parameters
    ----------
    fileobj : binary file object
        Seekable, positioned at 0 (the caller writes to a temporary file and renames it).

    Notes
    -----
    Version 1 of the format uses the classic 32-bit fields only: archives of 4 GiB or more
    (ZIP64, APPNOTE 4.5.3) are refused with ``FormatError`` when written or read.
    """

    def __init__(self, fileobj: IO[bytes]) -> None:
        self.f = fileobj
        self.members: list[ZipMember] = []
        self._names: set[str] = set()
        self.offset = 0

    def begin(self, name: str, method: int = STORED) -> _MemberSink:
        """Start member ``name``; write its data through the returned sink, then ``close()`` it.

        Raises
        ------
        ValueError
            A duplicate name, or another member still open.
        """
        if name in self._names:
            raise ValueError(f"duplicate zip member {name!r}")
        self._names.add(name)
        return _MemberSink(self, name, method)

    def write_member(self, name: str, data: bytes, method: int = STORED) -> ZipMember:
        """Write a whole small member (JSON) at once."""
        if method == STORED:
            return self.write_stored(name, (data,), crc32(data))
        sink = self.begin(name, method)
        sink.write(data)
        return sink.close()

    def write_stored(self, name: str, parts: Sequence[Any], crc: int) -> ZipMember:
        """Write a stored member whose CRC-32 is known, header first (no seek back).

        The same bytes as :meth:`begin` + ``write`` + ``close`` would write, in one pass: with
        the CRC-32 computed beforehand the local header is final when written, so the file is
        written strictly in order, with one ``write`` per part (large parts are not copied).

        Parameters
        ----------
        name : str
        parts : sequence of bytes-like
            The member's data, in order (byte buffers: ``bytes``, ``memoryview`` or uint8
            arrays).
        crc : int
            CRC-32 of the concatenated parts.

        Returns
        -------
        ZipMember

        Raises
        ------
        ValueError
            A duplicate name.
        FormatError
            The member would end past 4 GiB (ZIP64).
        """
        if name in self._names:
            raise ValueError(f"duplicate zip member {name!r}")
        enc = name.encode("utf-8")
        header_offset = self.offset
        extra = _extra_for(header_offset, len(enc), True)
        size = sum(len(p) if isinstance(p, bytes) else memoryview(p).nbytes for p in parts)
        data_offset = header_offset + _LOCAL.size + len(enc) + len(extra)
        if size > _MAX_PLAIN or data_offset + size > _MAX_PLAIN:
            raise FormatError(
                f"member {name} ends past 4 GiB; archives of 4 GiB or more need ZIP64, "
                "which version 1 of the safe format does not use"
            )
        self._names.add(name)
        header = (
            _LOCAL.pack(
                _LOCAL_SIG,
                20,
                _FLAG_UTF8,
                STORED,
                _DOS_TIME,
                _DOS_DATE,
                crc,
                size,
                size,
                len(enc),
                len(extra),
            )
            + enc
            + extra
        )
        write = self.f.write
        first = parts[0] if parts else b""
        if isinstance(first, bytes) and len(first) <= _JOIN_BELOW:
            write(header + first)  # one buffered write for the headers (.npy header, JSON)
            rest = parts[1:]
        else:
            write(header)
            rest = parts
        for part in rest:
            write(part)
        self.offset = data_offset + size
        member = ZipMember(name, STORED, crc, size, size, header_offset, data_offset)
        self.members.append(member)
        return member

    def finish(self) -> int:
        """Write the central directory and end records; return the archive size in bytes."""
        f = self.f
        cd_start = self.offset
        parts = []
        for m in self.members:
            parts.append(_central_entry(m))
        blob = b"".join(parts)
        f.write(blob)
        cd_size = len(blob)
        end = cd_start + cd_size
        count = len(self.members)
        if count >= 0xFFFF or end > _MAX_PLAIN:
            raise FormatError(
                "archives of 4 GiB or 65,535 members or more need ZIP64, which version 1 of "
                "the safe format does not use"
            )
        f.write(_EOCD.pack(_EOCD_SIG, 0, 0, count, count, cd_size, cd_start, 0))
        return end + _EOCD.size


def _central_entry(m: ZipMember) -> bytes:
    name = m.name.encode("utf-8")
    align_extra = _extra_for(m.header_offset, len(name), m.method == STORED)
    extra = align_extra
    sizes = (m.compressed_size, m.size)
    offset = m.header_offset
    version = 20
    return (
        _CENTRAL.pack(
            _CENTRAL_SIG,
            version,
            version,
            _FLAG_UTF8,
            m.method,
            _DOS_TIME,
            _DOS_DATE,
            m.crc,
            sizes[0],
            sizes[1],
            len(name),
            len(extra),
            0,
            0,
            0,
            0,
            offset,
        )
        + name
        + extra
    )


class _MemberSink:
    """File-like sink for one member's data (see :meth:`ZipWriter.begin`)."""

    def __init__(self, writer: ZipWriter, name: str, method: int) -> None:
        if method not in (STORED, DEFLATED):
            raise ValueError(f"unsupported zip method {method}")
        self.w = writer
        self.name = name
        self.method = method
        self.crc = 0
        self.size = 0
        self.csize = 0
        self.header_offset = writer.offset
        enc = name.encode("utf-8")
        self._name = enc
        self._extra = _extra_for(self.header_offset, len(enc), method == STORED)
        self._compressor = zlib.compressobj(6, zlib.DEFLATED, -15) if method == DEFLATED else None
        header_len = _LOCAL.size + len(enc) + len(self._extra)
        writer.f.write(b"\0" * header_len)  # patched in close()
        self.data_offset = self.header_offset + header_len

    def write(self, data: Any, *, crc: bool = True) -> None:
        """Append uncompressed ``data`` (bytes-like).

        ``crc=False`` skips the CRC-32 update: the caller computes it elsewhere (on a worker
        thread) and sets :attr:`crc` before :meth:`close`.
        """
        n = data.nbytes if isinstance(data, (memoryview, np.ndarray)) else len(data)
        if crc:
            self.crc = crc32(data, self.crc)
        self.size += n
        if self._compressor is not None:
            out = self._compressor.compress(data)
            if out:
                self.w.f.write(out)
                self.csize += len(out)
        else:
            self.w.f.write(data)
            self.csize += n

    def close(self) -> ZipMember:
        """Flush, patch the local header, and record the member."""
        f = self.w.f
        if self._compressor is not None:
            out = self._compressor.flush()
            f.write(out)
            self.csize += len(out)
        if self.size > _MAX_PLAIN or self.data_offset + self.csize > _MAX_PLAIN:
            raise FormatError(
                f"member {self.name} ends past 4 GiB; archives of 4 GiB or more need ZIP64, "
                "which version 1 of the safe format does not use"
            )
        end = self.data_offset + self.csize
        f.seek(self.header_offset)
        f.write(
            _LOCAL.pack(
                _LOCAL_SIG,
                20,
                _FLAG_UTF8,
                self.method,
                _DOS_TIME,
                _DOS_DATE,
                self.crc,
                self.csize,
                self.size,
                len(self._name),
                len(self._extra),
            )
            + self._name
            + self._extra
        )
        f.seek(end)
        self.w.offset = end
        member = ZipMember(
            self.name,
            self.method,
            self.crc,
            self.csize,
            self.size,
            self.header_offset,
            self.data_offset,
        )
        self.w.members.append(member)
        return member


# ---------------------------------------------------------------------------- reading


def _fail(rule: str, message: str) -> FormatError:
    return FormatError(f"safe format rule {rule}: {message}")


def header_offset(tail: Any, size: int, name: str) -> int | None:
    """Where member ``name``'s local header starts, found in ``tail``, the last bytes of a
    file of ``size`` bytes, through its end-of-central-directory record and central
    directory; None when they are not both in ``tail`` or ``name`` is not found there.

    A hint for what to read, checked by nothing here: :func:`read_index` checks the whole
    structure afterwards (and names what is wrong), whatever this returned.
    """
    n = len(tail)
    if n < _EOCD.size or n > size:
        return None
    sig, _, _, _, n_total, cd_size, cd_start, _ = _EOCD.unpack_from(tail, n - _EOCD.size)
    first = size - n  # file offset of tail[0]
    if sig != _EOCD_SIG or cd_start < first or cd_start + cd_size != size - _EOCD.size:
        return None
    want = name.encode("utf-8")
    pos = cd_start - first
    end = n - _EOCD.size
    for _ in range(n_total):
        if pos + _CENTRAL.size > end:
            return None
        entry = _CENTRAL.unpack_from(tail, pos)
        nlen, xlen, clen, hoff = entry[10], entry[11], entry[12], entry[16]
        at = pos + _CENTRAL.size
        if bytes(tail[at : at + nlen]) == want:
            return hoff if 0 <= hoff < cd_start else None
        pos = at + nlen + xlen + clen
    return None


def read_index(
    data: Any, *, max_members: int, name_ok: Any, fd: int | None = None, base: int = 0
) -> dict[str, ZipMember]:
    """Parse and cross-check the whole zip structure of ``data``.

    Parameters
    ----------
    data : bytes-like or mmap.mmap
        The whole archive.
    max_members : int
        Most members accepted (checked before the central directory is parsed).
    name_ok : callable
        ``name_ok(name) -> bool``: the member names the format allows.
    fd : int, optional
        A file descriptor of the same file, when ``data`` maps it: the local headers are then
        read with ``pread``.  Each first touch of a mapped page costs a fault that maps 64 KiB
        around it (fault-around), ~3 µs each in a new process and RSS until dropped, and the
        local headers of a forest's members are each on a page of their own.
    base : int, default 0
        ``data`` holds the file's bytes from this offset to its end (a small file's tail:
        the central directory and the last members, ``archive._read_tail``); the bytes before
        it (the first local header's signature, the local headers before ``base``) are read
        with ``pread`` on ``fd``, which is then required.

    Returns
    -------
    dict of str to ZipMember
        In archive order.

    Raises
    ------
    FormatError
        Any departure from the subset described in the module docstring, naming the rule.
    LimitExceededError
        More than ``max_members`` members.
    """
    if base and fd is None:
        raise ValueError("read_index(base=...) reads the head of the file through fd")
    size = base + len(data)
    head = bytes(data[:4]) if not base else os.pread(fd, 4, 0)
    if len(data) < _EOCD.size or head != _LOCAL_SIG:
        raise _fail("Z1", "the archive must start with a local file header")
    eocd_at = size - _EOCD.size
    sig, disk, cd_disk, n_disk, n_total, cd_size, cd_start, comment = _EOCD.unpack_from(
        data, eocd_at - base
    )
    if sig != _EOCD_SIG or comment:
        raise _fail("Z2", "the end-of-central-directory record must close the file, no comment")
    if disk or cd_disk or n_disk != n_total:
        raise _fail("Z2", "multi-disk archives are not allowed")
    cd_end = eocd_at
    if n_total == 0xFFFF or cd_size == _U32 or cd_start == _U32:
        raise _fail("Z2", "ZIP64 archives are not part of version 1 of the safe format")
    if cd_start + cd_size != cd_end:
        raise _fail("Z3", "the central directory must end where the end record begins")
    if cd_start < base:  # the directory _read_tail found was not this one: changed since
        raise _fail("Z1", "the file changed while it was read (its central directory moved)")
    if n_total > max_members:
        from ..errors import LimitExceededError

        raise LimitExceededError("max_members", n_total, max_members, "zip members")
    members: dict[str, ZipMember] = {}
    view = memoryview(data)
    pos = cd_start
    expected_offset = 0
    central_unpack = _CENTRAL.unpack_from
    local_pack = _LOCAL.pack
    central_size = _CENTRAL.size
    pread = os.pread
    try:
        for _ in range(n_total):
            if pos + central_size > cd_end:
                raise _fail("Z3", "central directory truncated")
            (
                csig,
                made,
                need,
                flags,
                method,
                mtime,
                mdate,
                crc,
                csize,
                usize,
                nlen,
                xlen,
                clen,
                dstart,
                iattr,
                eattr,
                hoff,
            ) = central_unpack(view, pos - base)
            if csig != _CENTRAL_SIG:
                raise _fail("Z3", f"bad central directory signature at offset {pos}")
            if (
                flags != _FLAG_UTF8
                or need != 20
                or made != 20
                or clen
                or dstart
                or iattr
                or eattr
                or (method != STORED and method != DEFLATED)
            ):
                raise _fail(
                    "Z4",
                    "members must be UTF-8 named, stored or deflated, version 2.0, unencrypted, "
                    "without data descriptors, comments or file attributes",
                )
            if mtime != _DOS_TIME or mdate != _DOS_DATE:
                raise _fail("Z4", "timestamps must be the fixed 1980-01-01 00:00")
            name_at = pos + central_size
            extra_at = name_at + nlen
            pos = extra_at + xlen
            if pos > cd_end:
                raise _fail("Z3", "central directory entry runs past its end")
            raw_name = bytes(view[name_at - base : extra_at - base])
            try:
                name = raw_name.decode("utf-8")
            except UnicodeDecodeError:
                raise _fail("Z5", f"member name {raw_name[:60]!r} is not UTF-8") from None
            if not name_ok(name):
                raise _fail("Z5", f"member name {name[:80]!r} is not one the format defines")
            if name in members:
                raise _fail("Z5", f"duplicate member {name!r}")
            if hoff != expected_offset:
                raise _fail("Z7", f"{name}: members must follow each other with no gap")
            extra = _PADDING[(hoff + _PAD_BASE + nlen) % ALIGNMENT] if method == STORED else b""
            if view[extra_at - base : pos - base] != extra:
                raise _fail("Z6", f"{name}: extra field is not safeload's alignment padding")
            if method == STORED and csize != usize:
                raise _fail("Z4", f"{name}: a stored member's sizes must agree")
            # the local header must repeat the central directory entry exactly (rule Z8)
            local = (
                local_pack(
                    _LOCAL_SIG, need, flags, method, mtime, mdate, crc, csize, usize, nlen, xlen
                )
                + raw_name
                + extra
            )
            data_offset = hoff + len(local)
            expected_offset = data_offset + csize
            if expected_offset > cd_start:
                raise _fail("Z7", f"{name}: data runs into the central directory")
            if fd is None or (base and base <= hoff):  # in a buffer of the load's own
                found = view[hoff - base : data_offset - base]
            else:
                found = pread(fd, len(local), hoff)
            if found != local:
                raise _fail("Z8", f"{name}: local header disagrees with the central directory")
            members[name] = ZipMember(name, method, crc, csize, usize, hoff, data_offset)
    finally:
        view.release()
    if pos != cd_end:
        raise _fail("Z3", "bytes left over in the central directory")
    if expected_offset != cd_start:
        raise _fail("Z7", "bytes between the last member and the central directory")
    return members
