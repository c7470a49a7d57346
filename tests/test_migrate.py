"""Migrations (issue 5 "Legacy conversion"): every rule on a real old file, and their safety.

Each rule of :mod:`safeload.migrate` is exercised on a file of ``../shared/corpus/legacy`` written
by the scikit-learn version it migrates from; the loaded estimator must reproduce the outputs that
version gave (``<Est>.probe.json``).  The rest checks the machinery: version ranges, the warning,
``migrate=False``, and that stand-ins of removed classes never leak, never become trusted and never
weaken the audit or the content validators.
"""

from __future__ import annotations

import copyreg
import pickle
import re
import sys
import warnings

import numpy as np
import pytest

import safeload
from safeload import migrate
from safeload.migrate import VersionRange, all_rules, load_with_report, parse_version

from ._probes import check_probe
from .conftest import LEGACY, WILD, load_json

HAVE_LEGACY = LEGACY.exists()
needs_corpus = pytest.mark.skipif(not HAVE_LEGACY, reason="shared legacy corpus not available")
needs_wild = pytest.mark.skipif(not WILD.exists(), reason="shared wild corpus not available")

#: rule → files (``env/Estimator``; the ``.p2.pkl`` pickle of that estimator) it must migrate.
RULE_FILES = {
    "trees.node_missing_go_to_left": ["py36_skl0213/DecisionTreeRegressor"],
    "trees.classifier_value_fractions": [
        "py39_skl132/DecisionTreeClassifier",
        "py37_skl102/RandomForestClassifier",
    ],
    "trees.tree_n_features_in": ["py27_skl0204/DecisionTreeClassifier"],
    "ensembles.base_estimator_renamed": ["py37_skl102/ExtraTreesRegressor"],
    "ensembles.ensemble_n_features_in": ["py27_skl0204/RandomForestClassifier"],
    "ensembles.isolation_forest_path_lengths": ["py37_skl102/IsolationForest"],
    "ensembles.gradient_boosting_loss": [
        "py27_skl0204/GradientBoostingClassifier",  # 0.20: PriorProbabilityEstimator init
        "py36_skl0213/GradientBoostingClassifier",
        "py39_skl132/GradientBoostingClassifier",
    ],
    "ensembles.hist_gradient_boosting_loss": [
        "py36_skl0213/HistGradientBoostingClassifier",
        "py37_skl102/HistGradientBoostingClassifier",
    ],
    "ensembles.hist_gradient_boosting_preprocessor": ["py39_skl132/HistGradientBoostingClassifier"],
    "ensembles.predictor_node_dtype": ["py36_skl0213/HistGradientBoostingClassifier"],
    "ensembles.bin_mapper_categorical": ["py36_skl0213/HistGradientBoostingClassifier"],
    "model_selection.deprecation_dict": ["py27_skl0204/GridSearchCV"],
    "model_selection.passthrough_scorer": [
        "py27_skl0204/GridSearchCV",
        "py37_skl102/GridSearchCV",
    ],
    "neighbors.euclidean_distance": [
        "py27_skl0204/KNeighborsClassifier",
        "py37_skl102/KNeighborsClassifier",
    ],
    "neighbors.neighbors_fit_shape": ["py36_skl0213/KNeighborsClassifier"],
    "naive_bayes.gaussian_nb_var": ["py36_skl0213/GaussianNB"],
    "cluster.kmeans_fit_attributes": ["py27_skl0204/KMeans"],
    "linear.linear_regression_positive": ["py36_skl0213/LinearRegression"],
    "linear.logistic_one_vs_rest": [
        "py27_skl0204/LogisticRegression",
        "py36_skl0213/Pipeline",
        "py37_skl102/LogisticRegression",  # multinomial: only the obsolete parameter goes
    ],
    "svm.libsvm_private_attributes": ["py36_skl0213/SVC"],
    "svm.libsvm_effective_probability": ["py37_skl102/SVC", "py310_skl161/SVC"],
    "text.tfidf_idf_diag": ["py27_skl0204/TfidfVectorizer", "py39_skl132/TfidfVectorizer"],
    "calibration.calibrated_cv_estimator": ["py37_skl102/CalibratedClassifierCV"],
    "calibration.calibrated_classifier_fields": ["py27_skl0204/CalibratedClassifierCV"],
    "preprocessing.python2_byte_strings": ["py27_skl0204/LabelEncoder"],
    "preprocessing.min_max_scaler_clip": ["py36_skl0213/MinMaxScaler"],
    "preprocessing.one_hot_encoder_attributes": [
        "py27_skl0204/OneHotEncoder",
        "py37_skl102/ColumnTransformerPipeline",
    ],
    "preprocessing.dummy_strategy": ["py36_skl0213/GradientBoostingClassifier"],
    "trees.max_features_auto": [
        "py27_skl0204/RandomForestClassifier",
        "py37_skl102/RandomForestClassifier",
        "py36_skl0213/ExtraTreesRegressor",
    ],
    "trees.tree_params_added": [
        "py27_skl0204/ExtraTreesRegressor",  # criterion="mse" too
        "py36_skl0213/GradientBoostingClassifier",
        "py39_skl132/DecisionTreeClassifier",
    ],
}

