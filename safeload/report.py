"""What :func:`safeload.scan` returns: a :class:`ScanReport`, with JSON and SARIF renderings.

A report lists every global the file names (with the policy's verdict, the reason and the byte
offset of the opcode) and every *finding*: a problem with a stable rule id from :data:`RULES`, a
severity, a message and, when known, an offset.  A file is ``safe`` when no finding has a
blocking severity (``critical``, ``high`` or ``medium``); ``low`` and ``info`` findings are
reported but do not make a file unsafe.

Rule ids never change meaning and are never reused; new rules get new ids.  SARIF output follows
the OASIS SARIF 2.1.0 specification (one ``run`` per log, one ``result`` per finding, the rule
table in ``runs[0].tool.driver.rules``).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "Rule",
    "RULES",
    "SEVERITIES",
    "BLOCKING",
    "Finding",
    "GlobalRecord",
    "StreamRecord",
    "ScanReport",
    "sarif_log",
    "SARIF_SCHEMA",
    "SARIF_VERSION",
]

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
DOCS_URI = "https://github.com/safeload/safeload/blob/main/docs/SCANNING.md"

#: Severities from most to least serious.
SEVERITIES = ("critical", "high", "medium", "low", "info")
#: Severities that make a file unsafe.
BLOCKING = frozenset({"critical", "high", "medium"})
_SARIF_LEVEL = {
    "critical": "error",
    "high": "error",
    "medium": "warning",
    "low": "note",
    "info": "note",
}


@dataclass(frozen=True)
class Rule:
    """One kind of finding.

    Attributes
    ----------
    id : str
        Stable identifier (``SL001`` ...), the SARIF ``ruleId``.
    name : str
        Stable slug (``untrusted-global`` ...).
    severity : str
        Default severity (one of :data:`SEVERITIES`).
    summary : str
        One sentence for the rule table.
    """

    id: str
    name: str
    severity: str
    summary: str


RULES: dict[str, Rule] = {
    r.name: r
    for r in [
        Rule("SL001", "untrusted-global", "high",
             "The file names a global (module.qualname) that the policy does not trust; "
             "loading it would import and possibly call it."),
        Rule("SL002", "dangerous-global", "critical",
             "The file names a callable that loads, imports, evaluates or writes (os.system, "
             "builtins.eval, pickle.loads ...); it can never be trusted."),
        Rule("SL003", "build-on-global", "critical",
             "BUILD sets state on a class, function or module itself (monkey-patching it for "
             "the whole process)."),
        Rule("SL004", "persistent-id", "high",
             "A persistent id hands control to application code (persistent_load)."),
        Rule("SL005", "extension-code", "high",
             "An EXT opcode fetches a global from the copyreg extension registry without "
             "naming it."),
        Rule("SL006", "out-of-band-buffer", "high",
             "NEXT_BUFFER/READONLY_BUFFER refer to data that is not part of the file."),
        Rule("SL007", "call-of-result", "high",
             "The file calls the result of another call (getattr(module, name)(...)); only "
             "named, trusted callables may be called."),
        Rule("SL008", "forbidden-call", "high",
             "A trusted callable is called in a way the loader refuses: a value-only function "
             "called at load time, or a reconstructor given an untrusted or malformed argument."),
        Rule("SL009", "limit-exceeded", "high",
             "A resource limit (size, depth, items, memo, opcodes, array bytes ...) is "
             "exceeded."),
        Rule("SL010", "truncated-stream", "high",
             "The stream ends before its end marker; everything before the cut would still "
             "run under pickle.load."),
        Rule("SL011", "trailing-data", "high",
             "Bytes follow the pickle STOP opcode (a polyglot or several concatenated "
             "streams)."),
        Rule("SL012", "corrupt-stream", "high",
             "The stream can not be parsed to its end (invalid opcode, bad framing, corrupt "
             "compression ...)."),
        Rule("SL013", "unknown-format", "high",
             "The content matches no format safeload can inspect."),
        Rule("SL014", "foreign-format", "info",
             "A well-formed file of a format that holds no code but that safeload.load does "
             "not read (numeric .npy, .npz, archives without model streams)."),
        Rule("SL015", "npy-object-dtype", "high",
             "An .npy array with an object dtype (or a structured dtype with an object field): "
             "its body is a pickle that numpy.load(allow_pickle=True) runs."),
        Rule("SL016", "npy-malformed", "high",
             "An .npy header that is malformed or declares more data than is present."),
        Rule("SL017", "zip-encrypted", "high",
             "A zip member has the encryption flag set; its content can not be inspected."),
        Rule("SL018", "zip-bad-crc", "high",
             "A zip member's CRC-32 does not match its content."),
        Rule("SL019", "zip-duplicate-name", "high",
             "Two zip members have the same name; readers disagree on which one is used."),
        Rule("SL020", "zip-unsafe-path", "high",
             "A zip member name is absolute, contains '..' or a NUL byte (zip-slip)."),
        Rule("SL021", "zip-bomb", "high",
             "A zip member declares a decompressed size far beyond its compressed size or the "
             "limits, or members overlap."),
        Rule("SL022", "zip-corrupt", "high",
             "The zip archive or one of its members can not be read."),
        Rule("SL023", "json-malformed", "high",
             "A JSON document is invalid, too deep, too large or holds oversized numbers."),
        Rule("SL024", "skops-malformed", "high",
             "A skops schema node is malformed or uses an unknown loader."),
        Rule("SL025", "safeload-format", "info",
             "A safeload safe-format archive: structure, manifest, graph.json hash, array headers "
             "and type names were checked as load checks them; array data is hashed by load "
             "and verify."),
        Rule("SL026", "graph-cycle", "high",
             "An object is used inside its own constructor arguments."),
        Rule("SL027", "object-array-stream", "info",
             "The body of an .npy object array is a nested pickle stream; its globals are "
             "listed with the file's."),
        Rule("SL028", "removed-global", "low",
             "The file names a scikit-learn class that a later version removed; it was written "
             "by an older scikit-learn and needs a migration (safeload convert) before it can "
             "be loaded; nothing of that name is imported."),
        Rule("SL099", "scan-error", "high",
             "The scanner could not finish inspecting the file; it is treated as unsafe."),
    ]
}  # fmt: skip

_RULE_BY_ID = {r.id: r for r in RULES.values()}


@dataclass
class Finding:
    """One problem found in a file.

    Attributes
    ----------
    rule : str
        Rule name (a key of :data:`RULES`).
    severity : str
        One of :data:`SEVERITIES`.
    message : str
    offset : int or None
        Byte offset of the opcode or structure, in the stream named by ``location`` (the file
        itself when ``location`` is None).
    location : str or None
        The stream the offset refers to: ``None`` for the file, else e.g. ``"gzip stream"``,
        ``"member archive/data.pkl"``.
    """

    rule: str
    severity: str
    message: str
    offset: int | None = None
    location: str | None = None

    @property
    def rule_id(self) -> str:
        """The stable rule id (``SL001`` ...)."""
        return RULES[self.rule].id

    @property
    def blocking(self) -> bool:
        """True when this finding makes the file unsafe."""
        return self.severity in BLOCKING

    def to_dict(self) -> dict[str, Any]:
        return {"rule_id": self.rule_id, **asdict(self)}


@dataclass
class GlobalRecord:
    """One distinct global the file names, with the policy's verdict.

    Attributes
    ----------
    name : str
        ``module.qualname`` as the file spells it.
    verdict : {"trusted", "untrusted", "dangerous", "removed"}
        ``removed``: a scikit-learn class an older version wrote that no longer exists; it is
        not trusted (``load`` raises :class:`~safeload.errors.LegacyFormatError`), but it does
        not make the file unsafe.
    reason : str
        The policy group that trusts it, or why it is refused.
    offset : int or None
        Byte offset of the first opcode naming it (in ``location``'s stream); None when the
        container has no opcodes (skops and safeload JSON type names).
    location : str or None
        As for :class:`Finding`.
    count : int
        How many opcodes name it.
    canonical : str
        The name after the policy's exact aliases (old spellings → today's), equal to ``name``
        when no alias applies.
    consumed : bool
        True for joblib's array wrapper, which the reader replaces and never builds.
    """

    name: str
    verdict: str
    reason: str
    offset: int | None = None
    location: str | None = None
    count: int = 1
    canonical: str = ""
    consumed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StreamRecord:
    """One stream inspected inside the file (the file itself, a zip member, an object array).

    Attributes
    ----------
    location : str or None
        None for the file itself.
    format : str
    protocol : int or None
        Pickle protocol (from ``PROTO``; 0 for streams without one), None for non-pickle
        streams.
    """

    location: str | None
    format: str
    protocol: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ScanReport:
    """The result of :func:`safeload.scan` on one file.

    Attributes
    ----------
    path : str or None
        The path or URL scanned (None for bytes and file objects without a name).
    safe : bool
        True when no finding is blocking: every global is trusted or a scikit-learn class
        removed by a later version (a legacy file that needs a migration), the whole file was
        parsed and no construct or argument the loader refuses was found.
    format : str
        ``pickle``, ``joblib``, ``pickle+gzip``, ``joblib+zlib`` ..., ``zip``, ``zip:pytorch``,
        ``npz``, ``npy``, ``safeload``, ``skops`` or ``unknown``.
    protocol : int or None
        Pickle protocol of the main stream (0 when it has no ``PROTO`` opcode).
    sklearn_version : str or None
        ``_sklearn_version`` found in the state of the first estimator, when present.
    globals : list of GlobalRecord
        Sorted by name.
    findings : list of Finding
        Most severe first.
    streams : list of StreamRecord
    size : int or None
        Bytes of the file.
    """

    path: str | None
    safe: bool
    format: str
    protocol: int | None = None
    sklearn_version: str | None = None
    globals: list[GlobalRecord] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    streams: list[StreamRecord] = field(default_factory=list)
    size: int | None = None

    @property
    def untrusted_types(self) -> list[str]:
        """Sorted names of every global whose verdict is not ``trusted`` (``removed`` names
        included: ``load`` refuses them too)."""
        return sorted({g.name for g in self.globals if g.verdict != "trusted"})

    def __repr__(self) -> str:
        bad = sum(f.blocking for f in self.findings)
        return (
            f"ScanReport(path={self.path!r}, safe={self.safe}, format={self.format!r}, "
            f"protocol={self.protocol}, {len(self.globals)} globals, {bad} blocking of "
            f"{len(self.findings)} findings)"
        )

    # -- renderings ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``safe``, ``format``, ``globals``, ``findings`` ...)."""
        return {
            "path": self.path,
            "safe": self.safe,
            "format": self.format,
            "protocol": self.protocol,
            "sklearn_version": self.sklearn_version,
            "size": self.size,
            "untrusted_types": self.untrusted_types,
            "globals": [g.to_dict() for g in self.globals],
            "findings": [f.to_dict() for f in self.findings],
            "streams": [s.to_dict() for s in self.streams],
        }

    def to_json(self, indent: int | None = 2) -> str:
        """The report as a JSON document."""
        return json.dumps(self.to_dict(), indent=indent)

    def to_sarif(self) -> dict[str, Any]:
        """The report as a SARIF 2.1.0 log (a dict; ``json.dumps`` it to write a file)."""
        return sarif_log([self])


