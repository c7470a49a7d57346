"""Every scikit-learn estimator, fitted, written in every format, loaded with the DEFAULT policy.

Each class of ``sklearn.utils.discovery.all_estimators()`` is built the way scikit-learn's own
common tests build it (``_tested_estimators()``: one instance per ``INIT_PARAMS`` entry, plus a
``FrozenEstimator`` which the common tests skip) and fitted once per session on small
deterministic data shaped by its tags (``_enforce_estimator_tags_X``/``_y``: positive X,
categorical X, precomputed kernels and distances, 1-D X, multi-output y, text, dicts, label
sets, images ...), on dense input and, where the ``sparse`` tag allows it, on a CSR matrix
(``<Name>~sparse``).  A composites list adds configurations the plain fits do not reach.

Each ``(estimator, format)`` pair is one test: ``pickle`` protocols 0, 2 and 5 and ``joblib``
plain and compressed with zlib, gzip, bz2, lzma, xz (and lz4 when installed) are written to a
temporary directory and read back with ``safeload.load(path)`` and no ``trusted=``.  The loaded
object must be an exact copy (:func:`_estimators.assert_identical`: same types, same values,
dtypes, shapes, memory order, recursively through every fitted attribute, Cython tree and
generator state) and give identical outputs for every available method among ``predict``,
``predict_proba``, ``predict_log_proba``, ``decision_function``, ``transform``,
``score_samples``, ``kneighbors`` and ``mahalanobis`` (``np.testing.assert_array_equal``).  A
method that raises on the original must raise the same exception after loading.

An ``UntrustedTypesError`` fails the test with the missing names: the default policy misses a
global that real estimators use.

Estimators that fail to fit in scikit-learn 1.9.1 with this data: none (``KNOWN_FIT_FAILURES``
is empty; an estimator that starts failing to fit fails its tests with the fit error).  The data
was chosen so that every instance fits: sparse input is non-negative with no all-zero row
(QuantileTransformer, SpectralBiclustering/SpectralCoclustering refuse negative sparse input or
divide by row sums; with sign-mixed sparse data the PCA pipelines of the Halving searches stop
with "ARPACK error -9: Starting vector is zero").  The global numpy random state is seeded
during each fit so nested estimators without a ``random_state`` are deterministic too.

Estimators without any of the methods above (transductive or fit-only: TSNE, MDS, ClassicalMDS,
SpectralEmbedding, DBSCAN, HDBSCAN, OPTICS, AgglomerativeClustering, SpectralClustering,
SpectralBiclustering, SpectralCoclustering) are compared through their fitted attributes
(``embedding_``, ``labels_``, ``rows_`` ...) only.

Methods random at predict time: none among the plain instances; the composite
``DummyClassifier(strategy="stratified", random_state=RandomState(0))`` draws from its
generator, so its loaded copy must draw exactly what a deep copy of the in-memory one draws.

Methods whose outputs already differ in the last bit after ``pickle.loads`` because a fitted
array is a strided view in memory (``PCA.components_ = Vt[::-1]`` on sparse input): PCA~sparse
and the PCA pipelines of (Halving)GridSearchCV / (Halving)RandomizedSearchCV ~sparse.  Their
expected output is the standard unpickler's (checked to be within 1e-10 of the in-memory one).

Known safeload bugs are strict xfails (``KNOWN_SAFELOAD_BUGS``, with minimal reproductions at the
end of this module).  ``RandomizedSearchCV`` with scipy.stats distributions is refused by design
(``builtins.getattr`` can never be trusted): see
``test_randomized_search_scipy_distributions_are_refused``.
"""

from __future__ import annotations

import functools
import pickle
from typing import Any

import numpy as np
import pytest

import safeload
from safeload import PolicyError, UntrustedTypesError

from ._estimators import (
    FORMATS,
    SEED,
    Case,
    FitCache,
    Fitted,
    all_estimator_cases,
    assert_identical,
    blobs,
    check_outputs,
    dump,
)

pytestmark = pytest.mark.filterwarnings("ignore:Class PassiveAggressive:FutureWarning")

CASES = all_estimator_cases()

#: case id -> why it cannot be fitted in the installed scikit-learn (skipped, with the reason).
KNOWN_FIT_FAILURES: dict[str, str] = {}


#: (case id, format) -> reason: failures of safeload itself, kept as strict xfails.
KNOWN_SAFELOAD_BUGS: dict[tuple[str, str], str] = {}


