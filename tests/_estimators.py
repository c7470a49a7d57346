"""Shared helpers for the round-trip tests: fit scikit-learn estimators, serialize them in every
format safeload reads, and compare a loaded estimator with the in-memory one.

Estimators are constructed the way scikit-learn's common tests construct them
(``sklearn.utils._test_common.instance_generator._tested_estimators``) and fitted on small
deterministic data shaped by their tags with the helpers of ``sklearn.utils.estimator_checks``
(``_enforce_estimator_tags_X``/``_enforce_estimator_tags_y``), as ``check_estimators_pickle``
does.
"""

from __future__ import annotations

import copy
import functools
import math
import pickle
import types
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import scipy.sparse as sp

SEED = 0
N_SAMPLES = 60

#: The methods whose outputs must be identical after a round trip (``kneighbors`` queries the
#: KD/ball trees safeload validates; ``mahalanobis`` is the covariance estimators' only method).
METHODS = (
    "predict",
    "predict_proba",
    "predict_log_proba",
    "decision_function",
    "transform",
    "score_samples",
    "kneighbors",
    "mahalanobis",
)

# -- serialization formats --------------------------------------------------------------------


def _has_lz4() -> bool:
    try:
        import lz4.frame  # noqa: F401
    except ImportError:
        return False
    return True


HAS_LZ4 = _has_lz4()

#: format id -> how to write it: ("pickle", protocol) or ("joblib", compress argument).
FORMATS: dict[str, tuple[str, Any]] = {
    "pickle-p0": ("pickle", 0),
    "pickle-p2": ("pickle", 2),
    "pickle-p5": ("pickle", 5),
    "joblib": ("joblib", 0),
    "joblib-zlib": ("joblib", ("zlib", 3)),
    "joblib-gzip": ("joblib", ("gzip", 3)),
    "joblib-bz2": ("joblib", ("bz2", 3)),
    "joblib-lzma": ("joblib", ("lzma", 3)),
    "joblib-xz": ("joblib", ("xz", 3)),
}
if HAS_LZ4:
    FORMATS["joblib-lz4"] = ("joblib", ("lz4", 3))
FORMATS["safe"] = ("safeload", None)
FORMATS["safe-deflate"] = ("safeload", "deflate")


def dump(obj: Any, fmt: str, path: Path) -> Path:
    """Write ``obj`` to ``path`` in format ``fmt`` (a key of :data:`FORMATS`)."""
    kind, arg = FORMATS[fmt]
    if kind == "pickle":
        with open(path, "wb") as fh:
            pickle.dump(obj, fh, protocol=arg)
    elif kind == "safeload":
        import safeload

        safeload.dump(obj, path, compression=arg)
    else:
        joblib.dump(obj, path, compress=arg)
    return path


# -- data -------------------------------------------------------------------------------------

#: Small two-class corpus for text estimators.
DOCS = [
    f"{a} {b} {c}"
    for a, b, c in zip(
        ["the cat", "a dog", "my homework", "the mat", "cats and dogs", "a friend"] * 10,
        ["sat on", "ate", "is on", "likes", "run to", "sees"] * 10,
        ["the mat", "my food", "the table", "a ball", "the park", "the cat"] * 10,
        strict=True,
    )
]
DOC_LABELS = np.array([0, 1, 0, 1, 1, 0] * 10)


def blobs(n_classes: int = 3, n_samples: int = N_SAMPLES) -> tuple[np.ndarray, np.ndarray]:
    """Three well-separated 3-feature blobs (``check_estimators_pickle`` uses the same shape)."""
    from sklearn.datasets import make_blobs

    centers = [[0, 0, 0], [1, 1, 1], [0, 2, 0]][:n_classes]
    return make_blobs(
        n_samples=n_samples,
        centers=centers,
        n_features=3,
        random_state=SEED,
        cluster_std=0.3,
    )


@dataclass
class Case:
    """One estimator to fit: ``case_id`` is the test id, ``sparse`` selects CSR input, ``fit``
    (optional) fits a custom estimator and returns ``(estimator, X)``."""

    case_id: str
    estimator: Any = None
    sparse: bool = False
    fit: Callable[[], tuple[Any, Any]] | None = None


@dataclass
class Fitted:
    """A fitted estimator, the input its methods were called on, and their outputs.

    Attributes
    ----------
    estimator : object
        The fitted in-memory estimator (never called again after the outputs were recorded).
    X : array-like
        The input the methods are called on.
    outputs : dict
        Method name -> output, for each method that exists and works on ``X``.
    raises : dict
        Method name -> exception type, for methods that exist but raise on ``X``.
    random_methods : list of str
        Methods whose outputs differ between two calls on the same in-memory estimator (random
        at predict time); only the fitted attributes are compared for those.
    layout_methods : list of str
        Methods whose outputs already differ after ``pickle.loads`` because a fitted array is a
        strided view in memory; their expected outputs are those of the standard unpickler.
    """

    estimator: Any
    X: Any
    outputs: dict[str, Any] = field(default_factory=dict)
    raises: dict[str, type] = field(default_factory=dict)
    random_methods: list[str] = field(default_factory=list)
    layout_methods: list[str] = field(default_factory=list)


