"""Names scikit-learn removed: a ``removed`` verdict, ``LegacyFormatError`` from ``load``, a
non-blocking ``removed-global`` finding from ``scan`` — and never trusted or imported."""

from __future__ import annotations

import sys

import pytest

import safeload
from safeload import FormatError, LegacyFormatError, UntrustedTypesError
from safeload.policy import Policy
from safeload.report import RULES

GB = b"csklearn.ensemble._gb_losses\nBinomialDeviance\n"
OLD_EUCLID = b"csklearn.neighbors.dist_metrics\nEuclideanDistance\n"  # aliased module spelling
DEPRECATION_DICT = b"csklearn.utils.deprecation\nDeprecationDict\n"
FUTURE_WARNING = b"cexceptions\nFutureWarning\n"  # Python 2 spelling of builtins.FutureWarning
FOREIGN = b"cxgboost.core\nBooster\n"
SYSTEM = b"cos\nsystem\n"


def _stream(*globals_: bytes) -> bytes:
    """A protocol 2 stream whose value is the tuple of the given globals."""
    return b"\x80\x02(" + b"".join(globals_) + b"t."


def test_removed_verdict():
    verdict = Policy.default().verdict("sklearn.ensemble._gb_losses", "BinomialDeviance")
    assert verdict.removed and verdict.state == "removed"
    assert not verdict.trusted and not verdict.dangerous
    assert verdict.reason.startswith("class removed from scikit-learn; written by an older")
    assert "needs a migration" in verdict.reason
    alias = Policy.default().verdict("sklearn.neighbors.dist_metrics", "EuclideanDistance")
    assert alias.removed and alias.canonical == (
        "sklearn.metrics._dist_metrics",
        "EuclideanDistance",
    )
    assert Policy.default().verdict("xgboost.core", "Booster").state == "untrusted"
    assert Policy.default().verdict("os", "system").state == "dangerous"
    assert (
        Policy({}).verdict("sklearn.ensemble._gb_losses", "BinomialDeviance").state == "untrusted"
    )


def test_removed_names_are_never_trusted_or_resolved():
    policy = Policy.default()
    for pair in policy.removed:
        assert not policy.is_trusted(pair)
        with pytest.raises(safeload.PolicyError):
            policy.resolve(pair)


@pytest.mark.parametrize("names", [(GB,), (GB, OLD_EUCLID), (DEPRECATION_DICT, FUTURE_WARNING)])
def test_only_removed_names_raise_legacy_format_error(names):
    before = set(sys.modules)
    with pytest.raises(LegacyFormatError) as info:
        safeload.loads(_stream(*names))
    exc = info.value
    assert isinstance(exc, FormatError) and not isinstance(exc, UntrustedTypesError)
    assert len(exc.types) == len(names) and exc.types == sorted(exc.types)
    message = str(exc)
    assert "older scikit-learn" in message and "conversion" in message
    for name in exc.types:
        assert name in message
    assert not {m for m in set(sys.modules) - before if "gb_losses" in m or "deprecation" in m}


@pytest.mark.parametrize(
    "names, expected",
    [
        ((GB, FOREIGN), ["sklearn.ensemble._gb_losses.BinomialDeviance", "xgboost.core.Booster"]),
        ((OLD_EUCLID, SYSTEM), ["os.system", "sklearn.neighbors.dist_metrics.EuclideanDistance"]),
        ((FUTURE_WARNING,), ["exceptions.FutureWarning"]),  # not inside a removed class
    ],
)
def test_any_other_refused_name_keeps_untrusted_types_error(names, expected):
    with pytest.raises(UntrustedTypesError) as info:
        safeload.loads(_stream(*names))
    assert info.value.types == expected  # every refused name, the removed ones included


def test_removed_names_with_a_forbidden_construct_are_untrusted():
    persistent_id = b"X\x01\x00\x00\x00aQ"  # BINPERSID
    with pytest.raises(UntrustedTypesError):
        safeload.loads(b"\x80\x02(" + GB + persistent_id + b"t.")


def test_scan_reports_removed_names_without_making_the_file_unsafe():
    report = safeload.scan(_stream(GB, OLD_EUCLID))
    assert report.safe is True
    assert [g.verdict for g in report.globals] == ["removed", "removed"]
    assert report.untrusted_types == [
        "sklearn.ensemble._gb_losses.BinomialDeviance",
        "sklearn.neighbors.dist_metrics.EuclideanDistance",
    ]
    assert {f.rule for f in report.findings} == {"removed-global"}
    assert all(f.rule_id == "SL028" and not f.blocking for f in report.findings)
    assert RULES["removed-global"].severity == "low"
    levels = {r["level"] for r in report.to_sarif()["runs"][0]["results"]}
    assert levels == {"note"}


def test_scan_companion_name_depends_on_the_removed_class():
    report = safeload.scan(_stream(DEPRECATION_DICT, FUTURE_WARNING))
    assert report.safe is True
    assert {g.name: g.verdict for g in report.globals} == {
        "exceptions.FutureWarning": "removed",
        "sklearn.utils.deprecation.DeprecationDict": "removed",
    }
    alone = safeload.scan(_stream(FUTURE_WARNING))
    assert not alone.safe
    assert [g.verdict for g in alone.globals] == ["untrusted"]
    assert {f.rule for f in alone.findings} == {"untrusted-global"}


def test_scan_stays_unsafe_with_other_untrusted_names():
    report = safeload.scan(_stream(GB, FOREIGN))
    assert not report.safe
    assert {g.name: g.verdict for g in report.globals} == {
        "sklearn.ensemble._gb_losses.BinomialDeviance": "removed",
        "xgboost.core.Booster": "untrusted",
    }
    assert {f.rule for f in report.findings} == {"removed-global", "untrusted-global"}
