"""Read and write whole safe-format archives (``docs/FORMAT.md``).

Member layout (§2): ``arrays/000000.npy`` … in graph order, then ``graph.json``, then
``manifest.json``; every other name is refused.  Writing streams each array to the file as the
export walk meets it, hashing it on a worker thread meanwhile; reading checks the zip structure,
the manifest, the hash of every member and every limit, and audits every global of the graph
*before* any array is read or anything is built.
"""

from __future__ import annotations

import _thread
import contextlib
import gc
import hashlib
import json
import math
import mmap
import os
import re
import sys
import zlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from queue import Empty, SimpleQueue
from typing import IO, Any

import numpy as np
from numpy.lib import format as npformat

from ..build import Builder
from ..errors import FormatError, IntegrityError, LimitExceededError
from ..jsonnest import MAX_VALUE_NESTING, check_json_nesting
from ..limits import Limits
from ..policy import Policy
from ..source import SafeloadLoadIOError, Source
from .decode import Decoder, decode_globals, ref_ids
from .digest import BLOCK_SIZE, MemberHash, block_count, digest, expected, uses_blocks
from .encode import Encoder
from .npyio import check_array_dtype, dtype_from_json, header_bytes, header_for
from .zipio import DEFLATED, STORED, ZipMember, ZipWriter, crc32, header_offset, read_index

try:  # optional: SHA-256 beside the loader without the GIL; hashlib on a thread otherwise
    from . import _blockhash  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - built without a compiler or OpenSSL's headers
    _blockhash = None

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "SafeFile",
    "write_archive",
    "open_archive",
    "read_arrays",
    "is_safe_archive",
]

FORMAT_NAME = "safeload"
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
GRAPH = "graph.json"
_MEMBER = re.compile(r"(?:manifest\.json|graph\.json|arrays/[0-9]{6,9}\.npy)\Z")
_CHUNK = 1 << 20
#: arrays at least this large are read with ``readinto`` and hashed on a worker thread
_LARGE = 64 << 10
#: writing: array members are hashed on worker threads in batches of about this many bytes
_HASH_BATCH = 1 << 20
_HASH_WORKERS = 2
#: files up to this size are read into memory at once rather than through the map
_SMALL_FILE = 1 << 20
#: the last bytes of a small file read first to find its central directory (_read_tail)
_TAIL_PROBE = 8 << 10
#: reading from memory: large members totalling at least this are hashed on a worker thread;
#: below it starting the thread costs more than the hash it would take off the main thread
_THREAD_HASH = 512 << 10
#: large members the hasher's thread fills are allocated and queued at most this many bytes
#: ahead of the last member the decode asked for (:class:`_ReadQueue`)
_READ_AHEAD = 4 << 20
#: a JSON nesting too deep for Python's parser is reported against max_depth
DEFAULT_MAX_DEPTH = Limits().max_depth
_JSON_DEPTH_HIT = 1000
_MAX_DIM = np.iinfo(np.intp).max
_ISO_UTC = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z\Z")
_SHA256 = re.compile(r"[0-9a-f]{64}\Z")


def array_member(index: int) -> str:
    """Member name of array ``index`` (§2.2)."""
    return f"arrays/{index:06d}.npy"


def is_safe_archive(head: bytes) -> bool:
    """True when the first local header names ``arrays/000000.npy`` or ``graph.json`` (§2.1)."""
    if len(head) < 30 or head[:4] != b"PK\x03\x04":
        return False
    name_len = int.from_bytes(head[26:28], "little")
    name = head[30 : 30 + name_len]
    return name in (b"arrays/000000.npy", b"graph.json")


# ---------------------------------------------------------------------------- writing


class _Hasher:
    """SHA-256 of the array members on worker threads while the main thread writes them.

    A member's hash is taken from the array in memory, not from the file, so hashing never
    waits for a write and the main thread never waits for a hash until the manifest needs them
    all.  Members are queued in batches of about :data:`_HASH_BATCH` bytes (one task per
    batch: a forest's hundreds of small trees do not pay a hand-over each), and ``hashlib``
    releases the GIL on large buffers, so the workers hash while the main thread walks,
    computes CRC-32s and writes.  What is left in the last batch is hashed inline by
    :meth:`finish`, so a dump whose arrays are all small starts no thread at all.

    Workers are bare ``_thread`` threads fed by a queue: ``threading.Thread.start`` waits
    until the new thread runs, which on a busy machine can cost more than a hash.
    """

    def __init__(self) -> None:
        self._queue: SimpleQueue = SimpleQueue()
        self._threads = 0
        self._cancelled = False
        self._batch: list[tuple[dict, tuple]] = []
        self._batch_bytes = 0
        self._pending: list[_HashBatch] = []

    def add(self, entry: dict, parts: tuple, nbytes: int) -> None:
        """Queue a member given as ``parts`` (its bytes, in order) of ``nbytes`` in all;
        :meth:`finish` fills in ``entry["sha256"]``, or ``entry["sha256_blocks"]`` for a
        member hashed per block (:mod:`.digest`), each block queued on its own so both
        workers share one large member."""
        if not uses_blocks(FORMAT_VERSION, nbytes):
            entry["sha256"] = ""
            self._queue_item((entry, "sha256", parts), nbytes)
            return
        blocks = entry["sha256_blocks"] = [""] * block_count(nbytes)
        for k, block in enumerate(_split_blocks(parts)):
            self._queue_item((blocks, k, block), BLOCK_SIZE)

    def _queue_item(self, item: tuple, nbytes: int) -> None:
        self._batch.append(item)
        self._batch_bytes += nbytes
        if self._batch_bytes >= _HASH_BATCH:
            batch = _HashBatch(self._batch)
            self._batch, self._batch_bytes = [], 0
            self._pending.append(batch)
            self._queue.put(batch)
            if self._threads < _HASH_WORKERS:  # one more worker per batch, up to the limit
                _thread.start_new_thread(self._work, ())
                self._threads += 1

    def _work(self) -> None:
        while True:
            batch = self._queue.get()
            if batch is None:
                return
            try:
                if not self._cancelled:
                    batch.run()
            finally:
                batch.done.release()

    def finish(self) -> None:
        """Hash the last batch here, wait for the workers, and fill in every queued entry.

        Raises
        ------
        Exception
            Whatever a worker's hash raised.
        """
        last = _HashBatch(self._batch)
        self._batch = []
        last.run()
        last.done.release()
        for batch in (*self._pending, last):
            batch.done.acquire()
            batch.done.release()
            if batch.error is not None:
                raise batch.error

    def close(self) -> None:
        """Stop the workers; after an error, once they let go of the queued arrays."""
        self._cancelled = True
        for _ in range(self._threads):
            self._queue.put(None)
        for batch in self._pending:
            batch.done.acquire()
            batch.done.release()
        self._pending.clear()


class _HashBatch:
    """Members (or blocks of one) hashed together by one worker, each item a
    ``(target, key, parts)`` that sets ``target[key]`` to the hex SHA-256 of ``parts``;
    ``done`` is held until they are."""

    __slots__ = ("members", "done", "error")

    def __init__(self, members: list[tuple[Any, Any, tuple]]) -> None:
        self.members = members
        self.error: BaseException | None = None
        self.done = _thread.allocate_lock()
        self.done.acquire()

    def run(self) -> None:
        try:
            for target, key, parts in self.members:
                h = hashlib.sha256()
                for part in parts:
                    h.update(part)
                target[key] = h.hexdigest()
        except BaseException as exc:  # noqa: BLE001 - re-raised by _Hasher.finish
            self.error = exc


