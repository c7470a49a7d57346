"""Zip archives: PyTorch-style pickles, ``.npz``, skops and safeload files.

Every member is classified by its *content*, whatever its name: pickle streams (``archive/data.pkl``
or ``archive/model_weights`` alike), compressed pickles, ``.npy`` arrays, nested archives and
JSON documents; anything else is opaque data, read only to verify its CRC.  Before any member is
read, the archive's structure is checked: encrypted members, duplicate names, absolute or
``..`` names (zip-slip), members that overlap, declared sizes beyond the limits and compression
ratios that only a bomb has.  Reading is bounded by ``Limits.max_decompressed_bytes`` across
all members.
"""

from __future__ import annotations

import contextlib
import io
import posixpath
import re
import zipfile
from collections import Counter
from typing import IO

from ..readers import detect_format
from ..readers.compression import detect_compressor
from ..readers.npy import NPY_MAGIC
from .collector import Collector, describe_location
from .jsondoc import is_skops_schema, load_json, skops_type_names
from .npyfile import scan_npy
from .stream import scan_compressed, scan_pickle

__all__ = ["scan_zip", "MAX_MEMBERS", "MAX_RATIO", "RATIO_MIN_BYTES", "MAX_NESTING"]

#: Most members an archive may have.
MAX_MEMBERS = 100_000
#: Members larger than RATIO_MIN_BYTES whose size exceeds MAX_RATIO times their compressed size
#: are decompression bombs (deflate reaches about 1,030:1 on constant data).
MAX_RATIO = 200
RATIO_MIN_BYTES = 1 << 20
#: Archives inside archives are followed this many levels.
MAX_NESTING = 2
_CHUNK = 1 << 20
_DRIVE = re.compile(r"^[A-Za-z]:")
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")


class _ReadFailed(Exception):
    """A member could not be read (already recorded as a finding)."""


def _unsafe_name(name: str) -> str | None:
    if "\x00" in name:
        return "contains a NUL byte"
    norm = name.replace("\\", "/")
    if norm.startswith("/") or _DRIVE.match(norm):
        return "is an absolute path"
    if ".." in norm.split("/"):
        return "has a '..' component"
    return None


def _check_structure(
    infos: list[zipfile.ZipInfo], size: int | None, col: Collector, location: str | None
) -> set[int]:
    """Record structural findings; return the indices of members that must not be read."""
    skip: set[int] = set()
    names = Counter(info.filename for info in infos)
    normalized = Counter(posixpath.normpath(info.filename.replace("\\", "/")) for info in infos)
    for name, n in names.items():
        if n > 1:
            col.add("zip-duplicate-name", f"{n} members are named {name[:200]!r}; readers "
                    "disagree on which one they use", location=location)  # fmt: skip
    for name, n in normalized.items():
        if n > 1 and names.get(name, 0) < n:
            col.add("zip-duplicate-name", f"{n} member names normalize to {name[:200]!r}",
                    location=location)  # fmt: skip
    declared = 0
    for i, info in enumerate(infos):
        why = _unsafe_name(info.orig_filename)
        if why:
            col.add("zip-unsafe-path", f"member name {info.orig_filename[:200]!r} {why} "
                    "(zip-slip)", offset=info.header_offset, location=location)  # fmt: skip
        if info.flag_bits & 0x1:
            col.add("zip-encrypted", f"member {info.filename[:200]!r} is encrypted; its content "
                    "can not be inspected", offset=info.header_offset, location=location)  # fmt: skip
            skip.add(i)
            continue
        declared += info.file_size
        if info.file_size > RATIO_MIN_BYTES and info.file_size > MAX_RATIO * max(
            info.compress_size, 1
        ):
            col.add(
                "zip-bomb",
                f"member declares {info.file_size:,} bytes from {info.compress_size:,} "
                f"compressed (ratio above {MAX_RATIO}:1): {info.filename[:200]!r}",
                offset=info.header_offset,
                location=location,
            )
            skip.add(i)
        elif info.file_size > col.limits.max_decompressed_bytes:
            col.add(
                "limit-exceeded",
                f"limit max_decompressed_bytes exceeded (zip member {info.filename[:200]!r}): "
                f"the file needs {info.file_size:,}, the limit is "
                f"{col.limits.max_decompressed_bytes:,}",
                offset=info.header_offset,
                location=location,
            )
            skip.add(i)
        if size is not None and info.header_offset + info.compress_size > size:
            col.add("zip-corrupt", f"member {info.filename[:200]!r} extends past the end of "
                    "the archive", location=location)  # fmt: skip
            skip.add(i)
    if declared > col.limits.max_decompressed_bytes:
        col.add(
            "limit-exceeded",
            f"limit max_decompressed_bytes exceeded (sum of the members' declared sizes): the "
            f"file needs {declared:,}, the limit is {col.limits.max_decompressed_bytes:,}",
            location=location,
        )
    ordered = sorted(infos, key=lambda info: info.header_offset)
    for a, b in zip(ordered, ordered[1:], strict=False):
        # 30-byte local header + name (at least one byte per character) + data
        if a.header_offset + 30 + len(a.orig_filename) + a.compress_size > b.header_offset:
            col.add("zip-bomb", f"members {a.filename[:100]!r} and {b.filename[:100]!r} "
                    "overlap (an overlapping-entries bomb or a parser confusion)",
                    offset=b.header_offset, location=location)  # fmt: skip
    return skip


