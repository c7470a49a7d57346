"""Public entry points of the safe format: :func:`dump` and :func:`dumps`."""

from __future__ import annotations

import _thread
import contextlib
import datetime as _dt
import io
import os
import platform
import shutil
import stat
import tempfile
import threading
from typing import IO, Any

from .api import make_policy
from .format.archive import write_archive
from .limits import DEFAULT_LIMITS, Limits
from .policy import Policy

__all__ = ["dump", "dumps", "producer_versions"]


def producer_versions() -> dict[str, str]:
    """Versions of the running stack, as the manifest records them (§3.2)."""
    import numpy
    import scipy
    import sklearn

    from . import __version__

    return {
        "safeload": __version__,
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "platform": platform.platform(),
    }


def _created(created: Any) -> str:
    if created is None:
        epoch = os.environ.get("SOURCE_DATE_EPOCH")
        when = (
            _dt.datetime.fromtimestamp(int(epoch), _dt.timezone.utc)
            if epoch
            else _dt.datetime.now(_dt.timezone.utc)
        )
    elif isinstance(created, _dt.datetime):
        when = created.astimezone(_dt.timezone.utc) if created.tzinfo else created
    else:
        raise TypeError("created must be a datetime or None")
    return when.replace(microsecond=0, tzinfo=None).isoformat() + "Z"


def _str_map(value: Any, what: str) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise TypeError(f"{what} must map str to str")
    return dict(value)


def _cv_score(cv_score: Any) -> dict | None:
    if cv_score is None:
        return None
    if isinstance(cv_score, (int, float)) and not isinstance(cv_score, bool):
        cv_score = {"value": cv_score}
    if not isinstance(cv_score, dict) or "value" not in cv_score:
        raise TypeError("cv_score must be a number or a dict with 'value' (and 'scoring', 'cv')")
    unknown = set(cv_score) - {"value", "scoring", "cv", "std", "n_splits"}
    if unknown:
        raise TypeError(f"cv_score has unknown keys {sorted(unknown)}")
    out: dict[str, Any] = {"value": float(cv_score["value"])}
    for key in ("scoring", "cv"):
        if cv_score.get(key) is not None:
            item = cv_score[key]
            out[key] = (
                item if isinstance(item, (str, int)) and not isinstance(item, bool) else str(item)
            )
    for key in ("std",):
        if cv_score.get(key) is not None:
            out[key] = float(cv_score[key])
    if cv_score.get("n_splits") is not None:
        out["n_splits"] = int(cv_score["n_splits"])
    return out


def build_manifest(
    *,
    metadata: Any = None,
    training_data: Any = None,
    source: Any = None,
    cv_score: Any = None,
    created: Any = None,
    extra: dict | None = None,
) -> dict:
    """The manifest fields :func:`dump` writes besides ``members`` (§3).

    Raises
    ------
    TypeError
        A field of the wrong type.
    """
    if training_data is not None and not isinstance(training_data, (str, dict)):
        raise TypeError("training_data must be a str reference or a dict of str")
    if isinstance(training_data, dict):
        training_data = _str_map(training_data, "training_data")
    if source is not None and not isinstance(source, str):
        raise TypeError("source must be a str (code, a path, or a reference such as a commit URL)")
    manifest: dict[str, Any] = {
        "created": _created(created),
        "producer": producer_versions(),
        "training_data": training_data,
        "source": source,
        "cv_score": _cv_score(cv_score),
        "metadata": _str_map(metadata, "metadata") or {},
    }
    manifest.update(extra or {})
    return manifest


