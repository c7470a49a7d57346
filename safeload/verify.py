"""Verification of a model file: its bytes, its manifest, its producer, its behaviour.

:func:`verify` runs these checks on a safe-format file, each reported with a status
(``ok``, ``failed``, ``warning``, ``skipped``, ``error``), one line of detail and the figures
behind it:

``structure``
    The zip structure follows ``docs/FORMAT.md`` (the strict reader of
    :mod:`safeload.format.zipio`) and the manifest is a safeload manifest.
``hashes``
    Every member's SHA-256 against ``manifest.json`` and every member's CRC-32 against the zip
    directory (``manifest.json`` has no SHA-256 of its own: its CRC-32 is what detects a changed
    byte in it).  *Every* member that fails is named.
``manifest``
    ``manifest.json`` against the JSON Schema ``safeload/data/manifest.schema.json`` (draft
    2020-12; needs the ``jsonschema`` package, skipped without it).
``versions``
    The producer's scikit-learn, numpy, scipy, Python and safeload versions against the
    running ones; each difference is listed in one :class:`~safeload.errors.VersionMismatchWarning`
    (status ``warning``: outputs may differ, which the probe checks).
``load``
    The file loads through the policy (restricted, as :func:`safeload.load`).
``probe``
    The stored probe rows are run through every stored method and compared with the stored
    outputs (:func:`safeload.probe.run_probe`: labels exactly, floats within ``rtol``/``atol``).
``cv_score``
    With ``X`` and ``y``, and a ``cv_score`` in the manifest: the score is recomputed with
    :func:`sklearn.model_selection.cross_val_score` with the recorded ``scoring`` and ``cv``,
    and passes when within :data:`CV_ATOL` of the recorded value.

Pickle, joblib and skops files have no manifest: the byte checks are skipped (with that reason),
and the file passes when it loads through the policy.
"""

from __future__ import annotations

import ast
import json
import math
import os
import re
import warnings
import zlib
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from .api import make_policy
from .errors import FormatError, SafeloadError, UntrustedTypesError, VersionMismatchWarning
from .limits import DEFAULT_LIMITS, Limits
from .policy import Policy
from .source import Source, open_source

__all__ = [
    "verify",
    "VerificationReport",
    "Check",
    "STATUSES",
    "CV_ATOL",
    "VERSION_KEYS",
    "manifest_schema",
]

#: Statuses of a check; ``failed`` and ``error`` make a report not ``ok``.
STATUSES = ("ok", "failed", "warning", "skipped", "error")
#: Largest accepted ``|recomputed - recorded|`` of the cross-validation score.  Scores are
#: means of a few fold scores each computed in float64, so the same model on the same data and
#: folds reproduces them to about 1e-15; 1e-6 allows the last printed digit of a score rounded
#: to six decimals and nothing a real change of model, data or folds would stay under.
CV_ATOL = 1e-6
#: Producer entries compared with the running stack (``platform`` is shown, not compared).
VERSION_KEYS = ("scikit-learn", "numpy", "scipy", "python", "safeload")
_CHUNK = 8 << 20
_SPLITTERS = frozenset(
    {"KFold", "StratifiedKFold", "GroupKFold", "StratifiedGroupKFold", "RepeatedKFold",
     "RepeatedStratifiedKFold", "ShuffleSplit", "StratifiedShuffleSplit", "LeaveOneOut",
     "LeavePOut", "TimeSeriesSplit"}
)  # fmt: skip


