"""Scanner-side readers: one small module per container kind, chosen from a registry.

:data:`CONTAINERS` maps the container kind named by the content (never the file name) to the
function that scans it:

========================  =============================================================
``pickle``                raw pickle or uncompressed joblib (:mod:`.stream`)
``compressed``            gzip/bz2/xz/lzma/zlib/lz4 pickle or joblib (:mod:`.stream`)
``zip``                   PyTorch-style zips, ``.npz``, skops, safeload (:mod:`.archive`)
``npy``                   a bare ``.npy`` array (:mod:`.npyfile`)
``joblib-zfile``          joblib < 0.10 ``ZF`` files (unsupported: reported, never read)
========================  =============================================================

Pickle streams are parsed by the loader's own readers; :mod:`.graphcheck` then walks the inert
graph the way the build stage would, with the static call rules of :mod:`.callrules`.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from ..errors import FormatError, SafeloadError
from ..readers import detect_format
from ..readers.compression import detect_compressor
from ..readers.opscan import scan_opcodes
from ..source import Source
from .archive import scan_zip
from .collector import Collector
from .npyfile import scan_npy
from .stream import salvage, scan_compressed, scan_pickle

__all__ = ["CONTAINERS", "container_kind", "scan_source", "Collector"]

#: Unknown content up to this size is checked for being a pickle the loader does not recognise.
MAX_UNKNOWN_PROBE = 64 << 20


def _dirname(src: Source) -> str | None:
    return os.path.dirname(os.path.abspath(src.path)) if src.path else None


def _scan_pickle(src: Source, col: Collector) -> str:
    return scan_pickle(src.data, col, file=src.file, dirname=_dirname(src))


def _scan_compressed(src: Source, col: Collector) -> str:
    comp = detect_compressor(src.head(16))
    return scan_compressed(src.stream, comp, col, dirname=_dirname(src))


def _scan_zip(src: Source, col: Collector) -> str:
    return scan_zip(src.stream(), src.size, col)


def _scan_npy(src: Source, col: Collector) -> str:
    before = len(col.findings)
    scan_npy(src.stream(), src.size, col)
    if not any(f.blocking for f in col.findings[before:]):
        col.add("foreign-format", "a numeric .npy array, not a model file: safeload.load does "
                "not read it")  # fmt: skip
    return "npy"


def _scan_zfile(src: Source, col: Collector) -> str:
    col.add("unknown-format", "joblib < 0.10 compressed 'ZF' file: this format is not supported, "
            "its content was not inspected")  # fmt: skip
    return "joblib-zfile"


CONTAINERS: dict[str, Callable[[Source, Collector], str]] = {
    "pickle": _scan_pickle,
    "compressed": _scan_compressed,
    "zip": _scan_zip,
    "npy": _scan_npy,
    "joblib-zfile": _scan_zfile,
}


def container_kind(head: bytes) -> str:
    """The :data:`CONTAINERS` key for content starting with ``head``.

    Raises
    ------
    FormatError
        Empty or unrecognised content.
    """
    fmt = detect_format(head)
    return fmt if fmt in CONTAINERS else "compressed"


def scan_source(src: Source, col: Collector) -> None:
    """Scan one opened input into ``col`` (sets ``col.format``)."""
    col.size = src.size
    from ..format.archive import is_safe_archive

    if is_safe_archive(src.head(64)):
        from .safefile import scan_safe

        col.format = scan_safe(src, col)
        return
    try:
        kind = container_kind(src.head(16))
    except FormatError as exc:
        col.add("unknown-format", str(exc))
        _probe_unknown(src, col)
        return
    col.format = CONTAINERS[kind](src, col)


def _probe_unknown(src: Source, col: Collector) -> None:
    """Name the globals of unrecognised content that is nevertheless a whole pickle stream
    (no ``PROTO`` and a first opcode no pickler writes first: ``pickle.load`` still runs it)."""
    if not src.size or src.size > MAX_UNKNOWN_PROBE:
        return
    try:
        scan_opcodes(src.data, col.limits)
    except SafeloadError:
        return
    col.add("unknown-format", "the content is nevertheless a complete pickle stream, which "
            "pickle.load would run; its globals are listed")  # fmt: skip
    col.format = "pickle"
    col.add_stream(None, "pickle", salvage(src.data, col, file=src.file))