def _tool_version() -> str:
    try:
        from . import __version__

        return __version__
    except ImportError:  # pragma: no cover - partial import during packaging
        return "0"


def _sarif_rules() -> list[dict[str, Any]]:
    return [
        {
            "id": r.id,
            "name": r.name,
            "shortDescription": {"text": r.summary.split(";")[0].rstrip(".") + "."},
            "fullDescription": {"text": r.summary},
            "helpUri": f"{DOCS_URI}#{r.id.lower()}-{r.name}",
            "defaultConfiguration": {"level": _SARIF_LEVEL[r.severity]},
            "properties": {"severity": r.severity},
        }
        for r in sorted(RULES.values(), key=lambda r: r.id)
    ]


def _artifact_uri(path: str | None) -> str:
    if not path:
        return "<input>"
    if "://" in path:
        return path
    rel = path
    if os.path.isabs(path):
        try:
            rel = os.path.relpath(path)
        except ValueError:  # pragma: no cover - another drive on Windows
            rel = path
        if rel.startswith(".."):
            rel = path
    return rel.replace(os.sep, "/")


def _sarif_result(report: ScanReport, finding: Finding, rule_index: dict[str, int]) -> dict:
    physical: dict[str, Any] = {"artifactLocation": {"uri": _artifact_uri(report.path)}}
    if finding.offset is not None and finding.location is None:
        physical["region"] = {"byteOffset": finding.offset, "byteLength": 1}
    location: dict[str, Any] = {"physicalLocation": physical}
    if finding.location is not None:
        location["logicalLocations"] = [
            {"name": finding.location, "kind": "module"},
        ]
    result: dict[str, Any] = {
        "ruleId": finding.rule_id,
        "ruleIndex": rule_index[finding.rule_id],
        "level": _SARIF_LEVEL[finding.severity],
        "message": {"text": finding.message},
        "locations": [location],
        "properties": {"severity": finding.severity, "format": report.format},
    }
    if finding.offset is not None and finding.location is not None:
        result["properties"]["streamOffset"] = finding.offset
        result["properties"]["stream"] = finding.location
    return result