# --------------------------------------------------------------------------- report
@dataclass
class Check:
    """One check of a :class:`VerificationReport`.

    Attributes
    ----------
    name : str
        ``structure``, ``hashes``, ``manifest``, ``versions``, ``load``, ``probe``,
        ``cv_score``.
    status : str
        One of :data:`STATUSES`.
    detail : str
        What was found, in one line (which member failed, by how much a score differs).
    figures : dict
        The numbers and names behind ``detail`` (JSON-ready).
    """

    name: str
    status: str
    detail: str
    figures: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-ready)."""
        return {
            "name": self.name,
            "status": self.status,
            "detail": self.detail,
            "figures": self.figures,
        }


@dataclass
class VerificationReport:
    """What :func:`verify` found.

    Attributes
    ----------
    path : str or None
        Display name of the file.
    format : str
        ``"safeload"``, ``"pickle"``, ``"joblib+zlib"``, ``"skops"`` ...
    checks : list of Check
        In the order they ran.
    """

    path: str | None
    format: str
    checks: list[Check] = field(default_factory=list)
    _parsed_manifest: dict | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """True when no check failed or ended in an error."""
        return all(c.status not in ("failed", "error") for c in self.checks)

    @property
    def failed(self) -> list[str]:
        """Names of the checks that failed."""
        return [c.name for c in self.checks if c.status == "failed"]

    @property
    def exit_code(self) -> int:
        """``0`` everything holds, ``1`` a check failed, ``2`` a check could not run."""
        if self.failed:
            return 1
        return 2 if any(c.status == "error" for c in self.checks) else 0

    def check(self, name: str) -> Check | None:
        """The check called ``name``, or None when it did not run."""
        return next((c for c in self.checks if c.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (the ``--format json`` document)."""
        return {
            "path": self.path,
            "format": self.format,
            "ok": self.ok,
            "failed": self.failed,
            "checks": [c.to_dict() for c in self.checks],
        }

    def to_json(self, indent: int | None = 2) -> str:
        """:meth:`to_dict` as JSON text."""
        return json.dumps(self.to_dict(), indent=indent, default=str)

    def to_text(self) -> str:
        """Plain text: a header line, then one line per check and the lines under it."""
        verdict = "VERIFIED" if self.ok else ("FAILED" if self.failed else "INCOMPLETE")
        lines = [f"{self.path or '<input>'}  {self.format}  {verdict}"]
        for c in self.checks:
            label = c.status.upper() if c.status in ("failed", "error") else c.status
            lines.append(f"  {label:<8} {c.name:<10} {c.detail}")
            for sub in c.figures.get("lines", []):
                lines.append(f"  {'':<8} {'':<10}   {sub}")
        return "\n".join(lines) + "\n"


def _add(report: VerificationReport, name: str, status: str, detail: str, **figures: Any) -> Check:
    check = Check(name, status, detail, figures)
    report.checks.append(check)
    return check


# --------------------------------------------------------------------------- byte checks
def _digest(data: Any, member: Any, blocked: bool) -> tuple[Any, int, str | None]:
    """``(digest, crc32, problem)`` of a member's uncompressed bytes, in chunks: the digest is
    the SHA-256 hex, or the list of block digests when ``blocked`` (:mod:`safeload.format.digest`)."""
    from .format.digest import MemberHash
    from .format.zipio import DEFLATED

    sha = MemberHash(blocked)
    crc = 0
    start, end = member.data_offset, member.data_offset + member.compressed_size
    inflate = zlib.decompressobj(-15) if member.method == DEFLATED else None
    produced = 0
    try:
        for pos in range(start, end, _CHUNK):
            chunk = bytes(data[pos : min(end, pos + _CHUNK)])
            if inflate is None:
                sha.update(chunk)
                crc = zlib.crc32(chunk, crc)
                continue
            while chunk:
                out = inflate.decompress(chunk, _CHUNK)
                chunk = inflate.unconsumed_tail
                produced += len(out)
                if produced > member.size:
                    return None, crc, "inflates past its declared size"
                sha.update(out)
                crc = zlib.crc32(out, crc)
        if inflate is not None and (produced != member.size or not inflate.eof):
            return None, crc, "deflate data does not match its declared size"
    except zlib.error as exc:
        return None, crc, f"corrupt deflate data ({exc})"
    return sha.result(), crc, None