def _trailing_bytes(fileobj: IO[bytes], size: int) -> int:
    """Bytes after the end-of-central-directory record and its comment (a polyglot tail).

    The record is found the way :mod:`zipfile` finds it: the last signature in the final
    64 KiB + 22 bytes.
    """
    tail_len = min(size, (1 << 16) + 22)
    fileobj.seek(size - tail_len)
    tail = fileobj.read(tail_len)
    pos = tail.rfind(b"PK\x05\x06")
    if pos < 0 or pos + 22 > len(tail):
        return 0
    comment = int.from_bytes(tail[pos + 20 : pos + 22], "little")
    return max(0, size - (size - tail_len + pos + 22 + comment))


def _read_member(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, col: Collector, where: str, keep: bool
) -> bytes:
    """Read a whole member (kept when ``keep``), checking its CRC and the byte budget."""
    if info.file_size > col.budget:
        col.add("limit-exceeded", f"limit max_decompressed_bytes exceeded (zip members read "
                f"so far): member of {info.file_size:,} bytes", location=where)  # fmt: skip
        raise _ReadFailed
    parts: list[bytes] = []
    try:
        with zf.open(info) as fh:
            while True:
                chunk = fh.read(_CHUNK)
                if not chunk:
                    break
                col.budget -= len(chunk)
                if keep:
                    parts.append(chunk)
    except zipfile.BadZipFile as exc:
        rule = "zip-bad-crc" if "CRC" in str(exc) else "zip-corrupt"
        col.add(rule, f"member {info.filename[:200]!r}: {exc}", location=where)
        if rule == "zip-bad-crc" and keep:
            return _read_unchecked(zf, info)
        raise _ReadFailed from exc
    except NotImplementedError as exc:
        col.add("zip-corrupt", f"member {info.filename[:200]!r}: {exc}", location=where)
        raise _ReadFailed from exc
    except Exception as exc:  # noqa: BLE001 - zlib/bz2/lzma errors, EOF
        col.add("zip-corrupt", f"member {info.filename[:200]!r}: {type(exc).__name__}: {exc}",
                location=where)  # fmt: skip
        raise _ReadFailed from exc
    return b"".join(parts)


