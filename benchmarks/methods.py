"""Registry of serialization methods: name -> dump function, load function, file suffix.

``pickle`` (protocol 5) is the baseline every ratio refers to. Methods with ``source`` set have
no file of their own: they read the file that method ``source`` wrote (``safeload-pickle`` reads
the ``pickle`` file, ``safeload-mmap`` the ``safeload-format`` file, ...). Methods with
``requires`` need those attributes on the ``safeload`` package; while they are missing the method
is reported as "n/a" (see :func:`unavailable_reason`). Imports happen inside the functions so
``python -m benchmarks --help`` stays fast and a missing library only disables its methods.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.arrays import read_npy_set

#: Exceptions that mean "this safeload API does not exist yet" -> the cell shows "n/a".
NOT_AVAILABLE = (ImportError, AttributeError, NotImplementedError)


@dataclass(frozen=True)
class Method:
    """One way of writing and reading a model.

    Attributes
    ----------
    name : str
        Column / row name.
    suffix : str
        File suffix (``""`` for the ``.npy`` folders of the limit rows).
    load : callable
        ``load(path) -> object`` (``scan`` methods return the scan report).
    dump : callable or None
        ``dump(obj, path)``; None when the method reads ``source``'s file.
    source : str or None
        Method whose file this one reads.
    kind : {"load", "scan", "limit"}
        ``load`` results are checked against the reference outputs; ``scan`` and ``limit`` are not.
    requires : tuple of str
        Attributes the ``safeload`` package must have.
    help : str
        One line for the README and ``--help``.
    """

    name: str
    suffix: str
    load: Callable[[Path], Any]
    dump: Callable[[Any, Path], None] | None = None
    source: str | None = None
    kind: str = "load"
    requires: tuple[str, ...] = ()
    help: str = ""

    @property
    def file_method(self) -> str:
        """Name of the method whose file this one reads (itself when it writes one)."""
        return self.source or self.name


# --------------------------------------------------------------------------- functions


def _pickle_dump(obj: Any, path: Path) -> None:
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=5)


def _pickle_load(path: Path) -> Any:
    with open(path, "rb") as fh:
        return pickle.load(fh)  # the benchmark's own files only


def _joblib_dump(obj: Any, path: Path, **kw: Any) -> None:
    import joblib

    joblib.dump(obj, path, **kw)


def _joblib_load(path: Path, **kw: Any) -> Any:
    import joblib

    return joblib.load(path, **kw)


def _skops_dump(obj: Any, path: Path) -> None:
    import skops.io

    skops.io.dump(obj, path)


def _skops_load(path: Path) -> Any:
    import skops.io

    return skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))


def _safeload() -> Any:
    import safeload

    return safeload


def _safeload_load(path: Path) -> Any:
    return _safeload().load(path)


def _safeload_load_mmap(path: Path) -> Any:
    try:
        return _safeload().load(path, mmap_mode="r")
    except TypeError as exc:  # load() exists but has no mmap_mode yet: not available, no error
        if "mmap_mode" in str(exc):
            raise NotImplementedError(f"safeload.load has no mmap_mode yet ({exc})") from exc
        raise


def _safeload_scan(path: Path) -> Any:
    report = _safeload().scan(path)
    if not report.safe:  # every benchmark model is benign: an unsafe verdict is an error
        blocking = [f"{f.rule_id} {f.message}" for f in report.findings if f.blocking]
        raise RuntimeError(f"safeload.scan reports the file unsafe: {blocking[:3]}")
    return report


def _safeload_dump(obj: Any, path: Path) -> None:
    _safeload().dump(obj, path)


def _limit_dump(obj: Any, path: Path) -> None:
    from benchmarks.arrays import model_arrays, write_npy_set

    write_npy_set(model_arrays({"m": obj})["m"], path)


def _blob_dump(obj: Any, path: Path) -> None:
    from benchmarks.arrays import model_arrays, write_blob

    write_blob(model_arrays({"m": obj})["m"], path)


def _blob_load(path: Path) -> Any:
    import numpy as np

    return np.load(path, allow_pickle=False)


METHODS: dict[str, Method] = {
    m.name: m
    for m in [
        Method("pickle", ".pkl", _pickle_load, _pickle_dump,
               help="pickle.dump(protocol=5) / pickle.load: the baseline"),
        Method("joblib", ".joblib", _joblib_load, _joblib_dump,
               help="joblib.dump / joblib.load, uncompressed"),
        Method("joblib-mmap", ".joblib", lambda p: _joblib_load(p, mmap_mode="r"),
               source="joblib", help="joblib.load(mmap_mode='r') of the joblib file"),
        Method("joblib-z3", ".z3.joblib", _joblib_load,
               lambda o, p: _joblib_dump(o, p, compress=3),
               help="joblib.dump(compress=3) (zlib) / joblib.load"),
        Method("skops", ".skops", _skops_load, _skops_dump,
               help="skops.io.dump / skops.io.load(trusted=get_untrusted_types(file=...))"),
        Method("safeload-pickle", ".pkl", _safeload_load, source="pickle",
               requires=("load",), help="safeload.load of the protocol-5 pickle file"),
        Method("safeload-joblib", ".joblib", _safeload_load, source="joblib",
               requires=("load",), help="safeload.load of the plain joblib file"),
        Method("safeload-scan", ".pkl", _safeload_scan, source="pickle", kind="scan",
               requires=("scan",), help="safeload.scan of the pickle file (no load)"),
        Method("safeload-format", ".safeload", _safeload_load, _safeload_dump,
               requires=("dump", "load"), help="safeload.dump / safeload.load (safe zip)"),
        Method("safeload-mmap", ".safeload", _safeload_load_mmap, source="safeload-format",
               requires=("dump", "load"),
               help="safeload.load(mmap_mode='r') of the safeload-format file"),
        Method("limit", "", read_npy_set, _limit_dump, kind="limit",
               help="np.load of the model's arrays from a folder of .npy files"),
        Method("limit-mmap", "", lambda p: read_npy_set(p, mmap_mode="r"), source="limit",
               kind="limit", help="the same with mmap_mode='r'"),
        Method("limit-bytes", ".bytes.npy", _blob_load, _blob_dump, kind="limit",
               help="np.load of all those bytes concatenated in one file (the floor)"),
    ]
}  # fmt: skip

BASELINE = "pickle"
LIMITS = ("limit", "limit-mmap", "limit-bytes")


def unavailable_reason(method: Method) -> str | None:
    """Return why ``method`` cannot run in this environment, or None when it can.

    Parameters
    ----------
    method : Method

    Returns
    -------
    str or None
        E.g. ``"safeload.scan does not exist"``.
    """
    if not method.requires:
        return None
    try:
        sl = _safeload()
    except ImportError as exc:
        return f"safeload not importable: {exc}"
    missing = [a for a in method.requires if not hasattr(sl, a)]
    if missing:
        return ", ".join(f"safeload.{a}" for a in missing) + " does not exist yet"
    return None


def select(names: list[str] | None) -> list[Method]:
    """Return the methods to run, in registry order.

    ``pickle`` (the baseline) and the limit rows are always included. Sources of the chosen
    methods are included too, since their files are needed (``safeload-mmap`` needs the
    ``safeload-format`` file).

    Parameters
    ----------
    names : list of str or None
        Requested method names; None for all.

    Returns
    -------
    list of Method

    Raises
    ------
    ValueError
        For an unknown method name.
    """
    if names is None:
        return list(METHODS.values())
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; known: {', '.join(METHODS)}")
    wanted = {BASELINE, *LIMITS, *names}
    wanted |= {METHODS[n].source for n in list(wanted) if METHODS[n].source}
    return [m for m in METHODS.values() if m.name in wanted]
