"""Family *build-injection*: ``BUILD`` sets attributes on allowed callables, classes or modules.

``BUILD`` on a *global* — not on an instance — monkey-patches it for the whole process:
slot-state ``setattr`` plants ``sys.modules`` on ``numpy.prod`` so that a later dotted name
``prod.os.system`` resolves (C06); dict state on the module ``sklearn.base`` replaces ``clone``
by ``os.system`` (C07, Sleepy-Pickle persistence); slot state sets ``numpy.load.__defaults__``
so ``allow_pickle`` defaults to True process-wide (E07).  safeload records ``BUILD`` on a
global as the forbidden operation ``build-on-global`` while parsing (nothing is set), refuses it
even when every name is trusted, and also refuses slot state that would set ``__class__`` or
``__dict__`` of a built instance.  The trusted objects are checked to be untouched afterwards.

Public sources (CATALOG.md): C06/C07 https://github.com/protectai/modelscan/issues/89 (PoC 2),
Sleepy Pickle (Trail of Bits 2024); E07 Sleepy-Pickle-style state tampering + numpy
CVE-2019-6446.
"""

from __future__ import annotations

import numpy as np
import pytest
import sklearn.base

import safeload

from ._pickle_builder import B, G, New, Ops, Ref, containers, dumps
from .conftest import Forbidden, Untrusted, assert_refused

CMD = 'touch "$SAFELOAD_CANARY_DIR/build"'
PROTOCOLS = (0, 1, 2, 3, 4, 5)
LOGREG = ("sklearn.linear_model._logistic", "LogisticRegression")


@pytest.fixture(autouse=True)
def untouched():
    """Whatever the test did, the trusted globals it aimed at keep their attributes."""
    before = (
        sklearn.base.clone,
        np.sum.__doc__,
        np.log1p.__doc__,
        getattr(np.load, "__defaults__", None),
        dict(vars(sklearn.base)),
    )
    yield
    after = (
        sklearn.base.clone,
        np.sum.__doc__,
        np.log1p.__doc__,
        getattr(np.load, "__defaults__", None),
        dict(vars(sklearn.base)),
    )
    assert before == after


# ------------------------------------------------------------ untrusted targets (default policy)
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_c07_module_dict_state_overwrites_function(protocol):
    expr = [B(G("sklearn", "base"), {"clone": G("os", "system")}), G("sklearn.base", "clone")(CMD)]
    exc = assert_refused(
        dumps(expr, protocol), Untrusted("os.system", "sklearn.base", "sklearn.base.clone")
    )
    assert "build-on-global" in str(exc)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_c06_slot_state_plants_sys_modules(protocol):
    expr = [
        B(G("numpy", "prod"), (None, {"os": G("builtins", "__import__")("os")})),
        G("numpy", "prod.os.system")(CMD),
    ]
    types = ("builtins.__import__", "numpy.prod", "numpy.prod.os.system")
    assert_refused(dumps(expr, protocol), Untrusted(*types))


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_e07_numpy_load_defaults_flip(protocol):
    expr = B(G("numpy", "load"), (None, {"__defaults__": (None, True, True, "ASCII")}))
    assert_refused(dumps(expr, protocol), Untrusted("numpy.load"))


# ------------------------------------------------------------ trusted targets: still forbidden
#: Trusted globals of every kind: class, ufunc, Python function, builtin, reconstructor.
TRUSTED_TARGETS = [
    LOGREG,
    ("sklearn.tree._tree", "Tree"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy", "log1p"),
    ("numpy", "sum"),
    ("sklearn.feature_selection._univariate_selection", "f_classif"),
    ("builtins", "dict"),
    ("builtins", "set"),
    ("functools", "partial"),
    ("collections", "OrderedDict"),
    ("copyreg", "_reconstructor"),
    ("_codecs", "encode"),
    ("numpy.random._pickle", "__randomstate_ctor"),
    ("numpy._core.multiarray", "_reconstruct"),
]
STATES = {
    "dict": {"__doc__": "patched", "fit": None},
    "slots": (None, {"__doc__": "patched"}),
    "defaults": (None, {"__defaults__": (None, True)}),
    "class": (None, {"__class__": G(*LOGREG)}),
}


@pytest.mark.parametrize("state", list(STATES), ids=list(STATES))
@pytest.mark.parametrize("target", TRUSTED_TARGETS, ids=[f"{m}.{n}" for m, n in TRUSTED_TARGETS])
@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_build_on_a_trusted_global_is_forbidden(target, state, protocol):
    data = dumps(B(G(*target), STATES[state]), protocol)
    assert_refused(data, Forbidden("build-on-global"))


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_build_on_global_fetched_back_from_the_memo(protocol):
    """GLOBAL -> memo -> POP ... GET -> BUILD: still the global, not an instance."""
    o = Ops(protocol).global_("numpy", "log1p").binput(0).pop()
    o.empty_list().pop().binget(0).empty_dict().unicode("__doc__").unicode("x").setitem().build()
    assert_refused(o.done(), Forbidden("build-on-global"))


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_build_on_global_twice_via_dup(protocol):
    o = Ops(protocol).global_("numpy", "sum").dup().none().build().none().build()
    assert_refused(o.done(), Forbidden("build-on-global"))


def test_monkeypatching_clone_with_explicit_trust():
    """C07 with ``sklearn.base.clone`` trusted by the caller: BUILD on it is still refused."""
    expr = B(G("sklearn.base", "clone"), (None, {"__code__": None, "__defaults__": (True,)}))
    for protocol in (0, 2, 4):
        assert_refused(
            dumps(expr, protocol), Forbidden("build-on-global"), trusted=["sklearn.base.clone"]
        )


@pytest.mark.parametrize("box", ["zlib", "gzip", "bz2", "xz", "lzma", "lz4"])
def test_build_on_global_in_compressed_and_joblib_streams(box):
    expr = [B(G("numpy", "log1p"), (None, {"__doc__": "x"})), B(G(*LOGREG), {"fit": None})]
    assert_refused(containers(dumps(expr, 4))[box], Forbidden("build-on-global"))


# ------------------------------------------------------------ instances: __class__ / __dict__
#: trusted classes without ``__setstate__``: BUILD falls back to ``__dict__`` / ``setattr``
PLAIN = [
    ("sklearn.model_selection._split", "KFold"),
    ("sklearn.gaussian_process.kernels", "RBF"),
    ("sklearn.metrics._scorer", "_PassthroughScorer"),
]


@pytest.mark.parametrize("cls", PLAIN, ids=[n for _, n in PLAIN])
@pytest.mark.parametrize("key", ["__class__", "__dict__"])
@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_slot_state_may_not_replace_class_or_dict(cls, key, protocol):
    value = G("sklearn.tree._classes", "DecisionTreeClassifier") if key == "__class__" else {}
    expr = B(New(G(*cls)), (None, {key: value}))
    assert_refused(dumps(expr, protocol), Forbidden("build-slot-state"))


def test_build_on_a_shared_instance_is_fine():
    """Control: BUILD on an instance (what every estimator pickle does) loads."""
    import sklearn

    est = Ref("e", New(G(*LOGREG)))
    expr = [B(est, {"C": 2.0, "_sklearn_version": sklearn.__version__}), est]
    first, second = safeload.loads(dumps(expr, 4))
    assert first is second and first.C == 2.0