def _split_blocks(parts: tuple) -> list[list[Any]]:
    """The member made of ``parts`` cut into :data:`BLOCK_SIZE`-byte blocks, each a list of
    views (a block may span two parts: the ``.npy`` header and the data)."""
    blocks: list[list[Any]] = [[]]
    filled = 0
    for part in parts:
        view = memoryview(part).cast("B")
        pos = 0
        while pos < len(view):
            if filled == BLOCK_SIZE:
                blocks.append([])
                filled = 0
            take = min(BLOCK_SIZE - filled, len(view) - pos)
            blocks[-1].append(view[pos : pos + take])
            filled += take
            pos += take
    return blocks


def _raw_bytes(arr: np.ndarray) -> np.ndarray:
    """The array's bytes in memory order as a 1-d uint8 view (no copy)."""
    if arr.size == 0 or arr.dtype.itemsize == 0:
        return np.empty(0, np.uint8)
    flat = arr.ravel(order="F" if not arr.flags.c_contiguous else "C")
    return flat.view(np.uint8)


@dataclass
class _WriteState:
    writer: ZipWriter
    method: int
    hasher: _Hasher
    members: dict[str, dict] = field(default_factory=dict)


def _emit_array(state: _WriteState, index: int, arr: np.ndarray) -> None:
    name = array_member(index)
    fortran = not arr.flags.c_contiguous
    header = header_bytes(arr.dtype, fortran, arr.shape)
    raw = _raw_bytes(arr)
    size = len(header) + raw.nbytes
    entry: dict[str, Any] = {"size": size}
    state.members[name] = entry
    state.hasher.add(entry, (header, raw), size)  # first, so the hash runs during the write
    if state.method == STORED:
        # the CRC-32 first, so the local header is final and the file is written in order
        state.writer.write_stored(name, (header, raw), crc32(raw, crc32(header)))
        return
    sink = state.writer.begin(name, state.method)
    sink.write(header)
    for start in range(0, raw.nbytes, _CHUNK):  # compressed output stays a chunk at a time
        sink.write(raw[start : start + _CHUNK])
    sink.close()


def _json_bytes(value: Any) -> bytes:
    # check_circular=False: the encoder builds the document from new lists and dicts only
    # (shared objects become "ref" tags), so it has no cycle to find; the check costs ~30%
    return json.dumps(
        value, ensure_ascii=False, allow_nan=False, separators=(",", ":"), check_circular=False
    ).encode("utf-8")


def write_archive(
    obj: Any,
    fileobj: IO[bytes],
    *,
    policy: Policy,
    limits: Limits,
    manifest: dict,
    compression: str | None = None,
    extra_roots: dict | None = None,
) -> dict:
    """Write ``obj`` as a safe-format archive to the seekable ``fileobj`` (at offset 0).

    Parameters
    ----------
    obj : object
        What to store; every global it needs must be trusted by ``policy``.
    fileobj : binary file object
        Seekable, empty.
    policy : Policy
    limits : Limits
        ``max_depth`` bounds the walk.
    manifest : dict
        Manifest fields besides ``format``, ``format_version`` and ``members``.
    compression : {None, "deflate"}
        ``"deflate"`` compresses every member (arrays can then not be memory-mapped).
    extra_roots : dict, optional
        More top-level graph values (``"probe"``), encoded with the same tables.

    Returns
    -------
    dict
        The manifest written.

    Raises
    ------
    UntrustedTypesError
        Listing everything the policy would not load back (nothing usable is written).
    FormatError
        A value the format cannot represent.
    """
    methods = {None: STORED, "none": STORED, "deflate": DEFLATED}
    if compression not in methods:
        raise ValueError(f"compression must be None or 'deflate', got {compression!r}")
    writer = ZipWriter(fileobj)
    hasher = _Hasher()
    state = _WriteState(writer, methods[compression], hasher)
    try:
        # no deeper than a reader decodes (review 7: deeper, json.dumps overflowed the C stack
        # once the recursion limit was raised, and a file dump wrote could not be loaded)
        depth = min(limits.max_depth, MAX_VALUE_NESTING)
        encoder = Encoder(policy, lambda i, a: _emit_array(state, i, a), depth)
        doc = encoder.document(obj)
        for key, value in (extra_roots or {}).items():
            doc[key] = encoder.enc(value, 0)
        encoder.check_trusted()
        encoder.flush_pools()
        graph = _json_bytes(doc)  # while the workers finish hashing the arrays
        writer.write_member(GRAPH, graph, state.method)
        state.members[GRAPH] = {"size": len(graph)}
        hasher.add(state.members[GRAPH], (graph,), len(graph))
        hasher.finish()
    finally:
        hasher.close()
    full = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **manifest}
    full["members"] = state.members
    writer.write_member(MANIFEST, _json_bytes(full), state.method)
    writer.finish()
    return full


# ---------------------------------------------------------------------------- reading


@dataclass
class SafeFile:
    """A parsed safe-format archive: structure, manifest and graph, no array data read.

    Attributes
    ----------
    index : dict of str to ZipMember
    manifest : dict
    doc : dict
        ``graph.json``: ``globals``, ``arrays``, ``root`` (and ``probe`` when stored).
    """

    index: dict[str, ZipMember]
    manifest: dict
    doc: dict


def _bad(rule: str, message: str) -> FormatError:
    return FormatError(f"safe format rule {rule}: {message}")


def _member_bytes(
    data: Any,
    member: ZipMember,
    limit: int,
    limit_name: str,
    share: bool = False,
    base: int = 0,
) -> bytes | memoryview:
    """A member's (inflated) bytes: a copy, or with ``share`` a stored member as a view of
    ``data`` (a buffer of this load's own that nothing else writes: the bytes hashed are the
    bytes parsed either way; a copy of a file's map is what makes that so for a map).
    ``data`` holds the file from offset ``base`` on."""
    if member.size > limit:
        raise LimitExceededError(limit_name, member.size, limit, member.name)
    start = member.data_offset - base
    if share and member.method != DEFLATED:
        return memoryview(data)[start : start + member.size]
    raw = bytes(data[start : start + member.compressed_size])
    if member.method == DEFLATED:
        d = zlib.decompressobj(-15)
        try:
            raw = d.decompress(raw, member.size + 1)
        except zlib.error as exc:
            raise _bad("Z9", f"{member.name}: corrupt deflate data ({exc})") from None
        if len(raw) != member.size or not d.eof or d.unconsumed_tail or d.unused_data:
            raise _bad("Z9", f"{member.name}: deflate data does not match its declared size")
    return raw


def _pairs_hook(pairs: list) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise _bad("J2", "a JSON object repeats a key")
    return out


def _json_text(raw: bytes | memoryview, name: str) -> str:
    """The text of a JSON member (UTF-8 without a BOM, as ``json.loads`` wants it)."""
    try:
        text = str(raw, "utf-8")
        if text.startswith("\ufeff"):  # as json.loads refuses it (the decoders below would not)
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
    except (UnicodeDecodeError, ValueError) as exc:
        raise _bad("J1", f"{name} is not valid UTF-8 JSON: {str(exc)[:120]}") from None
    return text


def _parse_json(raw: bytes | memoryview, name: str, strict_keys: bool = False) -> Any:
    return _parse_text(_json_text(raw, name), name, strict_keys)


def _parse_text(text: str, name: str, strict_keys: bool = False) -> Any:
    gc_was_on = gc.isenabled()
    try:
        # parsed JSON holds no reference cycles, so the collector has nothing to find in it;
        # left on, a graph's thousands of containers trigger collections of the whole heap
        check_json_nesting(text, name)
        gc.disable()
        if strict_keys:
            return _STRICT_JSON.decode(text)
        if _FAST_JSON is not None and sys.getrecursionlimit() <= _FAST_JSON_MAX_RECURSION:
            try:
                return _FAST_JSON(text)
            except (ValueError, RecursionError):
                # json (the reference) decides: it refuses the same texts with its own message,
                # and reads what msgspec refuses but it accepts (ints past 4,300 digits are
                # refused by both; a lone surrogate, 1e400 are read by json alone)
                pass
        return _JSON.decode(text)
    except FormatError:
        raise
    except RecursionError:
        raise LimitExceededError(
            "max_depth",
            _JSON_DEPTH_HIT,
            DEFAULT_MAX_DEPTH,
            f"JSON nesting of {name} (Python's json parser stopped at its recursion limit)",
        ) from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise _bad("J1", f"{name} is not valid UTF-8 JSON: {str(exc)[:120]}") from None
    finally:
        if gc_was_on:
            gc.enable()