def _read_unchecked(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """The content of a member whose CRC failed, to name what it holds (already unsafe)."""
    try:
        with zf.open(info) as fh:
            fh._expected_crc = None  # stdlib: skips the CRC comparison at EOF
            return fh.read(info.file_size)
    except Exception as exc:  # noqa: BLE001
        raise _ReadFailed from exc


def _head(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """The first bytes of a member, to classify it (errors are reported by the full read)."""
    for check_crc in (True, False):
        try:
            with zf.open(info) as fh:
                if not check_crc:
                    fh._expected_crc = None  # a small member is checked on its first read
                return fh.read(16)
        except zipfile.BadZipFile:
            continue
        except Exception:  # noqa: BLE001
            return b""
    return b""


def _looks_like_pickle(head: bytes) -> bool:
    try:
        return detect_format(head) == "pickle"
    except Exception:  # noqa: BLE001 - FormatError for unknown content
        return False


class _Archive:
    def __init__(self, col: Collector, location: str | None, depth: int) -> None:
        self.col = col
        self.location = location
        self.depth = depth
        self.pickles: list[str] = []
        self.npys: list[str] = []
        self.others = 0
        self.kind: str | None = None

    def member(self, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
        col = self.col
        where = describe_location(self.location, f"member {info.filename[:200]}")
        if info.is_dir() and info.file_size == 0:
            return
        head = _head(zf, info)
        name = info.filename
        if head.startswith(NPY_MAGIC):
            self.npys.append(name)
            try:
                with zf.open(info) as fh:
                    scan_npy(fh, info.file_size, col, location=where)
            except Exception:  # noqa: BLE001 - reported by _read_member below
                pass
            self._drain(zf, info, where)
        elif head.startswith(_ZIP_MAGICS):
            data = self._read(zf, info, where)
            if data is None:
                return
            if self.depth + 1 > MAX_NESTING:
                col.add("limit-exceeded", f"zip archives nested more than {MAX_NESTING} deep",
                        location=where)  # fmt: skip
                return
            col.add_stream(where, "zip", None)
            _scan_zip(io.BytesIO(data), len(data), col, describe_location(where, "zip"),
                      self.depth + 1)  # fmt: skip
        elif detect_compressor(head) is not None:
            data = self._read(zf, info, where)
            if data is not None:
                self.pickles.append(name)
                scan_compressed(lambda: io.BytesIO(data), detect_compressor(head), col,
                                location=where)  # fmt: skip
        elif _looks_like_pickle(head):
            data = self._read(zf, info, where)
            if data is not None:
                self.pickles.append(name)
                scan_pickle(data, col, location=where)
        elif name.lower().endswith(".json") or head.lstrip()[:1] in (b"{", b"["):
            data = self._read(zf, info, where)
            if data is not None:
                self.json(name, data, where)
        else:
            self.others += 1
            self._drain(zf, info, where)

    def json(self, name: str, data: bytes, where: str) -> None:
        col = self.col
        doc = load_json(data, col, location=where)
        base = posixpath.basename(name)
        if doc is None:
            return
        if base == "schema.json" and is_skops_schema(doc):
            self.kind = "skops"
            for pair in skops_type_names(doc, col, location=where):
                col.add_type_name(pair, location=where)
        elif base == "manifest.json" and type(doc) is dict and doc.get("format") == "safeload":
            self.kind = "safeload"
            col.add("safeload-format", "safeload-format archive: its zip structure, arrays and "
                    "type names were checked; this version has no reader for it yet",
                    location=where)  # fmt: skip
            estimator = doc.get("estimator")
            if estimator is not None:
                module, _, qualname = str(estimator).rpartition(".")
                if module and qualname:
                    col.add_type_name((module, qualname), location=where)
                else:
                    col.add("json-malformed", f"estimator name {str(estimator)[:100]!r}",
                            location=where)  # fmt: skip

    def _read(self, zf: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> bytes | None:
        try:
            return _read_member(zf, info, self.col, where, keep=True)
        except _ReadFailed:
            return None

    def _drain(self, zf: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> None:
        with contextlib.suppress(_ReadFailed):
            _read_member(zf, info, self.col, where, keep=False)

    def format(self) -> str:
        if self.kind is not None:
            return self.kind
        if any(n == "data.pkl" or n.endswith("/data.pkl") for n in self.pickles):
            return "zip:pytorch"
        if self.npys and not self.pickles and not self.others:
            return "npz"
        return "zip"


def scan_zip(fileobj: IO[bytes], size: int | None, col: Collector, *,
             location: str | None = None) -> str:  # fmt: skip
    """Scan a zip archive and every member in it.

    Parameters
    ----------
    fileobj : seekable binary file
    size : int or None
        Bytes of the archive.
    col : Collector
    location : str, optional

    Returns
    -------
    str
        ``"skops"``, ``"safeload"``, ``"zip:pytorch"``, ``"npz"`` or ``"zip"``.
    """
    return _scan_zip(fileobj, size, col, location, 0)


def _scan_zip(fileobj: IO[bytes], size: int | None, col: Collector, location: str | None,
              depth: int) -> str:  # fmt: skip
    try:
        zf = zipfile.ZipFile(fileobj)
        infos = zf.infolist()
    except Exception as exc:  # noqa: BLE001 - BadZipFile, struct/Value/Overflow errors
        col.add("zip-corrupt", f"unreadable zip archive: {type(exc).__name__}: {exc}"[:500],
                location=location)  # fmt: skip
        return "zip"
    with zf:
        if len(infos) > MAX_MEMBERS:
            col.add("limit-exceeded", f"zip archive with {len(infos):,} members (more than "
                    f"{MAX_MEMBERS:,})", location=location)  # fmt: skip
            return "zip"
        skip = _check_structure(infos, size, col, location)
        if size is not None:
            trailing = _trailing_bytes(fileobj, size)
            if trailing:
                col.add("trailing-data", f"{trailing:,} bytes after the end of the zip archive "
                        "(a polyglot: another reader may find a second file there)",
                        location=location)  # fmt: skip
        archive = _Archive(col, location, depth)
        for i, info in enumerate(infos):
            if i not in skip:
                archive.member(zf, info)
        fmt = archive.format()
        what = {"npz": "an .npz archive", "skops": "a skops file", "safeload": "a safeload file"}
        col.add(
            "foreign-format",
            f"{what.get(fmt, 'a zip archive')}: safeload.load does not read it; its "
            f"{len(archive.pickles)} pickle stream(s), {len(archive.npys)} array(s) and type "
            "names were scanned",
            location=location,
        )
        return fmt