def _case_ids(instances: list[Any]) -> list[str]:
    counts: dict[str, int] = {}
    ids = []
    for est in instances:
        name = type(est).__name__
        counts[name] = counts.get(name, 0) + 1
        ids.append(name if counts[name] == 1 else f"{name}#{counts[name]}")
    return ids


@functools.cache
def tested_instances() -> tuple[tuple[str, Any], ...]:
    """``(id, unfitted instance)`` for every instance scikit-learn's common tests build."""
    from sklearn.utils._test_common.instance_generator import _tested_estimators

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        instances = list(_tested_estimators())
    return tuple(zip(_case_ids(instances), instances, strict=True))


def accepts_sparse(estimator: Any) -> bool:
    """True when the estimator's tags accept sparse input on a 2-D numeric X."""
    from sklearn.utils import get_tags

    tags = get_tags(estimator)
    return bool(tags.input_tags.sparse and tags.input_tags.two_d_array)


@functools.cache
def all_estimator_cases() -> tuple[Case, ...]:
    """Every tested instance on dense input, and on CSR input where the tags accept it."""
    cases = []
    for case_id, est in tested_instances():
        cases.append(Case(case_id, est, sparse=False))
        if accepts_sparse(est):
            cases.append(Case(f"{case_id}~sparse", est, sparse=True))
    # the common tests skip FrozenEstimator (it cannot be constructed without a fitted estimator)
    cases.append(Case("FrozenEstimator", fit=_frozen_estimator))
    return tuple(cases)


def _frozen_estimator() -> tuple[Any, Any]:
    from sklearn.frozen import FrozenEstimator
    from sklearn.linear_model import LogisticRegression

    X, y = blobs(3)
    return FrozenEstimator(LogisticRegression().fit(X, y)).fit(X, y), X


def _multioutput_only(tags: Any) -> bool:
    return bool(tags.target_tags.multi_output and not tags.target_tags.single_output)


def _with_nans(X: np.ndarray) -> np.ndarray:
    """Put NaN in 10 cells, as ``check_estimators_pickle`` does for ``allow_nan`` estimators."""
    X = np.array(X, dtype=np.float64)
    rng = np.random.RandomState(42)
    X.reshape(-1)[rng.choice(X.size, 10, replace=False)] = np.nan
    return X


def make_data(estimator: Any, sparse: bool) -> tuple[Any, Any]:
    """Return ``(X, y)`` valid for ``estimator``'s tags (``y`` may be None for fit(X)).

    Raises
    ------
    ValueError
        For ``sparse=True`` on an estimator whose input is not a 2-D numeric array.
    """
    from sklearn.base import is_classifier, is_regressor
    from sklearn.metrics.pairwise import rbf_kernel
    from sklearn.utils import get_tags
    from sklearn.utils.estimator_checks import (
        _enforce_estimator_tags_X,
        _enforce_estimator_tags_y,
    )

    tags = get_tags(estimator)
    it = tags.input_tags
    X, y = blobs(3)
    if it.string and not it.two_d_array:
        return list(DOCS), DOC_LABELS.copy()
    if it.dict:
        return [{"a": float(r[0]), "b": "x" if r[1] > 0.5 else "y", "c": float(r[2])} for r in X], y
    if tags.target_tags.one_d_labels:
        return y, None
    if tags.target_tags.two_d_labels:
        return [{int(v), int(v) + 1} for v in y], None
    if not it.two_d_array and not it.one_d_array:
        # PatchExtractor: a stack of small images
        return np.random.RandomState(SEED).uniform(size=(3, 20, 20)), None
    if is_regressor(estimator) and not is_classifier(estimator):
        y = X @ np.array([1.0, 2.0, -1.0]) + 0.1 * np.sin(np.arange(len(y)))
    y = _enforce_estimator_tags_y(estimator, y)
    if _multioutput_only(tags):
        y1 = np.ravel(y)
        y2 = (y1 + 1) % 3 if is_classifier(estimator) else y1**2
        y = np.c_[y1, y2]
    if sparse:
        # non-negative (QuantileTransformer, spectral biclustering refuse negative sparse input)
        # and no all-zero row (spectral co-clustering divides by row sums)
        if not it.pairwise:
            X = np.abs(X)
            keep = (X >= 0.5) | np.equal(X, X.max(axis=1, keepdims=True))
            X = np.where(keep, X, 0.0)
        X = _enforce_estimator_tags_X(estimator, X, kernel=rbf_kernel)
        return sp.csr_matrix(X), y
    X = _enforce_estimator_tags_X(estimator, X, kernel=rbf_kernel)
    if it.allow_nan and not it.pairwise:
        X = _with_nans(X)
    return X, y


