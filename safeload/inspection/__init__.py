"""Inspection: what a model file holds, as a tree, without building anything untrusted.

:func:`inspect` detects the format from the content, hands the file to the inspector
registered for it and returns an :class:`InspectReport`.  Inspectors are keyed by format name
(:data:`INSPECTORS`, :func:`register_inspector`):

============  ==================================================================================
``pickle``    raw pickles (protocols 0–5), joblib files, every compressor — one reader tells
              them apart while parsing (:mod:`.stream`)
``skops``     zip with a skops ``schema.json`` (:mod:`.skopsfile`)
``safeload``  zip with a ``manifest.json`` whose ``format`` is ``safeload`` (not implemented yet)
============  ==================================================================================

An inspector is ``fn(src: Source, options: InspectOptions) -> InspectReport``.  Most only need a
*describer* for :class:`~safeload.inspection.tree.TreeBuilder` (see :mod:`.tree`), which turns
their values into the same tree every other format gets.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable
from typing import Any

from ..api import make_policy
from ..errors import FormatError
from ..limits import DEFAULT_LIMITS, Limits
from ..policy import Policy
from ..readers import detect_format
from ..source import Source, open_source
from .report import GlobalInfo, InspectNode, InspectReport, Problem, ValueSummary
from .skopsfile import inspect_skops, read_json_member
from .stream import inspect_stream
from .tree import InspectOptions, TreeBuilder

__all__ = [
    "inspect",
    "InspectReport",
    "InspectNode",
    "ValueSummary",
    "GlobalInfo",
    "Problem",
    "InspectOptions",
    "TreeBuilder",
    "Inspector",
    "INSPECTORS",
    "register_inspector",
    "inspector_format",
    "MAX_DEPTH",
]

Inspector = Callable[[Source, InspectOptions], InspectReport]
#: Deepest ``max_depth`` accepted (the tree is built recursively, a few frames per level).
MAX_DEPTH = 100


def _inspect_safe_format(src: Source, options: InspectOptions) -> InspectReport:
    """The safe-format inspector (:mod:`.safefile`), imported on first use."""
    from .safefile import inspect_safe_file

    return inspect_safe_file(src, options)


#: Format name → inspector.  Change it through :func:`register_inspector`.
INSPECTORS: dict[str, Inspector] = {
    "pickle": inspect_stream,
    "skops": inspect_skops,
    "safeload": _inspect_safe_format,
}


def register_inspector(format_name: str, inspector: Inspector) -> None:
    """Register (or replace) the inspector of a format.

    Parameters
    ----------
    format_name : str
        A name :func:`inspector_format` returns: ``"pickle"``, ``"skops"``, ``"safeload"``.
    inspector : callable
        ``inspector(src, options) -> InspectReport``; ``src`` is a
        :class:`~safeload.source.Source` (``src.stream()`` gives a fresh seekable binary stream),
        ``options`` an :class:`InspectOptions` (policy, limits, display path, caps).  It must
        not import or call anything the file names, except through
        :class:`~safeload.inspection.tree.TreeBuilder`, which resolves only trusted
        scikit-learn classes to read their defaults.

    Raises
    ------
    TypeError
        When ``inspector`` is not callable.
    """
    if not callable(inspector):
        raise TypeError("an inspector must be callable")
    INSPECTORS[format_name] = inspector


def inspector_format(src: Source, limits: Limits = DEFAULT_LIMITS) -> str:
    """Name the inspector format of ``src`` from its content (never from the file name).

    Returns
    -------
    str
        ``"pickle"`` (pickle, joblib and compressed streams), ``"skops"`` or ``"safeload"``.

    Raises
    ------
    FormatError
        Unknown content, bare ``.npy`` files, joblib < 0.10 ``ZF`` files, and zip archives that
        are neither skops nor safeload files.
    """
    fmt = detect_format(src.head(16))
    if fmt == "zip":
        try:
            zf = zipfile.ZipFile(src.stream())
        except Exception as exc:  # noqa: BLE001 - BadZipFile and struct errors
            raise FormatError(f"unreadable zip archive: {type(exc).__name__}: {exc}") from exc
        with zf:
            names = set(zf.namelist())
            if "schema.json" in names:
                return "skops"
            if "manifest.json" in names:
                manifest = read_json_member(zf, "manifest.json", limits)
                if type(manifest) is dict and manifest.get("format") == "safeload":
                    return "safeload"
        raise FormatError("a zip archive that is neither a skops nor a safeload file")
    if fmt == "npy":
        raise FormatError("a bare .npy array, not a model file")
    if fmt == "joblib-zfile":
        raise FormatError("joblib < 0.10 compressed 'ZF' files are not supported")
    return "pickle"


def _display_path(file: Any) -> str | None:
    if isinstance(file, (str, os.PathLike)):
        path = os.fspath(file)
        return os.fsdecode(path) if isinstance(path, bytes) else path
    name = getattr(file, "name", None)
    return name if isinstance(name, str) else None


def inspect(
    file: Any,
    *,
    policy: Policy | None = None,
    trusted: Any = None,
    limits: Limits | None = None,
    max_depth: int = 24,
    max_children: int = 25,
) -> InspectReport:
    """Describe the object graph of a model file without building anything untrusted.

    Works on the inert graph the loader's readers produce (pickle, joblib with any compressor)
    or on the schema of a skops file: nothing the file names is imported or called, so it is
    safe on hostile files.  The only classes imported are scikit-learn estimator classes the
    policy trusts, to read their ``__init__`` defaults (nothing is instantiated).

    Parameters
    ----------
    file : str, os.PathLike, bytes-like, binary file object, or URL
        As for :func:`safeload.load`.
    policy : Policy, optional
        Base policy (default :meth:`Policy.default`); decides each type's verdict.
    trusted : iterable of str or type, optional
        Extra exact ``module.qualname`` names to trust, on top of ``policy``.
    limits : Limits, optional
        Parse limits (default :data:`~safeload.limits.DEFAULT_LIMITS`).  Arrays of joblib files
        are read into memory while parsing, within these limits.
    max_depth : int
        Deepest object nesting shown (1 to :data:`MAX_DEPTH`); deeper objects are counted in
        ``omitted``.
    max_children : int
        Most children, and most entries of each params/fitted/attributes table, per node.

    Returns
    -------
    InspectReport
        The tree (class, verdict, non-default params, fitted attributes with shape and dtype,
        nested objects), every global with its verdict, forbidden operations, the
        scikit-learn version that wrote the file.

    Raises
    ------
    FormatError
        Unknown, foreign, corrupt or truncated file.
    LimitExceededError
        A parse limit exceeded (a hostile file's bombs are refused while parsing).
    PolicyError
        ``trusted=True``, wildcards, or a name that can never be trusted.
    SafeloadLoadIOError
        The file can not be opened or read (also an ``OSError``).
    TypeError
        ``file`` is not a path, bytes or a binary file object.
    ValueError
        ``max_depth`` or ``max_children`` out of range.

    See Also
    --------
    safeload.scan : the verdict on a file, with rule ids and offsets.
    """
    if not isinstance(file, (str, os.PathLike, bytes, bytearray, memoryview)) and not hasattr(
        file, "read"
    ):
        raise TypeError(
            f"inspect() takes a path, bytes or a binary file object, got {type(file).__name__}"
        )
    if not 1 <= max_depth <= MAX_DEPTH:
        raise ValueError(f"max_depth must be between 1 and {MAX_DEPTH}, got {max_depth}")
    if max_children < 1:
        raise ValueError(f"max_children must be at least 1, got {max_children}")
    limits = limits or DEFAULT_LIMITS
    options = InspectOptions(
        policy=make_policy(trusted, policy),
        limits=limits,
        path=_display_path(file),
        max_depth=max_depth,
        max_children=max_children,
    )
    with open_source(file, limits) as src:
        fmt = inspector_format(src, limits)
        inspector = INSPECTORS.get(fmt)
        if inspector is None:
            raise FormatError(f"no inspector is registered for {fmt!r} files")
        return inspector(src, options)


from .safefile import inspect_safe_file  # noqa: E402 - needs register_inspector defined above

register_inspector("safeload", inspect_safe_file)
