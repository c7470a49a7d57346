"""Legacy corpus with migrations: every file loads and reproduces its probe, or is refused.

Issue 5 "Legacy conversion", must show: on every file of ``../shared/corpus/legacy`` — 0 files
whose converted outputs differ from the probe, at least 95 % verified, every other file refused
with a specific reason (:class:`~safeload.MigrationError` with its ``reason``).  The default suite
checks one pickle per (environment, estimator); the whole corpus runs with ``-m slow``.
"""

from __future__ import annotations

import collections
import warnings

import pytest

import safeload

from ._probes import check_probe
from .conftest import LEGACY, load_json

FILES = (
    sorted(p for p in LEGACY.glob("*/*") if p.suffix in (".pkl", ".joblib"))
    if LEGACY.exists()
    else []
)
#: one file per (environment, estimator): the protocol-2 pickle every environment wrote
SAMPLE = [p for p in FILES if p.name.endswith(".p2.pkl")]

#: the only refusals expected: estimators today's classes can not reproduce exactly
EXPECTED_REASONS = {"adaboost-samme-r", "iforest-behaviour-old", "svc-ovr-batch-scaled"}


def _outcome(path) -> tuple[str, str]:
    """``("verified", "")``, ``("refused", reason)`` or ``("differ", message)``."""
    probe = load_json(path.parent / (path.name.split(".")[0] + ".probe.json"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model = safeload.load(path)
        except safeload.MigrationError as exc:
            return "refused", exc.reason
        except safeload.SafeloadError as exc:
            return "refused", f"{type(exc).__name__}: {exc}"
        result = check_probe(model, probe)
    return ("verified", "") if result is None else ("differ", result)


def _summarize(paths) -> tuple[collections.Counter, dict]:
    counts: collections.Counter = collections.Counter()
    details: dict = {}
    for path in paths:
        kind, detail = _outcome(path)
        counts[kind] += 1
        if kind != "verified":
            details[f"{path.parent.name}/{path.name}"] = (kind, detail)
    return counts, details


def _assert_figures(counts, details, total):
    differ = {k: v for k, v in details.items() if v[0] == "differ"}
    assert not differ, differ
    reasons = {detail for kind, detail in details.values() if kind == "refused"}
    assert reasons <= EXPECTED_REASONS, reasons - EXPECTED_REASONS
    assert counts["verified"] >= 0.95 * total, (counts, details)


@pytest.mark.skipif(not SAMPLE, reason="shared legacy corpus not available")
def test_one_file_per_estimator_and_environment():
    counts, details = _summarize(SAMPLE)
    assert len(SAMPLE) > 170  # 30 estimators x 6 environments (no HistGradientBoosting in 0.20)
    _assert_figures(counts, details, len(SAMPLE))


@pytest.mark.slow
@pytest.mark.skipif(not FILES, reason="shared legacy corpus not available")
def test_whole_legacy_corpus_is_verified_or_refused_with_a_reason():
    counts, details = _summarize(FILES)
    assert sum(counts.values()) == len(FILES) > 1000
    _assert_figures(counts, details, len(FILES))
