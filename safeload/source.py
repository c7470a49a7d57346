"""Open what the caller passed (path, file object, bytes, fsspec URL) as a bounded byte source.

A local file is memory-mapped for the structural pre-scan (the scan skips large payloads
without touching their pages) and parsed from its file object, so peak memory stays that of
``pickle.load(f)``; everything else is read into memory once, bounded by
``Limits.max_file_bytes``.
"""

from __future__ import annotations

import contextlib
import io
import mmap
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

from .errors import FormatError, SafeloadError
from .limits import Limits

__all__ = ["Source", "open_source"]


@dataclass
class Source:
    """A readable input.

    Attributes
    ----------
    data : bytes or mmap.mmap
        The whole content (a read-only map for local files).
    file : binary file object or None
        A seekable file over the same bytes, when the input is a local file.
    path : str or None
        Local path, used to find joblib < 0.10 side files.
    name : str
        For messages.
    """

    data: Any
    file: IO[bytes] | None
    path: str | None
    name: str

    @property
    def size(self) -> int:
        return len(self.data)

    def head(self, n: int = 64) -> bytes:
        return bytes(self.data[:n])

    def stream(self) -> IO[bytes]:
        """A fresh binary stream positioned at the start."""
        if self.file is not None:
            self.file.seek(0)
            return self.file
        return io.BytesIO(self.data)


def _is_url(text: str) -> bool:
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme.isidentifier() and scheme not in ("file",)


@contextmanager
def open_source(file: Any, limits: Limits):
    """Yield a :class:`Source` for ``file`` and release it afterwards.

    Parameters
    ----------
    file : str, os.PathLike, bytes-like, binary file object, or fsspec URL
        URLs (``s3://``, ``memory://`` ...) need the optional ``fsspec`` dependency
        (``pip install safeload[remote]``).
    limits : Limits
        ``max_file_bytes`` bounds what is read.

    Raises
    ------
    FormatError
        Empty input, or an object that is neither a path nor a binary file.
    LimitExceededError
        Input larger than ``max_file_bytes``.
    SafeloadError
        Wrapping an ``OSError`` (missing file, permission) so callers see one error family.
    """
    if isinstance(file, (bytes, bytearray, memoryview)):
        data = bytes(file)
        limits.check("max_file_bytes", len(data), "input size")
        yield Source(data, None, None, "<bytes>")
        return
    if isinstance(file, (str, os.PathLike)):
        path = os.fspath(file)
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if _is_url(path):
            yield _open_url(path, limits)
            return
        try:
            fh = open(path, "rb")  # noqa: SIM115 - closed in finally
        except OSError as exc:
            raise SafeloadLoadIOError(f"cannot open {path!r}: {exc}") from exc
        try:
            size = os.fstat(fh.fileno()).st_size
            limits.check("max_file_bytes", size, f"size of {path}")
            if size == 0:
                raise FormatError(f"{path!r} is empty")
            mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            try:
                yield Source(mm, fh, path, path)
            finally:
                with contextlib.suppress(BufferError):  # a view still exported: GC unmaps it
                    mm.close()
        finally:
            fh.close()
        return
    read = getattr(file, "read", None)
    if read is None:
        raise FormatError(
            f"cannot read a {type(file).__name__}: pass a path, bytes or a binary file object"
        )
    data = read(limits.max_file_bytes + 1)
    if isinstance(data, str):
        raise FormatError("the file object is in text mode; open it with 'rb'")
    data = bytes(data)
    limits.check("max_file_bytes", len(data), "input size")
    name = getattr(file, "name", None)
    path = name if isinstance(name, str) else None
    yield Source(data, None, path, str(name) if name is not None else "<file object>")


def _open_url(url: str, limits: Limits) -> Source:
    try:
        import fsspec
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise SafeloadLoadIOError(
            f"{url!r} looks like a URL; install fsspec (pip install 'safeload[remote]')"
        ) from exc
    try:
        with fsspec.open(url, "rb") as fh:
            data = fh.read(limits.max_file_bytes + 1)
    except (OSError, ValueError) as exc:
        raise SafeloadLoadIOError(f"cannot read {url!r}: {exc}") from exc
    limits.check("max_file_bytes", len(data), f"size of {url}")
    return Source(bytes(data), None, None, url)


class SafeloadLoadIOError(SafeloadError, OSError):
    """The input could not be opened or read (missing file, permission, network)."""