def _params(cases: Any) -> list[Any]:
    params = []
    for case in cases:
        for fmt in FORMATS:
            bug = KNOWN_SAFELOAD_BUGS.get((case.case_id, fmt))
            marks = [pytest.mark.xfail(strict=True, reason=bug)] if bug else []
            params.append(pytest.param(case, fmt, id=f"{case.case_id}-{fmt}", marks=marks))
    return params


@pytest.fixture(scope="module")
def fit_cache() -> FitCache:
    return FitCache()


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory: pytest.TempPathFactory):
    return tmp_path_factory.mktemp("roundtrip")


def _fitted(cache: FitCache, case: Case) -> Fitted:
    result = cache.get(case)
    if isinstance(result, BaseException):
        if case.case_id in KNOWN_FIT_FAILURES:
            pytest.skip(f"does not fit in this scikit-learn: {KNOWN_FIT_FAILURES[case.case_id]}")
        pytest.fail(f"{case.case_id} failed to fit: {type(result).__name__}: {result}")
    return result


def load_default(path: Any) -> Any:
    """``safeload.load`` with the default policy; a missing trusted name fails the test."""
    try:
        return safeload.load(path)
    except UntrustedTypesError as exc:
        pytest.fail(f"the default policy misses {exc.types}\n{exc}", pytrace=False)


def _round_trip(cache: FitCache, case: Case, fmt: str, out_dir: Any) -> list[str]:
    fitted = _fitted(cache, case)
    path = dump(fitted.estimator, fmt, out_dir / f"{case.case_id}.{fmt}".replace("#", "_"))
    try:
        loaded = load_default(path)
        reference = fitted.estimator
        if (case.case_id, fmt.split("-")[0]) in PLAIN_LOADER_IS_REFERENCE:
            import joblib

            reference = joblib.load(path)  # our own file: what joblib itself gives back
    finally:
        path.unlink()
    assert type(loaded) is type(fitted.estimator)
    assert_identical(reference, loaded, case.case_id)
    return check_outputs(fitted, loaded)


#: (case id, format family) whose in-memory state joblib itself does not restore identically:
#: a ``numpy.matrix`` attribute comes back from joblib 1.6 + numpy 2 as a plain ndarray
#: (``BisectingKMeans`` on sparse X stores ``X.mean(axis=0)``).  safeload must match joblib.
PLAIN_LOADER_IS_REFERENCE = {("BisectingKMeans~sparse", "joblib")}


@pytest.mark.parametrize(("case", "fmt"), _params(CASES))
def test_estimator_round_trip(case, fmt, fit_cache, out_dir):
    _round_trip(fit_cache, case, fmt, out_dir)


def test_cases_cover_all_estimators():
    from sklearn.utils.discovery import all_estimators

    covered = {type(c.estimator) for c in CASES if c.fit is None}
    covered |= {type(c.fit()[0]) for c in CASES if c.fit is not None}
    missing = sorted(name for name, cls in all_estimators() if cls not in covered)
    assert missing == []
    sparse = [c for c in CASES if c.sparse]
    assert len(sparse) > 100


# -- composites -------------------------------------------------------------------------------


def _mixed_frame():
    import pandas as pd

    rng = np.random.RandomState(SEED)
    n = 60
    color = np.array(["red", "green", "blue", "cyan"])[rng.randint(0, 4, n)]
    size = np.array(["S", "M", "L"])[rng.randint(0, 3, n)]
    x = rng.normal(size=n)
    df = pd.DataFrame({"color": color, "x": x, "size": size, "n": rng.randint(0, 9, n)})
    y = ((color == "red") | (x > 0.5)).astype(int)
    return df, y


def _pipeline_scaler_logreg():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = blobs()
    return Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression())]).fit(X, y), X


def _column_transformer_frame():
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    df, y = _mixed_frame()
    ct = ColumnTransformer(
        [
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["color", "size"]),
            ("num", StandardScaler(), ["x", "n"]),
        ]
    )
    return make_pipeline(ct, LogisticRegression()).fit(df, y), df


def _grid_search_svc_f1():
    from sklearn.metrics import f1_score, make_scorer
    from sklearn.model_selection import GridSearchCV
    from sklearn.svm import SVC

    X, y = blobs()
    scoring = make_scorer(f1_score, average="macro")
    return GridSearchCV(SVC(), {"C": [0.1, 1.0]}, scoring=scoring, cv=3).fit(X, y), X