#: rules whose removed classes only files of ``../shared/corpus/wild`` use (no probe exists: each
#: is checked by :func:`test_wild_rule` against what the model's own data and the old maths give).
WILD_RULE_FILES = {
    "neighbors.kd_tree_binary_tree": [
        "sklearn-pridiction-engine__modelfile.pkl",  # 0.19, protocol 0, Python 2
        "sklearn-pridiction-engine__model1.pkl",  # 0.19, sklearn.externals.joblib
    ],
    "ensembles.cy_half_binomial_loss": ["Credit-Card-Fraud__hgb_model.pkl"],  # 1.5.2, `_loss`
    "linear.sgd_log_loss": ["SkLambda-arxiv__finalized_model.sav"],  # 0.24.2
    "multiclass.one_vs_rest_verbose": ["SkLambda-arxiv__finalized_model.sav"],
    "model_selection.predict_scorer": ["flask-ML-engine__model.joblib"],  # 0.21.2
}

#: rules that refuse: rule → (file, MigrationError.reason).
REFUSALS = {
    "ensembles.adaboost_samme_r": ("py39_skl132/AdaBoostClassifier", "adaboost-samme-r"),
    "ensembles.isolation_forest_behaviour_old": (
        "py36_skl0213/IsolationForest",
        "iforest-behaviour-old",
    ),
    "svm.svc_batch_scaled_ovr": ("py27_skl0204/SVC", "svc-ovr-batch-scaled"),
}


def _path(entry: str, fmt: str = "p2.pkl"):
    return LEGACY / f"{entry}.{fmt}"


def _probe(entry: str):
    return load_json(LEGACY / f"{entry}.probe.json")


# --------------------------------------------------------------------------- the registry


def test_every_rule_is_documented_and_tested():
    names = {rule.name for rule in all_rules()}
    assert names == set(RULE_FILES) | set(REFUSALS) | set(WILD_RULE_FILES)
    for rule in all_rules():
        doc = rule.func.__doc__ or ""
        assert "scikit-learn" in doc, rule.name  # names the change it undoes
        assert rule.summary and rule.summary == doc.strip().splitlines()[0]


def test_every_standin_is_a_removed_name_of_the_policy():
    policy = safeload.Policy.default()
    legacy = set(policy.removed) | set(policy.inside_removed)
    for pair in migrate.STANDINS:
        assert pair in legacy, pair
        assert not policy.is_trusted(pair)


def test_parse_version_and_ranges():
    assert parse_version("0.20.4") == (0, 20, 4)
    assert parse_version("1.3.dev0") == (1, 3)
    assert parse_version("1.0rc1") == (1, 0)
    assert parse_version(None) is None and parse_version(b"1.0") is None
    assert parse_version("x" * 100) is None
    assert (1, 2, 9) in VersionRange("<1.3") and (1, 3) not in VersionRange("<1.3")
    assert (1, 3, 0) not in VersionRange("<1.3")
    assert (0, 21) in VersionRange(">=0.21,<1.4") and (0, 20, 4) not in VersionRange(">=0.21")
    assert (0, 0) in VersionRange("*")
    with pytest.raises(ValueError):
        VersionRange("~=1.0")
    with pytest.raises(ValueError):
        migrate.migration(cls="a.B", kind="post")


# --------------------------------------------------------------------------- each rule on a file