def _directory_difference(data: Any, index: dict) -> str | None:
    """Where the central directory and end record differ from the canonical ones safeload
    writes for these members (the fields the reader does not use: version made by, file
    attributes), or None."""
    from .format.zipio import _EOCD, _EOCD_SIG, _central_entry

    members = list(index.values())
    entries = b"".join(_central_entry(m) for m in members)
    last = members[-1]
    cd_start = last.data_offset + last.compressed_size
    n = len(members)
    expected = entries + _EOCD.pack(_EOCD_SIG, 0, 0, n, n, len(entries), cd_start, 0)
    actual = bytes(data[cd_start:])
    if actual == expected:
        return None
    at = next(
        (i for i, (a, b) in enumerate(zip(actual, expected, strict=False)) if a != b),
        min(len(actual), len(expected)),
    )
    return (
        f"the zip central directory differs from the canonical one at offset {cd_start + at:,} "
        "(a field the reader ignores was changed)"
    )


def _short(digest: str | None) -> str:
    return (digest or "?")[:12] + "…"


def _hash_difference(found: Any, recorded: Any) -> str:
    """What differs between a member's digest and the manifest's: the whole SHA-256, or the
    first 1 MiB block whose SHA-256 differs (format version 2 hashes large members per block)."""
    if type(found) is not list or type(recorded) is not list:
        return f"SHA-256 {_short(found)}, the manifest records {_short(recorded)}"
    from .format.digest import BLOCK_SIZE

    for k, (a, b) in enumerate(zip(found, recorded, strict=False)):
        if a != b:  # k counts from 0: line k + 1 of `split -b 1M --filter=sha256sum`
            first, last = k * BLOCK_SIZE, (k + 1) * BLOCK_SIZE - 1
            return (
                f"block {k} (bytes {first:,}-{last:,}): SHA-256 {_short(a)}, the manifest "
                f"records {_short(b)}"
            )
    return f"{len(found)} blocks hashed, the manifest records {len(recorded)}"


def _byte_checks(report: VerificationReport, data: Any, limits: Limits) -> tuple[dict | None, bool]:  # noqa: E501
    """The ``structure`` and ``hashes`` checks: ``(manifest or None when unreadable, whether
    every member is intact)``."""
    from .format.archive import _MEMBER, GRAPH, MANIFEST, _member_bytes, _parse_json, check_manifest
    from .format.zipio import read_index

    try:
        index = read_index(data, max_members=limits.max_members, name_ok=_MEMBER.match)
    except SafeloadError as exc:
        _add(report, "structure", "failed", f"not a valid safe-format archive: {exc}")
        _add(report, "hashes", "skipped", "the zip structure could not be read")
        return None, False
    names = list(index)
    tail = _directory_difference(data, index)
    if tail is not None:
        _add(report, "structure", "failed", tail, members=len(names))
        _add(report, "hashes", "skipped", "the zip directory is not the one safeload writes")
        return None, False
    manifest: Any = None
    problem = None
    if MANIFEST not in index or GRAPH not in index:
        problem = "the archive must hold manifest.json and graph.json"
    else:
        try:
            raw = _member_bytes(data, index[MANIFEST], limits.max_json_bytes, "max_json_bytes")
            manifest = _parse_json(raw, MANIFEST, strict_keys=True)
            check_manifest(manifest, index)
        except SafeloadError as exc:
            problem = f"manifest.json: {exc}"
        else:
            try:  # rule J2 in full: the loader parses graph.json once, last repeat wins
                graph = _member_bytes(data, index[GRAPH], limits.max_json_bytes, "max_json_bytes")
                _parse_json(graph, GRAPH, strict_keys=True)
            except SafeloadError as exc:
                problem = f"graph.json: {exc}"
    failures: dict[str, str] = {}
    checked = 0
    members = manifest.get("members", {}) if problem is None else {}
    for name, member in index.items():
        sha, crc, trouble = _digest(data, member, "sha256_blocks" in members.get(name, {}))
        if trouble is not None:
            failures[name] = trouble
            continue
        if crc != member.crc:
            failures[name] = f"CRC-32 {crc:08x}, the zip directory records {member.crc:08x}"
        if name in members:
            checked += 1
            expected = members[name]
            recorded = expected.get("sha256", expected.get("sha256_blocks"))
            if sha != recorded:
                failures[name] = _hash_difference(sha, recorded)
            elif member.size != expected["size"]:
                failures[name] = f"{member.size:,} bytes, the manifest records {expected['size']:,}"
    if problem is not None:
        _add(report, "structure", "failed", problem, members=len(names))
    else:
        _add(report, "structure", "ok", f"zip structure and manifest valid, {len(names)} members",
             members=len(names))  # fmt: skip
    if failures:
        listed = sorted(failures, key=names.index)
        _add(report, "hashes", "failed",
             f"{len(listed)} member(s) changed since the file was written: {', '.join(listed)}",
             members=listed, reasons=failures,
             lines=[f"{name}: {failures[name]}" for name in listed])  # fmt: skip
    elif problem is not None:
        _add(report, "hashes", "skipped", "the manifest could not be read; CRC-32 of every "
             f"member ok ({len(names)})", members=[])  # fmt: skip
    else:
        _add(report, "hashes", "ok", f"SHA-256 of {checked} members and CRC-32 of all "
             f"{len(names)} match", members=[])  # fmt: skip
    report._parsed_manifest = manifest if isinstance(manifest, dict) else None
    return (manifest if problem is None and MANIFEST not in failures else None), (
        problem is None and not failures
    )