def _no_constant(name: str) -> Any:
    raise _bad("J1", f"JSON does not allow {name}")


#: what json.loads(text, parse_constant=..., object_pairs_hook=...) builds on every call
_JSON = json.JSONDecoder(parse_constant=_no_constant)
_STRICT_JSON = json.JSONDecoder(parse_constant=_no_constant, object_pairs_hook=_pairs_hook)
try:  # ~2.5x faster than json on graph.json; its result is kept only when it accepts the text
    import msgspec.json

    _FAST_JSON: Callable[[str], Any] | None = msgspec.json.Decoder().decode
except ImportError:  # a platform without msgspec's wheels: json alone, as before
    _FAST_JSON = None
#: msgspec stops at Python's recursion limit but takes ~450 bytes of C stack a JSON level
#: (json ~100): a 1 MiB thread crashed at 2,500 levels of objects with the limit raised. It
#: parses only while the limit is Python's default or lower (at most ~450 KiB of stack);
#: applications that raised it get json, which jsonnest.py keeps within 1 MiB
_FAST_JSON_MAX_RECURSION = 1000


def _check_hash(raw: bytes, name: str, manifest_members: dict) -> None:
    entry = manifest_members[name]
    if digest(raw, "sha256_blocks" in entry) != expected(entry):
        raise IntegrityError([name])


def open_archive(
    data: Any,
    limits: Limits,
    *,
    verify: bool = True,
    fd: int | None = None,
    private: bool = False,
) -> SafeFile:
    """Check the structure and read the manifest and graph of a safe-format archive.

    Parameters
    ----------
    data : bytes-like or mmap.mmap
        The whole file.
    limits : Limits
        ``max_members``, ``max_json_bytes``.
    verify : bool
        Check the SHA-256 of ``graph.json`` against the manifest.
    fd : int, optional
        A file descriptor of the file ``data`` maps: the local headers are read through it
        (:func:`.zipio.read_index`).
    private : bool
        ``data`` is a buffer of this load's own (:func:`_read_tail`), not changed meanwhile:
        ``graph.json`` is hashed and decoded in place instead of from a copy.

    Returns
    -------
    SafeFile

    Raises
    ------
    FormatError
        A rule of ``FORMAT.md`` broken (named in the message); a newer format version.
    IntegrityError
        ``graph.json`` does not match its recorded hash.
    LimitExceededError
    """
    index, manifest, text = _graph_text(data, limits, verify=verify, fd=fd, private=private)
    return _parse_graph(index, manifest, text)


def _graph_text(
    data: Any,
    limits: Limits,
    *,
    verify: bool = True,
    fd: int | None = None,
    private: bool = False,
    base: int = 0,
) -> tuple[dict[str, ZipMember], dict, str]:
    """What :func:`open_archive` checks before the graph is parsed: the zip index, the
    manifest (parsed and checked) and the text of ``graph.json`` (hashed), with no reference
    to ``data`` left (a small file's buffer can be dropped before the parse).  ``data`` may
    hold only the file's tail from offset ``base`` on (:func:`_read_tail`; ``fd`` then reads
    the local headers before it).

    Raises
    ------
    As :func:`open_archive`.
    """
    index = read_index(
        data, max_members=limits.max_members, name_ok=_MEMBER.match, fd=fd, base=base
    )
    names = list(index)
    if MANIFEST not in index or GRAPH not in index:
        raise _bad("M1", "the archive must hold manifest.json and graph.json")
    if base and index[GRAPH].header_offset != base:  # review 9: the probe saw another file
        raise _bad("Z1", "the file changed while it was read (graph.json moved)")
    if names[-1] != MANIFEST or names[-2] != GRAPH:
        raise _bad("M1", "graph.json and manifest.json must be the last two members")
    manifest_raw = _member_bytes(
        data, index[MANIFEST], limits.max_json_bytes, "max_json_bytes", base=base
    )
    if zlib.crc32(manifest_raw) != index[MANIFEST].crc:
        # the manifest is not hashed by itself: its zip CRC-32 catches accidental changes
        raise IntegrityError([MANIFEST])
    manifest = _parse_json(manifest_raw, MANIFEST, strict_keys=True)
    check_manifest(manifest, index)
    graph_raw = _member_bytes(
        data, index[GRAPH], limits.max_json_bytes, "max_json_bytes", share=private, base=base
    )
    if verify:
        _check_hash(graph_raw, GRAPH, manifest["members"])
    if zlib.crc32(graph_raw) != index[GRAPH].crc:
        raise IntegrityError([GRAPH])
    # the bytes go before the parse: raw bytes, text and parsed graph at once was a load's
    # memory peak for small models (docs/PERFORMANCE.md, session 8)
    text = _json_text(graph_raw, GRAPH)
    del graph_raw
    return index, manifest, text


def _parse_graph(index: dict[str, ZipMember], manifest: dict, text: str) -> SafeFile:
    """Parse the text of ``graph.json`` and check its top level against the index (the rest of
    :func:`open_archive`).

    Raises
    ------
    FormatError, LimitExceededError
    """
    doc = _parse_text(text, GRAPH)
    del text
    if type(doc) is not dict or not {"globals", "dtypes", "arrays", "root"} <= doc.keys():
        raise _bad("G1", "graph.json holds globals, dtypes, arrays and root")
    unknown = doc.keys() - {"globals", "dtypes", "arrays", "root", "probe"}
    if unknown:  # the unknown ones: sorted with the known, a fifth key was cut off the message
        raise _bad("G1", f"graph.json has unknown keys {sorted(unknown)[:4]}")
    arrays = doc["arrays"]
    if type(arrays) is not list:
        raise _bad("G1", "'arrays' is a list")
    expected = [array_member(i) for i in range(len(arrays))] + [GRAPH, MANIFEST]
    if list(index) != expected:
        raise _bad(
            "M1", "members must be arrays/000000.npy ... in order, graph.json, manifest.json"
        )
    return SafeFile(index, manifest, doc)


_GLOBALS_PREFIX = b'{"globals":'


def list_globals(data: Any, limits: Limits) -> list[tuple[str, str]]:
    """Every (module, qualname) a safe-format file names, reading no array data.

    Checks the zip structure, the manifest and the CRC-32 of ``graph.json``, then parses only
    its ``globals`` table when it comes first and is the only key of that name (as ``dump``
    writes it; otherwise the whole graph is parsed, so a repeated key can not show one table
    here and another to ``load``).

    Raises
    ------
    FormatError, IntegrityError, LimitExceededError
    """
    index = read_index(data, max_members=limits.max_members, name_ok=_MEMBER.match)
    if MANIFEST not in index or GRAPH not in index:
        raise _bad("M1", "the archive must hold manifest.json and graph.json")
    manifest_raw = _member_bytes(data, index[MANIFEST], limits.max_json_bytes, "max_json_bytes")
    if zlib.crc32(manifest_raw) != index[MANIFEST].crc:
        raise IntegrityError([MANIFEST])
    check_manifest(_parse_json(manifest_raw, MANIFEST, strict_keys=True), index)
    raw = _member_bytes(data, index[GRAPH], limits.max_json_bytes, "max_json_bytes")
    if zlib.crc32(raw) != index[GRAPH].crc:
        raise IntegrityError([GRAPH])
    doc: Any = None
    if raw.startswith(_GLOBALS_PREFIX) and raw.count(b'"globals"') == 1:
        try:
            text = raw.decode("utf-8")
            check_json_nesting(text, GRAPH)
            table, _end = json.JSONDecoder().raw_decode(text, len(_GLOBALS_PREFIX))
            doc = {"globals": table}
        except (ValueError, RecursionError):
            doc = None
    if doc is None:
        doc = _parse_json(raw, GRAPH)
        if type(doc) is not dict:
            raise _bad("G1", "graph.json holds globals, dtypes, arrays and root")
    from .decode import check_globals_table

    return check_globals_table(doc)


