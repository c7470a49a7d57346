"""Shared machinery of the attack tests: canary checks, the refusal assertion, bounded runs.

Every test in this folder runs with ``SAFELOAD_CANARY_DIR`` pointing at an empty temporary
directory and with an empty temporary directory as the current directory (the convention of
``shared/corpus/malicious``: payloads create a marker in one of the two).  After the test both
must still be empty, whatever the test itself asserted.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import resource
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import pytest

import safeload
from safeload import (
    ForbiddenOperationError,
    FormatError,
    LimitExceededError,
    SafeloadError,
    UntrustedTypesError,
    ValidationError,
)

CANARY_ENV = "SAFELOAD_CANARY_DIR"
GiB = 1 << 30
MiB = 1 << 20


# --------------------------------------------------------------------------- canaries
@dataclasses.dataclass
class Canary:
    """Where payloads would leave their marks during one test."""

    dir: Path
    cwd: Path

    def fired(self) -> list[str]:
        return sorted(str(p) for d in (self.dir, self.cwd) for p in d.iterdir())


@pytest.fixture(autouse=True)
def canary(tmp_path_factory, monkeypatch) -> Canary:
    """Set ``SAFELOAD_CANARY_DIR`` and the cwd to fresh empty dirs; assert both stay empty."""
    cdir = tmp_path_factory.mktemp("canary")
    cwd = tmp_path_factory.mktemp("cwd")
    monkeypatch.setenv(CANARY_ENV, str(cdir))
    monkeypatch.chdir(cwd)
    state = Canary(cdir, cwd)
    yield state
    assert state.fired() == [], f"a payload ran: {state.fired()}"


# --------------------------------------------------------------------------- expectations
@dataclasses.dataclass(frozen=True)
class Untrusted:
    """``UntrustedTypesError`` whose ``.types`` is exactly ``types`` (sorted by the error)."""

    types: tuple[str, ...]

    def __init__(self, *types: str) -> None:
        object.__setattr__(self, "types", tuple(sorted(types)))

    cls = UntrustedTypesError

    def check(self, exc: BaseException) -> None:
        assert exc.types == list(self.types), exc.types


@dataclasses.dataclass(frozen=True)
class Forbidden:
    """``ForbiddenOperationError`` with ``.operation == operation``."""

    operation: str
    match: str | None = None
    cls = ForbiddenOperationError

    def check(self, exc: BaseException) -> None:
        assert exc.operation == self.operation, str(exc)
        if self.match is not None:
            assert self.match in str(exc), str(exc)


@dataclasses.dataclass(frozen=True)
class Limit:
    """``LimitExceededError`` with ``.limit == limit``, raised by a check (not a MemoryError)."""

    limit: str
    cls = LimitExceededError

    def check(self, exc: BaseException) -> None:
        assert exc.limit == self.limit, str(exc)
        assert exc.actual > exc.allowed, str(exc)
        assert not isinstance(exc.__cause__, MemoryError), "refused only because memory ran out"


@dataclasses.dataclass(frozen=True)
class Format:
    """``FormatError`` (exactly that class), optionally with ``match`` in the message."""

    match: str | None = None
    cls = FormatError

    def check(self, exc: BaseException) -> None:
        assert type(exc) is FormatError, type(exc)
        if self.match is not None:
            assert self.match in str(exc), str(exc)


@dataclasses.dataclass(frozen=True)
class Invalid:
    """``ValidationError`` with ``match`` in the message."""

    match: str | None = None
    cls = ValidationError

    def check(self, exc: BaseException) -> None:
        if self.match is not None:
            assert self.match in str(exc), str(exc)


Expected = Untrusted | Forbidden | Limit | Format | Invalid


def _untrusted_modules(expected: Expected) -> list[str]:
    """Top-level modules named by the expected untrusted types that are not imported yet."""
    if not isinstance(expected, Untrusted):
        return []
    out = []
    for name in expected.types:
        module = name.split(".")[0]
        if module not in sys.modules:
            out.append(module)
    return out


def assert_refused(
    data: bytes | os.PathLike | str,
    expected: Expected,
    *,
    policy: safeload.Policy | None = None,
    limits: safeload.Limits | None = None,
    trusted: Any = None,
) -> BaseException:
    """Assert that safeload refuses ``data`` with exactly the ``expected`` error.

    This is the single place where the verdicts on an attack are checked: every attack test
    calls it, so a second entry point (a scanner that must report the same file as unsafe)
    is asserted for the whole suite by extending this function alone.  ``data`` is the bytes of
    a file (``safeload.loads``) or a path (``safeload.load``).

    Besides the exception class and its identifying attribute, it checks that no top-level
    module named only by an untrusted global got imported by the attempt.

    Returns
    -------
    BaseException
        The error, for extra assertions.
    """
    fresh = _untrusted_modules(expected)
    kwargs = {"policy": policy, "limits": limits, "trusted": trusted}
    with pytest.raises(SafeloadError) as info:
        if isinstance(data, (bytes, bytearray, memoryview)):
            safeload.loads(data, **kwargs)
        else:
            safeload.load(data, **kwargs)
    exc = info.value
    assert isinstance(exc, expected.cls), f"{type(exc).__name__}: {exc}"
    expected.check(exc)
    imported = [m for m in fresh if m in sys.modules]
    assert imported == [], f"refused, but imported {imported}"
    if isinstance(expected, (Untrusted, Limit)) or (
        isinstance(expected, Forbidden) and expected.operation in _STATIC_OPERATIONS
    ):
        # the second entry point: scan reports the same file unsafe, importing nothing
        report = safeload.scan(data, policy=policy, limits=limits, trusted=trusted)
        assert not report.safe, f"load refused ({type(exc).__name__}) but scan calls it safe"
        if isinstance(expected, Untrusted):
            assert set(expected.types) <= set(report.untrusted_types), report.untrusted_types
        imported = [m for m in fresh if m in sys.modules]
        assert imported == [], f"scan imported {imported}"
    return exc


#: ForbiddenOperationError operations the scanner decides statically (scan must agree); the
#: others need the real class or a built value (docs/SCANNING.md, "checks that need ...").
_STATIC_OPERATIONS = frozenset(
    {
        "build-on-global",
        "build-on-class",
        "persistent-id",
        "extension-code",
        "out-of-band-buffer",
        "call-of-result",
        "lazy-iterable",
    }
)


# --------------------------------------------------------------------------- bounded runs
@dataclasses.dataclass
class Outcome:
    """What a load did in a forked child."""

    error: str | None  # exception class name, None when it returned
    attrs: dict
    message: str
    seconds: float
    rss_start: int  # bytes
    rss_peak: int  # bytes
    memory_error_cause: bool
    timed_out: bool = False
    exit_code: int | None = None

    @property
    def rss_growth(self) -> int:
        return self.rss_peak - self.rss_start


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _vm_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _child(conn, data, policy, limits, as_limit) -> None:  # pragma: no cover - runs in the child
    rss_start = _rss_bytes()
    if as_limit:
        vm = _vm_bytes()
        resource.setrlimit(resource.RLIMIT_AS, (vm + as_limit, vm + as_limit))
    t0 = time.perf_counter()
    result: dict[str, Any] = {
        "error": None,
        "attrs": {},
        "message": "",
        "memory_error_cause": False,
    }
    try:
        if isinstance(data, (bytes, bytearray)):
            safeload.loads(data, policy=policy, limits=limits)
        else:
            safeload.load(data, policy=policy, limits=limits)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        result["error"] = type(exc).__name__
        result["message"] = str(exc)[:2000] + "\n" + traceback.format_exc()[-3000:]
        result["memory_error_cause"] = isinstance(exc.__cause__, MemoryError)
        for attr in ("limit", "operation", "types", "actual", "allowed"):
            if hasattr(exc, attr):
                result["attrs"][attr] = getattr(exc, attr)
    result["seconds"] = time.perf_counter() - t0
    result["rss_start"] = rss_start
    result["rss_peak"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    conn.send(json.dumps(result))
    conn.close()


def run_bounded(
    data: bytes | str | os.PathLike,
    *,
    policy: safeload.Policy | None = None,
    limits: safeload.Limits | None = None,
    timeout: float = 10.0,
    as_limit: int = 2 * GiB,
) -> Outcome:
    """Load ``data`` in a forked child with ``RLIMIT_AS`` and a wall-clock timeout.

    The child may map at most ``as_limit`` bytes beyond what it inherited, is killed after
    ``timeout`` seconds, and reports the exception, elapsed time and peak RSS.
    """
    if not isinstance(data, (bytes, bytearray)):
        data = os.fspath(data)
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, data, policy, limits, as_limit))
    t0 = time.perf_counter()
    proc.start()
    child.close()
    payload = None
    if parent.poll(timeout):
        try:
            payload = parent.recv()
        except EOFError:
            payload = None
    proc.join(max(0.5, timeout - (time.perf_counter() - t0)))
    if proc.is_alive():
        proc.kill()
        proc.join()
        return Outcome(None, {}, "timed out", timeout, 0, 0, False, True, proc.exitcode)
    if payload is None:
        return Outcome(None, {}, "child died", 0.0, 0, 0, False, False, proc.exitcode)
    res = json.loads(payload)
    return Outcome(
        res["error"],
        res["attrs"],
        res["message"],
        res["seconds"],
        res["rss_start"],
        res["rss_peak"],
        res["memory_error_cause"],
        False,
        proc.exitcode,
    )


def assert_refused_bounded(
    data: bytes | str | os.PathLike,
    expected: Expected,
    *,
    policy: safeload.Policy | None = None,
    limits: safeload.Limits | None = None,
    max_seconds: float = 10.0,
    max_rss_growth: int = 1 * GiB,
) -> Outcome:
    """Like :func:`assert_refused`, in a forked child bounded in time and memory.

    The child must refuse with the expected error class and attribute, in less than
    ``max_seconds``, with its peak RSS less than ``max_rss_growth`` above what it started with,
    and not because an allocation failed under the child's ``RLIMIT_AS``.
    """
    out = run_bounded(data, policy=policy, limits=limits, timeout=max_seconds)
    assert not out.timed_out, f"no answer within {max_seconds} s"
    assert out.error is not None, f"loaded (or child died, exit {out.exit_code}): {out.message}"
    assert out.error == expected.cls.__name__, out.message
    if isinstance(expected, Untrusted):
        assert out.attrs["types"] == list(expected.types), out.message
    elif isinstance(expected, Forbidden):
        assert out.attrs["operation"] == expected.operation, out.message
    elif isinstance(expected, Limit):
        assert out.attrs["limit"] == expected.limit, out.message
        assert out.attrs["actual"] > out.attrs["allowed"], out.message
    elif isinstance(expected, Format) and expected.match is not None:
        assert expected.match in out.message, out.message
    assert not out.memory_error_cause, f"refused only because memory ran out: {out.message}"
    assert out.seconds < max_seconds, out.seconds
    assert out.rss_growth < max_rss_growth, f"peak RSS grew by {out.rss_growth / MiB:.0f} MiB"
    return out