def _call_all(estimator: Any, X: Any) -> tuple[dict[str, Any], dict[str, type]]:
    outputs: dict[str, Any] = {}
    raises: dict[str, type] = {}
    for name in METHODS:
        if not hasattr(estimator, name):
            continue
        try:
            outputs[name] = getattr(estimator, name)(X)
        except Exception as exc:  # noqa: BLE001 - recorded, the loaded one must raise the same
            raises[name] = type(exc)
    return outputs, raises


def fit_case(case: Case) -> Fitted:
    """Fit ``case`` and record its outputs.

    A case with its own ``fit`` returns ``(fitted estimator, X)``; otherwise a clone of
    ``case.estimator`` is fitted on data shaped by its tags, as scikit-learn's common tests do.
    The global numpy random state is seeded for the fit (nested estimators without a
    ``random_state`` draw from it) and restored afterwards.
    """
    global_state = np.random.get_state()
    np.random.seed(SEED)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if case.fit is not None:
                est, X = case.fit()
            else:
                est, X = _fit_like_common_tests(case)
            return record(est, X)
    finally:
        np.random.set_state(global_state)


def _fit_like_common_tests(case: Case) -> tuple[Any, Any]:
    from sklearn.base import clone
    from sklearn.utils._testing import set_random_state

    est = clone(case.estimator)
    set_random_state(est, SEED)
    X, y = make_data(est, case.sparse)
    if y is None:
        est.fit(X)
    else:
        est.fit(X, y)
    return est, X