@needs_corpus
@pytest.mark.parametrize(
    "rule, entry",
    [(rule, entry) for rule, entries in RULE_FILES.items() for entry in entries],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_rule_reproduces_the_old_outputs(rule, entry):
    model, report = load_with_report(_path(entry))
    applied = {a.rule for a in report.applied}
    if rule != "linear.logistic_one_vs_rest" or "Regression" in entry or "Pipeline" in entry:
        assert rule in applied, (rule, sorted(applied))
    assert check_probe(model, _probe(entry)) is None
    env = entry.split("/")[0]
    assert report.source_version == load_json(LEGACY / env / "ENV.json")["sklearn"]
    assert report.target_version == migrate.target_version()


@needs_corpus
@pytest.mark.parametrize(
    "entry", sorted({e for es in RULE_FILES.values() for e in es if "Tree" in e or "Forest" in e})
)
def test_migrated_tree_models_refit_like_the_old_version(entry):
    """``clone(model).fit`` works (no removed parameter value) and draws as many features."""
    from sklearn.base import clone

    model, _ = load_with_report(_path(entry))
    params = model.get_params()
    assert params.get("max_features") != "auto" and params.get("criterion") not in ("mse", "mae")
    X = np.asarray(_probe(entry)["calls"][0]["input"], dtype=np.float64)
    y = model.predict(X)
    refit = clone(model).fit(np.vstack([X] * 3), np.concatenate([y] * 3))
    assert refit.predict(X).shape == y.shape

    def first_tree(est):
        return np.ravel(est.estimators_)[0] if hasattr(est, "estimators_") else est

    assert first_tree(refit).max_features_ == first_tree(model).max_features_


@needs_corpus
@pytest.mark.parametrize("rule", sorted(REFUSALS))
def test_refusing_rules_name_the_reason(rule):
    entry, reason = REFUSALS[rule]
    with pytest.raises(safeload.MigrationError) as info:
        safeload.load(_path(entry))
    assert info.value.reason == reason
    assert reason in str(info.value) and "scikit-learn" in str(info.value)


@needs_corpus
def test_one_vs_rest_logistic_regression_becomes_an_equivalent_estimator():
    from sklearn.multiclass import OneVsRestClassifier

    entry = "py36_skl0213/LogisticRegression"
    model, report = load_with_report(_path(entry))
    assert isinstance(model, OneVsRestClassifier)
    assert check_probe(model, _probe(entry)) is None
    pipe, _ = load_with_report(_path("py36_skl0213/Pipeline"))
    assert isinstance(pipe.steps[-1][1], OneVsRestClassifier)


# --------------------------------------------------------------------------- load's behaviour


@needs_corpus
def test_load_warns_with_versions_and_every_migration():
    with pytest.warns(safeload.VersionMismatchWarning) as record:
        model = safeload.load(_path("py27_skl0204/GradientBoostingClassifier"))
    messages = [str(w.message) for w in record if w.category is safeload.VersionMismatchWarning]
    assert len(messages) == 1
    message = messages[0]
    assert "0.20.4" in message and migrate.target_version() in message
    assert "ensembles.gradient_boosting_loss" in message
    assert "trees.node_missing_go_to_left" in message
    assert check_probe(model, _probe("py27_skl0204/GradientBoostingClassifier")) is None


@needs_corpus
def test_current_files_load_without_migrations_or_warning():
    path = _path("py311_skl191/GradientBoostingClassifier")
    model, report = load_with_report(path)
    assert report.applied == [] and not report.migrated
    with warnings.catch_warnings():
        warnings.simplefilter("error", safeload.VersionMismatchWarning)
        safeload.load(path)
    assert check_probe(model, _probe("py311_skl191/GradientBoostingClassifier")) is None


@needs_corpus
def test_migrate_false_keeps_the_old_refusals():
    with pytest.raises(safeload.LegacyFormatError):
        safeload.load(_path("py36_skl0213/GradientBoostingClassifier"), migrate=False)
    with pytest.raises(safeload.FormatError, match="incompatible dtype"):
        safeload.load(_path("py27_skl0204/DecisionTreeClassifier"), migrate=False)
    data = _path("py36_skl0213/GradientBoostingClassifier").read_bytes()
    with pytest.raises(safeload.LegacyFormatError):
        safeload.loads(data, migrate=False)
    with pytest.warns(safeload.VersionMismatchWarning):
        safeload.loads(data)


def test_load_with_report_rejects_unknown_keywords():
    with pytest.raises(TypeError):
        load_with_report(b"", mmap_mode="r")


# --------------------------------------------------------------------------- safety

GB_LOSS = b"csklearn.ensemble._gb_losses\nMultinomialDeviance\n"
PASSTHROUGH = b"csklearn.metrics.scorer\n_passthrough_scorer\n"
SYSTEM = b"cos\nsystem\n"


def test_standin_that_survives_is_refused_and_nothing_is_imported():
    before = set(sys.modules)
    stream = b"\x80\x02" + GB_LOSS + b")\x81}(X\x01\x00\x00\x00KK\x03ub."  # NEWOBJ + BUILD
    with pytest.raises(safeload.UnmigratedLegacyError) as info:
        safeload.loads(stream)
    exc = info.value
    assert isinstance(exc, safeload.MigrationError) and isinstance(exc, safeload.LegacyFormatError)
    assert exc.reason == "removed-class-survives"
    assert exc.types == ["sklearn.ensemble._gb_losses.MultinomialDeviance"]
    assert not {m for m in set(sys.modules) - before if "gb_losses" in m}
    with pytest.raises(safeload.UnmigratedLegacyError):  # the class itself as a value
        safeload.loads(b"\x80\x02" + GB_LOSS + b"\x85.")
    with pytest.raises(safeload.UnmigratedLegacyError):  # nested in containers
        safeload.loads(
            b"\x80\x02]" + GB_LOSS + b")\x81a}X\x01\x00\x00\x00k" + PASSTHROUGH + b"s\x86."
        )


def test_removed_names_with_other_untrusted_names_stay_untrusted(canary_sandbox):
    stream = b"\x80\x02" + GB_LOSS + SYSTEM + b"X\x04\x00\x00\x00echo\x85R\x86."
    with pytest.raises(safeload.UntrustedTypesError) as info:
        safeload.loads(stream)
    assert "os.system" in info.value.types
    assert "sklearn.ensemble._gb_losses.MultinomialDeviance" in info.value.types


def test_a_value_standin_can_not_be_called():
    stream = b"\x80\x02" + PASSTHROUGH + b")R."
    with pytest.raises(safeload.ForbiddenOperationError):
        safeload.loads(stream)


def test_a_standin_class_can_not_receive_arguments():
    stream = b"\x80\x02" + GB_LOSS + b"K\x01\x85R."  # MultinomialDeviance(1)
    with pytest.raises(safeload.ForbiddenOperationError):
        safeload.loads(stream)


def test_scan_and_policy_are_unchanged_by_migrations():
    report = safeload.scan(b"\x80\x02" + GB_LOSS + b"\x85.")
    assert [g.verdict for g in report.globals] == ["removed"]
    assert not safeload.Policy.default().is_trusted(
        ("sklearn.ensemble._gb_losses", "MultinomialDeviance")
    )


class _OldTree:
    """Pickles as a ``Tree`` whose node array has the pre-1.3 dtype (no missing_go_to_left)."""

    def __init__(self, tree, bad_child=None):
        self.tree = tree
        self.bad_child = bad_child

    def __reduce__(self):
        from sklearn.tree._tree import Tree

        state = self.tree.__getstate__()
        nodes = state["nodes"]
        old = np.zeros(
            nodes.shape, dtype=[(n, nodes.dtype.fields[n][0]) for n in nodes.dtype.names[:7]]
        )
        for name in old.dtype.names:
            old[name] = nodes[name]
        if self.bad_child is not None:
            old["left_child"][0] = self.bad_child
        counts = state["values"] * 10.0  # pre-1.4 classifiers stored weighted counts
        args = (self.tree.n_features, np.asarray(self.tree.n_classes), self.tree.n_outputs)
        return Tree, args, {**state, "nodes": old, "values": counts}


class _OldClassifier:
    def __init__(self, est, bad_child=None):
        self.est = est
        self.bad_child = bad_child

    def __reduce__(self):
        state = dict(self.est.__dict__)
        state["tree_"] = _OldTree(self.est.tree_, self.bad_child)
        state["n_features_"] = state.pop("n_features_in_")
        state["_sklearn_version"] = "0.20.4"
        return copyreg._reconstructor, (type(self.est), object, None), state


def _fitted_tree():
    from sklearn.tree import DecisionTreeClassifier

    rng = np.random.RandomState(0)
    X = rng.normal(size=(80, 3))
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1)
    return DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, y), X


