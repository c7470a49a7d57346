"""``safeload.scan`` on the shared corpora, and its agreement with the loader.

* malicious: every ``must_block`` file unsafe, every ``must_load`` file safe, ``foreign_format``
  files get a report;
* legacy: every file clean; the files that name classes scikit-learn removed (``excluded`` of
  kind ``removed`` in ``trusted.json``) get ``removed`` verdicts, non-blocking findings, and
  ``load`` raises ``LegacyFormatError`` for them;
* wild: each file gets the verdict its globals deserve;
* agreement: for every stream, the globals ``scan`` reports are exactly those the loader's parse
  records, and for files whose globals are all trusted, the canonical names are exactly those
  the loader resolves; no file the loader loads is reported unsafe.
"""

from __future__ import annotations

import json
import warnings
from importlib import resources
from pathlib import Path

import pytest

import safeload
from safeload.audit import audit
from safeload.policy import Policy, format_name, parse_name
from safeload.readers import read_source
from safeload.scanners import skim as skim_module
from safeload.scanners import stream as stream_module
from safeload.source import open_source

from .conftest import LEGACY, MALICIOUS, WILD, load_json

pytestmark = pytest.mark.filterwarnings("ignore")

MANIFEST = load_json(MALICIOUS / "manifest.json")["files"] if MALICIOUS.exists() else []
ENTRIES = [e for e in MANIFEST if (MALICIOUS / "files" / e["file"]).exists()]
LEGACY_FILES = (
    sorted(p for p in LEGACY.glob("*/*") if p.suffix in (".pkl", ".joblib"))
    if LEGACY.exists()
    else []
)
WILD_ENTRIES = load_json(WILD / "MANIFEST.json")["entries"] if WILD.exists() else []

_EXCLUDED = {
    parse_name(item["name"])
    for item in json.loads((resources.files("safeload") / "data" / "trusted.json").read_text())[
        "excluded"
    ]
}
_POLICY = Policy.default()


def _excluded(name: str) -> bool:
    """True for a name (as spelled in a file) the policy deliberately leaves out."""
    module, _, qualname = name.rpartition(".")
    return _POLICY.canonical((module, qualname)) in _EXCLUDED or (module, qualname) in _EXCLUDED


def _ids(kind: str) -> list:
    return [pytest.param(e, id=e["id"]) for e in ENTRIES if e["expected"] == kind]


def _blocking(report) -> list[str]:
    return [f"{f.rule}: {f.message}" for f in report.findings if f.blocking]


# --------------------------------------------------------------------------- malicious
@pytest.mark.skipif(not ENTRIES, reason="shared malicious corpus not available")
@pytest.mark.parametrize("entry", _ids("must_block"))
def test_must_block_files_are_unsafe(entry, canary_sandbox):
    report = safeload.scan(MALICIOUS / "files" / entry["file"])
    assert not report.safe
    assert _blocking(report)


@pytest.mark.skipif(not ENTRIES, reason="shared malicious corpus not available")
@pytest.mark.parametrize("entry", _ids("must_load"))
def test_must_load_files_are_safe(entry, canary_sandbox):
    path = MALICIOUS / "files" / entry["file"]
    report = safeload.scan(path)
    try:
        safeload.load(path)
    except safeload.UntrustedTypesError as exc:
        # a name the policy excludes (b18's bytearray in some policy versions): the loader
        # refuses the file for exactly the names the scan reports
        assert report.untrusted_types == exc.types
        pytest.xfail(f"policy vs corpus: the loader refuses {entry['id']} too ({exc.types})")
    assert report.safe, _blocking(report)


@pytest.mark.skipif(not ENTRIES, reason="shared malicious corpus not available")
@pytest.mark.parametrize("entry", _ids("foreign_format"))
def test_foreign_format_files_get_a_report(entry, canary_sandbox):
    report = safeload.scan(MALICIOUS / "files" / entry["file"])
    assert report.format in ("npy", "npz", "zip", "safeload")
    assert "foreign-format" in {f.rule for f in report.findings} or not report.safe