def record(est: Any, X: Any) -> Fitted:
    """Call every method of :data:`METHODS` of the fitted ``est`` on a copy of ``X``.

    The copy matters: ``fit`` keeps references to ``X`` (``KernelRidge.X_fit_`` ...) and numpy
    takes another code path when both operands are the same object (``X @ X.T`` uses syrk),
    which a loaded estimator never can.
    """
    X = copy.deepcopy(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        outputs, raises = _call_all(est, X)
        again, _ = _call_all(est, X)
        random_methods = [name for name, out in outputs.items() if not _equal(out, again.get(name))]
        for name in random_methods:
            del outputs[name]
        # pickle stores a contiguous copy of every array; where a fitted attribute is a strided
        # view (PCA on sparse input keeps ``components_ = Vt[::-1]``) BLAS sums in another
        # order on the copy, so even ``pickle.loads`` differs in the last bit: for those methods
        # the reference is what the standard unpickler restores
        restored, _ = _call_all(pickle.loads(pickle.dumps(est, protocol=5)), X)
    layout_methods = [name for name, out in outputs.items() if not _equal(out, restored.get(name))]
    for name in layout_methods:
        # only the last bits may differ; anything else is a real difference
        np.testing.assert_allclose(restored[name], outputs[name], rtol=1e-10, atol=1e-14)
        outputs[name] = restored[name]
    return Fitted(est, X, outputs, raises, random_methods, layout_methods)


def check_outputs(fitted: Fitted, loaded: Any) -> list[str]:
    """Assert the loaded estimator's methods give identical outputs; return the methods checked.

    Raises
    ------
    AssertionError
        On any difference (value, dtype, shape, sparse format) or a different exception.
    """
    X = fitted.X
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, expected in fitted.outputs.items():
            got = getattr(loaded, name)(X)
            assert_identical(expected, got, f"{name}(X)")
        if fitted.random_methods:
            # random at predict time: a deep copy of the in-memory estimator holds the same
            # generator state as the file, so it must draw exactly the same numbers
            twin = copy.deepcopy(fitted.estimator)
            for name in fitted.random_methods:
                assert_identical(getattr(twin, name)(X), getattr(loaded, name)(X), f"{name}(X)")
        for name, exc_type in fitted.raises.items():
            try:
                getattr(loaded, name)(X)
            except Exception as exc:  # noqa: BLE001
                assert type(exc) is exc_type, (
                    f"{name}(X) raised {type(exc).__name__}, the original raised "
                    f"{exc_type.__name__}"
                )
            else:
                raise AssertionError(
                    f"{name}(X) raised {exc_type.__name__} on the original, not after loading"
                )
    return sorted([*fitted.outputs, *fitted.random_methods])


# -- recursive equality -----------------------------------------------------------------------

_ATOMS = (type(None), bool, int, str, bytes, bytearray, complex, range, slice, type(Ellipsis))
_BY_IDENTITY = (
    type,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodDescriptorType,
    types.ModuleType,
    np.ufunc,
)


def _equal(a: Any, b: Any) -> bool:
    try:
        assert_identical(a, b)
    except AssertionError:
        return False
    return True


def assert_identical(a: Any, b: Any, path: str = "obj") -> None:
    """Assert ``b`` is an exact copy of ``a``: same types, same values (NaN equal to NaN), same
    array dtypes, shapes and memory order, recursively through containers, instance state and
    ``__reduce_ex__`` of extension objects (trees, KD-trees, losses, random generators).

    Raises
    ------
    AssertionError
        Naming the path of the first difference.
    """
    _assert_identical(a, b, path, set())


def _assert_identical(a: Any, b: Any, path: str, seen: set[tuple[int, int]]) -> None:
    if a is b:
        return
    ta, tb = type(a), type(b)
    assert ta is tb, f"{path}: type {ta.__module__}.{ta.__qualname__} != {tb.__qualname__}"
    if ta is float:
        assert a == b or (math.isnan(a) and math.isnan(b)), f"{path}: {a!r} != {b!r}"
        return
    if ta in _ATOMS:
        assert a == b, f"{path}: {a!r:.200} != {b!r:.200}"
        return
    if isinstance(a, _BY_IDENTITY):
        raise AssertionError(f"{path}: {a!r} is not the same object as {b!r}")
    key = (id(a), id(b))
    if key in seen:
        return
    seen.add(key)
    if isinstance(a, np.ndarray):
        _assert_arrays(a, b, path, seen)
    elif isinstance(a, np.generic):
        assert a.dtype == b.dtype, f"{path}: dtype {a.dtype} != {b.dtype}"
        np.testing.assert_array_equal(a, b, err_msg=path, strict=True)
    elif isinstance(a, np.dtype):
        assert a == b, f"{path}: {a!r} != {b!r}"
    elif ta is dict:
        assert list(a) == list(b), f"{path}: keys {list(a)!r:.300} != {list(b)!r:.300}"
        for k in a:
            _assert_identical(a[k], b[k], f"{path}[{k!r}]", seen)
    elif ta in (list, tuple):
        assert len(a) == len(b), f"{path}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_identical(x, y, f"{path}[{i}]", seen)
    elif ta in (set, frozenset):
        assert a == b, f"{path}: {a!r:.200} != {b!r:.200}"
    elif sp.issparse(a):
        assert a.format == b.format, f"{path}: sparse format {a.format} != {b.format}"
        assert a.shape == b.shape, f"{path}: shape {a.shape} != {b.shape}"
        _assert_identical(vars(a), vars(b), f"{path}.__dict__", seen)
    else:
        ra, rb = _reduce(a, path), _reduce(b, path)
        _assert_identical(ra, rb, f"{path}.__reduce__()", seen)


def _assert_arrays(a: np.ndarray, b: np.ndarray, path: str, seen: set) -> None:
    assert a.dtype == b.dtype, f"{path}: dtype {a.dtype} != {b.dtype}"
    assert a.shape == b.shape, f"{path}: shape {a.shape} != {b.shape}"
    if a.flags.f_contiguous and not a.flags.c_contiguous:
        assert b.flags.f_contiguous, f"{path}: Fortran order lost"
    if a.dtype.hasobject:
        for i, (x, y) in enumerate(zip(a.reshape(-1), b.reshape(-1), strict=True)):
            _assert_identical(x, y, f"{path}.flat[{i}]", seen)
    else:
        np.testing.assert_array_equal(a, b, err_msg=path, strict=True)


def _reduce(obj: Any, path: str) -> tuple:
    try:
        red = obj.__reduce_ex__(2)
    except Exception as exc:  # noqa: BLE001
        raise AssertionError(f"{path}: cannot compare {type(obj).__qualname__}: {exc}") from exc
    if isinstance(red, str):  # a global singleton
        return (red,)
    red = list(red)
    for i in (3, 4):  # listitems / dictitems iterators
        if i < len(red) and red[i] is not None:
            red[i] = list(red[i])
    return tuple(red)


# -- fitted-instance cache --------------------------------------------------------------------


class FitCache:
    """Fit each case at most once per session; remember failures to fit."""

    def __init__(self, fit: Callable[[Case], Fitted] = fit_case) -> None:
        self._fit = fit
        self._done: dict[str, Fitted | BaseException] = {}

    def get(self, case: Case) -> Fitted | BaseException:
        hit = self._done.get(case.case_id)
        if hit is None:
            try:
                hit = self._fit(case)
            except Exception as exc:  # noqa: BLE001 - reported by the test
                hit = exc
            self._done[case.case_id] = hit
        return hit
