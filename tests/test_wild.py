"""Wild corpus: model files committed to public repositories by other people (2014–2025).

Never unpickled with plain pickle here.  Issue "Restricted loader": every file either loads
(pure scikit-learn/numpy/scipy content) or raises ``UntrustedTypesError`` naming exactly its
foreign globals (custom ``__main__`` classes, xgboost, lightgbm, pandas ...); a file whose only
refused names are classes scikit-learn removed gives ``LegacyFormatError``; corrupt files give
``FormatError``; nothing crashes or hangs.
"""

from __future__ import annotations

import warnings

import pytest

import safeload

from .conftest import ROOT, WILD, load_json

MANIFEST = load_json(WILD / "MANIFEST.json")["entries"] if WILD.exists() else []

#: Top-level modules whose names the default policy covers (exactly, name by name).
OURS = {
    "sklearn",
    "numpy",
    "scipy",
    "joblib",
    "builtins",
    "__builtin__",
    "copyreg",
    "copy_reg",
    "_codecs",
    "collections",
    "functools",
    "_loss",
}


def _foreign(names):
    return {n for n in names if n.split(".")[0] not in OURS}


EXCLUDED = {e["name"] for e in load_json(ROOT / "safeload" / "data" / "trusted.json")["excluded"]}


REMOVED = {
    e["name"]
    for e in load_json(ROOT / "safeload" / "data" / "trusted.json")["excluded"]
    if e["kind"] == "removed"
}


def _canonical_names(names) -> set[str]:
    policy = safeload.Policy.default()
    return {".".join(policy.canonical(tuple(n.rsplit(".", 1)))) for n in names}


def _excluded(name: str) -> bool:
    """True for names the policy documents as deliberately untrusted (removed classes ...)."""
    policy = safeload.Policy.default()
    module, _, qualname = name.rpartition(".")
    canonical = policy.canonical((module, qualname))
    return name in EXCLUDED or f"{canonical[0]}.{canonical[1]}" in EXCLUDED


#: MigrationError reasons a wild file may be refused with (see safeload/migrate/).
KNOWN_MIGRATION_REFUSALS = {"svc-ovr-batch-scaled", "adaboost-samme-r", "iforest-behaviour-old"}


@pytest.mark.skipif(not MANIFEST, reason="shared wild corpus not available")
@pytest.mark.parametrize("entry", MANIFEST, ids=lambda e: e["file"])
def test_wild_file_verdict(entry, canary_sandbox):
    """Loads, or is refused for the right reason; never crashes, hangs or runs anything.

    Allowed refusals: ``UntrustedTypesError`` naming every foreign global (plus only names the
    policy documents in ``excluded``: classes scikit-learn removed, which need a migration);
    ``LegacyFormatError`` when the only refused names are such removed classes (no foreign
    global); ``FormatError`` for corrupt files or states today's classes cannot restore;
    ``ValidationError`` for fitted content today's C code would index unsafely.
    """
    path = WILD / entry["file"]
    foreign = _foreign(entry["globals"])
    corrupt = any(flag.startswith(("PARSE_ERROR", "DECOMPRESS_ERROR")) for flag in entry["flags"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model = safeload.load(path)
        except safeload.LegacyFormatError as exc:
            assert not corrupt and not foreign
            assert exc.types and all(_excluded(n) for n in exc.types), exc.types
            assert "older scikit-learn" in str(exc)
            return
        except safeload.UntrustedTypesError as exc:
            assert not corrupt
            # a file refused only for removed scikit-learn classes raises LegacyFormatError
            assert foreign or _canonical_names(exc.types) - REMOVED, exc.types
            assert foreign <= set(exc.types), f"missing from the error: {foreign - set(exc.types)}"
            extra = set(exc.types) - foreign
            assert all(_excluded(n) for n in extra), f"undocumented refusals: {extra}"
            return
        except safeload.FormatError as exc:
            assert not foreign, "a file with foreign globals must be refused by the audit"
            assert corrupt or "restoring the state" in str(exc), f"unexpected FormatError: {exc}"
            return
        except safeload.ValidationError as exc:
            assert not foreign and not corrupt
            assert "sklearn" in str(exc)
            return
        except safeload.MigrationError as exc:
            # an old behaviour today's classes cannot reproduce (e.g. 0.18-0.20 multiclass SVC
            # decision_function scaled per batch): refused by name rather than loaded wrong
            assert not foreign and not corrupt
            assert exc.reason in KNOWN_MIGRATION_REFUSALS, exc.reason
            return
    assert not corrupt, "a corrupt file loaded"
    assert not foreign, f"loaded a file with foreign globals {sorted(foreign)}"
    top = type(model).__module__.split(".")[0]
    assert top in ("sklearn", "builtins"), type(model)