# --------------------------------------------------------------------------- manifest checks
def manifest_schema() -> dict:
    """The JSON Schema (draft 2020-12) of ``manifest.json``, format version 1."""
    text = resources.files("safeload").joinpath("data/manifest.schema.json").read_text("utf-8")
    return json.loads(text)


def _schema_check(report: VerificationReport, manifest: dict) -> None:
    try:
        import jsonschema  # type: ignore[import-untyped]
    except ImportError:
        _add(report, "manifest", "skipped", "the jsonschema package is not installed")
        return
    validator = jsonschema.Draft202012Validator(manifest_schema())
    errors = sorted(validator.iter_errors(manifest), key=lambda e: list(e.absolute_path))
    if not errors:
        _add(report, "manifest", "ok", "manifest.json follows manifest.schema.json (2020-12)")
        return
    lines = [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message[:200]}" for e in errors[:20]
    ]
    _add(report, "manifest", "failed",
         f"manifest.json breaks {len(errors)} rule(s) of manifest.schema.json", lines=lines)  # fmt: skip


def _version_check(report: VerificationReport, manifest: dict) -> None:
    from .dump import producer_versions

    producer = manifest.get("producer")
    if not isinstance(producer, dict):
        _add(report, "versions", "skipped", "the manifest records no producer versions")
        return
    here = producer_versions()
    diffs = {
        key: {"file": str(producer.get(key)), "runtime": here[key]}
        for key in VERSION_KEYS
        if producer.get(key) != here[key]
    }
    figures = {"producer": {k: producer.get(k) for k in (*VERSION_KEYS, "platform")},
               "runtime": {k: here[k] for k in (*VERSION_KEYS, "platform")}}  # fmt: skip
    if not diffs:
        _add(report, "versions", "ok", "written with the versions running here: " +
             ", ".join(f"{k} {here[k]}" for k in VERSION_KEYS), **figures)  # fmt: skip
        return
    lines = [f"{k}: file {d['file']}, runtime {d['runtime']}" for k, d in diffs.items()]
    message = (
        f"{report.path or 'the file'} was written with other versions than the ones running "
        "here (outputs may differ; the probe checks them): " + "; ".join(lines)
    )
    warnings.warn(VersionMismatchWarning(message), stacklevel=3)
    _add(report, "versions", "warning",
         f"{len(diffs)} version(s) differ: " + "; ".join(lines), differences=diffs,
         lines=lines, **figures)  # fmt: skip


