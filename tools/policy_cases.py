"""The objects ``tools/gen_policy.py`` pickles to find the globals real models reference.

Three families, all deterministic (fixed seeds, fixed data):

* :func:`estimator_cases` - every ``all_estimators()`` class, constructed the way scikit-learn's
  common tests construct it (``_tested_estimators``: one instance per ``INIT_PARAMS`` entry),
  fitted like ``check_estimators_pickle`` on small blobs: dense binary, dense multiclass (for
  multiclass classifiers) and CSR input (where the ``sparse`` tag allows it);
* :func:`composite_cases` - pipelines, searches and configurations that reach internal types the
  plain fits do not (every boosting loss, every neighbours algorithm and metric, every MLP
  solver, kernels, scorers, categorical features, string columns, ...);
* :func:`reference_cases` - values a fitted model holds when the *user's* input or parameters
  have that type: every scipy.sparse format, every numpy random generator, numpy scalar types
  passed as ``dtype=``, scorer objects, CV splitters, distance metrics, loss objects.

A case that fails to build stops the generator (exit 2): coverage is never lost silently.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import numpy as np
import scipy.sparse as sp
from policy_harvest import Case

SEED = 0

# Small text corpus for vectorizers (two classes, repeated words so min_df/max_df do something).
DOCS = [
    "the cat sat on the mat",
    "the dog ate my homework",
    "a cat and a dog are friends",
    "my homework is on the mat",
    "dogs and cats sit on mats",
    "the friend ate the cat food",
] * 3
DOC_LABELS = np.array([0, 1, 0, 1, 0, 1] * 3)

# Distance metrics defined on boolean data.
BOOLEAN_METRICS = {
    "dice", "hamming", "jaccard", "kulsinski", "matching", "rogerstanimoto", "russellrao",
    "sokalmichener", "sokalsneath",
}  # fmt: skip


# -- data -------------------------------------------------------------------------------------
def blobs(n_classes: int = 3, n_samples: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Well-separated 3-feature blobs, as in ``check_estimators_pickle`` (one more feature).

    Returns
    -------
    X : ndarray of shape (n_samples, 3), float64
    y : ndarray of shape (n_samples,), int
    """
    from sklearn.datasets import make_blobs

    centers = [[0, 0, 0], [1, 1, 1], [0, 2, 0]][:n_classes]
    return make_blobs(
        n_samples=n_samples, centers=centers, n_features=3, random_state=SEED, cluster_std=0.3
    )


