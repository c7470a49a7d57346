"""Conversion of pickle, joblib and ``.skops`` files into safe-format files (``docs/CONVERT.md``).

:func:`convert` runs the stages of :func:`safeload.load` and then writes the result once it has
shown that it behaves like the source:

1. **Restricted parse** of the source (pickle protocols 0–5, joblib with any compressor,
   ``sklearn.externals.joblib``, ``.skops``): an inert graph, every global audited against the
   policy before anything is imported — the source is never given to ``pickle.load``.
2. **Migrations** (:mod:`safeload.migrate`): states written by older scikit-learn versions are
   rewritten into today's; a state today's classes can not reproduce is refused with the
   :class:`~safeload.errors.MigrationError` reason.
3. **Build and validation**: trusted objects built with their arguments checked, content that C
   code indexes validated.
4. **Verification** against a *reference*: outputs the source is known to give, from a probe
   file stored next to it (the sidecar ``<stem>.probe.json``, below) or supplied by the caller
   (``probe=`` with ``expected=``).  Labels (integer, boolean, string outputs) must be equal;
   floats must satisfy ``|actual - expected| <= atol + rtol * |expected|`` with
   :data:`REFERENCE_RTOL` and :data:`REFERENCE_ATOL` (the tolerance the shared legacy corpus
   states for outputs recorded by another numpy, BLAS and CPU).
5. **Write and reload**: :func:`safeload.dump` writes a temporary file next to ``dst`` (with
   the probe rows and the manifest key ``converted_from``); the temporary file is loaded back
   with :func:`safeload.load` and its outputs must be *identical* to the migrated estimator's
   on every input at hand; only then is it renamed onto ``dst`` (``os.replace``: atomic).  A
   refused file leaves nothing behind.

Sidecar probe files
-------------------
For a source ``DIR/<stem>.<anything>`` (``stem`` = the file name up to its first dot), the
reference is read from ``DIR/<stem>.probe.json`` when it exists: a JSON object whose ``calls``
is a list of ``{"method", "input", "input_kind", "output": {"kind", "shape", "values"}}`` — the
layout of the shared legacy corpus.  ``input_kind`` ``"text"`` is a list of documents,
``"mixed"``/``"cat"`` an object array, anything else a numeric array; ``output.kind`` ``"str"``
compares the outputs' string forms exactly, ``"num"`` compares numbers (exactly for labels).

Statuses
--------
``verified``
    A reference was compared and matched, and the written file reloads to identical outputs.
``converted-unverified``
    No reference: the written file reloads to an estimator whose outputs are identical to the
    migrated one's (on ``probe`` rows, else on rows drawn for ``n_features_in_``, else its
    whole fitted state is compared), but nothing shows the *source* gave those outputs.
``refused``
    Nothing written; :attr:`ConversionReport.reason` says why (:data:`REASONS`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import (
    ForbiddenOperationError,
    FormatError,
    IntegrityError,
    LegacyFormatError,
    LimitExceededError,
    MigrationError,
    SafeloadError,
    UntrustedTypesError,
    ValidationError,
)
from .jsonnest import check_json_nesting
from .limits import DEFAULT_LIMITS, Limits
from .policy import Policy

__all__ = [
    "convert",
    "convert_batch",
    "plan_batch",
    "load_probe_input",
    "sidecar_path",
    "ConversionReport",
    "STATUSES",
    "REASONS",
    "REFERENCE_RTOL",
    "REFERENCE_ATOL",
    "SAFE_SUFFIX",
]

#: Outcomes of a conversion.
STATUSES = ("verified", "converted-unverified", "refused")
#: Reasons of a refusal that are not a :class:`~safeload.errors.MigrationError` reason (those are
#: kept as the rule spells them, e.g. ``"adaboost-samme-r"``).
REASONS = {
    "untrusted-types": "the file names globals the policy does not trust (listed)",
    "removed-classes": "classes scikit-learn removed that no migration replaces",
    "forbidden-operation": "an operation a model file never needs (BUILD on a class ...)",
    "format": "corrupt, truncated or foreign file",
    "limit-exceeded": "a resource limit was exceeded",
    "invalid-content": "fitted content today's C code would index out of bounds",
    "already-safe-format": "the source already is a safe-format file",
    "unreadable": "the source could not be read",
    "probe-mismatch": "outputs differ from the reference",
    "probe-error": "a reference method is missing or raised",
    "bad-reference": "the sidecar probe file is not valid",
    "not-storable": "the object holds a value the safe format can not store",
    "reload-mismatch": "the written file does not reload to identical outputs",
    "write-failed": "the output could not be written",
    "error": "an unexpected error (see the detail)",
}
#: Relative tolerance of float outputs compared with a reference (corpus README).
REFERENCE_RTOL = 1e-5
#: Absolute tolerance of float outputs compared with a reference.
REFERENCE_ATOL = 1e-8
#: Suffix :func:`plan_batch` appends to a source's name for its output.
SAFE_SUFFIX = ".safeload"
#: Suffix of sidecar probe files.
SIDECAR_SUFFIX = ".probe.json"
_CHUNK = 1 << 20
_SYNTHETIC_ROWS = 8


class _Refused(Exception):
    def __init__(self, reason: str, detail: str, **extra: Any):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.extra = extra


# --------------------------------------------------------------------------- report
@dataclass
class MethodCheck:
    """One method's output compared with a reference or with the migrated estimator's.

    Attributes
    ----------
    method : str
    ok : bool
    kind : str
        ``"labels"`` (compared exactly), ``"float"`` (within ``rtol``/``atol``),
        ``"identical"`` (reload check: bit for bit), ``"error"`` (missing or raised),
        ``"shape"`` (another shape).
    max_abs_diff : float or None
        Largest ``|actual - expected|`` of float outputs (``inf`` for NaN against a number).
    mismatches : int
        Elements that differ or are outside the tolerance.
    size : int
    detail : str
    """

    method: str
    ok: bool
    kind: str
    max_abs_diff: float | None = None
    mismatches: int = 0
    size: int = 0
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-ready: non-finite differences as strings)."""
        diff = self.max_abs_diff
        return {
            "method": self.method,
            "ok": self.ok,
            "kind": self.kind,
            "max_abs_diff": diff if diff is None or math.isfinite(diff) else str(diff),
            "mismatches": self.mismatches,
            "size": self.size,
            "detail": self.detail,
        }