_MANIFEST_KEYS = {
    "format",
    "format_version",
    "created",
    "producer",
    "members",
    "training_data",
    "source",
    "cv_score",
    "metadata",
    "probe",
    "converted_from",
}


_MANIFEST_REQUIRED = frozenset(
    {"created", "producer", "members", "training_data", "source", "cv_score", "metadata"}
)


def _str_map(value: Any) -> bool:
    return type(value) is dict and all(type(k) is str and type(v) is str for k, v in value.items())


def _check_manifest_fields(manifest: dict) -> None:
    """Types of the provenance fields (§3), as ``safeload/data/manifest.schema.json`` says."""
    created = manifest["created"]
    if type(created) is not str or not _ISO_UTC.match(created):
        raise _bad("M5", "created is an ISO 8601 UTC time like 2026-01-31T12:00:00Z")
    if not _str_map(manifest["producer"]):
        raise _bad("M5", "producer maps package names to version strings")
    training = manifest["training_data"]
    if training is not None and type(training) is not str and not _str_map(training):
        raise _bad("M5", "training_data is null, a string or an object of strings")
    if manifest["source"] is not None and type(manifest["source"]) is not str:
        raise _bad("M5", "source is null or a string")
    cv = manifest["cv_score"]
    if cv is not None:
        ok = (
            type(cv) is dict
            and type(cv.get("value")) in (int, float)
            and cv.keys() <= {"value", "scoring", "cv", "std", "n_splits"}
            and (cv.get("scoring") is None or type(cv["scoring"]) is str)
            and (cv.get("cv") is None or type(cv["cv"]) in (int, str))
        )
        if not ok:
            raise _bad("M5", "cv_score is null or {value: number, scoring?, cv?, std?, n_splits?}")


def check_manifest(manifest: Any, index: dict[str, ZipMember]) -> None:
    """The checks the loader makes on ``manifest.json`` (§3; the JSON Schema in
    ``safeload/data/manifest.schema.json`` states the same rules for other tools).

    Parameters
    ----------
    manifest : object
        The parsed ``manifest.json``.
    index : dict of str to ZipMember
        The archive's members (:func:`.zipio.read_index`): every recorded size must be the
        member's uncompressed size in the zip, before that size decides the digest form.

    Raises
    ------
    FormatError
        Not a safeload manifest, a newer format version, unknown keys, or a members table that
        does not list exactly the archive's other members.
    """
    if type(manifest) is not dict or manifest.get("format") != FORMAT_NAME:
        raise _bad("M2", 'manifest.json must say "format": "safeload"')
    version = manifest.get("format_version")
    if type(version) is not int or version < 1:
        raise _bad("M2", "format_version must be a positive integer")
    if version > FORMAT_VERSION:
        raise _bad(
            "M3",
            f"the file uses format version {version}; this safeload reads up to "
            f"{FORMAT_VERSION} — upgrade safeload",
        )
    missing = _MANIFEST_REQUIRED - manifest.keys()
    if missing:
        raise _bad("M2", f"manifest.json lacks {sorted(missing)}")
    _check_manifest_fields(manifest)
    unknown = manifest.keys() - _MANIFEST_KEYS
    if unknown:
        raise _bad("M2", f"manifest.json has unknown keys {sorted(unknown)[:4]}")
    members = manifest.get("members")
    if type(members) is not dict or set(members) != set(index) - {MANIFEST}:
        raise _bad("M4", "manifest members must list every other member of the archive exactly")
    for name, entry in members.items():
        if type(entry) is not dict or len(entry) != 2 or type(entry.get("size")) is not int:
            raise _bad(
                "M4", f"members[{name!r}] must be {{size, sha256}} or {{size, sha256_blocks}}"
            )
        size = entry["size"]
        if size != index[name].size:
            raise _bad(
                "M4",
                f"members[{name!r}] records {size} bytes; the zip member holds {index[name].size}",
            )
        if uses_blocks(version, size):
            blocks = entry.get("sha256_blocks")
            if (
                type(blocks) is not list
                or len(blocks) != block_count(size)
                or not all(type(b) is str and _SHA256.match(b) for b in blocks)
            ):
                raise _bad(
                    "M4",
                    f"members[{name!r}] must be {{size, sha256_blocks}}: a member over "
                    f"{BLOCK_SIZE:,} bytes lists the SHA-256 (64 hex digits) of each "
                    f"{BLOCK_SIZE:,}-byte block",
                )
        elif type(entry.get("sha256")) is not str or not _SHA256.match(entry["sha256"]):
            raise _bad(
                "M4",
                f"members[{name!r}] must be {{size, sha256 (64 hex digits)}}"
                + ("" if version >= 2 else " in format version 1"),
            )
    metadata = manifest.get("metadata")
    if metadata is not None and (
        type(metadata) is not dict
        or not all(type(k) is str and type(v) is str for k, v in metadata.items())
    ):
        raise _bad("M5", "metadata maps strings to strings")


def _dtype_table(doc: dict) -> list[tuple[np.dtype, str]]:
    """Resolve graph.json's ``dtypes`` once: (dtype, repr of numpy's descr) per entry."""
    table = doc["dtypes"]
    if type(table) is not list:
        raise _bad("A1", "'dtypes' is a list of dtype descriptions")
    out = []
    for descr in table:
        dtype = dtype_from_json(descr)
        check_array_dtype(dtype)
        out.append((dtype, repr(npformat.dtype_to_descr(dtype))))
    return out


def _array_spec(spec: Any, i: int, dtypes: list, limits: Limits) -> tuple:
    """(dtype, shape, order, nbytes, header) of arrays[i], checked against rule A1."""
    if type(spec) is not dict or len(spec) != 3:
        raise _bad("A1", f"arrays[{i}] is {{dtype, shape, order}}")
    try:
        dtype_index, shape, order = spec["dtype"], spec["shape"], spec["order"]
    except KeyError:
        raise _bad("A1", f"arrays[{i}] is {{dtype, shape, order}}") from None
    if type(dtype_index) is not int or not 0 <= dtype_index < len(dtypes):
        raise _bad("A1", f"arrays[{i}].dtype indexes the dtypes table")
    if (
        type(shape) is not list
        or len(shape) > 64
        or not all(type(n) is int and 0 <= n <= _MAX_DIM for n in shape)
    ):
        raise _bad("A1", f"arrays[{i}].shape is a list of at most 64 non-negative ints")
    if order != "C" and order != "F":
        raise _bad("A1", f"arrays[{i}].order is C or F")
    dtype, descr_repr = dtypes[dtype_index]
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > limits.max_array_bytes:
        raise LimitExceededError("max_array_bytes", nbytes, limits.max_array_bytes, array_member(i))
    shape_t = tuple(shape)
    fortran = order == "F"
    return dtype, shape_t, order, nbytes, header_for(descr_repr, fortran, shape_t)


