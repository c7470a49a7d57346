"""Collects what the container and stream scanners find into one :class:`ScanReport`."""

from __future__ import annotations

from ..errors import ForbiddenOperationError, FormatError, LimitExceededError, SafeloadError
from ..graph import ParseContext
from ..limits import Limits
from ..policy import Policy, Verdict, format_name
from ..readers.joblib_reader import JOBLIB_MODULES
from ..report import RULES, SEVERITIES, Finding, GlobalRecord, ScanReport, StreamRecord
from .graphcheck import GraphSummary

__all__ = ["Collector", "rule_for_error"]

_MAX_FINDINGS = 500
_FORBIDDEN_RULES = {
    "persistent-id": "persistent-id",
    "extension-code": "extension-code",
    "out-of-band-buffer": "out-of-band-buffer",
    "build-on-global": "build-on-global",
    "call-of-result": "call-of-result",
}


def rule_for_error(exc: BaseException) -> str:
    """The finding rule for an error a reader raised."""
    if isinstance(exc, LimitExceededError):
        return "limit-exceeded"
    if isinstance(exc, ForbiddenOperationError):
        return _FORBIDDEN_RULES.get(exc.operation, "forbidden-call")
    if isinstance(exc, FormatError):
        text = str(exc)
        if "trailing data" in text:
            return "trailing-data"
        if "truncated" in text or "EOFError" in text or "no STOP" in text:
            return "truncated-stream"
        if text.startswith(("unknown file format", "empty input")) or " is empty" in text:
            return "unknown-format"
        return "corrupt-stream"
    if isinstance(exc, SafeloadError):
        return "corrupt-stream"
    return "scan-error"