def test_migrated_old_tree_matches_and_validators_still_run():
    est, X = _fitted_tree()
    with pytest.warns(safeload.VersionMismatchWarning):
        model = safeload.loads(pickle.dumps(_OldClassifier(est), protocol=2))
    np.testing.assert_allclose(model.predict_proba(X), est.predict_proba(X))
    assert model.n_features_in_ == 3
    hostile = pickle.dumps(_OldClassifier(est, bad_child=10**6), protocol=2)
    with pytest.raises(safeload.ValidationError):
        safeload.loads(hostile)


def test_node_depths_match_scikit_learn():
    from safeload.migrate.ensembles import _node_depths

    est, _ = _fitted_tree()
    tree = est.tree_
    expected = tree.compute_node_depths()
    np.testing.assert_array_equal(_node_depths(tree.children_left, tree.children_right), expected)
    with pytest.raises(ValueError):
        _node_depths(np.array([5, -1]), np.array([1, -1]))


# --------------------------------------------------------------------------- wild files


def _wild_load(name: str, rule: str):
    model, report = load_with_report(WILD / name)
    assert rule in {a.rule for a in report.applied}
    return model, report


def _check_kd_tree_knn(model) -> None:
    """0.19 KNN with a KD-tree: the migrated tree answers like brute force on ``_fit_X``."""
    from sklearn.neighbors import KDTree, KNeighborsClassifier

    assert isinstance(model, KNeighborsClassifier) and type(model._tree) is KDTree
    assert model._fit_method == "kd_tree" and model.n_neighbors == 5
    X, labels = model._fit_X, model.classes_[model._y]
    dist, idx = model.kneighbors(X, n_neighbors=1)  # each training row is its own neighbour
    np.testing.assert_array_equal(dist, 0.0)
    np.testing.assert_array_equal(X[idx[:, 0]], X)
    brute = KNeighborsClassifier(n_neighbors=5, algorithm="brute").fit(X, labels)
    np.testing.assert_allclose(model.kneighbors(X)[0], brute.kneighbors(X)[0], atol=1e-12)
    pred = model.predict(X)
    np.testing.assert_array_equal(pred, brute.predict(X))
    assert pred.shape == (150,) and set(pred) <= set(model.classes_)
    assert np.mean(pred == labels) == pytest.approx(145 / 150)  # 5-NN on the iris data


