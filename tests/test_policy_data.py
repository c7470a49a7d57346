"""The committed default policy (``safeload/data/*.json``, made by ``tools/gen_policy.py``).

Fast checks on the data itself: it loads through :meth:`Policy.from_data`, gives the verdicts
the rest of safeload relies on, never trusts a module or a ``never`` name, and covers every
global that real scikit-learn pickles reference (``../shared/guide/globals-seen.json``).  The
``slow`` test re-runs the generator in ``--check`` mode (about two minutes).
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

from safeload.policy import Policy

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "safeload" / "data"
GLOBALS_SEEN = ROOT.parent / "shared" / "guide" / "globals-seen.json"

#: Where globals-seen.json says a name was seen when the policy must cover it.
REQUIRED_SOURCES = ("legacy/", "scikit-learn")


def _load(name: str) -> dict:
    return json.loads((DATA / name).read_text("utf-8"))


@pytest.fixture(scope="module")
def trusted_doc() -> dict:
    return _load("trusted.json")


@pytest.fixture(scope="module")
def aliases_doc() -> dict:
    return _load("aliases.json")


@pytest.fixture(scope="module")
def policy(trusted_doc, aliases_doc) -> Policy:
    return Policy.from_data(trusted_doc, aliases_doc)


@pytest.fixture(scope="module")
def excluded(trusted_doc) -> dict[str, str]:
    return {entry["name"]: entry["reason"] for entry in trusted_doc["excluded"]}


def _resolve(pair):
    obj = importlib.import_module(pair[0])
    for part in pair[1].split("."):
        obj = getattr(obj, part)
    return obj


def _split(name: str) -> tuple[str, str]:
    module, _, qualname = name.rpartition(".")
    return module, qualname


# -- format ------------------------------------------------------------------------------------
def test_documents_have_their_format_and_generator(trusted_doc, aliases_doc):
    assert trusted_doc["format"] == "safeload-policy/1"
    assert aliases_doc["format"] == "safeload-aliases/1"
    assert trusted_doc["generated_by"] == aliases_doc["generated_by"] == "tools/gen_policy.py"
    assert set(trusted_doc["environment"]) == {
        "python", "scikit-learn", "numpy", "scipy", "joblib",
    }  # fmt: skip


def test_groups_are_sorted_and_named_once(trusted_doc):
    names = [g["name"] for g in trusted_doc["groups"]]
    assert len(names) == len(set(names))
    assert "sklearn-estimators" in names
    for group in trusted_doc["groups"] + trusted_doc["never"]["groups"]:
        assert group["reason"]
        modules = list(group["globals"])
        assert modules == sorted(modules), group["name"]
        for module, qualnames in group["globals"].items():
            assert qualnames == sorted(set(qualnames)), (group["name"], module)
    excluded_names = [e["name"] for e in trusted_doc["excluded"]]
    assert excluded_names == sorted(excluded_names)
    assert all(e["reason"] for e in trusted_doc["excluded"])
    assert all(e["kind"] in ("never", "removed", "untrusted") for e in trusted_doc["excluded"])


def test_default_policy_is_the_committed_data(policy):
    default = Policy.default()
    assert dict(default.trusted) == dict(policy.trusted)
    assert dict(default.never) == dict(policy.never)


# -- verdicts ----------------------------------------------------------------------------------
def test_public_estimator_is_trusted():
    verdict = Policy.default().verdict("sklearn.linear_model._logistic", "LogisticRegression")
    assert verdict.trusted is True
    assert "sklearn-estimators" in verdict.reason


def test_every_all_estimators_class_is_trusted(policy):
    from sklearn.utils.discovery import all_estimators

    missing = [
        f"{c.__module__}.{c.__qualname__}"
        for _, c in all_estimators()
        if not policy.verdict(c.__module__, c.__qualname__).trusted
    ]
    assert missing == []


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        (("__builtin__", "set"), ("builtins", "set")),
        (("__builtin__", "unicode"), ("builtins", "str")),
        (("__builtin__", "long"), ("builtins", "int")),
        (("__builtin__", "xrange"), ("builtins", "range")),
        (("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor")),
        (("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")),
        (("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar")),
        (("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer")),
        (("numpy.ma.core", "MaskedArray"), ("numpy.ma", "MaskedArray")),
        (("scipy.sparse.csr", "csr_matrix"), ("scipy.sparse._csr", "csr_matrix")),
        (("sklearn.tree.tree", "DecisionTreeClassifier"),
         ("sklearn.tree._classes", "DecisionTreeClassifier")),
        (("sklearn.ensemble.forest", "RandomForestClassifier"),
         ("sklearn.ensemble._forest", "RandomForestClassifier")),
        (("sklearn.neighbors.dist_metrics", "newObj"), ("sklearn.metrics._dist_metrics", "newObj")),
        (("sklearn.utils", "Bunch"), ("sklearn.utils._bunch", "Bunch")),
        (("sklearn.externals.joblib.numpy_pickle", "NumpyArrayWrapper"),
         ("joblib.numpy_pickle", "NumpyArrayWrapper")),
        (("_loss", "CyHalfMultinomialLoss"), ("sklearn._loss._loss", "CyHalfMultinomialLoss")),
        (("numpy.random", "__RandomState_ctor"), ("numpy.random", "__RandomState_ctor")),
    ],
)  # fmt: skip
def test_old_spellings_are_aliased_and_trusted(raw, canonical):
    verdict = Policy.default().verdict(*raw)
    assert verdict.canonical == canonical
    assert verdict.trusted is True, verdict


@pytest.mark.parametrize(
    ("module", "qualname"),
    [
        ("builtins", "eval"),
        ("builtins", "exec"),
        ("builtins", "getattr"),
        ("__builtin__", "eval"),  # py2 spelling: aliased, then refused
        ("builtins", "__import__"),
        ("os", "system"),
        ("posix", "system"),  # the real home of os.system
        ("nt", "system"),
        ("subprocess", "Popen"),
        ("commands", "getoutput"),  # py2 name of subprocess.getoutput
        ("pickle", "loads"),
        ("_pickle", "loads"),
        ("cPickle", "loads"),
        ("marshal", "loads"),
        ("joblib", "load"),
        ("joblib.numpy_pickle", "load"),
        ("sklearn.externals.joblib", "load"),
        ("numpy", "load"),
        ("numpy", "save"),
        ("numpy", "memmap"),
        ("numpy", "ndarray.tofile"),
        ("numpy.lib.format", "read_array"),
        ("numpy.lib._format_impl", "read_array"),
        ("numpy.testing._private.utils", "runstring"),
        ("numpy.f2py.crackfortran", "myeval"),
        ("numpy.core", "_ufunc_reconstruct"),
        ("importlib", "import_module"),
        ("pydoc", "locate"),
        ("pkgutil", "resolve_name"),
        ("operator", "attrgetter"),
        ("_operator", "itemgetter"),
        ("operator", "methodcaller"),
        ("functools", "reduce"),
        ("__builtin__", "reduce"),
        ("timeit", "timeit"),
        ("cProfile", "run"),
        ("bdb", "Bdb"),
        ("ctypes", "CDLL"),
        ("inspect", "getattr_static"),
        ("types", "FunctionType"),
        ("types", "CodeType"),
        ("copyreg", "add_extension"),
        ("copyreg", "__newobj__"),
        ("copy_reg", "__newobj__"),
        ("multiprocessing.util", "spawnv_passfds"),
        ("sklearn.datasets", "get_data_home"),
        ("sklearn.datasets._base", "get_data_home"),
        ("scipy.io", "savemat"),
        ("_io", "FileIO"),
        ("io", "open"),
        ("shutil", "rmtree"),
        ("builtins", "dict.get"),
    ],
)
def test_dangerous_names_are_never_trusted(module, qualname):
    verdict = Policy.default().verdict(module, qualname)
    assert verdict.trusted is False
    assert verdict.dangerous is True, verdict


@pytest.mark.parametrize(
    ("module", "qualname"),
    [
        ("numpy", "lib._npyio_impl.os.system"),  # dotted walk through module attributes
        ("numpy.lib._npyio_impl", "os.system"),
        ("sklearn", "base"),  # a module is never a trusted name
        ("sklearn.base", "clone"),
        ("numpy.ndarray", "tofile"),
        ("numpy", "ndarray.tofile"),
        ("numpy", "ones"),
        ("__main__", "ColumnDropper"),
        ("pandas.core.frame", "DataFrame"),
        ("xgboost.sklearn", "XGBClassifier"),
        ("sklearn.linear_model", "LogisticRegression"),  # re-export, not the canonical module
        ("sklearn.linear_model._logistic", "LogisticRegression.fit"),
    ],
)
def test_untrusted_names(module, qualname):
    assert Policy.default().verdict(module, qualname).trusted is False


# -- invariants --------------------------------------------------------------------------------
def test_no_trusted_name_is_never_listed(policy):
    assert set(policy.trusted) & set(policy.never) == set()


def test_every_trusted_name_resolves_and_is_not_a_module(policy):
    bad = []
    for pair in sorted(policy.trusted):
        try:
            obj = _resolve(pair)
        except (ImportError, AttributeError) as exc:
            bad.append(f"{pair}: {exc}")
            continue
        if isinstance(obj, types.ModuleType) or not callable(obj):
            bad.append(f"{pair}: {obj!r}")
    assert bad == []


def test_trusted_names_are_canonical(policy):
    """Keyed by the module where the object lives today (the spelling pickle writes)."""
    bad = []
    for pair in sorted(policy.trusted):
        if policy.canonical(pair) != pair:
            bad.append(f"{pair} is itself an alias")
        obj = _resolve(pair)
        module = getattr(obj, "__module__", None)
        if isinstance(obj, type) and module != pair[0]:
            bad.append(f"{pair}: class defined in {module}")
    assert bad == []


def test_module_aliases_are_exact_and_point_to_existing_modules(aliases_doc):
    for old, new in aliases_doc["modules"].items():
        assert old != new
        assert not old.endswith((".", "*")) and "*" not in new
        importlib.import_module(new)
    for old, new in aliases_doc["globals"].items():
        assert ":" in old and ":" in new
        _resolve(tuple(new.split(":", 1)))


def test_alias_targets_are_never_modules_or_chains(policy, aliases_doc):
    for old in aliases_doc["globals"]:
        module, qualname = old.split(":", 1)
        target = policy.canonical((module, qualname))
        assert policy.canonical(target) == target, f"alias chain from {old}"


# -- completeness against real pickles --------------------------------------------------------
@pytest.fixture(scope="module")
def globals_seen() -> dict:
    if not GLOBALS_SEEN.exists():
        pytest.skip(f"{GLOBALS_SEEN} not found")
    return json.loads(GLOBALS_SEEN.read_text("utf-8"))["globals"]


def test_every_name_of_real_sklearn_pickles_is_trusted_or_excluded(policy, excluded, globals_seen):
    gaps = []
    for name, info in sorted(globals_seen.items()):
        if not any(s.startswith(REQUIRED_SOURCES) for s in info["sources"]):
            continue
        verdict = policy.verdict(*_split(name))
        canonical = ".".join(verdict.canonical)
        if not (verdict.trusted or name in excluded or canonical in excluded):
            gaps.append(name)
    assert gaps == []


def test_wild_only_third_party_names_are_not_trusted(policy, globals_seen):
    first_party = {
        "builtins", "copyreg", "_codecs", "collections", "functools", "numpy", "scipy",
        "sklearn", "joblib",
    }  # fmt: skip
    trusted_third_party = []
    for name, info in globals_seen.items():
        if info["sources"] != ["wild"]:
            continue
        verdict = policy.verdict(*_split(name))
        if verdict.trusted and verdict.canonical[0].split(".")[0] not in first_party:
            trusted_third_party.append(name)
    assert trusted_third_party == []
    for name in ("__main__.ColumnDropper", "pandas.core.frame.DataFrame", "xgboost.core.Booster"):
        assert name in globals_seen
        assert not policy.verdict(*_split(name)).trusted


def test_excluded_names_are_real_and_not_trusted(policy, excluded, globals_seen):
    seen = set(globals_seen)
    seen |= {".".join(policy.canonical(_split(n))) for n in globals_seen}
    for name in excluded:
        assert name in seen, f"{name} is excluded but never seen in a real pickle"
        assert not policy.verdict(*_split(name)).trusted


def test_removed_names_get_the_removed_verdict(policy, trusted_doc):
    kinds = {e["name"]: e["kind"] for e in trusted_doc["excluded"]}
    removed = [name for name, kind in kinds.items() if kind == "removed"]
    assert "sklearn.ensemble._gb_losses.BinomialDeviance" in removed
    assert "sklearn.utils.deprecation.DeprecationDict" in removed
    for name in removed:
        verdict = policy.verdict(*_split(name))
        assert verdict.removed and not verdict.trusted and not verdict.dangerous, name
        assert verdict.state == "removed"
        assert "removed from scikit-learn" in verdict.reason
    for name, kind in kinds.items():
        if kind != "removed":
            assert not policy.verdict(*_split(name)).removed, name
    for entry in trusted_doc["excluded"]:
        for holder in entry.get("inside", []):
            assert kinds[holder] == "removed", (entry["name"], holder)


def test_getattr_is_excluded_and_never(policy, excluded):
    assert "builtins.getattr" in excluded
    assert ("builtins", "getattr") in policy.never


# -- the generator -----------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_generator_check_mode_finds_committed_files_up_to_date():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gen_policy.py"), "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