class Collector:
    """Accumulates findings, globals and streams while a file is scanned.

    Parameters
    ----------
    path : str or None
    policy : Policy
    limits : Limits
    """

    def __init__(self, path: str | None, policy: Policy, limits: Limits) -> None:
        self.path = path
        self.policy = policy
        self.limits = limits
        self.format = "unknown"
        self.protocol: int | None = None
        self.sklearn_version: str | None = None
        self.size: int | None = None
        self.findings: list[Finding] = []
        self.streams: list[StreamRecord] = []
        self._globals: dict[tuple[str, str], GlobalRecord] = {}
        #: removed globals, and untrusted ones whose verdict depends on them (settled in report())
        self._verdicts: dict[tuple[str, str], Verdict] = {}
        self._seen: set[tuple[str, str, str | None]] = set()
        #: members of an archive already read (budget of decompressed bytes)
        self.budget = limits.max_decompressed_bytes

    # -- findings ------------------------------------------------------------------------------
    def add(
        self,
        rule: str,
        message: str,
        *,
        offset: int | None = None,
        location: str | None = None,
        severity: str | None = None,
    ) -> None:
        """Record a finding (``rule`` is a key of :data:`~safeload.report.RULES`)."""
        key = (rule, message, location)
        if key in self._seen or len(self.findings) >= _MAX_FINDINGS:
            return
        self._seen.add(key)
        self.findings.append(
            Finding(rule, severity or RULES[rule].severity, message, offset, location)
        )

    def add_error(self, exc: BaseException, *, location: str | None = None) -> None:
        """Record an error a reader raised (the stream could not be read to its end)."""
        rule = rule_for_error(exc)
        message = str(exc) if isinstance(exc, SafeloadError) else f"{type(exc).__name__}: {exc}"
        self.add(rule, message[:2000], location=location)

    # -- globals -------------------------------------------------------------------------------
    def add_context(
        self,
        ctx: ParseContext,
        offsets: list[int | None],
        *,
        location: str | None = None,
        forbidden_offsets: dict[str, list[int]] | None = None,
    ) -> None:
        """Record every global ``ctx`` saw (with the policy's verdict) and its forbidden ops.

        The verdicts are those of :func:`safeload.audit.audit`, decided on the strings: joblib's
        array wrapper is trusted only where the reader consumed it.
        """
        order = ctx.global_order
        first: dict[tuple[str, str], int | None] = {}
        counts: dict[tuple[str, str], int] = {}
        for i, pair in enumerate(order):
            if pair not in first:
                first[pair] = offsets[i] if i < len(offsets) else None
            counts[pair] = counts.get(pair, 0) + 1
        for pair in ctx.globals:
            self._add_global(pair, first.get(pair), counts.get(pair, 1), location, ctx)
        for operation, detail in ctx.forbidden:
            rule = _FORBIDDEN_RULES.get(operation, "forbidden-call")
            offs = (forbidden_offsets or {}).get(operation) or []
            self.add(rule, detail, offset=offs[0] if offs else None, location=location)

    def add_type_name(self, pair: tuple[str, str], *, location: str | None) -> None:
        """Record a type name read from a JSON document (skops schema, safeload manifest)."""
        self._add_global(pair, None, 1, location, None)

    def _add_global(
        self,
        pair: tuple[str, str],
        offset: int | None,
        count: int,
        location: str | None,
        ctx: ParseContext | None,
    ) -> None:
        record = self._globals.get(pair)
        if record is not None:
            record.count += count
            return
        verdict = self.policy.verdict(*pair)
        consumed = ctx is not None and pair in ctx.consumed
        name = format_name(pair)
        reason = verdict.reason
        if verdict.canonical != pair and not verdict.trusted:
            reason += f" (read as {format_name(verdict.canonical)})"
        state = verdict.state
        if consumed:
            # the reader replaced it (a joblib array wrapper): the audit skips it, never built
            state = "trusted"
            if not verdict.trusted:
                reason = "joblib array wrapper: the reader replaces it and never builds it"
        elif pair[0] in JOBLIB_MODULES and ctx is not None:
            state = "untrusted"
            reason = (
                "joblib's array wrapper outside a joblib array position (the reader replaces "
                "wrappers; it is never built)"
            )
        if state == "removed" or (
            state == "untrusted"
            and verdict.canonical in self.policy.inside_removed
            and not (pair[0] in JOBLIB_MODULES and ctx is not None)
        ):
            # a name stored only inside a removed class is a legacy name when the file names
            # that class too: its finding waits for report()
            self._verdicts[pair] = verdict
        record = GlobalRecord(
            name=name,
            verdict=state,
            reason=reason,
            offset=offset,
            location=location,
            count=count,
            canonical=format_name(verdict.canonical),
            consumed=consumed,
        )
        self._globals[pair] = record
        if state == "dangerous":
            self.add("dangerous-global", f"{name}: {reason}", offset=offset, location=location)
        elif state == "untrusted" and pair not in self._verdicts:
            self.add("untrusted-global", f"{name}: {reason}", offset=offset, location=location)
        elif state == "removed":
            self.add("removed-global", f"{name}: {reason}", offset=offset, location=location)

    def first_offset(self, pair: tuple[str, str] | None) -> tuple[int | None, str | None]:
        record = self._globals.get(pair) if pair is not None else None
        if record is None:
            return None, None
        return record.offset, record.location

    # -- graph ---------------------------------------------------------------------------------
    def add_graph(self, summary: GraphSummary, *, location: str | None = None) -> None:
        """Record the issues :func:`~safeload.scanners.graphcheck.check_graph` found."""
        for issue in summary.issues:
            offset, loc = self.first_offset(issue.pair)
            self.add(issue.rule, issue.message, offset=offset, location=loc or location)
        if summary.sklearn_version and self.sklearn_version is None:
            self.sklearn_version = summary.sklearn_version

    def add_stream(self, location: str | None, fmt: str, protocol: int | None) -> None:
        self.streams.append(StreamRecord(location, fmt, protocol))
        if self.protocol is None and protocol is not None:
            self.protocol = protocol

    # -- result --------------------------------------------------------------------------------
    def _settle_untrusted(self) -> None:
        """Add the findings of the untrusted names whose verdict depends on the whole file."""
        legacy = self.policy.legacy_names(self._verdicts.values())
        for pair, verdict in self._verdicts.items():
            record = self._globals[pair]
            if verdict.removed:
                continue
            rule = "untrusted-global"
            if pair in legacy:
                rule, record.verdict = "removed-global", "removed"
                record.reason = legacy[pair] + record.reason[len(verdict.reason) :]
            self.add(
                rule,
                f"{record.name}: {record.reason}",
                offset=record.offset,
                location=record.location,
            )
        self._verdicts.clear()

    def report(self) -> ScanReport:
        self._settle_untrusted()
        rank = {s: i for i, s in enumerate(SEVERITIES)}
        findings = sorted(
            self.findings,
            key=lambda f: (rank[f.severity], RULES[f.rule].id, f.location or "", f.offset or 0),
        )
        return ScanReport(
            path=self.path,
            safe=not any(f.blocking for f in findings),
            format=self.format,
            protocol=self.protocol,
            sklearn_version=self.sklearn_version,
            globals=sorted(self._globals.values(), key=lambda g: g.name),
            findings=findings,
            streams=self.streams,
            size=self.size,
        )


def describe_location(parent: str | None, child: str) -> str:
    """Join stream locations: ``member a.pkl`` + ``gzip stream`` → ``member a.pkl / gzip``."""
    return child if parent is None else f"{parent} / {child}"