@dataclass
class ConversionReport:
    """What :func:`convert` did with one source file.

    Attributes
    ----------
    source : str
    output : str or None
        The safe-format file written; None when refused.
    status : str
        One of :data:`STATUSES`.
    reason : str or None
        When refused: a :class:`~safeload.errors.MigrationError` reason or a key of
        :data:`REASONS`.
    detail : str
        One line for people (the error, the methods that differ, the reference used).
    sha256 : str or None
        SHA-256 of the source file's bytes (lowercase hex).
    source_format : str or None
        ``"pickle"``, ``"joblib"``, ``"joblib+zlib"``, ``"pickle+gzip"``, ``"skops"`` ...
    source_sklearn_version : str or None
        ``_sklearn_version`` of the outermost estimator (None: not recorded, < 0.18).
    target_sklearn_version : str
        The installed scikit-learn version.
    estimator : str or None
        ``module.qualname`` of the converted object.
    migrations : list of dict
        ``{rule, cls, source_version, count, summary}`` per migration applied.
    reference : str or None
        ``"sidecar"``, ``"expected"`` or None (no reference: at best ``converted-unverified``).
    reference_path : str or None
        The sidecar probe file used.
    checks : list of MethodCheck
        Outputs of the migrated estimator against the reference, one per reference call.
    reload_checks : list of MethodCheck
        Outputs of the reloaded safe file against the migrated estimator.
    untrusted_types : list of str
        When refused for ``untrusted-types``: every foreign global, sorted.
    rtol, atol : float
        Tolerance of float outputs against the reference.
    seconds : float
        Wall time of the conversion of this file.
    notes : list of str
        Anything else worth knowing (e.g. why no probe rows were stored in the output).
    """

    source: str
    output: str | None = None
    status: str = "refused"
    reason: str | None = None
    detail: str = ""
    sha256: str | None = None
    source_format: str | None = None
    source_sklearn_version: str | None = None
    target_sklearn_version: str = ""
    estimator: str | None = None
    migrations: list[dict[str, Any]] = field(default_factory=list)
    reference: str | None = None
    reference_path: str | None = None
    checks: list[MethodCheck] = field(default_factory=list)
    reload_checks: list[MethodCheck] = field(default_factory=list)
    untrusted_types: list[str] = field(default_factory=list)
    rtol: float = REFERENCE_RTOL
    atol: float = REFERENCE_ATOL
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when a file was written (``verified`` or ``converted-unverified``)."""
        return self.status != "refused"

    @property
    def max_abs_diff(self) -> dict[str, float]:
        """Largest ``|actual - expected|`` per method against the reference (floats only)."""
        out: dict[str, float] = {}
        for check in self.checks:
            if check.max_abs_diff is not None:
                out[check.method] = max(out.get(check.method, 0.0), check.max_abs_diff)
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-ready)."""
        return {
            "source": self.source,
            "output": self.output,
            "status": self.status,
            "reason": self.reason,
            "detail": self.detail,
            "sha256": self.sha256,
            "source_format": self.source_format,
            "source_sklearn_version": self.source_sklearn_version,
            "target_sklearn_version": self.target_sklearn_version,
            "estimator": self.estimator,
            "migrations": self.migrations,
            "reference": self.reference,
            "reference_path": self.reference_path,
            "tolerance": {"rtol": self.rtol, "atol": self.atol},
            "max_abs_diff": {k: _finite(v) for k, v in self.max_abs_diff.items()},
            "checks": [c.to_dict() for c in self.checks],
            "reload_checks": [c.to_dict() for c in self.reload_checks],
            "untrusted_types": self.untrusted_types,
            "seconds": round(self.seconds, 4),
            "notes": self.notes,
        }

    def to_json(self) -> str:
        """The report as a JSON document."""
        return json.dumps(self.to_dict(), indent=2)

    def __str__(self) -> str:
        lines = [f"{self.source}: {self.status}" + (f" ({self.reason})" if self.reason else "")]
        if self.output:
            lines.append(f"  output: {self.output}")
        if self.sha256:
            lines.append(f"  source sha256: {self.sha256}")
        lines.append(
            f"  format: {self.source_format or '?'}; written by scikit-learn "
            f"{self.source_sklearn_version or 'unknown (<0.18)'}; "
            f"target {self.target_sklearn_version}"
        )
        if self.estimator:
            lines.append(f"  estimator: {self.estimator}")
        for m in self.migrations:
            times = f" x{m['count']}" if m.get("count", 1) > 1 else ""
            lines.append(f"  migration: {m['rule']} ({m['cls']}{times})")
        if self.reference:
            where = f" {self.reference_path}" if self.reference_path else ""
            lines.append(f"  reference: {self.reference}{where} "
                         f"(floats rtol={self.rtol:g}, atol={self.atol:g}; labels exactly)")  # fmt: skip
        for c in self.checks:
            lines.append(f"    {c.method}: {'ok' if c.ok else 'DIFFERS'} — {c.detail}")
        if self.reload_checks:
            same = sum(c.ok for c in self.reload_checks)
            lines.append(f"  reload: {same}/{len(self.reload_checks)} output(s) identical")
        if self.detail:
            lines.append(f"  {self.detail}")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)


