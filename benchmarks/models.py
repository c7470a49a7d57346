"""Benchmark models: deterministic synthetic data, fitted once, cached under ``.cache/``.

Every model is a :class:`ModelSpec` with a full-size and a ``--quick`` parameter set. Building a
model returns a :class:`Bundle`: one or more fitted estimators ("members"; ``small20`` has twenty,
every other model one), a fixed probe input per member and the outputs the freshly fitted,
in-memory estimator gave on it. Loaders are checked against those outputs.

Bundles are cached as protocol-5 pickles of our own making in
``benchmarks/.cache/models/<name>-<hash>/bundle.pkl`` (and the probes alone, for the load
subprocesses, in ``probe.pkl`` beside it); the hash covers the model name, its version, its
parameters and the numpy / scipy / scikit-learn versions, so a change to any of them rebuilds.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

CACHE_DIR = Path(__file__).resolve().parent / ".cache"
PROBE_ROWS = 100
OUTPUT_METHODS = ("predict", "predict_proba", "decision_function", "transform")


@dataclass
class Bundle:
    """A built model: fitted members, probes and reference outputs.

    Attributes
    ----------
    members : dict of str to estimator
        Fitted estimators, each dumped to its own file.
    probes : dict of str to array-like
        Probe input per member (``PROBE_ROWS`` rows; a list of str or a DataFrame where the
        estimator takes those).
    expected : dict of str to dict of str to ndarray
        Outputs of the in-memory estimator on its probe, per member and per method name
        (``predict``, ``predict_proba`` / ``decision_function``, ``transform``).
    meta : dict
        Model name, size (``full`` / ``quick``), parameters, cache key and fit time (s).
    """

    members: dict[str, Any]
    probes: dict[str, Any]
    expected: dict[str, dict[str, np.ndarray]]
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelSpec:
    """How to build one benchmark model.

    Attributes
    ----------
    name : str
        Name used on the command line (``--models``) and in the tables.
    version : int
        Bump when ``build`` changes, so cached bundles are rebuilt.
    description : str
        One line for the tables, with ``{...}`` fields filled from the parameters.
    full, quick : dict
        Keyword arguments of ``build`` for the full suite and for ``--quick``.
    build : callable
        ``build(**params) -> (members, probes)``.
    """

    name: str
    version: int
    description: str
    full: dict[str, Any]
    quick: dict[str, Any]
    build: Callable[..., tuple[dict[str, Any], dict[str, Any]]]

    def params(self, quick: bool) -> dict[str, Any]:
        """Return the build parameters for the chosen size."""
        return dict(self.quick if quick else self.full)

    def describe(self, quick: bool) -> str:
        """Return the description with the parameters of the chosen size filled in."""
        return self.description.format(**self.params(quick))


# --------------------------------------------------------------------------- builders


def _classification(n_samples: int, n_features: int, n_classes: int, seed: int):
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=n_samples,
        n_features=n_features,
        n_informative=min(n_features, max(2 * n_classes, n_features // 2)),
        n_redundant=0,
        n_classes=n_classes,
        flip_y=0.05,
        random_state=seed,
    )
    return x, y


def _probe(x):
    """First ``PROBE_ROWS`` rows of ``x`` (works for ndarray, sparse, DataFrame and lists)."""
    if hasattr(x, "iloc"):
        return x.iloc[:PROBE_ROWS].copy()
    return x[:PROBE_ROWS]


def _build_rf(n_samples: int, n_features: int, n_estimators: int, seed: int = 0):
    """RandomForestClassifier of fully grown trees on dense synthetic data."""
    from sklearn.ensemble import RandomForestClassifier

    x, y = _classification(n_samples, n_features, 2, seed)
    model = RandomForestClassifier(n_estimators=n_estimators, n_jobs=2, random_state=seed)
    model.fit(x, y)
    model.set_params(n_jobs=None)
    return {"rf": model}, {"rf": _probe(x)}


def _build_hgb(n_samples: int, n_features: int, max_iter: int, seed: int = 1):
    """HistGradientBoostingClassifier with a fixed number of iterations."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    x, y = _classification(n_samples, n_features, 2, seed)
    model = HistGradientBoostingClassifier(
        max_iter=max_iter, early_stopping=False, random_state=seed
    )
    model.fit(x, y)
    return {"hgb": model}, {"hgb": _probe(x)}


def _build_logreg(
    n_samples: int, n_features: int, n_classes: int, density: float, max_iter: int, seed: int = 2
):
    """Multinomial LogisticRegression on a sparse CSR matrix (fit capped at ``max_iter``)."""
    import scipy.sparse as sp
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    x = sp.random(
        n_samples, n_features, density=density, format="csr", dtype=np.float64, random_state=rng
    )
    w = rng.standard_normal((n_features, n_classes))
    y = np.asarray(x @ w).argmax(axis=1)
    model = LogisticRegression(max_iter=max_iter, solver="lbfgs")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, y)
    return {"logreg": model}, {"logreg": _probe(x)}