def dump(
    obj: Any,
    file: Any,
    *,
    metadata: dict[str, str] | None = None,
    training_data: str | dict[str, str] | None = None,
    source: str | None = None,
    cv_score: float | dict | None = None,
    compression: str | None = None,
    probe: Any = None,
    created: _dt.datetime | None = None,
    trusted: Any = None,
    policy: Policy | None = None,
    limits: Limits | None = None,
    fsync: bool = False,
    _extra_manifest: dict | None = None,
) -> dict:
    """Write ``obj`` (an estimator, or any trusted object graph) as a safe-format file.

    The file is a zip of JSON and ``.npy`` members that holds data only (``docs/FORMAT.md``);
    it records the provenance scikit-learn's model persistence guide asks to keep with a
    model: library versions, a reference to the training data, the source, the
    cross-validation score.

    Parameters
    ----------
    obj : object
        Every class and function it references must be trusted by the policy
        (:meth:`Policy.default` plus ``trusted``), so that every file ``dump`` writes loads.
    file : str, os.PathLike or binary file object
        A path is written atomically (a temporary file in the same directory, then
        ``os.replace``); a file object receives the finished archive.
    metadata : dict of str to str, optional
        Free, informational; never changes how the file loads.
    training_data : str or dict of str to str, optional
        A reference to an immutable snapshot of the training data (a URL with a version or
        hash).
    source : str, optional
        The code that trained the model, or a reference to it (a commit URL).
    cv_score : float or dict, optional
        ``{"value": float, "scoring": str, "cv": int or str}``; :func:`safeload.verify`
        recomputes it when given data.
    compression : {None, "deflate"}
        Deflate every member (smaller; arrays can no longer be memory-mapped).
    probe : array-like, optional
        Input rows to store with the outputs of every prediction method, which
        ``safeload verify`` re-runs (``docs/INSPECT.md``); capped to the first 100 rows and
        to as many rows as fit in 1 MiB.
    created : datetime, optional
        Creation time to record (default: ``SOURCE_DATE_EPOCH`` when set, else now, UTC).
        Dumping the same object with the same ``created`` gives byte-identical files.
    trusted, policy
        As for :func:`safeload.load`.
    limits : Limits, optional
        ``max_depth`` bounds the walk.
    _extra_manifest : dict, optional
        Private: extra manifest keys of ``docs/FORMAT.md`` §3 (``converted_from``, written by
        :func:`safeload.convert`).

    Returns
    -------
    dict
        The manifest written.

    Raises
    ------
    UntrustedTypesError
        Listing every class or function the policy would not load back (lambdas, ``__main__``
        classes, other libraries' types); nothing is written.
    FormatError
        A value the format cannot represent.
    TypeError
        A provenance argument of the wrong type.
    """
    write = _make_writer(
        obj,
        metadata=metadata,
        training_data=training_data,
        source=source,
        cv_score=cv_score,
        compression=compression,
        probe=probe,
        created=created,
        trusted=trusted,
        policy=policy,
        limits=limits,
        extra_manifest=_extra_manifest,
    )
    if isinstance(file, (str, os.PathLike)):
        return _atomic_write(os.fspath(file), write, fsync)
    if not hasattr(file, "write"):
        raise TypeError(f"cannot write to a {type(file).__name__}: pass a path or a binary file")
    with tempfile.TemporaryFile() as tmp:  # the archive is finished before the caller sees it
        result = write(tmp)
        tmp.seek(0)
        shutil.copyfileobj(tmp, file, 1 << 20)
    return result


def _make_writer(
    obj: Any,
    *,
    probe: Any,
    trusted: Any,
    policy: Any,
    limits: Any,
    compression: Any,
    extra_manifest: dict | None = None,
    **fields: Any,
):
    limits = limits or DEFAULT_LIMITS
    pol = make_policy(trusted, policy)
    extra_roots = None
    manifest_extra: dict[str, Any] = {}
    if probe is not None:
        from .probe import make_probe

        extra_roots, manifest_extra["probe"] = make_probe(obj, probe)
    manifest_extra.update(extra_manifest or {})
    manifest = build_manifest(extra=manifest_extra, **fields)

    def write(fh: IO[bytes]) -> dict:
        return write_archive(
            obj,
            fh,
            policy=pol,
            limits=limits,
            manifest=manifest,
            compression=compression,
            extra_roots=extra_roots,
        )

    return write