def _finite(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)


# --------------------------------------------------------------------------- inputs
def load_probe_input(path: str | os.PathLike) -> np.ndarray:
    """Read probe rows from a ``.npy`` file (``allow_pickle=False``) or a numeric ``.csv``.

    A ``.csv`` whose first row does not parse as numbers is taken to have a header row.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    numpy.ndarray
        At least 2-d for ``.csv`` (one row per line).

    Raises
    ------
    ValueError
        Another extension, or a file that does not parse.
    OSError
        The file can not be read.
    """
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npy":
        return np.load(path, allow_pickle=False)
    if ext == ".csv":
        with open(path, encoding="utf-8") as fh:
            first = fh.readline().strip()
        try:
            [float(c) for c in first.split(",")] if first else []
            skip = 0
        except ValueError:
            skip = 1
        return np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2)
    raise ValueError(f"{path}: probe rows must be a .npy or .csv file")


def sidecar_path(src: str | os.PathLike) -> str:
    """The sidecar probe file of ``src``: ``<dir>/<stem>.probe.json``, ``stem`` being the file
    name up to its first dot (``RF.p2.pkl`` → ``RF.probe.json``).

    Parameters
    ----------
    src : str or os.PathLike

    Returns
    -------
    str
        The path, whether or not the file exists.
    """
    src = os.fspath(src)
    name = os.path.basename(src)
    stem = name.split(".", 1)[0] or name
    return os.path.join(os.path.dirname(src), stem + SIDECAR_SUFFIX)


@dataclass
class _Call:
    method: str
    X: Any
    expected: np.ndarray
    kind: str  # "num", "str" or "any"


def _sidecar_input(call: dict) -> Any:
    kind = call.get("input_kind")
    data = call["input"]
    if kind == "text":
        if not isinstance(data, list) or not all(isinstance(d, str) for d in data):
            raise ValueError("a 'text' input is a list of strings")
        return list(data)
    if kind in ("mixed", "cat"):
        return np.asarray(data, dtype=object)
    arr = np.asarray(data)
    if arr.dtype.kind not in "biufU":
        raise ValueError(f"a {kind!r} input must be an array of numbers or strings")
    return arr


def _read_sidecar(path: str) -> list[_Call]:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        check_json_nesting(text, path)  # it lies beside the model: as untrusted as the model
        doc = json.loads(text)
        calls = doc["calls"]
        if not isinstance(calls, list) or not calls:
            raise ValueError("'calls' must be a non-empty list")
        out = []
        for call in calls:
            method = call["method"]
            if not isinstance(method, str) or method.startswith("_"):
                raise ValueError(f"bad method name {str(method)[:40]!r}")
            spec = call["output"]
            kind = spec.get("kind", "num")
            values = np.asarray(spec["values"], dtype=str if kind == "str" else None)
            if values.dtype.kind not in ("U" if kind == "str" else "biuf"):
                raise ValueError(f"{method}: output values of kind {kind!r} are {values.dtype}")
            values = values.reshape(spec["shape"])
            out.append(_Call(method, _sidecar_input(call), values, kind))
        return out
    except (
        OSError,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        RecursionError,
        LimitExceededError,
    ) as exc:
        raise _Refused("bad-reference", f"{path}: {type(exc).__name__}: {exc}") from None


# --------------------------------------------------------------------------- comparing
def _as_array(out: Any) -> np.ndarray:
    if hasattr(out, "toarray"):
        out = out.toarray()
    if hasattr(out, "to_numpy"):
        out = out.to_numpy()
    return np.asarray(out)