def regression_data(positive: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Blobs with a continuous target (strictly positive if asked)."""
    X, y = blobs(3, 60)
    y = X @ np.array([1.0, 2.0, -1.0]) + 0.1 * np.sin(np.arange(len(y)))
    if positive:
        y = np.exp(y / 4)
    return X, y


def mixed_table() -> tuple[np.ndarray, np.ndarray]:
    """Object array with a string column, a numeric column and a second string column."""
    rng = np.random.RandomState(SEED)
    n = 40
    colors = np.array(["red", "green", "blue", "cyan"])[rng.randint(0, 4, n)]
    sizes = np.array(["S", "M", "L"])[rng.randint(0, 3, n)]
    X = np.empty((n, 3), dtype=object)
    X[:, 0] = colors
    X[:, 1] = rng.normal(size=n)
    X[:, 2] = sizes
    y = (colors == "red").astype(int) | (X[:, 1] > 0).astype(int)
    return X, y


# -- estimators as the common tests build them ------------------------------------------------
def _fit_like_common_tests(estimator: Any, n_classes: int, sparse: bool) -> Any:
    """Fit a clone of ``estimator`` on data shaped by its tags (``check_estimators_pickle``)."""
    from sklearn.base import clone, is_classifier, is_regressor
    from sklearn.metrics.pairwise import rbf_kernel
    from sklearn.utils import get_tags
    from sklearn.utils._testing import set_random_state
    from sklearn.utils.estimator_checks import (
        _enforce_estimator_tags_X,
        _enforce_estimator_tags_y,
    )

    est = clone(estimator)
    set_random_state(est)
    tags = get_tags(est)
    X, y = blobs(n_classes)
    if tags.input_tags.string and not tags.input_tags.two_d_array:
        return est.fit(DOCS, DOC_LABELS)
    if tags.input_tags.dict:
        return est.fit([{"a": float(r[0]), "b": "x" if r[1] > 0.5 else "y"} for r in X], y)
    if tags.target_tags.one_d_labels:
        return est.fit(y)
    if tags.target_tags.two_d_labels:
        return est.fit([{int(v), int(v) + 1} for v in y])
    X = _enforce_estimator_tags_X(est, X, kernel=rbf_kernel)
    if is_regressor(est) and not is_classifier(est):
        y = y.astype(np.float64) + 0.1 * np.arange(len(y)) / len(y)
    y = _enforce_estimator_tags_y(est, y)
    if sparse:
        X = sp.csr_matrix(np.abs(X))
    return est.fit(X, y)


def estimator_cases() -> Iterator[Case]:
    """One case per ``_tested_estimators()`` instance and input kind.

    Yields
    ------
    Case
        ``Name`` (binary / default), ``Name~multiclass`` (multiclass classifiers) and
        ``Name~sparse`` (CSR input); ``Name#2`` ... for further ``INIT_PARAMS`` entries.
    """
    from sklearn.base import is_classifier
    from sklearn.utils import get_tags
    from sklearn.utils._test_common.instance_generator import _tested_estimators

    counts: dict[str, int] = defaultdict(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        instances = list(_tested_estimators())
    for est in instances:
        name = type(est).__name__
        counts[name] += 1
        label = name if counts[name] == 1 else f"{name}#{counts[name]}"
        tags = get_tags(est)
        yield Case(label, lambda e=est: _fit_like_common_tests(e, 2, False))
        if is_classifier(est) and tags.classifier_tags.multi_class:
            yield Case(f"{label}~multiclass", lambda e=est: _fit_like_common_tests(e, 3, False))
        if tags.input_tags.sparse:
            yield Case(f"{label}~sparse", lambda e=est: _fit_like_common_tests(e, 3, True))


# -- composites -------------------------------------------------------------------------------
def _clf(est: Any, n_classes: int = 3) -> Any:
    X, y = blobs(n_classes, 60)
    return est.fit(X, y)


def _reg(est: Any, positive: bool = False) -> Any:
    X, y = regression_data(positive)
    return est.fit(X, y)


def _column_transformer() -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    X, y = mixed_table()
    ct = ColumnTransformer(
        [
            ("onehot", OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=3), [0]),
            ("num", StandardScaler(), [1]),
            ("ord", OrdinalEncoder(), slice(2, 3)),
        ],
        remainder="drop",
    )
    return Pipeline([("prep", ct), ("clf", LogisticRegression())]).fit(X, y)


def _column_transformer_dataframe() -> Any:
    import pandas as pd
    from sklearn.compose import ColumnTransformer, make_column_selector
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    X, y = mixed_table()
    df = pd.DataFrame({"color": X[:, 0], "x": X[:, 1].astype(float), "size": X[:, 2]})
    ct = ColumnTransformer(
        [
            ("cat", OneHotEncoder(sparse_output=False), make_column_selector(dtype_include=object)),
            ("num", StandardScaler(), make_column_selector(dtype_include=np.number)),
        ],
        remainder="passthrough",
    )
    return make_pipeline(ct, RandomForestClassifier(n_estimators=3, random_state=SEED)).fit(df, y)


def _hgb_categorical_dataframe() -> Any:
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier

    X, y = mixed_table()
    df = pd.DataFrame(
        {"color": pd.Categorical(X[:, 0]), "x": X[:, 1].astype(float)},
    )
    return HistGradientBoostingClassifier(
        categorical_features="from_dtype", max_iter=5, random_state=SEED
    ).fit(df, y)


def _hgb_categorical_early_stopping(n_classes: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.RandomState(SEED)
    X, y = blobs(n_classes, 120)
    X = np.c_[X, rng.randint(0, 4, len(y))]
    return HistGradientBoostingClassifier(
        categorical_features=[3],
        early_stopping=True,
        n_iter_no_change=2,
        validation_fraction=0.2,
        scoring="loss",
        max_iter=10,
        random_state=SEED,
    ).fit(X, y)


def _search(kind: str) -> Any:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import fbeta_score, make_scorer
    from sklearn.model_selection import GridSearchCV, RandomizedSearchCV, StratifiedKFold
    from sklearn.svm import SVC

    if kind == "grid":
        search = GridSearchCV(SVC(), {"C": [0.1, 1.0]}, cv=3)
    elif kind == "scorer":
        search = GridSearchCV(
            SVC(), {"C": [0.1, 1.0]}, scoring=make_scorer(fbeta_score, beta=2, average="macro")
        )
    elif kind == "multimetric":
        search = GridSearchCV(
            SVC(probability=True, random_state=SEED),
            {"C": [0.1, 1.0]},
            scoring={"acc": "accuracy", "f1": "f1_macro", "ll": "neg_log_loss"},
            refit="acc",
            cv=StratifiedKFold(3, shuffle=True, random_state=SEED),
        )
    elif kind == "randomized-lists":
        search = RandomizedSearchCV(
            RandomForestClassifier(random_state=SEED),
            {"n_estimators": [2, 3, 4], "max_depth": [2, None]},
            n_iter=2,
            random_state=SEED,
        )
    else:  # "randomized-scipy": scipy.stats distributions in param_distributions
        from scipy.stats import randint, reciprocal

        search = RandomizedSearchCV(
            RandomForestClassifier(random_state=SEED),
            {"n_estimators": randint(2, 5), "min_impurity_decrease": reciprocal(1e-4, 1e-2)},
            n_iter=2,
            random_state=SEED,
        )
    return _clf(search)


def _halving_search() -> Any:
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401
    from sklearn.model_selection import HalvingGridSearchCV
    from sklearn.tree import DecisionTreeClassifier

    return _clf(
        HalvingGridSearchCV(DecisionTreeClassifier(random_state=SEED), {"max_depth": [1, 2]})
    )


def _stacking_voting(kind: str) -> Any:
    from sklearn.ensemble import (
        RandomForestClassifier,
        RandomForestRegressor,
        StackingClassifier,
        StackingRegressor,
        VotingClassifier,
        VotingRegressor,
    )
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.neighbors import KNeighborsRegressor
    from sklearn.svm import SVC

    rf = RandomForestClassifier(n_estimators=3, random_state=SEED)
    if kind == "stacking-clf":
        return _clf(StackingClassifier([("lr", LogisticRegression()), ("rf", rf), ("svc", SVC())]))
    if kind == "voting-clf":
        svc = SVC(probability=True, random_state=SEED)
        return _clf(VotingClassifier([("lr", LogisticRegression()), ("svc", svc)], voting="soft"))
    rfr = RandomForestRegressor(n_estimators=3, random_state=SEED)
    estimators = [("lr", LinearRegression()), ("rf", rfr), ("knn", KNeighborsRegressor(3))]
    if kind == "stacking-reg":
        return _reg(StackingRegressor(estimators))
    return _reg(VotingRegressor(estimators))


def _calibrated(method: str, ensemble: bool) -> Any:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import LinearSVC

    return _clf(CalibratedClassifierCV(LinearSVC(), method=method, ensemble=ensemble, cv=3))


def _hgb_regressor(loss: str) -> Any:
    from sklearn.ensemble import HistGradientBoostingRegressor

    quantile = 0.8 if loss == "quantile" else None
    est = HistGradientBoostingRegressor(loss=loss, quantile=quantile, max_iter=5, random_state=SEED)
    return _reg(est, positive=loss in ("gamma", "poisson"))


def _gb(kind: str, loss: str, n_classes: int = 2) -> Any:
    from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor

    if kind == "clf":
        est = GradientBoostingClassifier(loss=loss, n_estimators=5, random_state=SEED)
        return _clf(est, n_classes)
    est = GradientBoostingRegressor(loss=loss, n_estimators=5, random_state=SEED)
    return _reg(est)


def _text(kind: str) -> Any:
    from sklearn.feature_extraction.text import (
        CountVectorizer,
        HashingVectorizer,
        TfidfTransformer,
        TfidfVectorizer,
    )
    from sklearn.linear_model import SGDClassifier
    from sklearn.naive_bayes import MultinomialNB
    from sklearn.pipeline import make_pipeline

    if kind == "tfidf-nb":
        pipe = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=1), MultinomialNB())
    elif kind == "count-tfidf":
        pipe = make_pipeline(CountVectorizer(max_features=10), TfidfTransformer(), MultinomialNB())
    else:
        pipe = make_pipeline(HashingVectorizer(n_features=64), SGDClassifier(random_state=SEED))
    return pipe.fit(DOCS, DOC_LABELS)


def _select(score_func_name: str) -> Any:
    import sklearn.feature_selection as fs

    func = getattr(fs, score_func_name)
    if score_func_name in ("f_regression", "mutual_info_regression", "r_regression"):
        return _reg(fs.SelectKBest(func, k=2))
    X, y = blobs(3, 60)
    if score_func_name == "chi2":
        X = np.abs(X)
    return fs.SelectKBest(func, k=2).fit(X, y)


def _target_transforms(kind: str) -> Any:
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    if kind == "ttr-log":
        ttr = TransformedTargetRegressor(LinearRegression(), func=np.log, inverse_func=np.exp)
        return _reg(ttr, positive=True)
    ft = FunctionTransformer(np.log1p, inverse_func=np.expm1)
    X, y = regression_data()
    return make_pipeline(ft, LinearRegression()).fit(np.abs(X), y)


def _kernels() -> list[Any]:
    from sklearn.gaussian_process import kernels as k

    return [
        k.ConstantKernel(1.0) * k.RBF(1.0) + k.WhiteKernel(0.1),
        k.Matern(length_scale=1.0, nu=1.5),
        k.RationalQuadratic(),
        k.ExpSineSquared() + k.WhiteKernel(0.5),
        k.DotProduct() ** 2,
        k.PairwiseKernel(metric="laplacian"),
        k.RBF([1.0, 1.0, 1.0]),
    ]


def _gaussian_process(kind: str, kernel_index: int) -> Any:
    from sklearn.gaussian_process import GaussianProcessClassifier, GaussianProcessRegressor

    kernel = _kernels()[kernel_index]
    if kind == "gpr":
        X, y = regression_data()
        est = GaussianProcessRegressor(kernel, alpha=1e-2)
    else:
        X, y = blobs(3, 60)
        est = GaussianProcessClassifier(kernel, max_iter_predict=5)
    if kernel_index == 3:
        X = X[:, :1]  # the periodic kernel is positive definite on 1-d inputs only
    return est.fit(X, y)


def _metric_data(metric: str) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    X, y = blobs(3, 30)
    params: dict[str, Any] = {}
    if metric in BOOLEAN_METRICS:
        X = X > 0.5
    elif metric == "haversine":
        X = X[:, :2] / 3
    elif metric == "seuclidean":
        params = {"V": np.var(X, axis=0) + 0.1}
    elif metric == "mahalanobis":
        params = {"VI": np.eye(X.shape[1])}
    elif metric in ("minkowski", "p"):
        params = {"p": 3}
    return X, y, params


def _knn(algorithm: str, metric: str) -> Any:
    from sklearn.neighbors import KNeighborsClassifier

    X, y, params = _metric_data(metric)
    knn = KNeighborsClassifier(3, algorithm=algorithm, metric=metric, metric_params=params or None)
    return knn.fit(X, y)


def _mlp(kind: str, solver: str) -> Any:
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    opts = dict(solver=solver, hidden_layer_sizes=(4,), max_iter=20, random_state=SEED)
    if kind == "clf":
        return _clf(MLPClassifier(early_stopping=solver != "lbfgs", **opts))
    return _reg(MLPRegressor(**opts))


def _sgd(kind: str, loss: str) -> Any:
    from sklearn.linear_model import SGDClassifier, SGDRegressor

    if kind == "clf":
        return _clf(SGDClassifier(loss=loss, max_iter=5, tol=None, random_state=SEED))
    return _reg(SGDRegressor(loss=loss, max_iter=5, tol=None, random_state=SEED))


def _glm(power: float, link: str) -> Any:
    from sklearn.linear_model import TweedieRegressor

    return _reg(TweedieRegressor(power=power, link=link, max_iter=50), positive=True)


def _misc_estimators() -> dict[str, tuple[Any, str]]:
    """Further configurations: label -> (unfitted estimator, data kind for :func:`_fit_misc`)."""
    from sklearn import cluster, ensemble, impute, linear_model, multiclass, pipeline
    from sklearn import preprocessing as pre
    from sklearn.decomposition import PCA
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401
    from sklearn.feature_selection import SelectKBest
    from sklearn.svm import SVC, LinearSVC

    rs = dict(random_state=SEED)
    lr_pipe = pipeline.make_pipeline(pre.StandardScaler(), linear_model.LogisticRegression())
    passthrough = [("skip", "passthrough"), ("clf", linear_model.RidgeClassifier())]
    rf = ensemble.RandomForestClassifier(3, max_samples=0.5, random_state=np.random.RandomState(0))
    return {
        "Pipeline(StandardScaler,LogisticRegression)": (lr_pipe, "clf"),
        "Pipeline(passthrough step)": (pipeline.Pipeline(passthrough), "clf"),
        "FeatureUnion(PCA,SelectKBest)": (pipeline.make_union(PCA(2), SelectKBest(k=1)), "clf"),
        "KMeans(elkan)": (cluster.KMeans(3, algorithm="elkan", n_init=2, **rs), "X"),
        "MiniBatchKMeans": (cluster.MiniBatchKMeans(3, n_init=2, **rs), "X"),
        "BisectingKMeans(largest_cluster)": (
            cluster.BisectingKMeans(3, bisecting_strategy="largest_cluster", **rs),
            "X",
        ),
        "IsolationForest": (ensemble.IsolationForest(n_estimators=3, **rs), "X"),
        "RandomForest(random_state=RandomState)": (rf, "clf"),
        "ExtraTrees(oob)": (
            ensemble.ExtraTreesClassifier(3, bootstrap=True, oob_score=True, **rs),
            "clf",
        ),
        "AdaBoostClassifier(DecisionTree)": (
            ensemble.AdaBoostClassifier(n_estimators=3, **rs),
            "clf",
        ),
        "SVC(probability)": (SVC(probability=True, **rs), "clf"),
        "SVC on csr_matrix": (SVC(), "csr_matrix"),
        "SVC on csr_array": (SVC(), "csr_array"),
        "OneVsRestClassifier(LinearSVC)": (multiclass.OneVsRestClassifier(LinearSVC()), "clf"),
        "LogisticRegressionCV": (linear_model.LogisticRegressionCV(cv=3), "clf"),
        "IterativeImputer": (impute.IterativeImputer(max_iter=2, **rs), "X-nan"),
        "KNNImputer": (impute.KNNImputer(), "X-nan"),
        "SimpleImputer(most_frequent, strings)": (
            impute.SimpleImputer(strategy="most_frequent"),
            "strings",
        ),
        "TargetEncoder(strings)": (pre.TargetEncoder(**rs), "strings-y"),
        "OneHotEncoder(drop=first, sparse)": (pre.OneHotEncoder(drop="first"), "strings"),
        "LabelEncoder(strings)": (pre.LabelEncoder(), "labels"),
        "KBinsDiscretizer(onehot, kmeans)": (pre.KBinsDiscretizer(3, strategy="kmeans"), "X"),
        "SplineTransformer(periodic)": (pre.SplineTransformer(extrapolation="periodic"), "X"),
        "PowerTransformer(box-cox)": (pre.PowerTransformer("box-cox"), "X-positive"),
    }


def _fit_misc(label: str) -> Any:
    """Fit one entry of :func:`_misc_estimators` on the data its kind names."""
    est, kind = _misc_estimators()[label]
    X, y = blobs(3, 60)
    strings, string_y = mixed_table()
    data = {
        "clf": (X, y),
        "X": (X,),
        "X-nan": (np.where(X > 1.5, np.nan, X),),
        "X-positive": (np.abs(X) + 1,),
        "csr_matrix": (sp.csr_matrix(X), y),
        "csr_array": (sp.csr_array(X), y),
        "strings": (strings[:, [0, 2]],),
        "strings-y": (strings[:, [0, 2]], string_y),
        "labels": (strings[:, 0],),
    }
    return est.fit(*data[kind])


def composite_cases() -> Iterator[Case]:
    """Composites and configurations beyond the default instances.

    Yields
    ------
    Case
    """
    from sklearn.neighbors import VALID_METRICS, BallTree, KDTree

    yield Case("ColumnTransformer(OneHotEncoder on strings)+LR", _column_transformer)
    yield Case(
        "ColumnTransformer(make_column_selector, DataFrame)+RF", _column_transformer_dataframe
    )
    yield Case("HGBClassifier(categorical from_dtype, DataFrame)", _hgb_categorical_dataframe)
    for n in (2, 3):
        yield Case(
            f"HGBClassifier(categorical, early_stopping, {n} classes)",
            lambda n=n: _hgb_categorical_early_stopping(n),
        )
    for kind in ("grid", "scorer", "multimetric", "randomized-lists", "randomized-scipy"):
        yield Case(f"Search({kind})", lambda kind=kind: _search(kind))
    yield Case("HalvingGridSearchCV(DecisionTree)", _halving_search)
    for kind in ("stacking-clf", "voting-clf", "stacking-reg", "voting-reg"):
        yield Case(f"Ensemble({kind})", lambda kind=kind: _stacking_voting(kind))
    for method in ("sigmoid", "isotonic", "temperature"):
        for ensemble in (True, False):
            yield Case(
                f"CalibratedClassifierCV({method}, ensemble={ensemble})",
                lambda m=method, e=ensemble: _calibrated(m, e),
            )
    for loss in ("squared_error", "absolute_error", "gamma", "poisson", "quantile"):
        yield Case(f"HGBRegressor(loss={loss})", lambda loss=loss: _hgb_regressor(loss))
    yield Case("GBClassifier(log_loss, binary)", lambda: _gb("clf", "log_loss", 2))
    yield Case("GBClassifier(log_loss, multiclass)", lambda: _gb("clf", "log_loss", 3))
    yield Case("GBClassifier(exponential)", lambda: _gb("clf", "exponential", 2))
    for loss in ("squared_error", "absolute_error", "huber", "quantile"):
        yield Case(f"GBRegressor(loss={loss})", lambda loss=loss: _gb("reg", loss))
    for kind in ("tfidf-nb", "count-tfidf", "hashing-sgd"):
        yield Case(f"Text({kind})", lambda kind=kind: _text(kind))
    for name in (
        "f_classif", "chi2", "mutual_info_classif", "f_regression", "mutual_info_regression",
        "r_regression",
    ):  # fmt: skip
        yield Case(f"SelectKBest({name})", lambda name=name: _select(name))
    for kind in ("ttr-log", "function-transformer-log1p"):
        yield Case(f"TargetTransform({kind})", lambda kind=kind: _target_transforms(kind))
    for kind in ("gpr", "gpc"):
        for i in range(len(_kernels())):
            yield Case(
                f"GaussianProcess({kind}, kernel {i})", lambda k=kind, i=i: _gaussian_process(k, i)
            )
    valid = {
        "ball_tree": [m for m in BallTree.valid_metrics if m != "pyfunc"],
        "kd_tree": KDTree.valid_metrics,
        "brute": [m for m in BallTree.valid_metrics if m in VALID_METRICS["brute"]] + ["cosine"],
    }
    for algorithm, metrics in valid.items():
        for metric in metrics:
            yield Case(f"KNN({algorithm}, {metric})", lambda a=algorithm, m=metric: _knn(a, m))
    for kind in ("clf", "reg"):
        for solver in ("lbfgs", "sgd", "adam"):
            yield Case(f"MLP({kind}, {solver})", lambda k=kind, s=solver: _mlp(k, s))
    from sklearn.linear_model import SGDClassifier, SGDRegressor

    for loss in SGDClassifier.loss_functions:
        yield Case(f"SGDClassifier(loss={loss})", lambda loss=loss: _sgd("clf", loss))
    for loss in SGDRegressor.loss_functions:
        yield Case(f"SGDRegressor(loss={loss})", lambda loss=loss: _sgd("reg", loss))
    for power, link in (
        (0, "identity"),
        (1, "log"),
        (1.5, "log"),
        (2, "log"),
        (3, "log"),
        (0, "log"),
    ):
        yield Case(
            f"TweedieRegressor(power={power}, link={link})", lambda p=power, lk=link: _glm(p, lk)
        )
    for label in _misc_estimators():
        yield Case(label, lambda label=label: _fit_misc(label))


# -- reference objects ------------------------------------------------------------------------
def _sparse_formats() -> list[Any]:
    dense = np.array([[0.0, 1.0, 0.0, 2.0], [3.0, 0.0, 0.0, 4.0]])
    out = []
    for fmt in ("csr", "csc", "coo", "bsr", "dia", "lil", "dok"):
        out.append(getattr(sp, f"{fmt}_matrix")(dense))
        out.append(getattr(sp, f"{fmt}_array")(dense))
    return out


def _random_generators() -> list[Any]:
    bit_generators = [
        np.random.MT19937, np.random.PCG64, np.random.PCG64DXSM, np.random.Philox, np.random.SFC64,
    ]  # fmt: skip
    out: list[Any] = [np.random.RandomState(SEED), np.random.default_rng(SEED)]
    for bg in bit_generators:
        out += [bg(SEED), np.random.Generator(bg(SEED)), np.random.RandomState(bg(SEED))]
    out.append(np.random.SeedSequence(SEED))
    return out


def _numpy_values() -> list[Any]:
    """Scalar types users pass as ``dtype=``, scalars of every kind, odd array flavours."""
    types = [
        np.float64, np.float32, np.float16, np.longdouble, np.complex128, np.complex64,
        np.int64, np.int32, np.int16, np.int8, np.uint64, np.uint32, np.uint16, np.uint8,
        np.bool_, np.str_, np.bytes_, np.datetime64, np.timedelta64,
        np.number, np.integer, np.floating, np.signedinteger, np.unsignedinteger,
        np.complexfloating, np.inexact, np.generic,
    ]  # fmt: skip
    scalars = [t(1) for t in types[:15]] + [np.str_("a"), np.bytes_(b"a")]
    scalars += [np.datetime64("2020-01-01"), np.timedelta64(1, "D")]
    arrays = [
        np.zeros((2, 2), dtype=[("a", "<f8"), ("b", "<i4")]),
        np.array(["a", "bc"]),
        np.array([b"a", b"bc"]),
        np.array([1, "a", None], dtype=object),
        np.asfortranarray(np.ones((2, 3))),
        np.ones((2, 3))[:, ::2],
        np.ones(3, dtype=">f8"),
        np.ma.masked_array([1.0, 2.0], mask=[True, False]),
        np.asmatrix(np.eye(2)),
        np.array("2020-01-01", dtype="datetime64[D]"),
    ]
    return [types, scalars, arrays, [np.dtype(t) for t in ("f8", "i4", "O", "U3", "S2", "?")]]


def _scorers() -> list[Any]:
    from sklearn.metrics import get_scorer, get_scorer_names

    return [get_scorer(name) for name in sorted(get_scorer_names())]


def _cv_splitters() -> list[Any]:
    import sklearn.model_selection as ms

    return [
        ms.KFold(3), ms.StratifiedKFold(3, shuffle=True, random_state=SEED), ms.GroupKFold(3),
        ms.StratifiedGroupKFold(3), ms.ShuffleSplit(3, random_state=SEED),
        ms.StratifiedShuffleSplit(3, random_state=SEED), ms.GroupShuffleSplit(3),
        ms.LeaveOneOut(), ms.LeavePOut(2), ms.LeaveOneGroupOut(), ms.LeavePGroupsOut(2),
        ms.RepeatedKFold(n_splits=2, n_repeats=2), ms.RepeatedStratifiedKFold(n_splits=2),
        ms.TimeSeriesSplit(3), ms.PredefinedSplit([0, 1, 0, 1]),
        ms.check_cv([(np.array([0, 1]), np.array([2, 3]))]),
    ]  # fmt: skip


def _distance_metrics() -> list[Any]:
    from sklearn.metrics import DistanceMetric
    from sklearn.neighbors import BallTree

    out = []
    for metric in BallTree.valid_metrics:
        if metric == "pyfunc":
            continue
        _, _, params = _metric_data(metric)
        for dtype in (np.float64, np.float32):
            out.append(DistanceMetric.get_metric(metric, dtype=dtype, **params))
    return out


def _losses() -> list[Any]:
    from sklearn._loss import loss as losses

    out = []
    for cls in losses._LOSSES.values():
        out.append(cls(n_classes=3) if cls is losses.HalfMultinomialLoss else cls())
    return out


def _python_values() -> list[Any]:
    """Builtin types passed as ``dtype=`` and builtin containers users put in parameters."""
    from collections import OrderedDict, defaultdict

    types_ = [bool, bytes, complex, dict, float, frozenset, int, list, object, set, str, tuple]
    values = [
        frozenset({"a", "b"}), range(1, 5), slice(0, 2), {1, 2}, (1, 2), b"\x00\xff", 1 + 2j,
        OrderedDict([("a", 1)]), defaultdict(list, {"a": [1]}),
    ]  # fmt: skip
    return [types_, values]


def _numpy_functions() -> list[Any]:
    """numpy functions users commonly pass as ``func=``, ``inverse_func=``, ``pooling_func=``."""
    return [
        np.log, np.exp, np.log1p, np.expm1, np.log2, np.log10, np.exp2, np.sqrt, np.square,
        np.abs, np.reciprocal, np.sin, np.cos, np.tanh, np.arcsinh, np.sinh, np.cbrt, np.sign,
        np.clip, np.mean, np.median, np.max, np.min, np.sum, np.std, np.var,
    ]  # fmt: skip


def _search_ranges() -> Any:
    """GridSearchCV whose param_grid holds a range, a tuple and a numpy array."""
    from sklearn.model_selection import GridSearchCV
    from sklearn.neighbors import KNeighborsClassifier

    grid = {"n_neighbors": range(1, 4), "weights": ("uniform", "distance"), "p": np.array([1, 2])}
    return _clf(GridSearchCV(KNeighborsClassifier(), grid, cv=3))


def _score_functions() -> list[Any]:
    import sklearn.feature_selection as fs

    return [getattr(fs, name) for name in sorted(fs.__all__) if name[0].islower()]


def reference_cases() -> Iterator[Case]:
    """Values that end up inside fitted models when the user's inputs or parameters have them.

    Yields
    ------
    Case
    """
    yield Case("scipy.sparse: every format, matrix and array", _sparse_formats)
    yield Case("numpy.random: RandomState/Generator on every bit generator", _random_generators)
    yield Case("numpy: scalar types, scalars, dtypes, array flavours", _numpy_values)
    yield Case("sklearn.metrics: get_scorer() for every scorer name", _scorers)
    yield Case("sklearn.model_selection: CV splitters", _cv_splitters)
    yield Case(
        "sklearn.metrics: DistanceMetric for every metric, float64 and float32", _distance_metrics
    )
    yield Case("sklearn._loss: every loss object", _losses)
    yield Case("sklearn.feature_selection: score functions", _score_functions)
    yield Case("builtins: types and containers users put in parameters", _python_values)
    yield Case("numpy: functions users pass as func=/pooling_func=", _numpy_functions)
    yield Case("GridSearchCV(param_grid with range, tuple, ndarray)", _search_ranges)