def _check_hgb_binomial(model) -> None:
    """1.5.2 binary HistGradientBoosting: the rebuilt loss is the binomial one."""
    from scipy.special import expit
    from sklearn._loss._loss import CyHalfBinomialLoss
    from sklearn._loss.loss import HalfBinomialLoss

    assert type(model._loss.closs) is CyHalfBinomialLoss
    # rows spread over each feature's bin thresholds
    thresholds = model._bin_mapper.bin_thresholds_
    rng = np.random.RandomState(0)
    X = np.column_stack([rng.choice(t, 16) if len(t) else np.zeros(16) for t in thresholds])
    raw = model.decision_function(X)
    proba = model.predict_proba(X)
    assert proba.shape == (16, 2) and list(model.classes_) == [0, 1]
    np.testing.assert_allclose(proba[:, 1], expit(raw), rtol=1e-12)
    y = (raw > 0).astype(np.float64)
    np.testing.assert_allclose(
        model._loss.loss(y, raw), HalfBinomialLoss().loss(y, raw), rtol=1e-12
    )


def _check_sgd_log_ovr(model) -> None:
    """0.24 one-vs-rest SGD(loss="log"): ``predict_proba`` is the normalized sigmoids."""
    from sklearn.base import clone
    from sklearn.multiclass import OneVsRestClassifier

    assert isinstance(model, OneVsRestClassifier) and len(model.estimators_) == 6
    assert all(e.loss == "log_loss" for e in model.estimators_) and model.estimator.loss == (
        "log_loss"
    )
    rng = np.random.RandomState(0)
    n_features = model.estimators_[0].coef_.shape[1]
    X = rng.rand(8, n_features) * (rng.rand(8, n_features) < 0.01)
    coef = np.vstack([e.coef_ for e in model.estimators_])
    intercept = np.concatenate([e.intercept_ for e in model.estimators_])
    sig = 1.0 / (1.0 + np.exp(-(X @ coef.T + intercept)))
    proba = model.predict_proba(X)
    np.testing.assert_allclose(proba, sig / sig.sum(axis=1, keepdims=True), rtol=1e-12)
    np.testing.assert_array_equal(model.predict(X), model.classes_[np.argmax(sig, axis=1)])
    assert clone(model).get_params()["estimator__loss"] == "log_loss"