def _randomized_search_scipy():
    from scipy.stats import randint
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import RandomizedSearchCV

    X, y = blobs()
    search = RandomizedSearchCV(
        RandomForestClassifier(random_state=SEED),
        {"n_estimators": randint(2, 5), "max_depth": [2, None]},
        n_iter=2,
        cv=3,
        random_state=SEED,
    )
    return search.fit(X, y), X


def _stacking():
    from sklearn.ensemble import RandomForestClassifier, StackingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import SVC

    X, y = blobs()
    est = StackingClassifier(
        [
            ("lr", LogisticRegression()),
            ("rf", RandomForestClassifier(n_estimators=5, random_state=SEED)),
            ("svc", SVC()),
        ],
        final_estimator=LogisticRegression(C=0.5),
        cv=3,
    )
    return est.fit(X, y), X


def _voting(voting: str):
    from sklearn.ensemble import VotingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neighbors import KNeighborsClassifier

    X, y = blobs()
    est = VotingClassifier(
        [
            ("lr", LogisticRegression()),
            ("nb", GaussianNB()),
            ("knn", KNeighborsClassifier(5)),
        ],
        voting=voting,
    )
    return est.fit(X, y), X


def _calibrated(method: str):
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import LinearSVC

    X, y = blobs()
    return CalibratedClassifierCV(LinearSVC(), method=method, cv=3).fit(X, y), X


def _hgb_categorical_early_stopping():
    from sklearn.ensemble import HistGradientBoostingClassifier

    X, y = blobs(3, 150)
    X = np.c_[X, np.random.RandomState(SEED).randint(0, 5, len(y))]
    est = HistGradientBoostingClassifier(
        categorical_features=[3],
        early_stopping=True,
        n_iter_no_change=2,
        validation_fraction=0.2,
        max_iter=20,
        random_state=SEED,
    )
    return est.fit(X, y), X


def _hgb_categorical_frame():
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier

    df, y = _mixed_frame()
    df = df.assign(color=pd.Categorical(df["color"]), size=pd.Categorical(df["size"]))
    est = HistGradientBoostingClassifier(
        categorical_features="from_dtype", max_iter=10, random_state=SEED
    )
    return est.fit(df, y), df


def _transformed_target():
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.linear_model import LinearRegression

    X, _ = blobs()
    y = np.exp(X @ np.array([0.5, 1.0, -0.5]))
    est = TransformedTargetRegressor(LinearRegression(), func=np.log1p, inverse_func=np.expm1)
    return est.fit(X, y), X


def _select_k_best_chi2():
    from sklearn.feature_selection import SelectKBest, chi2

    X, y = blobs()
    X = np.abs(X)
    return SelectKBest(chi2, k=2).fit(X, y), X


def _select_partial_mutual_info():
    from sklearn.feature_selection import SelectKBest, mutual_info_classif

    X, y = blobs()
    score = functools.partial(
        mutual_info_classif, n_neighbors=3, random_state=np.random.RandomState(SEED)
    )
    return SelectKBest(score, k=2).fit(X, y), X


def _tfidf_linear_svc():
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import LinearSVC

    from ._estimators import DOC_LABELS, DOCS

    pipe = make_pipeline(TfidfVectorizer(ngram_range=(1, 2)), LinearSVC())
    return pipe.fit(DOCS, DOC_LABELS), list(DOCS)


def _knn(algorithm: str, metric: str):
    from sklearn.neighbors import KNeighborsClassifier

    X, y = blobs()
    return KNeighborsClassifier(3, algorithm=algorithm, metric=metric).fit(X, y), X


def _gaussian_process_classifier():
    from sklearn.gaussian_process import GaussianProcessClassifier
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel

    X, y = blobs()
    kernel = ConstantKernel(1.0) * RBF(1.0)
    return GaussianProcessClassifier(kernel, random_state=SEED).fit(X, y), X


def _gaussian_process_regressor():
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

    X, _ = blobs()
    y = np.sin(X[:, 0]) + X[:, 1]
    kernel = ConstantKernel(1.0) * RBF([1.0, 1.0, 1.0]) + WhiteKernel(0.1)
    return GaussianProcessRegressor(kernel, random_state=SEED).fit(X, y), X