# --------------------------------------------------------------------------- behaviour
def _probe_check(report: VerificationReport, model: Any, probe: Any, manifest: dict,
                 rtol: float | None, atol: float | None) -> None:  # fmt: skip
    from .probe import ATOL, RTOL, run_probe

    tolerance = (manifest.get("probe") or {}).get("tolerance") or {}
    r = rtol if rtol is not None else _number(tolerance.get("rtol"), RTOL)
    a = atol if atol is not None else _number(tolerance.get("atol"), ATOL)
    try:
        results = run_probe(model, probe, rtol=r, atol=a)
    except Exception as exc:  # noqa: BLE001 - a malformed probe value is a finding
        _add(report, "probe", "failed", f"the stored probe can not be run: {exc}")
        return
    bad = [x for x in results if not x.ok]
    lines = [f"{x.method}: {'ok' if x.ok else 'DIFFERS'} — {x.detail}" for x in results]
    figures = {"rtol": r, "atol": a, "methods": [x.to_dict() for x in results], "lines": lines}
    if bad:
        _add(report, "probe", "failed",
             f"{len(bad)} of {len(results)} method(s) differ from the stored outputs: "
             + ", ".join(x.method for x in bad), **figures)  # fmt: skip
    else:
        _add(report, "probe", "ok", f"{len(results)} method(s) reproduce the stored outputs "
             f"(floats within rtol={r:g}, atol={a:g}; labels exactly)", **figures)  # fmt: skip


def _number(value: Any, default: float) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return default


def splitter_from_record(cv: Any) -> Any:
    """The ``cv`` argument of ``cross_val_score`` from the manifest's record of it.

    An int (or a string of digits) is a number of folds; a string
    ``Name(key=literal, ...)`` naming a scikit-learn splitter of
    :mod:`sklearn.model_selection` (``KFold``, ``StratifiedKFold``, ``ShuffleSplit`` ...) is
    rebuilt with those literal arguments (parsed with :mod:`ast`, never evaluated); None is
    scikit-learn's default.

    Raises
    ------
    ValueError
        Any other record.
    """
    if cv is None or (isinstance(cv, int) and not isinstance(cv, bool)):
        return cv
    if not isinstance(cv, str) or len(cv) > 500:
        raise ValueError(f"cannot rebuild the cv splitter from {str(cv)[:80]!r}")
    text = cv.strip()
    if re.fullmatch(r"[0-9]{1,6}", text):
        return int(text)
    try:
        node = ast.parse(text, mode="eval").body
        if (
            not isinstance(node, ast.Call)
            or not isinstance(node.func, ast.Name)
            or node.func.id not in _SPLITTERS
        ):
            raise ValueError
        args = [ast.literal_eval(a) for a in node.args]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg}
        if len(kwargs) != len(node.keywords):
            raise ValueError
    except (SyntaxError, ValueError, TypeError):
        raise ValueError(
            f"cannot rebuild the cv splitter from {text[:80]!r}: record an int or the repr of "
            f"one of {', '.join(sorted(_SPLITTERS))}"
        ) from None
    import sklearn.model_selection as ms  # type: ignore[import-untyped]

    return getattr(ms, node.func.id)(*args, **kwargs)