def _check_gb_regressor_search(model) -> None:
    """0.21 GridSearchCV of a least-squares GradientBoostingRegressor."""
    from sklearn.metrics import mean_squared_error
    from sklearn.metrics._scorer import _Scorer

    assert isinstance(model.scorer_, _Scorer) and model.scorer_._sign == -1
    gb = model.best_estimator_
    rng = np.random.RandomState(0)
    X = rng.rand(8, gb.n_features_in_)
    # the old least-squares model: mean of the targets + learning_rate * the trees' outputs
    expected = gb.init_.constant_.ravel()[0] + gb.learning_rate * sum(
        tree.predict(X) for tree in gb.estimators_[:, 0]
    )
    np.testing.assert_allclose(model.predict(X), expected, rtol=1e-12)
    y = expected + 0.1
    assert model.score(X, y) == pytest.approx(-mean_squared_error(y, expected))


WILD_CHECKS = {
    "neighbors.kd_tree_binary_tree": _check_kd_tree_knn,
    "ensembles.cy_half_binomial_loss": _check_hgb_binomial,
    "linear.sgd_log_loss": _check_sgd_log_ovr,
    "multiclass.one_vs_rest_verbose": _check_sgd_log_ovr,
    "model_selection.predict_scorer": _check_gb_regressor_search,
}


@needs_wild
@pytest.mark.parametrize(
    "rule, name",
    [(rule, name) for rule, names in WILD_RULE_FILES.items() for name in names],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_wild_rule(rule, name, canary_sandbox):
    """Each rule on the real wild file it was written for (loaded only through safeload)."""
    model, _ = _wild_load(name, rule)
    WILD_CHECKS[rule](model)


@needs_wild
def test_wild_least_squares_gradient_boosting(canary_sandbox):
    model, report = _wild_load("flask-ML-engine__model.joblib", "ensembles.gradient_boosting_loss")
    from sklearn._loss.loss import HalfSquaredError

    assert type(model.best_estimator_._loss) is HalfSquaredError
    assert model.best_estimator_.loss == "squared_error"


def test_cy_half_binomial_loss_helper_is_checked():
    """The stand-in of the removed helper records calls; the rule accepts only an empty state."""
    from safeload.migrate._standins import LegacyCall, is_standin

    helper = migrate.STANDINS[("sklearn._loss._loss", "__pyx_unpickle_CyHalfBinomialLoss")]
    call = helper(object, 1, ())
    assert isinstance(call, LegacyCall) and is_standin(call) and call.args == (object, 1, ())
    from sklearn._loss._loss import CyHalfBinomialLoss
    from sklearn._loss.loss import HalfBinomialLoss

    # today's pickle of the loss, its CyHalfBinomialLoss() rewritten as 1.5 - 1.6 wrote it
    data = pickle.dumps(HalfBinomialLoss(), protocol=2)
    today = re.compile(rb"csklearn\._loss\._loss\nCyHalfBinomialLoss\n(q.)?\)R", re.S)
    assert today.search(data)

    def old(cls: bytes, state: bytes) -> bytes:
        helper = b"c_loss\n__pyx_unpickle_CyHalfBinomialLoss\n" + cls + b"J\x01\x00\x00\x00"
        return today.sub(lambda _: helper + state + b"\x87R", data)

    loss = safeload.loads(old(b"c_loss\nCyHalfBinomialLoss\n", b")"))
    assert type(loss) is HalfBinomialLoss and type(loss.closs) is CyHalfBinomialLoss
    with pytest.raises(safeload.MigrationError) as info:  # a state the class never had
        safeload.loads(old(b"c_loss\nCyHalfBinomialLoss\n", b"K\x05\x85"))
    assert info.value.reason == "cy-loss-state"
    with pytest.raises(safeload.ForbiddenOperationError):  # another class than its own
        safeload.loads(old(b"csklearn._loss._loss\nCyHalfMultinomialLoss\n", b")"))