def _mlp(solver: str):
    from sklearn.neural_network import MLPClassifier

    X, y = blobs()
    est = MLPClassifier((8,), solver=solver, max_iter=50, random_state=SEED)
    return est.fit(X, y), X


def _isolation_forest():
    from sklearn.ensemble import IsolationForest

    X, _ = blobs()
    return IsolationForest(n_estimators=10, random_state=np.random.RandomState(SEED)).fit(X), X


def _kmeans(kind: str):
    from sklearn.cluster import KMeans, MiniBatchKMeans

    X, _ = blobs()
    rs = np.random.RandomState(SEED)
    if kind == "kmeans":
        est = KMeans(3, n_init=2, random_state=rs)
    else:
        est = MiniBatchKMeans(3, n_init=2, batch_size=20, random_state=rs)
    return est.fit(X), X


def _random_forest_random_state():
    from sklearn.ensemble import RandomForestClassifier

    X, y = blobs()
    rs = np.random.RandomState(np.random.PCG64(SEED))  # a RandomState on another bit generator
    return RandomForestClassifier(n_estimators=5, random_state=rs).fit(X, y), X


def _dummy_stratified_random_state():
    from sklearn.dummy import DummyClassifier

    X, y = blobs()
    est = DummyClassifier(strategy="stratified", random_state=np.random.RandomState(SEED))
    return est.fit(X, y), X


COMPOSITES: dict[str, Any] = {
    "pipeline-scaler-logreg": _pipeline_scaler_logreg,
    "columntransformer-onehot-frame": _column_transformer_frame,
    "gridsearch-svc-f1-scorer": _grid_search_svc_f1,
    "stacking-classifier": _stacking,
    "voting-soft": functools.partial(_voting, "soft"),
    "voting-hard": functools.partial(_voting, "hard"),
    "calibrated-sigmoid": functools.partial(_calibrated, "sigmoid"),
    "calibrated-isotonic": functools.partial(_calibrated, "isotonic"),
    "hgb-categorical-early-stopping": _hgb_categorical_early_stopping,
    "hgb-categorical-frame": _hgb_categorical_frame,
    "ttr-log1p-expm1": _transformed_target,
    "selectkbest-chi2": _select_k_best_chi2,
    "selectkbest-partial-mutual-info": _select_partial_mutual_info,
    "tfidf-linearsvc": _tfidf_linear_svc,
    **{
        f"knn-{algorithm}-{metric}": functools.partial(_knn, algorithm, metric)
        for algorithm in ("brute", "kd_tree", "ball_tree")
        for metric in ("minkowski", "manhattan", "chebyshev")
    },
    "gpc-kernel-product": _gaussian_process_classifier,
    "gpr-kernel-sum-product": _gaussian_process_regressor,
    "mlp-adam": functools.partial(_mlp, "adam"),
    "mlp-sgd": functools.partial(_mlp, "sgd"),
    "isolation-forest-randomstate": _isolation_forest,
    "kmeans-randomstate": functools.partial(_kmeans, "kmeans"),
    "minibatchkmeans-randomstate": functools.partial(_kmeans, "minibatch"),
    "randomforest-randomstate-pcg64": _random_forest_random_state,
    "dummy-stratified-randomstate": _dummy_stratified_random_state,
}

COMPOSITE_CASES = [Case(name, fit=fit) for name, fit in COMPOSITES.items()]


@pytest.mark.parametrize(("case", "fmt"), _params(COMPOSITE_CASES))
def test_composite_round_trip(case, fmt, fit_cache, out_dir):
    checked = _round_trip(fit_cache, case, fmt, out_dir)
    assert checked, f"{case.case_id}: no method was compared"


def test_random_at_predict_time_is_detected(fit_cache):
    fitted = _fitted(
        fit_cache, Case("dummy-stratified-randomstate", fit=_dummy_stratified_random_state)
    )
    assert fitted.random_methods == ["predict", "predict_proba", "predict_log_proba"]