def _cv_check(report: VerificationReport, model: Any, manifest: dict | None, X: Any,
              y: Any, cv_atol: float) -> None:  # fmt: skip
    record = (manifest or {}).get("cv_score")
    if X is None or y is None:
        why = "no X and y given" if record else "no X and y given, and no cv_score recorded"
        _add(report, "cv_score", "skipped", why)
        return
    if not isinstance(record, dict) or not isinstance(record.get("value"), (int, float)):
        _add(report, "cv_score", "skipped", "the manifest records no cv_score to recompute")
        return
    from sklearn.model_selection import cross_val_score  # type: ignore[import-untyped]

    scoring = record.get("scoring")
    try:
        cv = splitter_from_record(record.get("cv"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scores = cross_val_score(model, X, _column(y), scoring=scoring, cv=cv,
                                     error_score="raise")  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - wrong data shape, unknown scorer ...
        _add(report, "cv_score", "error",
             f"the score could not be recomputed: {type(exc).__name__}: {str(exc)[:300]}",
             recorded=record)  # fmt: skip
        return
    value = float(scores.mean())
    recorded = float(record["value"])
    diff = abs(value - recorded)
    figures = {"recorded": recorded, "recomputed": value, "abs_diff": diff,
               "tolerance": cv_atol, "scoring": scoring, "cv": record.get("cv"),
               "scores": [float(s) for s in scores]}  # fmt: skip
    what = f"{scoring or 'score'} {value:.6g} recomputed, {recorded:.6g} recorded"
    if diff <= cv_atol:
        _add(report, "cv_score", "ok", f"{what} (|diff| {diff:.3g} <= {cv_atol:g})", **figures)
    else:
        _add(report, "cv_score", "failed", f"{what}: differs by {diff:.6g} (tolerance "
             f"{cv_atol:g})", **figures)  # fmt: skip


def _column(y: Any) -> Any:
    shape = getattr(y, "shape", None)
    if shape is not None and len(shape) == 2 and shape[1] == 1:
        return y.iloc[:, 0] if hasattr(y, "iloc") else y[:, 0]
    return y


# --------------------------------------------------------------------------- entry point
def _display_path(file: Any) -> str | None:
    if isinstance(file, (str, os.PathLike)):
        return os.fsdecode(os.fspath(file))
    name = getattr(file, "name", None)
    return name if isinstance(name, str) else None


def _load_failure(report: VerificationReport, exc: Exception) -> None:
    if isinstance(exc, UntrustedTypesError):
        _add(report, "load", "failed", "the file names globals the policy does not trust: "
             + ", ".join(exc.types) + " (pass trusted=[...] if you checked them)",
             error=type(exc).__name__, types=exc.types)  # fmt: skip
    elif isinstance(exc, SafeloadError):
        _add(report, "load", "failed", f"{type(exc).__name__}: {str(exc)[:500]}",
             error=type(exc).__name__)  # fmt: skip
    else:
        _add(report, "load", "error", f"{type(exc).__name__}: {str(exc)[:500]}",
             error=type(exc).__name__)  # fmt: skip


def _verify_safe(report: VerificationReport, src: Source, policy: Policy, limits: Limits,
                 X: Any, y: Any, rtol: float | None, atol: float | None,
                 cv_atol: float) -> None:  # fmt: skip
    from .format.archive import load_parts, open_archive

    manifest, intact = _byte_checks(report, src.data, limits)
    if manifest is not None:
        _schema_check(report, manifest)
        _version_check(report, manifest)
    elif report._parsed_manifest is not None:
        _schema_check(report, report._parsed_manifest)  # say which fields break the schema
    if not intact:
        names = ("load", "probe", "cv_score") if manifest else ("manifest", "versions", "load",
                                                                "probe", "cv_score")  # fmt: skip
        for name in names:
            if report.check(name) is None:  # not the schema check run just above
                _add(report, name, "skipped", "the file failed its integrity checks")
        return
    assert manifest is not None
    try:
        keys = ("root", "probe") if "probe" in open_archive(src.data, limits).doc else ("root",)
        # hashed again as they are read: the load reads the file anew (pread, readinto), and a
        # writer since the hash check above would otherwise get an unhashed model probed
        parts = load_parts(src, policy=policy, limits=limits, verify=True, keys=keys)
    except Exception as exc:  # noqa: BLE001 - reported as a check
        _load_failure(report, exc)
        for name in ("probe", "cv_score"):
            _add(report, name, "skipped", "the file did not load")
        return
    model = parts["root"]
    _add(report, "load", "ok", f"loaded through the policy: {_type_name(model)}")
    if "probe" in parts:
        _probe_check(report, model, parts["probe"], manifest, rtol, atol)
    elif manifest.get("probe") is not None:
        _add(report, "probe", "failed", "the manifest describes a probe graph.json does not hold")
    else:
        _add(report, "probe", "skipped", "the file stores no probe (safeload.dump(..., probe=X))")
    _cv_check(report, model, manifest, X, y, cv_atol)


def _type_name(obj: Any) -> str:
    tp = type(obj)
    return f"{tp.__module__}.{tp.__qualname__}"


def _verify_other(report: VerificationReport, src: Source, policy: Policy, limits: Limits,
                  X: Any, y: Any) -> None:  # fmt: skip
    from .api import _finish
    from .readers import read_source, zip_reader_for

    kind = "a skops" if report.format == "skops" else f"a {report.format}"
    reason = f"{kind} file has no manifest or hashes: nothing to check its bytes against"
    _add(report, "hashes", "skipped", reason)
    _add(report, "versions", "skipped", f"{kind} file records no producer versions "
         "(loading warns when it migrates an older scikit-learn's state)")  # fmt: skip
    try:
        zip_reader = zip_reader_for(src)
        if zip_reader is not None:
            model = zip_reader(src, policy=policy, limits=limits, verify=None, mmap_mode=None)
        else:
            parsed = read_source(src, limits)
            report.format = parsed.format
            model = _finish(parsed, policy, limits)
    except Exception as exc:  # noqa: BLE001 - reported as a check
        _load_failure(report, exc)
        _add(report, "probe", "skipped", "the file did not load")
        return
    _add(report, "load", "ok", f"loaded through the policy: {_type_name(model)}")
    _add(report, "probe", "skipped", f"{kind} file stores no probe")
    _cv_check(report, model, None, X, y, CV_ATOL)


def _is_skops(src: Source) -> bool:
    from .readers.skops_reader import is_skops_archive

    try:
        return bool(is_skops_archive(src))
    except Exception:  # noqa: BLE001 - zipfile refuses a damaged directory: not a skops file
        return False


def verify(
    file: Any,
    *,
    X: Any = None,
    y: Any = None,
    trusted: Any = None,
    policy: Policy | None = None,
    limits: Limits | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    cv_atol: float = CV_ATOL,
) -> VerificationReport:
    """Check that a model file is the one that was written and still behaves as it did.

    Parameters
    ----------
    file : str, os.PathLike, bytes-like, binary file object, or URL
        As for :func:`safeload.load`.
    X : array-like, optional
        Input data, to recompute the recorded ``cv_score`` (with ``y``).
    y : array-like, optional
        Targets for ``X``; an ``(n, 1)`` column is flattened.
    trusted, policy
        As for :func:`safeload.load`; the file is loaded through them.
    limits : Limits, optional
        As for :func:`safeload.load`.
    rtol, atol : float, optional
        Tolerance of float64 probe outputs; default: the tolerance recorded in the manifest
        (``probe.tolerance``), else ``1e-7`` and ``1e-9`` (:mod:`safeload.probe`).
    cv_atol : float
        Largest accepted difference of the recomputed ``cv_score`` (default :data:`CV_ATOL`,
        ``1e-6``).

    Returns
    -------
    VerificationReport
        ``.ok``, ``.exit_code`` and one :class:`Check` per check (``structure``, ``hashes``,
        ``manifest``, ``versions``, ``load``, ``probe``, ``cv_score``); a changed byte in a
        safe-format file names every member whose hash failed.

    Raises
    ------
    SafeloadLoadIOError
        The file can not be opened or read (also an ``OSError``).
    PolicyError
        ``trusted=True``, wildcards, or a name that can never be trusted.
    TypeError
        ``file`` is not a path, bytes or a binary file object.

    Warns
    -----
    VersionMismatchWarning
        The manifest's producer versions differ from the running ones; the message lists
        each package with the file's and the runtime's version.

    See Also
    --------
    safeload.dump : writes the manifest, the hashes and the probe this checks.
    """
    from .readers import detect_format

    limits = limits or DEFAULT_LIMITS
    pol = make_policy(trusted, policy)
    with open_source(file, limits) as src:
        try:
            container = detect_format(src.head(16))
        except FormatError as exc:
            report = VerificationReport(_display_path(file), "unknown")
            _add(report, "structure", "failed", f"not a model file safeload reads: {exc}")
            return report
        if container == "zip" and not _is_skops(src):
            report = VerificationReport(_display_path(file), "safeload")
            _verify_safe(report, src, pol, limits, X, y, rtol, atol, cv_atol)
        else:
            fmt = "skops" if container == "zip" else container
            report = VerificationReport(_display_path(file), fmt)
            _verify_other(report, src, pol, limits, X, y)
    return report
