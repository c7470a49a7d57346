"""Conversion of the shared corpora (issue 5 "Legacy conversion", must show).

* Every file of ``../shared/corpus/legacy/`` (about 1,130), converted in a pool of two worker
  processes as ``safeload convert --jobs 2`` does: no written file whose outputs differ from the
  probe recorded in the old environment, at least 95 % ``verified``, every other file refused
  with a specific :class:`~safeload.MigrationError` reason, and no partial output anywhere.
  Whole corpus: about 35 s on two cores, so it runs in the default suite.
* ``../shared/corpus/wild/`` (never unpickled): files with foreign globals are refused naming
  every one of them; pure scikit-learn files convert, or are refused with a specific reason.
"""

from __future__ import annotations

import collections
import os

import pytest

import safeload
from safeload.convert import SAFE_SUFFIX, convert_batch, plan_batch

from ._probes import check_probe
from .conftest import LEGACY, WILD, load_json
from .test_wild import KNOWN_MIGRATION_REFUSALS, _excluded, _foreign

#: the only refusals expected on the legacy corpus: behaviours today's classes can not reproduce
EXPECTED_REASONS = {"adaboost-samme-r", "iforest-behaviour-old", "svc-ovr-batch-scaled"}


def _outputs(out) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, n), out) for d, _, ns in os.walk(out) for n in ns)


@pytest.mark.skipif(not LEGACY.exists(), reason="shared legacy corpus not available")
def test_whole_legacy_corpus_converts_verified_or_refused_with_a_reason(tmp_path):
    out = tmp_path / "out"
    pairs, errors, _skipped = plan_batch([LEGACY], out)
    assert not errors and len(pairs) > 1000
    reports = convert_batch(pairs, jobs=2)
    assert [r.source for r in reports] == [s for s, _ in pairs]
    counts = collections.Counter(r.status for r in reports)
    reasons = collections.Counter(r.reason for r in reports if r.status == "refused")

    # 0 files whose converted outputs differ from the probe
    assert "probe-mismatch" not in reasons and "reload-mismatch" not in reasons, reasons
    assert counts["verified"] >= 0.95 * len(reports), counts
    assert counts["converted-unverified"] == 0  # every legacy file has its probe file
    assert set(reasons) <= EXPECTED_REASONS, {
        r.source: (r.reason, r.detail) for r in reports if r.reason not in EXPECTED_REASONS
    }
    # refused files leave nothing; written files are exactly the verified ones
    written = {os.path.relpath(r.output, out) for r in reports if r.output}
    assert set(_outputs(out)) == written
    assert len(written) == counts["verified"]
    for r in reports:
        if r.status == "verified":
            assert all(c.ok for c in r.checks) and all(c.ok for c in r.reload_checks)
            assert r.sha256 and r.source_sklearn_version


@pytest.mark.skipif(not LEGACY.exists(), reason="shared legacy corpus not available")
def test_converted_files_reload_with_the_old_outputs(tmp_path):
    """A sample of outputs, loaded back from disk and replayed against the probe files."""
    env = LEGACY / "py36_skl0213"
    pairs, _, _ = plan_batch([env], tmp_path)
    pairs = [p for p in pairs if ".p4." in p[0]]
    for report in convert_batch(pairs):
        if report.status != "verified":
            assert report.reason in EXPECTED_REASONS
            continue
        model = safeload.load(report.output)
        stem = os.path.basename(report.source).split(".")[0]
        assert check_probe(model, load_json(env / f"{stem}.probe.json")) is None, report.source
        assert safeload.verify(report.output).ok, report.output


WILD_ENTRIES = load_json(WILD / "MANIFEST.json")["entries"] if WILD.exists() else []
#: reasons a pure scikit-learn wild file may be refused with: an old behaviour or a removed class
#: no migration handles (yet), or a corrupt file
WILD_REASONS = KNOWN_MIGRATION_REFUSALS | {"removed-classes", "format", "invalid-content"}


@pytest.mark.skipif(not WILD_ENTRIES, reason="shared wild corpus not available")
def test_wild_corpus_converts_pure_sklearn_and_names_foreign_globals(tmp_path, canary_sandbox):
    out = tmp_path / "out"
    pairs = [(str(WILD / e["file"]), str(out / (e["file"] + SAFE_SUFFIX))) for e in WILD_ENTRIES]
    reports = {os.path.relpath(r.source, WILD): r for r in convert_batch(pairs)}
    converted = 0
    for entry in WILD_ENTRIES:
        report = reports[entry["file"]]
        foreign = _foreign(entry["globals"])
        if foreign:
            assert report.reason == "untrusted-types", (entry["file"], report.detail)
            assert foreign <= set(report.untrusted_types), foreign - set(report.untrusted_types)
            assert all(_excluded(n) for n in set(report.untrusted_types) - foreign)
            assert all(name in report.detail for name in foreign)
        elif report.ok:
            converted += 1
            assert report.status == "converted-unverified"  # no reference outputs exist
            assert safeload.load(report.output) is not None
        else:
            assert report.reason in WILD_REASONS, (entry["file"], report.reason, report.detail)
        if not report.ok:
            assert report.output is None
            assert not os.path.exists(out / (entry["file"] + SAFE_SUFFIX))
    assert converted >= 15, converted
    written = {os.path.relpath(r.output, out) for r in reports.values() if r.output}
    assert set(_outputs(out)) == written if out.exists() else not written