def _generator_bundle() -> dict[str, Any]:
    from sklearn.cluster import KMeans

    X, _ = blobs()
    kmeans = KMeans(3, n_init=2, random_state=np.random.RandomState(SEED)).fit(X)
    return {
        "model": kmeans,
        "X": X,
        "default_rng": np.random.default_rng(SEED),
        "randomstate-pcg64": np.random.RandomState(np.random.PCG64(SEED)),
        "bit_generators": [
            cls(SEED)
            for cls in (
                np.random.MT19937,
                np.random.PCG64,
                np.random.PCG64DXSM,
                np.random.Philox,
                np.random.SFC64,
            )
        ],
        "generators": [np.random.Generator(np.random.Philox(SEED)), np.random.default_rng(1)],
    }


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_numpy_generators_round_trip(fmt, tmp_path):
    """``np.random.default_rng()`` and friends: scikit-learn refuses a ``Generator`` as
    ``random_state`` (only ``RandomState``), so they reach model files next to the estimator, as
    in this bundle.  The loaded generators must continue the exact same streams."""
    import copy

    bundle = _generator_bundle()
    twin = copy.deepcopy(bundle)
    loaded = load_default(dump(bundle, fmt, tmp_path / "bundle.bin"))
    assert_identical(bundle, loaded)
    np.testing.assert_array_equal(
        loaded["model"].predict(twin["X"]), twin["model"].predict(twin["X"])
    )
    for key in ("default_rng", "randomstate-pcg64"):
        np.testing.assert_array_equal(loaded[key].random(8), twin[key].random(8))
    for got, want in zip(loaded["bit_generators"], twin["bit_generators"], strict=True):
        np.testing.assert_array_equal(got.random_raw(8), want.random_raw(8))
    for got, want in zip(loaded["generators"], twin["generators"], strict=True):
        np.testing.assert_array_equal(got.integers(0, 1000, 8), want.integers(0, 1000, 8))


def others_names() -> list[str]:
    return [
        "numpy.vectorize",
        "scipy.stats._discrete_distns.randint_gen",
        "scipy.stats._distn_infrastructure.rv_discrete_frozen",
    ]


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_randomized_search_scipy_distributions_are_refused(fmt, tmp_path):
    """``RandomizedSearchCV`` keeps its ``param_distributions``: a frozen scipy distribution
    pickles its generator class, ``numpy.vectorize`` and bound methods through ``getattr``.
    The default policy refuses the file with an ``UntrustedTypesError`` naming all of them, and
    ``getattr`` can never be trusted (it reaches any attribute), so no ``trusted=`` opens it."""
    est, _ = _randomized_search_scipy()
    if FORMATS[fmt][0] == "safeload":
        # the safe format refuses at dump time: every file dump writes loads back
        with pytest.raises(UntrustedTypesError) as info:
            dump(est, fmt, tmp_path / "search.bin")
        assert info.value.types == sorted(["builtins.getattr", *others_names()])
        assert not (tmp_path / "search.bin").exists()
        assert list(tmp_path.iterdir()) == []
        return
    path = dump(est, fmt, tmp_path / "search.bin")
    getattr_name = (
        "__builtin__.getattr" if fmt in ("pickle-p0", "pickle-p2") else "builtins.getattr"
    )
    others = [
        "numpy.vectorize",
        "scipy.stats._discrete_distns.randint_gen",
        "scipy.stats._distn_infrastructure.rv_discrete_frozen",
    ]
    with pytest.raises(UntrustedTypesError) as info:
        safeload.load(path)
    assert info.value.types == sorted([getattr_name, *others])
    assert info.value.reasons[getattr_name].startswith("dangerous")
    for name in others:
        assert info.value.reasons[name] == "not in the trusted types of the policy"
    # trusting the three harmless names leaves getattr, which cannot be trusted explicitly
    with pytest.raises(UntrustedTypesError) as info:
        safeload.load(path, trusted=others)
    assert info.value.types == [getattr_name]
    with pytest.raises(PolicyError):
        safeload.load(path, trusted=[*others, "builtins.getattr"])