def _build_knn(n_samples: int, n_features: int, seed: int = 3):
    """KNeighborsClassifier (brute force: the fitted state is the float64 training matrix)."""
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_samples, n_features))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1)
    model = KNeighborsClassifier(n_neighbors=5)
    model.fit(x, y)
    probe = rng.standard_normal((PROBE_ROWS, n_features))
    return {"knn": model}, {"knn": probe}


def _corpus(n_docs: int, words_per_doc: int, lexicon: int, n_classes: int, seed: int):
    """Random documents over a lexicon of random lowercase words.

    Half of every document is drawn uniformly from the whole lexicon (so the vocabulary really
    holds about ``lexicon`` terms), half from a 2,000-word topic of its class (so the classifier
    learns something).
    """
    rng = np.random.default_rng(seed)
    letters = rng.integers(ord("a"), ord("z") + 1, size=(int(lexicon * 1.05) + 100, 10))
    lengths = rng.integers(4, 11, size=letters.shape[0])
    raw = letters.astype(np.uint8).tobytes()
    words = sorted({raw[i * 10 : i * 10 + n].decode() for i, n in enumerate(lengths)})
    words = np.array(rng.permutation(words)[:lexicon])
    y = rng.integers(0, n_classes, size=n_docs)
    topic = rng.integers(0, lexicon, size=(n_classes, 2000))
    half = words_per_doc // 2
    uniform = rng.integers(0, lexicon, size=(n_docs, words_per_doc - half))
    topical = topic[y[:, None], rng.integers(0, 2000, size=(n_docs, half))]
    tokens = words[np.concatenate([uniform, topical], axis=1)]
    docs = [" ".join(row) for row in tokens.tolist()]
    return docs, y


def _build_tfidf_svc(
    n_docs: int, words_per_doc: int, lexicon: int, n_classes: int = 5, seed: int = 4
):
    """Pipeline(TfidfVectorizer, LinearSVC) on a random-word corpus."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import Pipeline
    from sklearn.svm import LinearSVC

    docs, y = _corpus(n_docs, words_per_doc, lexicon, n_classes, seed)
    model = Pipeline([("tfidf", TfidfVectorizer()), ("svc", LinearSVC(random_state=seed))])
    model.fit(docs, y)
    return {"tfidf_svc": model}, {"tfidf_svc": docs[:PROBE_ROWS]}


def _frame(n_samples: int, seed: int):
    import pandas as pd

    rng = np.random.default_rng(seed)
    cats = {
        "city": [f"city_{i:03d}" for i in range(60)],
        "device": ["phone", "tablet", "desktop", "tv", "watch"],
        "plan": [f"plan_{c}" for c in "abcdefghijkl"],
    }
    data: dict[str, Any] = {k: rng.choice(v, size=n_samples) for k, v in cats.items()}
    for i in range(6):
        data[f"num_{i}"] = rng.standard_normal(n_samples) * (i + 1) + i
    frame = pd.DataFrame(data)
    score = (
        frame["num_0"]
        - 0.3 * frame["num_1"]
        + (frame["device"] == "phone") * 1.5
        + rng.standard_normal(n_samples)
    )
    return frame, (score > score.median()).to_numpy().astype(np.int64)


def _build_ct_gbc(n_samples: int, n_estimators: int, seed: int = 5):
    """Pipeline(ColumnTransformer(OneHotEncoder, StandardScaler), GradientBoostingClassifier)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame, y = _frame(n_samples, seed)
    pre = ColumnTransformer(
        [
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["city", "device", "plan"]),
            ("num", StandardScaler(), [f"num_{i}" for i in range(6)]),
        ]
    )
    model = Pipeline([("pre", pre), ("gbc", GradientBoostingClassifier(n_estimators=n_estimators))])
    model.fit(frame, y)
    return {"ct_gbc": model}, {"ct_gbc": _probe(frame)}


