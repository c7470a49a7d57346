"""Pickle, joblib and compressed-pickle streams, parsed by the loader's own readers.

The parse is exactly the loader's (:func:`~safeload.readers.pickle_reader.parse_pickle`, then
:func:`~safeload.readers.joblib_reader.parse_joblib` for joblib files and compressed streams),
with two differences that change no verdict: the scanner passes its own
:class:`~safeload.graph.ParseContext`, so the globals named before a failure are still reported,
and joblib's raw array bytes are checked and stepped over instead of being read into arrays.

When the opcode pre-scan refuses a stream (truncated, invalid opcode, trailing data ...), the C
unpickler never runs; a *salvage* pass then walks the stream with the same inert hooks in the
pure-Python unpickler, with an opcode budget and no allocation larger than the data, only to name
the globals before the failure.  The verdict is already "unsafe" at that point.
"""

from __future__ import annotations

import io
import pickle
import struct
from collections.abc import Callable
from typing import IO, Any

from ..errors import FormatError, SafeloadError
from ..graph import ParseContext
from ..readers.compression import BoundedReader, Compressor, open_decompressed
from ..readers.joblib_reader import JOBLIB_MODULES, _JoblibUnpickler, parse_joblib
from ..readers.opscan import StreamInfo, scan_opcodes
from ..readers.pickle_reader import parse_pickle
from .collector import Collector, describe_location
from .graphcheck import check_graph
from .skim import MIN_FILE, skim, worth_skimming

__all__ = ["scan_pickle", "scan_compressed", "salvage"]

#: Opcodes the salvage pass executes at most.
SALVAGE_OPCODES = 2_000_000


def _rewind(file: IO[bytes] | None, data: Any) -> IO[bytes]:
    if file is not None:
        file.seek(0)
        return file
    return io.BytesIO(data)


def scan_pickle(
    data: Any,
    col: Collector,
    *,
    file: IO[bytes] | None = None,
    dirname: str | None = None,
    location: str | None = None,
) -> str:
    """Scan one raw pickle (or uncompressed joblib) stream into ``col``.

    Parameters
    ----------
    data : bytes or mmap.mmap
        The whole stream.
    col : Collector
    file : binary file, optional
        A seekable file over the same bytes (local files), parsed instead of ``data``.
    dirname : str, optional
        Folder of the file, for joblib < 0.10 side files.
    location : str, optional
        The stream's location inside the file (zip member ...), None for the file itself.

    Returns
    -------
    str
        ``"pickle"`` or ``"joblib"``.
    """
    limits = col.limits
    ctx = ParseContext()
    if file is not None:
        file.seek(0)
    original = _skimmable(data, limits)
    try:
        if original is not None:
            # payload-dominated: parse a copy without the payloads (same opcodes and globals)
            parsed = parse_pickle(original[1], limits, context=ctx)
            parsed.info = original[0]
        else:
            parsed = parse_pickle(data, limits, file=file, context=ctx)
    except SafeloadError as exc:
        col.add_error(exc, location=location)
        _after_failure(data, ctx, col, file=file, location=location)
        return "pickle"
    info = parsed.info
    forbidden_offsets = {
        "persistent-id": info.persid_offsets,
        "extension-code": info.ext_offsets,
        "out-of-band-buffer": info.buffer_offsets,
    }
    fmt = "pickle"
    if info.joblib:
        fmt = "joblib"
        stream = BoundedReader(_rewind(file, data), limits.max_file_bytes, "max_file_bytes")
        try:
            parsed = parse_joblib(
                stream, limits, dirname=dirname, fmt="joblib", context=ctx, materialize=False
            )
        except SafeloadError as exc:
            col.add_error(exc, location=location)
            col.add_context(ctx, ctx.global_offsets, location=location)
            col.add_stream(location, fmt, info.protocol)
            return fmt
        col.add_context(ctx, ctx.global_offsets, location=location)
    elif parsed.root is None:
        # an EXT opcode or an out-of-band buffer: refused before the C unpickler ran; name the
        # globals anyway (information only: the stream is already unsafe)
        col.add_context(ctx, [], location=location, forbidden_offsets=forbidden_offsets)
        col.add_stream(location, fmt, info.protocol)
        salvage(data, col, file=file, location=location, forbidden=False)
        return fmt
    else:
        col.add_context(
            ctx, info.global_offsets, location=location, forbidden_offsets=forbidden_offsets
        )
    col.add_stream(location, fmt, info.protocol)
    root, parsed.root = parsed.root, None
    col.add_graph(check_graph(root, col.policy, limits), location=location)
    return fmt


def _skimmable(data: Any, limits: Any) -> tuple[StreamInfo, bytes] | None:
    """``(pre-scan of data, payload-free copy)`` for a big payload-dominated stream, else None."""
    if len(data) < MIN_FILE:
        return None
    try:
        info = scan_opcodes(data, limits)
    except SafeloadError:
        return None  # parse_pickle reports it
    if not worth_skimming(len(data), info):
        return None
    copy = skim(data, info)
    return None if copy is None else (info, copy)


def _after_failure(
    data: Any, ctx: ParseContext, col: Collector, *, file: IO[bytes] | None, location: str | None
) -> None:
    """Report what a failed raw-pickle parse saw before it stopped."""
    try:
        info = scan_opcodes(data, col.limits, allow_trailing=True)
    except SafeloadError:
        info = None
    if info is None or not ctx.global_order and not ctx.forbidden:
        # the pre-scan refused the stream: the C unpickler never ran
        protocol = salvage(data, col, file=file, location=location)
        col.add_stream(location, "pickle", protocol)
        return
    col.add_context(ctx, info.global_offsets, location=location)
    col.add_stream(location, "pickle", info.protocol)