def test_randomized_search_with_lists_loads(tmp_path):
    """The same search with plain lists instead of scipy distributions loads and predicts."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import RandomizedSearchCV

    X, y = blobs()
    search = RandomizedSearchCV(
        RandomForestClassifier(random_state=SEED),
        {"n_estimators": [2, 3, 4], "max_depth": [2, None]},
        n_iter=2,
        cv=3,
        random_state=SEED,
    ).fit(X, y)
    loaded = load_default(dump(search, "joblib-zlib", tmp_path / "search.joblib"))
    assert_identical(search, loaded)
    np.testing.assert_array_equal(loaded.predict_proba(X), search.predict_proba(X))


# -- regression tests for two bugs this module found (joblib matrix, protocol-5 axis order) ---


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
def test_joblib_numpy_matrix(tmp_path):
    import joblib

    m = np.matrix([[1.0, 2.0, 3.0]])
    joblib.dump(m, tmp_path / "m.joblib")
    loaded = safeload.load(tmp_path / "m.joblib")
    # joblib 1.6 with numpy 2 returns a plain ndarray for a matrix (no __array_prepare__)
    assert type(loaded) is type(joblib.load(tmp_path / "m.joblib")) is np.ndarray
    np.testing.assert_array_equal(loaded, np.asarray(m), strict=True)


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
def test_pickle_numpy_matrix():
    m = np.matrix([[1.0, 2.0, 3.0]])
    for protocol in (0, 2, 5):
        loaded = safeload.loads(pickle.dumps(m, protocol=protocol))
        assert type(loaded) is np.matrix
        np.testing.assert_array_equal(loaded, m, strict=True)


def test_pickle5_axes_permuted_array():
    a = np.arange(24.0).reshape(2, 3, 4).transpose(1, 0, 2)
    assert a.__reduce_ex__(5)[1][3:] == ("K", (1, 0, 2))  # the 5-argument form
    loaded = safeload.loads(pickle.dumps(a, protocol=5))
    np.testing.assert_array_equal(loaded, a, strict=True)


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_axes_permuted_array_below_protocol_5(protocol):
    a = np.arange(24.0).reshape(2, 3, 4).transpose(1, 0, 2)
    np.testing.assert_array_equal(safeload.loads(pickle.dumps(a, protocol=protocol)), a)


# -- the comparison helper itself -------------------------------------------------------------


def _mutations():
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.tree import DecisionTreeClassifier

    X, y = blobs()

    def tree_threshold(est):
        state = est.tree_.__getstate__()
        state["nodes"]["threshold"][0] = np.nextafter(state["nodes"]["threshold"][0], np.inf)
        est.tree_.__setstate__(state)

    def coef_one_ulp(est):
        est.coef_[0, 0] = np.nextafter(est.coef_[0, 0], np.inf)

    def coef_dtype(est):
        est.coef_ = est.coef_.astype(np.float32).astype(np.float64).astype(np.longdouble)

    def coef_fortran_lost(est):
        est.coef_ = np.ascontiguousarray(est.coef_)

    def classes_dtype(est):
        est.classes_ = est.classes_.astype(np.int32)

    def kd_tree_index(est):
        state = list(est._tree.__getstate__())
        state[1] = state[1][::-1].copy()  # idx_array
        est._tree.__setstate__(tuple(state))

    def random_state_advanced(est):
        est.random_state.random_sample()

    def nan_vs_number(est):
        est.intercept_ = est.intercept_.copy()
        est.intercept_[0] = np.nan

    def extra_attribute(est):
        est.extra_ = 1

    fortran = LogisticRegression().fit(X, y)
    fortran.coef_ = np.asfortranarray(fortran.coef_)
    return {
        "tree-threshold": (DecisionTreeClassifier(random_state=SEED).fit(X, y), tree_threshold),
        "coef-one-ulp": (LogisticRegression().fit(X, y), coef_one_ulp),
        "coef-dtype": (LogisticRegression().fit(X, y), coef_dtype),
        "fortran-order-lost": (fortran, coef_fortran_lost),
        "classes-dtype": (LogisticRegression().fit(X, y), classes_dtype),
        "kd-tree-index": (KNeighborsClassifier(algorithm="kd_tree").fit(X, y), kd_tree_index),
        "random-state": (
            DecisionTreeClassifier(random_state=np.random.RandomState(0)).fit(X, y),
            random_state_advanced,
        ),
        "nan": (LogisticRegression().fit(X, y), nan_vs_number),
        "extra-attribute": (LogisticRegression().fit(X, y), extra_attribute),
    }


@pytest.mark.parametrize("name", list(_mutations()))
def test_assert_identical_detects(name):
    est, mutate = _mutations()[name]
    copy_ = pickle.loads(pickle.dumps(est, protocol=5))
    assert_identical(est, copy_)
    mutate(copy_)
    with pytest.raises(AssertionError):
        assert_identical(est, copy_)


def test_assert_identical_nan_equals_nan():
    a = {"x": np.array([np.nan, 1.0]), "y": float("nan"), "z": [np.float64("nan")]}
    assert_identical(a, pickle.loads(pickle.dumps(a)))