def _small_estimators():
    from sklearn.decomposition import PCA
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestClassifier
    from sklearn.linear_model import (
        ElasticNet,
        Lasso,
        LinearRegression,
        LogisticRegression,
        Perceptron,
        Ridge,
        SGDClassifier,
    )
    from sklearn.naive_bayes import BernoulliNB, GaussianNB
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler, StandardScaler
    from sklearn.svm import SVC, LinearSVC
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    return {
        "LogisticRegression": (LogisticRegression(), "clf"),
        "LinearRegression": (LinearRegression(), "reg"),
        "Ridge": (Ridge(), "reg"),
        "Lasso": (Lasso(alpha=0.01), "reg"),
        "ElasticNet": (ElasticNet(alpha=0.01), "reg"),
        "SGDClassifier": (SGDClassifier(random_state=0), "clf"),
        "Perceptron": (Perceptron(random_state=0), "clf"),
        "DecisionTreeClassifier": (DecisionTreeClassifier(max_depth=6, random_state=0), "clf"),
        "DecisionTreeRegressor": (DecisionTreeRegressor(max_depth=6, random_state=0), "reg"),
        "GaussianNB": (GaussianNB(), "clf"),
        "BernoulliNB": (BernoulliNB(), "clf"),
        "KNeighborsClassifier": (KNeighborsClassifier(), "clf"),
        "SVC": (SVC(random_state=0), "clf"),
        "LinearSVC": (LinearSVC(random_state=0), "clf"),
        "RandomForestClassifier": (
            RandomForestClassifier(n_estimators=5, max_depth=5, random_state=0),
            "clf",
        ),
        "GradientBoostingRegressor": (
            GradientBoostingRegressor(n_estimators=20, random_state=0),
            "reg",
        ),
        "StandardScaler": (StandardScaler(), "tf"),
        "MinMaxScaler": (MinMaxScaler(), "tf"),
        "PCA": (PCA(n_components=5, random_state=0), "tf"),
        "Pipeline": (make_pipeline(StandardScaler(), LogisticRegression()), "clf"),
    }


def _build_small20(n_samples: int, n_features: int, seed: int = 6):
    """Twenty small everyday estimators, each dumped to its own file."""
    x, y = _classification(n_samples, n_features, 3, seed)
    y_reg = x[:, 0] * 2.0 - x[:, 1] + 0.1 * np.random.default_rng(seed).standard_normal(len(x))
    members, probes = {}, {}
    for name, (est, kind) in _small_estimators().items():
        est.fit(x, y_reg if kind == "reg" else y)
        members[name] = est
        probes[name] = _probe(x)
    return members, probes


SPECS: dict[str, ModelSpec] = {
    s.name: s
    for s in [
        ModelSpec(
            "rf",
            1,
            "RandomForestClassifier, {n_estimators} deep trees, {n_samples}x{n_features}",
            {"n_samples": 50_000, "n_features": 20, "n_estimators": 200},
            {"n_samples": 5_000, "n_features": 20, "n_estimators": 10},
            _build_rf,
        ),
        ModelSpec(
            "hgb",
            1,
            "HistGradientBoostingClassifier, {max_iter} iterations, {n_samples}x{n_features}",
            {"n_samples": 100_000, "n_features": 30, "max_iter": 200},
            {"n_samples": 10_000, "n_features": 30, "max_iter": 20},
            _build_hgb,
        ),
        ModelSpec(
            "logreg",
            1,
            "LogisticRegression, sparse {n_samples}x{n_features} ({density:.0%}), "
            "{n_classes} classes",
            {
                "n_samples": 20_000,
                "n_features": 50_000,
                "n_classes": 20,
                "density": 0.01,
                "max_iter": 30,
            },
            {
                "n_samples": 2_000,
                "n_features": 5_000,
                "n_classes": 20,
                "density": 0.01,
                "max_iter": 30,
            },
            _build_logreg,
        ),
        ModelSpec(
            "knn",
            1,
            "KNeighborsClassifier, {n_samples}x{n_features} float64",
            {"n_samples": 1_000_000, "n_features": 32},
            {"n_samples": 20_000, "n_features": 32},
            _build_knn,
        ),
        ModelSpec(
            "tfidf_svc",
            1,
            "Pipeline(TfidfVectorizer ~{lexicon} terms, LinearSVC), {n_docs} docs",
            {"n_docs": 30_000, "words_per_doc": 100, "lexicon": 200_000},
            {"n_docs": 2_000, "words_per_doc": 40, "lexicon": 5_000},
            _build_tfidf_svc,
        ),
        ModelSpec(
            "ct_gbc",
            1,
            "Pipeline(ColumnTransformer(OneHotEncoder, StandardScaler), "
            "GradientBoostingClassifier({n_estimators})) on a {n_samples}-row DataFrame",
            {"n_samples": 20_000, "n_estimators": 100},
            {"n_samples": 2_000, "n_estimators": 20},
            _build_ct_gbc,
        ),
        ModelSpec(
            "small20",
            1,
            "20 small everyday estimators, one file each ({n_samples}x{n_features})",
            {"n_samples": 500, "n_features": 10},
            {"n_samples": 500, "n_features": 10},
            _build_small20,
        ),
    ]
}


# --------------------------------------------------------------------------- outputs