def check_array_headers(safe: SafeFile, data: Any, limits: Limits) -> list[np.dtype]:
    """Rules A1–A3 for every array member, reading only the headers (no array data).

    Returns
    -------
    list of numpy.dtype
        The dtype of each array entry.

    Raises
    ------
    FormatError, LimitExceededError
    """
    dtypes = _dtype_table(safe.doc)
    total = 0
    out = []
    view = memoryview(data)
    try:
        for i, raw_spec in enumerate(safe.doc["arrays"]):
            dtype, _shape, _order, nbytes, header = _array_spec(raw_spec, i, dtypes, limits)
            total += nbytes
            if total > limits.max_total_array_bytes:
                raise LimitExceededError(
                    "max_total_array_bytes", total, limits.max_total_array_bytes, "all arrays"
                )
            name = array_member(i)
            member = safe.index[name]
            if member.size != len(header) + nbytes:
                raise _bad("A3", f"{name}: size does not match the declared array")
            if member.method == STORED:
                start = member.data_offset
                if view[start : start + len(header)] != header:
                    raise _bad("A2", f"{name}: header is not the canonical one for its entry")
            out.append(dtype)
    finally:
        view.release()
    return out


def read_arrays(
    safe: SafeFile,
    data: Any,
    limits: Limits,
    *,
    verify: bool,
    mmap_mode: str | None = None,
    file: IO[bytes] | None = None,
    mapped: Any = None,
    private: bool = False,
) -> tuple[list[np.ndarray], Any]:
    """Read and check every array member; hash them (unless ``verify`` is False) on a worker.

    Returns
    -------
    arrays : list of numpy.ndarray
    finish : callable
        Waits for the reads and hashes and raises :class:`IntegrityError` listing every member
        whose SHA-256 differs from the manifest's.  The caller builds meanwhile (the hash is
        tamper evidence, not a trust boundary: built content is validated either way) and
        calls it before returning anything, on every path (it stops the hasher's thread).
    ready : callable or None
        ``ready(i)`` waits until member ``i``'s bytes are all read: large members of a file
        are filled by the hasher's C thread (``_blockhash``) while the caller decodes, which must
        call it before the first use of ``arrays[i]`` (``Decoder(ready=...)``).  Such a
        member is allocated only when the decode comes within ``_READ_AHEAD`` bytes of it
        (:class:`_ReadQueue`): ``arrays[i]`` is None until then.  None when every array is
        complete on return.

    Parameters
    ----------
    safe : SafeFile
    data : bytes-like or mmap.mmap
        The whole archive.
    limits : Limits
    verify : bool
        Check each member's SHA-256 against the manifest.
    mmap_mode : {None, "r"}
        ``"r"``: stored members become read-only views of ``mapped`` (zero-copy).
    file : binary file object, optional
        The same bytes as a file, to ``readinto`` large arrays without a page-fault per page.
    mapped : mmap.mmap, optional
        Map kept alive by the returned views (``mmap_mode="r"``).
    private : bool
        ``data`` is a writable buffer of this load's own (the head of a small file,
        :func:`_read_head`), not changed after this call: when array members make up at
        least half of it, stored arrays are returned as writable views of it instead of
        copies.

    Raises
    ------
    FormatError
        A header that is not the canonical one for the declared dtype, order and shape; a size
        mismatch; a compressed member under ``mmap_mode``.
    IntegrityError
        Listing every member whose hash failed.
    LimitExceededError
        ``max_array_bytes``, ``max_total_array_bytes``.
    """
    specs = safe.doc["arrays"]
    members = safe.manifest["members"]
    dtypes = _dtype_table(safe.doc)
    index = safe.index
    view = memoryview(data)
    out: list[np.ndarray] = []
    append = out.append
    total = 0
    pending: list[tuple[str, Any]] = []
    blocks: _BlockHasher | None = None  # block digests of large members
    fast: Any = None  # _blockhash.Hasher: digests of large members, without the GIL
    serial: ThreadPoolExecutor | None = None  # updates of one digest, in order
    sha256 = hashlib.sha256
    # large members of a file held in memory: copied from it (no second read of the file) and
    # hashed after the loop, together, on one thread when they are large enough
    in_memory = not isinstance(data, mmap.mmap)
    deferred: list[tuple[str, int, int, bool]] = []
    # member index -> every Hasher job that reads part of it: each must be waited for, since
    # the decoder's wait() reads blocks too, so a member's last block can be done before an
    # earlier one the hasher's thread still has in hand
    waits: dict[int, list[int]] = {}
    job: _HashThread | None = None
    queue: _ReadQueue | None = None  # large members for the thread of ``fast``
    # a small file's array members, read once into a buffer of the load's own (_read_head):
    # used in place (a second copy costs as much again in page faults), unless that would
    # keep much more than the arrays alive (a buffer that is mostly something else)
    array_bytes = sum(index[array_member(i)].size for i in range(len(specs)))
    in_place = private and 2 * array_bytes >= len(data)
    try:
        for i, raw_spec in enumerate(specs):
            dtype, shape, order, nbytes, header = _array_spec(raw_spec, i, dtypes, limits)
            total += nbytes
            if total > limits.max_total_array_bytes:
                raise LimitExceededError(
                    "max_total_array_bytes", total, limits.max_total_array_bytes, "all arrays"
                )
            name = array_member(i)
            member = index[name]
            hl = len(header)
            if member.size != hl + nbytes:
                raise _bad(
                    "A3", f"{name}: {member.size} bytes, the declared array needs {hl + nbytes}"
                )
            if members[name]["size"] != member.size:
                raise _bad("M4", f"{name}: size differs from the manifest's")
            count = nbytes // dtype.itemsize if dtype.itemsize else 0
            start = member.data_offset
            if member.method == DEFLATED:
                if mmap_mode:
                    raise _bad("A4", "mmap_mode needs stored (uncompressed) members")
                buf = _inflate(view, member)
                if buf[:hl] != header:
                    raise _bad("A2", f"{name}: header is not the canonical one for its entry")
                if verify:
                    pending.append((name, digest(buf, "sha256_blocks" in members[name])))
                append(_from_bytes(buf, hl, dtype, shape, count, order, copy=False))
                continue
            entry = members[name]
            blocked = "sha256_blocks" in entry
            if view[start : start + hl] != header:
                if verify and digest(view[start : start + member.size], blocked) != expected(entry):
                    raise IntegrityError([name])  # changed since written, not written wrong
                raise _bad("A2", f"{name}: header is not the canonical one for its entry")
            if mmap_mode:
                if verify:
                    pending.append((name, digest(view[start : start + member.size], blocked)))
                append(_from_bytes(mapped, start + hl, dtype, shape, count, order, copy=False))
                continue
            if nbytes >= _LARGE and file is not None and not in_memory:
                if verify and _blockhash is not None and (not blocked or hl < BLOCK_SIZE):
                    # read and hashed beside the decode, without the GIL: the hasher's thread
                    # fills the member block by block (the decode waits for it at its first
                    # use, Decoder(ready=...)), each block is hashed once read (by that
                    # thread, or at finish() by this one beside it); allocated
                    # and queued when the decode comes near it (_ReadQueue)
                    if fast is None:
                        fast = _blockhash.Hasher()
                        _read_errors(fast.set_file, file.fileno(), name, limits)
                        queue = _ReadQueue(fast, out, waits)
                    later = queue.add(i, start + hl, header, shape, dtype, order, nbytes, blocked)
                    pending.append((name, later))
                    append(None)  # the array once queued
                    continue
                arr = np.empty(shape, dtype=dtype, order=order)
                raw = _raw_bytes(arr)
                file.seek(start + hl)
                if not verify:
                    _read_into(file, raw, 0, nbytes, name)
                elif blocked and hl < BLOCK_SIZE:
                    # block k is hashed on the worker while block k + 1 is read
                    if blocks is None:
                        blocks = _BlockHasher()
                    digests = [""] * block_count(member.size)
                    end = BLOCK_SIZE - hl
                    _read_into(file, raw, 0, min(end, nbytes), name)
                    blocks.add(digests, 0, header, raw[:end])
                    for k, pos in enumerate(range(end, nbytes, BLOCK_SIZE), 1):
                        part = raw[pos : pos + BLOCK_SIZE]
                        _read_into(file, raw, pos, pos + part.nbytes, name)
                        blocks.add(digests, k, b"", part)
                    pending.append((name, digests))
                else:  # one digest: its updates in order, on one worker
                    if serial is None:
                        serial = ThreadPoolExecutor(1, thread_name_prefix="safeload-hash")
                    h = MemberHash(blocked)
                    h.update(header)
                    futures = []
                    for pos in range(0, nbytes, _CHUNK):
                        part = raw[pos : pos + _CHUNK]
                        _read_into(file, raw, pos, pos + part.nbytes, name)
                        futures.append(serial.submit(h.update, part))
                    pending.append((name, serial.submit(_digest_after, futures, h)))
                append(arr)
                continue
            if in_place:
                arr = _from_bytes(data, start + hl, dtype, shape, count, order, copy=False)
            else:
                arr = _from_bytes(view, start + hl, dtype, shape, count, order, copy=True)
            if not verify:
                pass
            elif not in_memory:
                # from the file's map: hash the bytes copied, not a second read of the map, which
                # a writer could change in between (the hash must cover the bytes used)
                h = MemberHash(blocked)
                h.update(header)  # equal to the member's header, compared above
                h.update(_raw_bytes(arr))
                pending.append((name, h.result()))
            elif member.size >= _LARGE:
                # hashed after the loop, on a thread, from the bytes read (in place: the very
                # arrays, so one changed before its hash is taken fails the load, never passes)
                deferred.append((name, start, member.size, blocked))
                pending.append((name, None))  # filled in below, in member order
            else:
                pending.append((name, sha256(view[start : start + member.size]).hexdigest()))
            append(arr)
        if deferred:
            if _blockhash is not None and sum(part[2] for part in deferred) >= _THREAD_HASH:
                # beside the decode without the GIL (a Python thread would first wait for it)
                if fast is None:
                    fast = _blockhash.Hasher()
                later = {
                    n: _Later(_add_member(fast, view[a : a + size], b))
                    for n, a, size, b in deferred
                }
                pending = [(n, later[n] if d is None else d) for n, d in pending]
            elif sum(part[2] for part in deferred) >= _THREAD_HASH:
                job = _HashThread(data, deferred)
            else:
                digests = {n: digest(view[a : a + size], b) for n, a, size, b in deferred}
                pending = [(n, digests[n] if d is None else d) for n, d in pending]
        if queue is not None:
            queue.fill()  # the first member and those within _READ_AHEAD after it
    except BaseException:
        if serial is not None:
            serial.shutdown(wait=True)
        if blocks is not None:
            blocks.close()
        queue = None
        del fast  # cancels what is queued, waits for the digest in hand, releases the arrays
        raise
    finally:
        with contextlib.suppress(BufferError):
            view.release()

    def ready(i: int) -> None:
        if queue is not None:
            try:
                queue.ask(i)
            except MemoryError as exc:  # as for the members allocated up front
                raise _out_of_memory(array_member(queue.allocating), limits) from exc
        for k in waits.get(i, ()):  # all of its jobs: they may finish in any order
            _read_errors(fast.wait, k, array_member(i), limits)

    def finish() -> None:
        try:
            if queue is not None:
                queue.fill(everything=True)  # members the decode did not reach: hashed too
            if blocks is not None:
                blocks.finish()  # fills in the block lists of pending
            done = (
                _read_errors(fast.join, None, "an array member", limits) if fast is not None else []
            )
            bad = []
            for name, found in pending:
                if found is None:
                    found = job.digest(name)  # type: ignore[union-attr]
                elif isinstance(found, Future):
                    found = found.result()
                elif type(found) is _Later:
                    found = found.resolve(done)
                if found != expected(members[name]):
                    bad.append(name)
        except MemoryError as exc:  # in a hashing thread (review 7): a limit, as elsewhere
            raise _out_of_memory("an array member", limits) from exc
        finally:
            if serial is not None:
                serial.shutdown(wait=True)
            if blocks is not None:
                blocks.close()
            if job is not None:
                job.join()
        if bad:
            raise IntegrityError(bad)

    return out, finish, (ready if waits or queue is not None else None)