def test_the_malicious_corpus_is_complete_enough():
    if not ENTRIES:
        pytest.skip("shared malicious corpus not available")
    kinds = {e["expected"] for e in ENTRIES}
    assert kinds == {"must_block", "must_load", "foreign_format"}
    assert sum(e["expected"] == "must_block" for e in ENTRIES) >= 60


# --------------------------------------------------------------------------- legacy
def test_every_legacy_file_is_clean():
    """Files written by older scikit-learn versions are never unsafe: a class a later version
    removed is a ``removed`` verdict (a low finding: the file needs a migration)."""
    if not LEGACY_FILES:
        pytest.skip("shared legacy corpus not available")
    with_removed = 0
    versions_checked = 0
    for path in LEGACY_FILES:
        report = safeload.scan(path)
        assert report.format.startswith(("pickle", "joblib")), (path, report.format)
        assert report.safe is True, (path, _blocking(report))
        removed = [g for g in report.globals if g.verdict == "removed"]
        assert {g.verdict for g in report.globals} <= {"trusted", "removed"}, path
        assert {f.rule for f in report.findings} <= {"removed-global"}, path
        assert sorted(g.name for g in removed) == report.untrusted_types, path
        for g in removed:
            assert _excluded(g.name), (path, g.name)
            assert "written by an older version" in g.reason, (path, g)
        with_removed += bool(removed)
        env = load_json(path.parent / "ENV.json")
        if report.sklearn_version is not None:
            assert report.sklearn_version == env["sklearn"], path
            versions_checked += 1
    assert with_removed == 80
    assert versions_checked > len(LEGACY_FILES) // 2


# --------------------------------------------------------------------------- wild
_FIRST_PARTY = ("sklearn", "numpy", "scipy", "builtins", "__builtin__", "copyreg", "copy_reg",
                "collections", "_codecs", "joblib", "functools")  # fmt: skip


def _wild_path(entry: dict) -> Path:
    return WILD / entry["file"]


@pytest.mark.skipif(not WILD_ENTRIES, reason="shared wild corpus not available")
@pytest.mark.parametrize("entry", WILD_ENTRIES, ids=lambda e: e["file"].split("/")[0][:40])
def test_wild_files_get_the_verdict_their_globals_deserve(entry):
    report = safeload.scan(_wild_path(entry))
    flags = " ".join(entry.get("flags") or [])
    if "PARSE_ERROR" in flags or "DECOMPRESS_ERROR" in flags:
        assert not report.safe
        rules = {f.rule for f in report.findings if f.blocking}
        assert rules & {"corrupt-stream", "truncated-stream", "unknown-format"}, rules
        return
    # custom __main__ classes, the authors' modules, xgboost, lightgbm, pandas, nltk ... (the
    # policy's exact aliases map a few odd spellings, such as 1.6.1's bogus ``_loss``, first)
    third_party = {
        name
        for name in entry["globals"]
        if not format_name(_POLICY.canonical(_split(name))).startswith(_FIRST_PARTY)
    }
    assert third_party <= set(report.untrusted_types)
    for name in report.untrusted_types:
        assert name in third_party or _excluded(name), name
    refused = {g.name for g in report.globals if g.verdict in ("untrusted", "dangerous")}
    assert report.safe == (not refused), _blocking(report)
    for g in report.globals:
        if g.verdict == "removed":
            assert _excluded(g.name), g.name
    if entry.get("sklearn_version"):
        assert report.sklearn_version == entry["sklearn_version"]
    if entry.get("protocol") is not None and report.streams[0].location is None:
        assert report.protocol == entry["protocol"]