def reference_outputs(estimator: Any, probe: Any) -> dict[str, np.ndarray]:
    """Outputs of ``estimator`` on ``probe`` for every method it has.

    Parameters
    ----------
    estimator : estimator
        A fitted scikit-learn estimator.
    probe : array-like
        Its probe input.

    Returns
    -------
    dict of str to ndarray
        ``predict`` and whichever of ``predict_proba``, ``decision_function`` and ``transform``
        the estimator provides (only the first of the two probability-like ones).
    """
    out: dict[str, np.ndarray] = {}
    for method in OUTPUT_METHODS:
        if method == "decision_function" and "predict_proba" in out:
            continue
        fn = getattr(estimator, method, None)
        if fn is None:
            continue
        try:
            res = fn(probe)
        except (AttributeError, NotImplementedError):  # e.g. proba of a hinge-loss model
            continue
        out[method] = np.asarray(res.toarray() if hasattr(res, "toarray") else res)
    return out


def compare_outputs(
    expected: dict[str, np.ndarray], actual: dict[str, np.ndarray]
) -> tuple[bool, str]:
    """Compare outputs: integer/str/bool results exactly, floats with ``np.allclose``.

    Parameters
    ----------
    expected, actual : dict of str to ndarray
        Outputs per method name, as returned by :func:`reference_outputs`.

    Returns
    -------
    ok : bool
        True when every expected output is present and matches.
    detail : str
        The first mismatch, or ``""``.
    """
    for method, want in expected.items():
        got = actual.get(method)
        if got is None:
            return False, f"{method}: missing"
        if got.shape != want.shape:
            return False, f"{method}: shape {got.shape} != {want.shape}"
        if want.dtype.kind == "f":
            if not np.allclose(got, want, rtol=1e-5, atol=1e-8):
                return False, f"{method}: max abs diff {np.max(np.abs(got - want)):.3g}"
        elif not np.array_equal(got, want):
            return False, f"{method}: {int(np.sum(got != want))} labels differ"
    return True, ""


# --------------------------------------------------------------------------- cache


def cache_key(spec: ModelSpec, quick: bool) -> str:
    """Return ``<name>-<12 hex>``: a hash of name, version, parameters and library versions."""
    import scipy
    import sklearn

    payload = {
        "name": spec.name,
        "version": spec.version,
        "params": spec.params(quick),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "sklearn": sklearn.__version__,
    }
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    return f"{spec.name}-{digest[:12]}"


def get_bundle(name: str, quick: bool, cache_dir: Path = CACHE_DIR, log=print) -> Bundle:
    """Return the fitted bundle of model ``name``, building and caching it on first use.

    Parameters
    ----------
    name : str
        A key of :data:`SPECS`.
    quick : bool
        Use the scaled-down parameters.
    cache_dir : Path
        Cache root; bundles live in ``cache_dir / "models"``.
    log : callable
        Progress messages.

    Returns
    -------
    Bundle

    Raises
    ------
    KeyError
        If ``name`` is not a known model.
    """
    spec = SPECS[name]
    key = cache_key(spec, quick)
    path = bundle_dir(key, cache_dir) / "bundle.pkl"
    if path.exists() and (path.parent / "probe.pkl").exists():
        with path.open("rb") as fh:
            return pickle.load(fh)  # our own cache file, written below
    log(f"building {name} ({'quick' if quick else 'full'}): {spec.describe(quick)} ...")
    t0 = time.perf_counter()
    members, probes = spec.build(**spec.params(quick))
    fit_s = time.perf_counter() - t0
    expected = {m: reference_outputs(est, probes[m]) for m, est in members.items()}
    bundle = Bundle(
        members,
        probes,
        expected,
        {
            "name": name,
            "size": "quick" if quick else "full",
            "params": spec.params(quick),
            "description": spec.describe(quick),
            "key": key,
            "fit_s": fit_s,
        },
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_pickle({"probes": probes, "expected": expected}, path.parent / "probe.pkl")
    _atomic_pickle(bundle, path)
    log(f"  built {name} in {fit_s:.1f} s -> {path.parent.name}")
    return bundle


def bundle_dir(key: str, cache_dir: Path = CACHE_DIR) -> Path:
    """Return the cache folder of the bundle with cache key ``key``."""
    return cache_dir / "models" / key


def load_probe(key: str, cache_dir: Path = CACHE_DIR) -> dict[str, Any]:
    """Return ``{"probes": ..., "expected": ...}`` of a cached bundle (our own pickle)."""
    with (bundle_dir(key, cache_dir) / "probe.pkl").open("rb") as fh:
        return pickle.load(fh)


def _atomic_pickle(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as fh:
        pickle.dump(obj, fh, protocol=5)
    tmp.replace(path)