def _run(estimator: Any, method: str, X: Any) -> np.ndarray:
    from .probe import _call

    return _as_array(_call(estimator, method, X))


def _against_reference(estimator: Any, call: _Call, rtol: float, atol: float) -> MethodCheck:
    """The migrated estimator's output on a reference call, compared with the recorded one."""
    from .probe import _has

    if not _has(estimator, call.method):
        return MethodCheck(call.method, False, "error", size=int(call.expected.size),
                           detail=f"the model has no {call.method}()")  # fmt: skip
    try:
        actual = _run(estimator, call.method, call.X)
    except Exception as exc:  # noqa: BLE001 - reported
        return MethodCheck(call.method, False, "error", size=int(call.expected.size),
                           detail=f"{call.method}() raised {type(exc).__name__}: "
                           f"{str(exc)[:200]}")  # fmt: skip
    expected = call.expected
    if call.kind == "str":
        actual = np.asarray([str(v) for v in actual.ravel().tolist()], dtype=str).reshape(
            actual.shape
        )
    if actual.shape != expected.shape:
        return MethodCheck(call.method, False, "shape", size=int(expected.size),
                           detail=f"output shape {actual.shape}, expected {expected.shape}")  # fmt: skip
    if actual.dtype.kind in "fc" and expected.dtype.kind in "biufc":
        return _float_check(call.method, actual, expected, rtol, atol)
    if actual.dtype.kind in "biu" and expected.dtype.kind in "biuf":
        check = _float_check(call.method, actual, expected, 0.0, 0.0)
        check.kind = "labels"
        check.max_abs_diff = None
        check.detail = (f"{check.mismatches} of {check.size} labels differ" if check.mismatches
                        else f"{check.size} labels equal")  # fmt: skip
        return check
    return _label_check(call.method, actual, expected)


def _float_check(method: str, actual: np.ndarray, expected: np.ndarray, rtol: float,
                 atol: float) -> MethodCheck:  # fmt: skip
    x = actual.astype(np.result_type(actual.dtype, np.float64), copy=False)
    s = expected.astype(x.dtype, copy=False)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(x - s)
        same = (np.isnan(x) & np.isnan(s)) | (x == s)
        diff = np.where(same, 0.0, diff)
        diff = np.where(np.isnan(diff), np.inf, diff)
        bad = diff > atol + rtol * np.abs(np.where(np.isfinite(s), s, 0))
    worst = float(diff.max()) if diff.size else 0.0
    count = int(bad.sum())
    detail = f"max |diff| {worst:.3g} over {s.size} values (rtol={rtol:g}, atol={atol:g})"
    if count:
        detail += f"; {count} outside"
    return MethodCheck(method, count == 0, "float", worst, count, int(s.size), detail)


def _label_check(method: str, actual: np.ndarray, expected: np.ndarray) -> MethodCheck:
    a = actual.ravel().tolist()
    e = expected.ravel().tolist()
    count = sum(x != y for x, y in zip(a, e, strict=True))
    detail = f"{count} of {len(e)} labels differ" if count else f"{len(e)} labels equal"
    return MethodCheck(method, count == 0, "labels", None, count, len(e), detail)