def _read_errors(call: Any, arg: Any, what: str, limits: Limits) -> Any:
    """``call(arg)`` (or ``call()``) of a :class:`_blockhash.Hasher` that reads: a short read
    becomes the ``FormatError`` of rule A3, a failed ``pread`` or a failed OpenSSL digest
    (``RuntimeError``) a ``SafeloadLoadIOError``, running out of memory the
    ``max_total_array_bytes`` limit: nothing but a ``SafeloadError`` leaves a load."""
    try:
        return call() if arg is None else call(arg)
    except EOFError:
        raise _bad("A3", f"{what}: file ended inside the array (changed while read?)") from None
    except OSError as exc:
        raise SafeloadLoadIOError(f"reading {what} failed: {exc}") from exc
    except RuntimeError as exc:
        raise SafeloadLoadIOError(f"hashing {what} failed: {exc}") from exc
    except MemoryError as exc:
        raise _out_of_memory(what, limits) from exc


def _out_of_memory(what: str, limits: Limits) -> LimitExceededError:
    return LimitExceededError(
        "max_total_array_bytes",
        None,
        limits.max_total_array_bytes,
        f"{what}: ran out of memory reading the arrays",
    )


class _HashThread:
    """SHA-256 of some members of an archive held in memory, on one thread (``hashlib``
    releases the GIL, so it runs while the graph is decoded).

    A bare ``_thread`` with a lock: ``threading.Thread.start`` waits until the new thread
    runs, which on a busy machine can cost more than the hash itself.

    Parameters
    ----------
    data : bytes-like
        The whole archive; not changed while the thread runs.
    parts : list of (name, offset, size, blocked)
        ``blocked``: hashed per block (:func:`.digest.uses_blocks`).
    """

    def __init__(self, data: Any, parts: list[tuple[str, int, int, bool]]):
        self._digests: dict[str, str | list[str]] = {}
        self._error: BaseException | None = None
        self._done = _thread.allocate_lock()
        self._done.acquire()
        _thread.start_new_thread(self._run, (data, parts))

    def _run(self, data: Any, parts: list[tuple[str, int, int, bool]]) -> None:
        try:
            with memoryview(data) as view:
                for name, start, size, blocked in parts:
                    self._digests[name] = digest(view[start : start + size], blocked)
        except BaseException as exc:  # noqa: BLE001 - re-raised by digest() on the caller
            self._error = exc
        finally:
            self._done.release()

    def join(self) -> None:
        """Wait for the thread (once it finished, at once)."""
        if self._done.acquire():
            self._done.release()

    def digest(self, name: str) -> str | list[str]:
        """The digest (:func:`.digest.digest`) of member ``name``, once the thread is done."""
        self.join()
        if self._error is not None:
            raise self._error
        return self._digests[name]


def _add_member(fast: Any, member: Any, blocked: bool) -> int | list[int]:
    """Queue a whole member's bytes on ``fast`` (a :class:`_blockhash.Hasher`): its digest
    index, or the indices of its 1 MiB blocks (:func:`.digest.digest`'s form)."""
    if not blocked:
        return fast.add(b"", member)
    return [fast.add(b"", member[k : k + BLOCK_SIZE]) for k in range(0, len(member), BLOCK_SIZE)]