def scan_compressed(
    open_raw: Callable[[], IO[bytes]],
    comp: Compressor,
    col: Collector,
    *,
    dirname: str | None = None,
    location: str | None = None,
) -> str:
    """Scan a compressed pickle or joblib stream (gzip, bz2, xz, lzma, zlib, lz4).

    Parameters
    ----------
    open_raw : callable
        Returns the compressed bytes as a binary file positioned at the start (called twice:
        once to read the protocol, once to parse).
    comp : Compressor
    col : Collector
    dirname, location
        As for :func:`scan_pickle`.  Offsets are positions in the decompressed stream,
        reported with the location ``"<compressor> stream"``.

    Returns
    -------
    str
        ``"joblib+<compressor>"`` or ``"pickle+<compressor>"``.
    """
    limits = col.limits
    loc = describe_location(location, f"{comp.name} stream")
    protocol = _peek_protocol(open_raw, comp, col)
    ctx = ParseContext()
    parsed = None
    try:
        stream = open_decompressed(open_raw(), comp, limits)
        parsed = parse_joblib(
            stream, limits, dirname=dirname, fmt=comp.name, context=ctx, materialize=False
        )
    except SafeloadError as exc:
        col.add_error(exc, location=loc)
    except Exception as exc:  # noqa: BLE001 - a decompressor failing on its header
        col.add_error(FormatError(f"corrupt {comp.name} stream: {type(exc).__name__}: {exc}"),
                      location=loc)  # fmt: skip
    col.add_context(ctx, ctx.global_offsets, location=loc)
    is_joblib = any(module in JOBLIB_MODULES for module, _ in ctx.globals)
    fmt = f"joblib+{comp.name}" if is_joblib else f"pickle+{comp.name}"
    col.add_stream(loc, fmt, protocol)
    if parsed is not None:
        root, parsed.root = parsed.root, None
        col.add_graph(check_graph(root, col.policy, limits), location=loc)
    return fmt


def _peek_protocol(
    open_raw: Callable[[], IO[bytes]], comp: Compressor, col: Collector
) -> int | None:
    try:
        head = open_decompressed(open_raw(), comp, col.limits).read(2)
    except Exception:  # noqa: BLE001 - reported by the parse that follows
        return None
    if len(head) == 2 and head[0] == pickle.PROTO[0]:
        return head[1]
    return 0 if head else None


# --------------------------------------------------------------------------- salvage
class _OutOfBudget(Exception):
    pass


def _counted(fn: Callable[[Any], None]) -> Callable[[Any], None]:
    def op(self: Any) -> None:
        self._salvage_budget -= 1
        if self._salvage_budget < 0:
            raise _OutOfBudget
        fn(self)

    return op


class _SalvageUnpickler(_JoblibUnpickler):
    """The joblib reader's inert unpickler with an opcode budget and bounded allocations."""

    dispatch = {code: _counted(fn) for code, fn in _JoblibUnpickler.dispatch.items()}

    def __init__(self, file: IO[bytes], context: ParseContext, limits: Any, total: int) -> None:
        super().__init__(file, context, limits, None, materialize=False)
        self._salvage_budget = SALVAGE_OPCODES
        self._salvage_total = total

    def _load_bytearray8(self) -> None:
        (n,) = struct.unpack("<Q", self.read(8))
        if n > self._salvage_total:
            raise FormatError("BYTEARRAY8 longer than the data")
        buf = bytearray(n)
        self.readinto(buf)
        self.append(buf)

    dispatch[pickle.BYTEARRAY8[0]] = _counted(_load_bytearray8)


def salvage(
    data: Any,
    col: Collector,
    *,
    file: IO[bytes] | None = None,
    location: str | None = None,
    forbidden: bool = True,
) -> int:
    """Name the globals of a stream the loader refuses before parsing it (information only).

    Runs the pure-Python unpickler with the inert hooks over ``data`` until it stops (end,
    error or :data:`SALVAGE_OPCODES`), and records the globals it met.  Nothing is built.

    Parameters
    ----------
    data : bytes or mmap.mmap
    col : Collector
    file : binary file, optional
        Read instead of ``data`` (avoids copying a memory map).
    location : str, optional
    forbidden : bool
        Also record the forbidden constructs met (off when the parse already reported them).

    Returns
    -------
    int
        The protocol the stream declared (0 when it has no ``PROTO`` or did not get that far).
    """
    ctx = ParseContext()
    total = len(data)
    stream = BoundedReader(_rewind(file, data), total, "max_file_bytes")
    unpickler = _SalvageUnpickler(stream, ctx, col.limits, total)
    root = None
    try:
        root = unpickler.load()
    except Exception:  # noqa: BLE001 - the failure itself is already reported
        root = None
    finally:
        unpickler.memo = {}
        unpickler.stack = []
        unpickler.metastack = []
    if not forbidden:
        ctx.forbidden.clear()
    col.add_context(ctx, ctx.global_offsets, location=location)
    if root is not None:
        col.add_graph(check_graph(root, col.policy, col.limits), location=location)
    return unpickler.proto