def _umask() -> int:
    """The process umask, read without changing it where /proc allows (thread-safe)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


_UMASK_LOCK = threading.Lock()


def _atomic_write(path: str, write: Any, fsync: bool = False) -> dict:
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        # mkstemp creates 0600; give the file the mode open() would (umask), or keep the mode
        # of the file it replaces
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except OSError:
            mode = 0o666 & ~_umask()
        os.fchmod(fd, mode)
        _drop_replaced_cache(path)
        with os.fdopen(fd, "w+b") as fh:
            result = write(fh)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        old = _hold_replaced(path)
        try:
            os.replace(tmp, path)
        finally:
            _release_later(old)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return result


#: a replaced file at least this large is let go of on a worker thread (below, a thread costs
#: more than the unlink)
_RELEASE_LATER = 4 << 20


def _drop_replaced_cache(path: str) -> None:
    """Drop the clean page cache of the large regular file ``path`` is about to replace.

    ``pickle.dump`` to an existing path truncates the file in place, which frees its page cache
    at once, and its writes reuse that memory. A new file written beside it (temp file +
    rename) needs fresh pages, and after other large allocations the kernel compacted memory to
    give them: ``write`` of a 252 MB model took 0.55-0.63 s instead of 0.06 s after a skops
    dump of the same model, 0.19-0.22 s in all with this. ``POSIX_FADV_DONTNEED`` drops only
    clean cached pages: the file's content, and what a reader of it gets, do not change (a
    reader re-reads from disk). Linux/POSIX only; nothing elsewhere.
    """
    advise = getattr(os, "posix_fadvise", None)
    fd = _open_replaced(path) if advise is not None else None
    if fd is None:
        return
    try:
        advise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    except OSError:
        pass
    finally:
        os.close(fd)


def _open_replaced(path: str) -> int | None:
    """A read-only descriptor of ``path`` when it is a regular file of at least
    :data:`_RELEASE_LATER` bytes (never a FIFO, device or symlink), else None."""
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size < _RELEASE_LATER:
            return None
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        same = os.path.samestat(st, os.fstat(fd))
    except OSError:
        same = False
    if not same:  # replaced between lstat and open: not the file we saw
        os.close(fd)
        return None
    return fd


def _hold_replaced(path: str) -> int | None:
    """An open descriptor of the regular file ``os.replace`` is about to unlink, or None.

    The unlink frees the old file's page cache and first waits for its write-back when that is
    still in flight, as it is when the file was written shortly before (ext4 starts writing a
    file out when it is renamed over another, so the previous dump to this path started it):
    measured ~5 ms for 8 MB and ~40 ms for 100 MB, on the caller's clock, where truncating the
    file in place (``open(path, "wb")``) drops dirty pages at once.  Holding the old file open
    moves that work to its last close, which :func:`_release_later` makes on a worker thread.
    The rename itself, and what it guarantees (readers see the old file or the new one; ext4
    still writes the new file out first), is unchanged.  POSIX only: elsewhere an open file
    cannot be replaced.
    """
    if os.name != "posix":
        return None
    return _open_replaced(path)


def _release_later(fd: int | None) -> None:
    """Close ``fd`` on a new thread (the last reference of an unlinked file: see above)."""
    if fd is None:
        return
    try:
        _thread.start_new_thread(_close_quietly, (fd,))
    except RuntimeError:  # no thread available
        _close_quietly(fd)


def _close_quietly(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


def dumps(obj: Any, **kwargs: Any) -> bytes:
    """Like :func:`dump`, returning the file's bytes.

    Parameters
    ----------
    obj : object
    **kwargs
        As for :func:`dump`.

    Raises
    ------
    UntrustedTypesError, FormatError, TypeError
        As for :func:`dump`.
    """
    kwargs.setdefault("probe", None)
    kwargs.setdefault("trusted", None)
    kwargs.setdefault("policy", None)
    kwargs.setdefault("limits", None)
    kwargs.setdefault("compression", None)
    buf = io.BytesIO()
    _make_writer(obj, **kwargs)(buf)
    return buf.getvalue()