class _ReadQueue:
    """Large members a :class:`_blockhash.Hasher`'s thread fills, allocated and queued as the
    decode comes near them.

    The first member is queued at once; a member the decode asks for (:meth:`ask`) at once,
    wherever it is; and the members after the last one queued in member order (the graph's
    order of first use, except pools, which follow the members they serve) while the members
    queued but not yet asked for stay within :data:`_READ_AHEAD` bytes: reads keep ahead of
    the decode, but an array the end of the graph uses is not in memory while the objects
    before it are built, as ``pickle.load`` reads a buffer only when its opcode comes (a
    200k-term vocabulary is built before the 8 MB ``coef_`` after it exists,
    docs/PERFORMANCE.md, session 9).  A forest asks for its value pool, the last member,
    first: that queues the pool alone, not the 400 node arrays before it (session 10).

    Parameters
    ----------
    fast : _blockhash.Hasher
        With ``set_file`` done.
    out : list
        The load's arrays: ``out[i]`` is set when member ``i`` is queued.
    waits : dict
        Member index → the ``Hasher`` job indices to wait for, set when queued.
    """

    __slots__ = (
        "fast",
        "out",
        "waits",
        "specs",
        "where",
        "queued",
        "next",
        "ahead",
        "ahead_bytes",
        "allocating",
    )

    def __init__(self, fast: Any, out: list, waits: dict[int, list[int]]):
        self.fast = fast
        self.out = out
        self.waits = waits
        self.specs: list[tuple] = []
        self.where: dict[int, int] = {}  # member index -> its position in specs
        self.queued: list[bool] = []
        self.next = 0  # specs before it are queued
        self.ahead: dict[int, int] = {}  # member index -> bytes: queued, not yet asked for
        self.ahead_bytes = 0
        self.allocating = -1  # the member being queued (named when its allocation fails)

    def add(
        self,
        i: int,
        at: int,
        header: bytes,
        shape: tuple,
        dtype: np.dtype,
        order: str,
        nbytes: int,
        blocked: bool,
    ) -> _Later:
        """Register member ``i`` (its data at file offset ``at``, after ``header``); the
        returned :class:`_Later` gets its job indices when the member is queued."""
        later = _Later(-1)
        self.where[i] = len(self.specs)
        self.specs.append((i, at, header, shape, dtype, order, nbytes, blocked, later))
        self.queued.append(False)
        return later

    def ask(self, i: int) -> None:
        """The decode is about to use member ``i``: queue it if not yet, then the next ones
        in member order within :data:`_READ_AHEAD`.

        Raises
        ------
        MemoryError
            Allocating an array (the caller reports it as a limit).
        """
        p = self.where.get(i)
        if p is not None and not self.queued[p]:
            self._queue_at(p)
        self.ahead_bytes -= self.ahead.pop(i, 0)
        self.fill()

    def fill(self, everything: bool = False) -> None:
        """Queue the members after the last one queued in member order (the first one at
        least) while the bytes queued ahead stay within :data:`_READ_AHEAD`; with
        ``everything``, every member not queued yet (a load's end: all are hashed).

        Raises
        ------
        MemoryError
            Allocating an array (the caller reports it as a limit).
        """
        specs = self.specs
        while self.next < len(specs):
            p = self.next
            if not self.queued[p]:
                i, nbytes = specs[p][0], specs[p][6]
                if not everything and p > 0:
                    if self.ahead_bytes + nbytes > _READ_AHEAD:
                        return
                    self.ahead[i] = nbytes
                    self.ahead_bytes += nbytes
                self._queue_at(p)
            self.next += 1

    def _queue_at(self, p: int) -> None:
        self._queue(self.specs[p])
        self.queued[p] = True

    def _queue(self, spec: tuple) -> None:
        i, at, header, shape, dtype, order, nbytes, blocked, later = spec
        self.allocating = i
        arr = np.empty(shape, dtype=dtype, order=order)
        raw = _raw_bytes(arr)
        fast = self.fast
        if blocked:
            end = min(BLOCK_SIZE - len(header), nbytes)
            ids = [fast.read(at, header, raw[:end])]
            for pos in range(end, nbytes, BLOCK_SIZE):
                ids.append(fast.read(at + pos, b"", raw[pos : pos + BLOCK_SIZE]))
            later.ids = ids
        else:
            ids = [fast.read(at, header, raw)]
            later.ids = ids[0]
        self.waits[i] = ids
        self.out[i] = arr


class _Later:
    """Digest(s) a :class:`_blockhash.Hasher` computes: ``ids`` is the index one ``add``
    returned (a whole-member digest) or the list of a member's block indices."""

    __slots__ = ("ids",)

    def __init__(self, ids: int | list[int]):
        self.ids = ids

    def resolve(self, done: list[str]) -> str | list[str]:
        """The digest (:func:`.digest.digest`'s form) from ``Hasher.join()``'s list."""
        if type(self.ids) is list:
            return [done[i] for i in self.ids]
        return done[self.ids]


def _digest_after(futures: list[Future], h: MemberHash) -> str | list[str]:
    for fut in futures:
        fut.result()
    return h.result()


class _BlockHasher:
    """Block digests of large members (format version 2): one worker thread hashes the blocks
    while the main thread reads the next ones, and :meth:`finish` has the main thread hash
    what is left beside it, so both cores hash once the reads are done.

    Blocks are queued as ``(digests, k, head, part)``; hashing sets ``digests[k]`` to the hex
    SHA-256 of ``head + part``.  A bare ``_thread`` worker: ``threading.Thread.start`` waits
    until the thread runs (~0.25 ms each in a new process, more on a busy machine).
    """

    def __init__(self) -> None:
        self._queue: SimpleQueue = SimpleQueue()
        self._error: BaseException | None = None
        self._exited = _thread.allocate_lock()
        self._exited.acquire()
        self._closed = False
        _thread.start_new_thread(self._work, ())

    def add(self, digests: list[str], k: int, head: bytes, part: Any) -> None:
        """Queue block ``k`` of a member: ``head`` (the ``.npy`` header, for block 0) then
        ``part``."""
        self._queue.put((digests, k, head, part))

    def _hash(self, item: tuple) -> None:
        if self._error is not None:
            return
        digests, k, head, part = item
        try:
            h = hashlib.sha256(head)
            h.update(part)
            digests[k] = h.hexdigest()
        except BaseException as exc:  # noqa: BLE001 - re-raised by finish()
            self._error = exc

    def _work(self) -> None:
        try:
            while (item := self._queue.get()) is not None:
                self._hash(item)
        finally:
            self._exited.release()

    def finish(self) -> None:
        """Hash the queued blocks on this thread too, then wait for the worker's last one.

        Raises
        ------
        Exception
            Whatever a hash raised.
        """
        queue = self._queue
        while True:
            try:
                item = queue.get_nowait()
            except Empty:
                break
            if item is None:  # pragma: no cover - only close() queues it
                break
            self._hash(item)
        self.close()
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        """Stop the worker once it is done with the block in hand (idempotent)."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._exited.acquire()
            self._exited.release()


def _read_into(file: IO[bytes], raw: np.ndarray, start: int, end: int, name: str) -> None:
    """Fill ``raw[start:end]`` from ``file`` in chunks of :data:`_CHUNK` bytes."""
    for pos in range(start, end, _CHUNK):
        part = raw[pos : min(end, pos + _CHUNK)]
        if file.readinto(memoryview(part)) != part.nbytes:
            raise _bad("A3", f"{name}: file ended inside the array")


def _from_bytes(buf: Any, offset: int, dtype, shape, count: int, order: str, copy: bool):
    if count == 0:
        try:
            empty = np.empty(shape, dtype=dtype, order=order)
        except (ValueError, MemoryError):
            raise _bad("A1", f"numpy refuses the empty shape {list(shape)[:8]}") from None
        # writable as the views frombuffer gives: read-only like every other array of a map
        empty.flags.writeable = copy or not memoryview(buf).readonly
        return empty
    if copy and dtype.itemsize:
        # copied as bytes: numpy copies a structured dtype (tree nodes) field by field,
        # ~8x slower than the plain memcpy this is; the array owns its memory, as one read
        # with readinto does
        arr = np.empty(shape, dtype=dtype, order=order)
        raw = _raw_bytes(arr)
        raw[:] = np.frombuffer(buf, dtype=np.uint8, count=raw.nbytes, offset=offset)
        return arr
    flat = np.frombuffer(buf, dtype=dtype, count=count, offset=offset)
    if copy:
        flat = flat.copy()
    if len(shape) == 1:
        return flat
    return flat.reshape(shape, order=order)


def _inflate(data: Any, member: ZipMember) -> bytes:
    d = zlib.decompressobj(-15)
    raw = bytes(data[member.data_offset : member.data_offset + member.compressed_size])
    try:
        out = d.decompress(raw, member.size + 1)
    except zlib.error as exc:
        raise _bad("Z9", f"{member.name}: corrupt deflate data ({exc})") from None
    if len(out) != member.size or not d.eof or d.unconsumed_tail or d.unused_data:
        raise _bad("Z9", f"{member.name}: deflate data does not match its declared size")
    return out


def _read_range(src: Source, start: int, end: int) -> np.ndarray:
    """Bytes ``start:end`` of the file, read with one ``pread`` into a writable uint8 array
    (aligned for any dtype: numpy allocates on 16 bytes, and members start on 64-byte
    offsets), so that stored array members can be used in place.

    Reading beats copying out of the map: that would leave every page of the map counted in
    this process's RSS as well, and a file truncated meanwhile would raise SIGBUS on the map.

    Raises
    ------
    FormatError
        The file changed size while it was read (rule Z1).
    """
    buf = np.empty(end - start, np.uint8)
    if src.file is None:  # pragma: no cover - a map always comes with its file
        buf[:] = np.frombuffer(src.data, np.uint8, end - start, start)
    elif os.preadv(src.file.fileno(), [buf], start) != end - start:
        raise _bad("Z1", "the file changed size while it was read")
    return buf


def _read_small(src: Source, size: int) -> np.ndarray:
    """The whole (small) file (:func:`_read_range`)."""
    _drop_pages(src.data)  # the head the format detection read
    return _read_range(src, 0, size)


def _read_tail(src: Source, size: int) -> tuple[np.ndarray, int]:
    """A small file from ``graph.json``'s local header to its end (``graph.json``,
    ``manifest.json``, the central directory: rule M1) and the offset it starts at, read
    with ``pread``: the array members before it are read once the graph is parsed
    (:func:`_read_head`), so they are not in memory beside the parse.  Where it starts is
    found in the last :data:`_TAIL_PROBE` bytes (a small file has a few dozen members at
    most: arrays under 64 KiB share pools); the whole file (offset 0) when the directory is
    not there or does not name ``graph.json``: :func:`.zipio.read_index` then says what is
    wrong.

    Raises
    ------
    FormatError
        The file changed size while it was read (rule Z1).
    """
    if src.file is None:  # pragma: no cover - a map always comes with its file
        return _read_small(src, size), 0
    _drop_pages(src.data)  # the head the format detection read
    probe = min(size, _TAIL_PROBE)
    start = header_offset(os.pread(src.file.fileno(), probe, size - probe), size, GRAPH)
    if not start:
        return _read_small(src, size), 0
    return _read_range(src, start, size), start


def _read_head(src: Source, index: dict[str, ZipMember]) -> np.ndarray:
    """The part of a small file before ``graph.json`` (every array member, rule M1), read
    after the graph is parsed (:func:`_read_range`): offsets in it are file offsets.  What it
    holds is hashed from these bytes (:func:`read_arrays`), so a file changed since its tail
    was read fails its hashes or its headers, as with a large file's later reads."""
    return _read_range(src, 0, index[GRAPH].header_offset)