def sarif_log(reports: list[ScanReport]) -> dict[str, Any]:
    """One SARIF 2.1.0 log with a single run holding every finding of ``reports``.

    Parameters
    ----------
    reports : list of ScanReport

    Returns
    -------
    dict
        ``{"version": "2.1.0", "$schema": ..., "runs": [{"tool": {"driver": {"name":
        "safeload", "rules": [...]}}, "artifacts": [...], "results": [...]}]}``.
    """
    rules = _sarif_rules()
    rule_index = {r["id"]: i for i, r in enumerate(rules)}
    results = [_sarif_result(rep, f, rule_index) for rep in reports for f in rep.findings]
    artifacts = [
        {
            "location": {"uri": _artifact_uri(rep.path)},
            **({"length": rep.size} if rep.size is not None else {}),
            "properties": {"safe": rep.safe, "format": rep.format},
        }
        for rep in reports
    ]
    return {
        "version": SARIF_VERSION,
        "$schema": SARIF_SCHEMA,
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "safeload",
                        "version": _tool_version(),
                        "informationUri": DOCS_URI,
                        "rules": rules,
                    }
                },
                "artifacts": artifacts,
                "results": results,
                "columnKind": "unicodeCodePoints",
            }
        ],
    }


def rule_by_id(rule_id: str) -> Rule:
    """The :class:`Rule` with id ``rule_id`` (``KeyError`` if unknown)."""
    return _RULE_BY_ID[rule_id]