def test_wild_corpus_covers_the_expected_kinds():
    if not WILD_ENTRIES:
        pytest.skip("shared wild corpus not available")
    reports = {e["file"]: safeload.scan(_wild_path(e)) for e in WILD_ENTRIES}
    untrusted = {n for r in reports.values() for n in r.untrusted_types}
    assert any(n.startswith("__main__.") for n in untrusted)
    assert any(n.startswith("xgboost.") for n in untrusted)
    assert any(n.startswith("pandas.") for n in untrusted)
    assert sum(r.safe for r in reports.values()) >= 10
    formats = {r.format for r in reports.values()}
    assert {"pickle", "joblib", "joblib+zlib", "pickle+gzip", "pickle+bz2"} <= formats


# --------------------------------------------------------------------------- agreement
def _corpus_files() -> list[Path]:
    files = list(LEGACY_FILES)
    if WILD.exists():
        files += sorted(p for p in WILD.rglob("*") if p.is_file() and p.suffix != ".json")
    if MALICIOUS.exists():
        files += sorted((MALICIOUS / "files").iterdir())
    return files


def _loader_parse(path: Path):
    try:
        with open_source(path, safeload.DEFAULT_LIMITS) as src:
            return read_source(src, safeload.DEFAULT_LIMITS)
    except safeload.SafeloadError:
        return None


def test_scan_reports_exactly_the_globals_the_loader_sees(canary_sandbox):
    files = _corpus_files()
    if not files:
        pytest.skip("shared corpora not available")
    compared = resolved_compared = loaded = 0
    for path in files:
        report = safeload.scan(path)
        parsed = _loader_parse(path)
        if parsed is None:
            continue  # refused by the loader's reader: scan must say unsafe or foreign
        ctx = parsed.context
        complete = parsed.root is not None or parsed.info is None or parsed.info.joblib
        if complete:
            assert {g.name for g in report.globals} == {format_name(p) for p in ctx.globals}, path
            compared += 1
        try:
            resolved = audit(ctx, _POLICY)
        except safeload.LegacyFormatError as exc:
            # only names scikit-learn removed: a legacy file, clean for scan, refused by load
            assert exc.types == report.untrusted_types, path
            assert {g.name for g in report.globals if g.verdict == "removed"} == set(exc.types)
            continue
        except safeload.SafeloadError:
            assert not report.safe, path  # the loader refuses on the names: so does scan
            continue
        canonical = {_POLICY.canonical((ph.module, ph.qualname)) for ph in resolved}
        scanned = {_POLICY.canonical(_split(g.name)) for g in report.globals if not g.consumed}
        assert scanned == canonical, path
        resolved_compared += 1
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                safeload.load(path)
        except safeload.SafeloadError:
            continue
        loaded += 1
        assert report.safe, (path, _blocking(report))  # nothing the loader loads is unsafe
    assert compared > 1000 and resolved_compared > 900 and loaded > 800


def _split(name: str) -> tuple[str, str]:
    module, _, qualname = name.rpartition(".")
    return module, qualname


def test_payload_free_parse_gives_identical_reports(monkeypatch):
    """Force the skim on every raw pickle of the corpora: reports must not change."""
    files = [p for p in _corpus_files() if p.suffix in (".pkl", ".p", ".sav", ".pickle", ".bin")]
    if not files:
        pytest.skip("shared corpora not available")
    plain = {p: safeload.scan(p).to_dict() for p in files}
    monkeypatch.setattr(stream_module, "MIN_FILE", 0)
    monkeypatch.setattr(skim_module, "MIN_FILE", 0)
    monkeypatch.setattr(skim_module, "BYTES_PER_OPCODE", 0)
    monkeypatch.setattr(skim_module, "MIN_PAYLOAD", 256)
    calls = []
    original = skim_module.skim
    monkeypatch.setattr(stream_module, "skim", lambda d, i: calls.append(1) or original(d, i))
    for path in files:
        assert safeload.scan(path).to_dict() == plain[path], path
    assert len(calls) > 500
