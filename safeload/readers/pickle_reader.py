"""Raw pickle streams → inert object graph, at C speed.

The stdlib C unpickler does the parsing (memo, every opcode of protocols 0–5, Python 2 string
opcodes) while :class:`~safeload.graph.ParseContext` placeholders make every global inert; see
:mod:`safeload.graph`.  The stream is pre-scanned by :func:`~safeload.readers.opscan.scan_opcodes`
first so the C unpickler never sees the few opcodes that hurt it.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from typing import Any

from .._text import describe
from ..errors import FormatError, LimitExceededError, SafeloadError
from ..graph import ParseContext
from ..limits import Limits
from .opscan import StreamInfo, scan_opcodes
from .payloads import PayloadSource, find_payloads, skeleton

__all__ = ["ParsedStream", "parse_pickle", "InertUnpickler"]


@dataclass
class ParsedStream:
    """Result of parsing one stream: the root of the graph, the context and the scan info."""

    root: Any
    context: ParseContext
    info: StreamInfo | None
    format: str = "pickle"
    #: where the deferred payloads (:mod:`~safeload.readers.payloads`) of the graph are read from
    payloads: PayloadSource | None = None


class _Forbidden:
    """Stands in for the value of a forbidden opcode so parsing can continue to the end.

    It absorbs what a stream may do with it (call it, set its state, append to it), so the
    whole file is still audited and the error names the forbidden construct and every untrusted
    global; the audit refuses the stream before anything is built.
    """

    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what

    def __call__(self, *args, **kwargs) -> _Forbidden:
        return self

    def __setstate__(self, state) -> None:
        return None

    def append(self, item) -> None:
        return None

    def extend(self, items) -> None:
        return None

    def add(self, item) -> None:
        return None

    def __setitem__(self, key, value) -> None:
        return None


def _inert_hooks(cls):
    """Add the inert ``find_class``/``persistent_load`` to an unpickler class."""

    def find_class(self, module, name):
        if type(module) is not str or type(name) is not str:
            raise FormatError("a global's module and name must be str")
        ctx = self._safeload_context
        if (
            len(ctx.globals) >= self._safeload_limits.max_globals
            and (module, name) not in ctx.globals
        ):
            raise LimitExceededError(
                "max_globals",
                len(ctx.globals) + 1,
                self._safeload_limits.max_globals,
                "distinct globals",
            )
        return ctx.placeholder(module, name)

    def persistent_load(self, pid):
        self._safeload_context.forbidden.append(
            (
                "persistent-id",
                f"persistent id {describe(pid)}: safeload never resolves "
                "persistent ids (they hand control to application code)",
            )
        )
        return _Forbidden("persistent-id")

    cls.find_class = find_class
    cls.persistent_load = persistent_load
    return cls


@_inert_hooks
class InertUnpickler(pickle.Unpickler):
    """The C unpickler with every global replaced by an inert placeholder.

    Parameters
    ----------
    file : binary file object
    context : ParseContext
    limits : Limits

    Notes
    -----
    ``encoding='latin1'`` decodes Python 2 ``str`` payloads the way numpy and joblib do, so
    numpy arrays pickled by Python 2 load (numpy's ``__setstate__`` accepts latin-1 text).
    """

    def __init__(self, file, context: ParseContext, limits: Limits, buffers=None):
        super().__init__(file, encoding="latin1", buffers=buffers)
        self._safeload_context = context
        self._safeload_limits = limits


def parse_pickle(
    data,
    limits: Limits,
    *,
    file: Any = None,
    context: ParseContext | None = None,
    allow_trailing: bool = False,
    payloads: PayloadSource | None = None,
) -> ParsedStream:
    """Parse one raw pickle stream into an inert graph.

    Parameters
    ----------
    data : bytes-like or mmap.mmap
        The stream (used for the pre-scan; also parsed when ``file`` is None).
    limits : Limits
    file : binary file object, optional
        The same bytes as a seekable file positioned at the start; parsing from it keeps peak
        memory as low as ``pickle.load(file)`` (``data`` may then be a memory map that is
        released before objects are built).
    context : ParseContext, optional
        Share placeholders with an enclosing parse.
    allow_trailing : bool
        Accept bytes after ``STOP``.
    payloads : PayloadSource, optional
        Leave the large payloads of a framed stream (protocols 4 and 5) in the file: the graph
        holds :class:`~safeload.readers.payloads.Payload` markers that the builder reads from
        this source (see :mod:`safeload.readers.payloads`).  The source must stay readable
        until the graph is built.

    Returns
    -------
    ParsedStream

    Raises
    ------
    FormatError
        Corrupt or truncated stream, or a forbidden construct that the C unpickler can not be
        trusted with (extension codes while the ``copyreg`` registry is not empty).
    LimitExceededError
    """
    info = scan_opcodes(data, limits, allow_trailing=allow_trailing)
    ctx = context or ParseContext()
    if info.joblib:
        # raw array bytes follow; the caller switches to the joblib reader
        return ParsedStream(None, ctx, info, "joblib")
    if info.ext_offsets:
        # With an empty copyreg registry the C unpickler raises on EXT; with a non-empty one it
        # would hand back objects cached by other code without calling find_class.
        ctx.forbidden.append(
            (
                "extension-code",
                f"EXT opcode at offset {info.ext_offsets[0]}: extension-registry codes fetch "
                "globals without naming them (copyreg.add_extension)",
            )
        )
        return ParsedStream(None, ctx, info)
    if info.buffer_offsets:
        ctx.forbidden.append(
            (
                "out-of-band-buffer",
                f"NEXT_BUFFER/READONLY_BUFFER at offset {info.buffer_offsets[0]}: out-of-band "
                "buffers are not part of the file",
            )
        )
        return ParsedStream(None, ctx, info)
    deferred = None
    if payloads is not None and payloads.usable and context is None:
        deferred = _defer(data, info, limits)
    if deferred is not None:
        try:
            root = _unpickle(io.BytesIO(deferred[0]), ctx, limits, deferred[1], len(data))
            return ParsedStream(root, ctx, info, payloads=payloads)
        except FormatError:
            # The skeleton holds the pre-scanned opcodes in order, but a FRAME covering a
            # replaced payload (never written by a pickler) now reaches past its end: parse
            # the stream as it is, in a fresh context
            ctx = ParseContext()
    stream = file if file is not None else io.BytesIO(data)
    root = _unpickle(stream, ctx, limits, None, len(data))
    return ParsedStream(root, ctx, info)


def _unpickle(stream: Any, ctx: ParseContext, limits: Limits, buffers: Any, size: int) -> Any:
    """Run the inert C unpickler on ``stream``; every failure is a :class:`SafeloadError`."""
    unpickler = InertUnpickler(stream, ctx, limits, buffers=buffers)
    try:
        return unpickler.load()
    except SafeloadError:
        raise
    except RecursionError as exc:
        raise LimitExceededError(
            "max_depth", limits.max_depth + 1, limits.max_depth, "nesting while parsing"
        ) from exc
    except MemoryError as exc:
        raise LimitExceededError(
            "max_decompressed_bytes",
            size,
            limits.max_decompressed_bytes,
            "the stream asked for more memory than is available",
        ) from exc
    except Exception as exc:  # noqa: BLE001 - every parse failure is a format error
        raise FormatError(f"corrupt pickle stream: {type(exc).__name__}: {exc}") from exc
    finally:
        # The memo holds every memoized object (bytes payloads included): drop it now so the
        # build stage can free payloads as it consumes them.
        unpickler.memo = {}
        del unpickler


#: defer only when the payloads outweigh the rest of the stream (copied into the skeleton)
_DEFER_RATIO = 1


def _defer(data, info: StreamInfo, limits: Limits) -> tuple[bytes, list] | None:
    """``(skeleton, payload markers)`` for a framed stream with large payloads, else None.

    Every opcode replaced must be one the pre-scan met (``info.payload_offsets``); otherwise
    (a frame ending inside an opcode, say) the original stream is parsed as it is.
    """
    if info.protocol < 4 or info.stack_error >= 0 or info.buffer_offsets:
        return None  # unframed, or the unpickler fails on it anyway: parse it as it is
    found = find_payloads(data, info.start, info.end)
    deferred = sum(p.length for p in found)
    if deferred < _DEFER_RATIO * (info.end - info.start - deferred):
        return None  # mostly opcodes: copying them into a skeleton costs more than it saves
    genuine = set(info.payload_offsets)
    if any(p.op not in genuine for p in found):
        return None
    skel, _offsets = skeleton(data, info.start, info.end, found)
    return skel, found