def _identical(method: str, a: np.ndarray, b: np.ndarray) -> MethodCheck:
    """Reloaded output ``b`` against migrated output ``a``: equal bit for bit (NaN == NaN)."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return MethodCheck(method, False, "shape", size=int(a.size),
                           detail=f"reloaded output {b.dtype}{b.shape}, migrated "
                           f"{a.dtype}{a.shape}")  # fmt: skip
    if a.dtype.kind in "fc":
        ok = bool(np.array_equal(a, b, equal_nan=True))
        with np.errstate(invalid="ignore", over="ignore"):
            diff = np.abs(a.astype(np.complex128 if a.dtype.kind == "c" else np.float64) - b)
        diff = np.where(np.isnan(diff), 0.0 if ok else np.inf, diff)
        worst = float(diff.max()) if diff.size else 0.0
        return MethodCheck(method, ok, "identical", worst, 0 if ok else int((diff != 0).sum()),
                           int(a.size), "identical" if ok else f"max |diff| {worst:.3g}")  # fmt: skip
    check = _label_check(method, a, b)
    check.kind = "identical"
    return check


# --------------------------------------------------------------------------- reading
def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _skops_version(src: Any, limits: Limits) -> str | None:
    from .readers.skops_reader import _read_schema

    try:
        node = _read_schema(src, limits)["content"]["content"]["_sklearn_version"]
        if isinstance(node["content"], str):
            check_json_nesting(node["content"], "a JsonNode")
        value = json.loads(node["content"])
    except (KeyError, TypeError, ValueError, SafeloadError):
        return None
    return value if isinstance(value, str) else None


def _read(report: ConversionReport, path: str, policy: Policy, limits: Limits) -> tuple[Any, Any]:
    """``(object, MigrationReport)`` of a pickle, joblib or skops source (sets the format)."""
    from .api import _finish
    from .format.archive import is_safe_archive
    from .migrate import MigrationReport, target_version
    from .readers import read_source, zip_reader_for
    from .source import open_source

    with open_source(path, limits) as src:
        if is_safe_archive(src.head(64)):
            raise _Refused("already-safe-format", "the source already is a safe-format file")
        zip_reader = zip_reader_for(src)
        if zip_reader is not None:
            report.source_format = "skops"
            version = report.source_sklearn_version = _skops_version(src, limits)
            obj = zip_reader(src, policy=policy, limits=limits, verify=None, mmap_mode=None)
            return obj, MigrationReport(version, target_version(), [])
        parsed = read_source(src, limits)
    report.source_format = parsed.format
    return _finish(parsed, policy, limits, migrate=True, report=True)


def _scanned_version(path: str, policy: Policy, limits: Limits) -> str | None:
    """The ``_sklearn_version`` :func:`safeload.scan` finds (for a source that did not build)."""
    from .scan import scan

    try:
        return scan(path, policy=policy, limits=limits).sklearn_version
    except Exception:  # noqa: BLE001 - best effort, for the report only
        return None


def _refusal_for(exc: BaseException) -> _Refused:
    """The reason and detail of a refusal raised by the load stages."""
    if isinstance(exc, _Refused):
        return exc
    text = f"{type(exc).__name__}: {str(exc)[:1000]}"
    if isinstance(exc, MigrationError):
        message = str(exc)
        prefix = f"{exc.reason}: "
        return _Refused(exc.reason, message[len(prefix) :] if message.startswith(prefix) else text)
    if isinstance(exc, UntrustedTypesError):
        detail = "the file names globals the policy does not trust: " + ", ".join(exc.types)
        return _Refused("untrusted-types", detail, untrusted_types=sorted(exc.types))
    for cls, reason in (
        (LegacyFormatError, "removed-classes"),
        (IntegrityError, "format"),
        (FormatError, "format"),
        (ForbiddenOperationError, "forbidden-operation"),
        (LimitExceededError, "limit-exceeded"),
        (ValidationError, "invalid-content"),
    ):
        if isinstance(exc, cls):
            return _Refused(reason, text)
    if isinstance(exc, OSError):
        return _Refused("unreadable", text)
    return _Refused("error", text)


# --------------------------------------------------------------------------- reload check
def _inputs_for(estimator: Any, calls: list[_Call], probe: Any, notes: list[str]) -> list[Any]:
    """Distinct inputs to compare the reloaded estimator on."""
    inputs: list[Any] = []
    if probe is not None:
        inputs.append(probe)
    seen: list[Any] = []
    for call in calls:
        if not any(call.X is x for x in seen):
            seen.append(call.X)
            inputs.append(call.X)
    if inputs:
        return inputs
    n = getattr(estimator, "n_features_in_", None)
    if isinstance(n, (int, np.integer)) and 0 < int(n) <= 100_000:
        rng = np.random.default_rng(0)
        notes.append(f"no probe rows: compared outputs on {_SYNTHETIC_ROWS} random rows "
                     f"(n_features_in_={int(n)})")  # fmt: skip
        return [rng.standard_normal((_SYNTHETIC_ROWS, int(n)))]
    return []


def _reload_checks(migrated: Any, reloaded: Any, inputs: list[Any],
                   calls: list[_Call]) -> list[MethodCheck]:  # fmt: skip
    from .probe import METHODS, _has

    checks: list[MethodCheck] = []
    for X in inputs:
        methods = list(METHODS) + [c.method for c in calls if c.X is X and c.method not in METHODS]
        for method in methods:
            if not _has(migrated, method):
                continue
            try:
                a = _run(migrated, method, X)
            except Exception:  # noqa: BLE001 - a method that does not apply to these rows
                continue
            try:
                b = _run(reloaded, method, X)
            except Exception as exc:  # noqa: BLE001 - reported
                checks.append(MethodCheck(method, False, "error", size=int(a.size),
                                          detail=f"reloaded {method}() raised "
                                          f"{type(exc).__name__}: {str(exc)[:200]}"))  # fmt: skip
                continue
            checks.append(_identical(method, a, b))
    return checks


def _state_check(migrated: Any, reloaded: Any) -> MethodCheck:
    """Without inputs: the two objects written as safe-format bytes must be identical."""
    import datetime as dt

    from .dump import dumps

    when = dt.datetime(2000, 1, 1)
    same = dumps(migrated, created=when) == dumps(reloaded, created=when)
    return MethodCheck("fitted-state", same, "identical",
                       detail="the reloaded object's state is identical" if same
                       else "the reloaded object's state differs")  # fmt: skip


# --------------------------------------------------------------------------- entry point
def convert(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    trusted: Any = None,
    probe: Any = None,
    expected: dict[str, Any] | None = None,
    metadata: dict[str, str] | None = None,
    policy: Policy | None = None,
    limits: Limits | None = None,
    rtol: float = REFERENCE_RTOL,
    atol: float = REFERENCE_ATOL,
    sidecar: bool = True,
) -> ConversionReport:
    """Convert a pickle, joblib or ``.skops`` model file into a verified safe-format file.

    The source is parsed by safeload's restricted reader (never by ``pickle.load``), migrated
    (:mod:`safeload.migrate`), built, validated, compared with a reference when one is known,
    written to a temporary file next to ``dst``, loaded back and compared with the migrated
    estimator, and only then renamed onto ``dst``.  Every failure is a ``refused`` report and
    leaves no file behind (an existing ``dst`` is left as it was).

    Parameters
    ----------
    src : str or os.PathLike
        The pickle (protocols 0–5, optionally gzip/bz2/xz-compressed), joblib (any
        compressor, ``sklearn.externals.joblib``, split files) or ``.skops`` file.
    dst : str or os.PathLike
        The safe-format file to write (its directory is created when missing).
    trusted : iterable of str or type, optional
        Extra exact ``"module.qualname"`` names to trust, as for :func:`safeload.load`.
    probe : array-like or str or os.PathLike, optional
        Input rows (an array, a list of documents, a DataFrame), or a path to a ``.npy`` or
        ``.csv`` file of rows (:func:`load_probe_input`).  They are stored in the output
        (``safeload.dump(..., probe=...)``) and the reloaded file must give identical outputs
        on them.  With ``expected``, they are the reference input.
    expected : dict of str to array-like, optional
        The outputs the source is known to give on ``probe``: method name → array.  Takes
        precedence over a sidecar probe file.
    metadata : dict of str to str, optional
        Written to the output's manifest (informational).
    policy : Policy, optional
        Base policy (default :meth:`Policy.default`).
    limits : Limits, optional
        Resource limits for reading the source and the output.
    rtol, atol : float
        Tolerance of float outputs against the reference (default :data:`REFERENCE_RTOL`,
        :data:`REFERENCE_ATOL`); labels are always compared exactly.
    sidecar : bool, default True
        Read the reference from ``<stem>.probe.json`` next to ``src`` (:func:`sidecar_path`)
        when it exists.

    Returns
    -------
    ConversionReport
        ``status`` ``verified``, ``converted-unverified`` or ``refused`` (with ``reason``), the
        source's SHA-256, format and scikit-learn version, the migrations applied, the
        comparison with the reference (max abs diff per method) and the reload check.

    Raises
    ------
    PolicyError
        ``trusted=True``, wildcards, or a name that can never be trusted.
    ValueError
        ``expected`` without ``probe``; ``src`` and ``dst`` the same file; a ``probe`` path
        that is not ``.npy``/``.csv``.
    TypeError
        ``src`` or ``dst`` not a path; ``metadata`` not a dict of str.

    Notes
    -----
    Warnings emitted while the source is built (scikit-learn's ``InconsistentVersionWarning``)
    are silenced: the report lists the versions and migrations instead.
    """
    from .api import make_policy
    from .migrate import target_version

    if not isinstance(src, (str, os.PathLike)) or not isinstance(dst, (str, os.PathLike)):
        raise TypeError("convert() takes the source and destination as paths")
    src, dst = os.fspath(src), os.fspath(dst)
    if expected is not None and probe is None:
        raise ValueError("expected= needs probe=, the input the expected outputs were given on")
    if metadata is not None and not (
        isinstance(metadata, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
    ):
        raise TypeError("metadata must map str to str")
    if os.path.exists(dst) and os.path.exists(src) and os.path.samefile(src, dst):
        raise ValueError("convert() would overwrite its source")
    if isinstance(probe, (str, os.PathLike)):
        probe = load_probe_input(probe)
    pol = make_policy(trusted, policy)
    limits = limits or DEFAULT_LIMITS
    report = ConversionReport(src, target_sklearn_version=target_version(), rtol=rtol, atol=atol)
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _convert(report, src, dst, pol, limits, probe, expected, metadata, sidecar)
    except Exception as exc:  # noqa: BLE001 - every failure of one file is a refusal
        refusal = _refusal_for(exc)
        report.status, report.reason, report.output = "refused", refusal.reason, None
        report.detail = refusal.detail
        report.untrusted_types = refusal.extra.get("untrusted_types", [])
        if report.source_sklearn_version is None and report.source_format not in (None, "skops"):
            report.source_sklearn_version = _scanned_version(src, pol, limits)
    report.seconds = time.perf_counter() - start
    return report


def _convert(report: ConversionReport, src: str, dst: str, policy: Policy, limits: Limits,
             probe: Any, expected: dict | None, metadata: dict | None,
             sidecar: bool) -> None:  # fmt: skip
    try:
        report.sha256 = _sha256(src)
    except OSError as exc:
        raise _Refused("unreadable", f"{type(exc).__name__}: {exc}") from None
    obj, migration = _read(report, src, policy, limits)
    report.source_sklearn_version = migration.source_version
    report.migrations = [
        {"rule": a.rule, "cls": a.cls, "source_version": a.source_version, "count": a.count,
         "summary": a.summary}
        for a in migration.applied
    ]  # fmt: skip
    tp = type(obj)
    report.estimator = f"{tp.__module__}.{tp.__qualname__}"

    # reference
    calls: list[_Call] = []
    if expected is not None:
        report.reference = "expected"
        calls = [_Call(str(m), probe, _as_array(v), "any") for m, v in expected.items()]
    elif sidecar and os.path.isfile(sidecar_path(src)):
        report.reference, report.reference_path = "sidecar", sidecar_path(src)
        calls = _read_sidecar(report.reference_path)
    for call in calls:
        report.checks.append(_against_reference(obj, call, report.rtol, report.atol))
    bad = [c for c in report.checks if not c.ok]
    if bad:
        reason = "probe-error" if all(c.kind == "error" for c in bad) else "probe-mismatch"
        raise _Refused(reason, f"{len(bad)} of {len(report.checks)} output(s) differ from the "
                       f"{report.reference}: " + "; ".join(f"{c.method}: {c.detail}"
                                                           for c in bad))  # fmt: skip
    status = "verified" if calls else "converted-unverified"

    # write to a temporary file, reload, compare, rename
    stored_probe = probe if probe is not None else next(
        (c.X for c in calls if c.method in _probe_methods()), None
    )  # fmt: skip
    converted_from = {
        "sha256": report.sha256,
        "source_file": os.path.basename(src),
        "source_format": report.source_format,
        "source_sklearn_version": report.source_sklearn_version,
        "migrations": [
            {k: m[k] for k in ("rule", "cls", "source_version", "count")} for m in report.migrations
        ],  # fmt: skip
        "safeload": _version(),
        "verification": {
            "status": status,
            "reference": report.reference,
            "rtol": report.rtol,
            "atol": report.atol,
            "max_abs_diff": {k: _finite(v) for k, v in report.max_abs_diff.items()},
        },
    }
    directory = os.path.dirname(os.path.abspath(dst))
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(dst)}.", suffix=".convert",
                                   dir=directory)  # fmt: skip
        os.close(fd)
    except OSError as exc:
        raise _Refused("write-failed", f"{type(exc).__name__}: {exc}") from None
    try:
        _write(report, obj, tmp, stored_probe, metadata, converted_from, policy, limits)
        from .api import load

        reloaded = load(tmp, policy=policy, limits=limits)
        inputs = _inputs_for(obj, calls, probe if probe is not None else stored_probe,
                             report.notes)  # fmt: skip
        report.reload_checks = _reload_checks(obj, reloaded, inputs, calls)
        if not report.reload_checks:
            report.reload_checks = [_state_check(obj, reloaded)]
        bad = [c for c in report.reload_checks if not c.ok]
        if bad:
            raise _Refused("reload-mismatch", "the written file reloads to other outputs: "
                           + "; ".join(f"{c.method}: {c.detail}" for c in bad))  # fmt: skip
        os.chmod(tmp, _output_mode(dst))  # mkstemp's 0600 would hide the model from servers
        os.replace(tmp, dst)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    report.status, report.output = status, dst
    report.detail = (
        f"outputs match the {report.reference} (floats rtol={report.rtol:g}, "
        f"atol={report.atol:g}; labels exactly)" if calls
        else "no reference outputs: the safe file reloads to identical outputs, but nothing "
        "shows the source gave them (add a probe file or expected=)"
    )  # fmt: skip


def _probe_methods() -> tuple[str, ...]:
    from .probe import METHODS

    return METHODS


def _version() -> str:
    from . import __version__

    return __version__


def _write(report: ConversionReport, obj: Any, tmp: str, stored_probe: Any,
           metadata: dict | None, converted_from: dict, policy: Policy,
           limits: Limits) -> None:  # fmt: skip
    from .dump import dump

    kwargs: dict[str, Any] = {"metadata": metadata, "policy": policy, "limits": limits,
              "_extra_manifest": {"converted_from": converted_from}}  # fmt: skip
    try:
        try:
            dump(obj, tmp, probe=stored_probe, **kwargs)
        except (ValueError, TypeError) as exc:
            if stored_probe is None:
                raise
            report.notes.append(f"no probe rows stored in the output: {str(exc)[:200]}")
            dump(obj, tmp, probe=None, **kwargs)
    except OSError as exc:
        raise _Refused("write-failed", f"{type(exc).__name__}: {exc}") from None
    except (FormatError, UntrustedTypesError) as exc:
        raise _Refused("not-storable", f"{type(exc).__name__}: {str(exc)[:500]}") from None


# --------------------------------------------------------------------------- batches
def plan_batch(
    sources: Iterable[str | os.PathLike], out: str | os.PathLike
) -> tuple[list[tuple[str, str]], list[tuple[str, str]], list[str]]:
    """Pair every source file with its output path under ``out``.

    A directory is walked recursively and mirrored into ``out``: ``SRC/a/b.pkl`` becomes
    ``OUT/a/b.pkl.safeload`` (:data:`SAFE_SUFFIX` appended, so ``m.pkl`` and ``m.joblib`` never
    collide).  Only model files are taken, judged by content
    (:func:`~safeload.scanners.sniff.is_model_file`), minus bare ``.npy`` arrays (the side
    files of old joblib dumps) and anything inside ``out``.  A file named explicitly becomes
    ``OUT/<name>.safeload``; with a single file source and an ``out`` that is not an existing
    directory, ``out`` is the output file itself.

    Parameters
    ----------
    sources : iterable of str or os.PathLike
    out : str or os.PathLike

    Returns
    -------
    pairs : list of (str, str)
        ``(source, output)``, in a stable (sorted) order.
    errors : list of (str, str)
        ``(path, message)``: sources that do not exist, outputs two sources would share.
    skipped : list of str
        Files of the directories that are not model files (or are bare ``.npy`` arrays).
    """
    from .readers import detect_format
    from .scanners.sniff import is_model_file

    paths: list[str] = [os.fspath(s) for s in sources]
    out = os.fspath(out)
    out_abs = os.path.abspath(out)
    pairs: list[tuple[str, str]] = []
    errors: list[tuple[str, str]] = []
    skipped: list[str] = []
    if len(paths) == 1 and os.path.isfile(paths[0]) and not os.path.isdir(out):
        return [(paths[0], out)], [], []

    def wanted(path: str) -> bool:
        if not is_model_file(path):
            return False
        try:
            with open(path, "rb") as fh:
                return detect_format(fh.read(16)) != "npy"
        except (OSError, FormatError):
            return False

    for source in paths:
        if os.path.isdir(source):
            for root, dirs, names in os.walk(source):
                dirs.sort()
                if os.path.abspath(root) == out_abs or os.path.abspath(root).startswith(
                    out_abs + os.sep
                ):
                    dirs[:] = []
                    continue
                for name in sorted(names):
                    full = os.path.join(root, name)
                    if os.path.islink(full) or not os.path.isfile(full):
                        continue
                    if not wanted(full):
                        skipped.append(full)
                        continue
                    rel = os.path.relpath(full, source)
                    pairs.append((full, os.path.join(out, rel + SAFE_SUFFIX)))
        elif os.path.isfile(source):
            pairs.append((source, os.path.join(out, os.path.basename(source) + SAFE_SUFFIX)))
        else:
            errors.append((source, "no such file or directory"))
    seen: dict[str, str] = {}
    unique = []
    for source, target in pairs:
        key = os.path.abspath(target)
        if key in seen:
            errors.append((source, f"its output {target} is also the output of {seen[key]}"))
            continue
        seen[key] = source
        unique.append((source, target))
    return unique, errors, skipped


def _convert_job(src: str, dst: str, probe: Any, trusted: Any, policy_file: str | None,
                 limits: Limits | None) -> ConversionReport:  # fmt: skip
    """One file of :func:`convert_batch` (the unit of work of a joblib worker)."""
    policy = None
    if policy_file is not None:
        from .cli import load_policy_pack

        policy = load_policy_pack(policy_file)
    return convert(src, dst, trusted=trusted, probe=probe, policy=policy, limits=limits)


def convert_batch(
    pairs: list[tuple[str, str]],
    *,
    jobs: int = 1,
    probe: Any = None,
    trusted: Any = None,
    policy_file: str | None = None,
    limits: Limits | None = None,
    progress: Callable[[ConversionReport], None] | None = None,
) -> list[ConversionReport]:
    """Convert many files, in parallel processes through joblib when ``jobs`` is not 1.

    One bad file never stops the batch: every failure is a ``refused`` report.

    Parameters
    ----------
    pairs : list of (str, str)
        ``(source, output)`` pairs, as :func:`plan_batch` returns them.
    jobs : int
        ``joblib.Parallel(n_jobs=jobs)`` (loky processes); 1 converts in this process.
    probe : array-like, optional
        Probe rows used for every file (as for :func:`convert`).
    trusted : list of str, optional
    policy_file : str, optional
        A JSON policy pack (:func:`safeload.cli.load_policy_pack`), read in each worker.
    limits : Limits, optional
    progress : callable, optional
        Called with each finished report, in order.

    Returns
    -------
    list of ConversionReport
        In the order of ``pairs``.
    """
    if isinstance(probe, (str, os.PathLike)):
        probe = load_probe_input(probe)
    trusted = list(trusted) if trusted else None
    results: list[ConversionReport] = []
    if jobs == 1:
        for src, dst in pairs:
            results.append(_convert_job(src, dst, probe, trusted, policy_file, limits))
            if progress is not None:
                progress(results[-1])
        return results
    from joblib import Parallel, delayed  # type: ignore[import-untyped]

    parallel = Parallel(n_jobs=jobs, return_as="generator")
    for result in parallel(
        delayed(_convert_job)(s, d, probe, trusted, policy_file, limits) for s, d in pairs
    ):
        results.append(result)
        if progress is not None:
            progress(result)
    return results


def _output_mode(path: str) -> int:
    """The mode ``open(path, "w")`` would give: the replaced file's, else 0666 & ~umask."""
    import stat

    from .dump import _umask

    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~_umask()