def _drop_pages(data: Any) -> None:
    """Unmap the pages of ``data`` (a read-only shared file map) from this process, so they
    stop counting in its RSS: they stay in the page cache, and a later access faults them back
    in with the same content (a shared map always shows the page cache). Each fault maps up to
    64 KiB around the page touched (the kernel's fault-around), so reading the local header of
    every member of a forest's file alone costs 64 KiB of RSS per member."""
    if isinstance(data, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED"):
        with contextlib.suppress(OSError, ValueError):
            data.madvise(mmap.MADV_DONTNEED)


def load_archive(
    src: Source,
    *,
    policy: Policy,
    limits: Limits,
    verify: bool | None = None,
    mmap_mode: str | None = None,
) -> Any:
    """Load a safe-format archive: structure → manifest → audit → arrays → build → validate.

    Parameters
    ----------
    src : Source
    policy : Policy
    limits : Limits
    verify : bool or None
        None (default): check every member's SHA-256, except array members under
        ``mmap_mode`` (hashing them would read every page the map is meant to leave on disk).
        True: check all.  False: skip hashing (structure, headers and limits are still checked).
    mmap_mode : {None, "r"}

    Raises
    ------
    UntrustedTypesError, ForbiddenOperationError, FormatError, IntegrityError,
    LimitExceededError, ValidationError
    """
    return load_parts(src, policy=policy, limits=limits, verify=verify, mmap_mode=mmap_mode)["root"]


def load_parts(
    src: Source,
    *,
    policy: Policy,
    limits: Limits,
    verify: bool | None = None,
    mmap_mode: str | None = None,
    keys: tuple[str, ...] = ("root",),
) -> dict[str, Any]:
    """Like :func:`load_archive`, decoding the top-level graph values ``keys`` (``"root"``,
    ``"probe"``) with one table of shared values; adds ``"manifest"`` to the result.

    Raises
    ------
    As :func:`load_archive`; ``FormatError`` when a requested key is absent.
    """
    if mmap_mode not in (None, "r"):
        raise ValueError("mmap_mode must be None or 'r'")
    check_json = verify is not False
    check_arrays = verify is True or (verify is None and not mmap_mode)
    data = src.data
    private = isinstance(data, mmap.mmap) and len(data) <= _SMALL_FILE and not mmap_mode
    if private:
        # reads of a small file beat a fault per page of its map: its tail (graph.json,
        # manifest.json, the central directory) first, its array members once graph.json is
        # parsed, the load's memory peak (docs/PERFORMANCE.md, session 9)
        tail, base = _read_tail(src, len(data))
        fd = src.file.fileno() if base else None
        index, manifest, text = _graph_text(
            tail, limits, verify=check_json, fd=fd, private=True, base=base
        )
        del tail
        safe = _parse_graph(index, manifest, text)
        del text
        data = _read_head(src, index)
    else:
        fd = src.file.fileno() if src.file is not None and isinstance(data, mmap.mmap) else None
        safe = open_archive(data, limits, verify=check_json, fd=fd)
    _drop_pages(data)  # the pages the index and JSON reads touched
    _context, placeholders, resolved = decode_globals(safe.doc, policy)
    mapped = None
    if mmap_mode:
        if src.file is None:
            raise ValueError("mmap_mode needs a local file path")
        mapped = mmap.mmap(src.file.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        arrays, finish, ready = read_arrays(
            safe,
            data,
            limits,
            verify=check_arrays,
            mmap_mode=mmap_mode,
            file=src.file,
            mapped=mapped,
            private=private,
        )
    except MemoryError as exc:  # an array (or a reader job) within the limits, but not in RAM
        raise _out_of_memory("an array member", limits) from exc
    if not mmap_mode:
        _drop_pages(data)  # array headers and small arrays: nothing reads the map any more
    for table in ("globals", "dtypes", "arrays"):  # resolved and read: not kept while building
        del safe.doc[table]
    # large members read beside the decode: each goes once what it is built into lets it go,
    # unless a ref names its slot (a forest's node arrays as each Tree copies them)
    keep = ref_ids(safe.doc) if ready is not None else None
    decoder = Decoder(
        placeholders, Builder(policy, limits, resolved), arrays, ready, consume=True, keep=keep
    )
    out: dict[str, Any] = {"manifest": safe.manifest}
    try:
        for key in keys:
            if key not in safe.doc:
                raise _bad("G1", f"graph.json has no {key!r}")
            out[key] = decoder.decode_root(safe.doc[key])
    except BaseException:
        finish()  # a changed member explains the failure better: IntegrityError first
        raise
    finally:
        decoder.release()  # its handler table is a cycle: free the read arrays now, not at GC
        del arrays
    finish()
    return out
