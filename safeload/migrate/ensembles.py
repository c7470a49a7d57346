"""Migrations of ensembles: forests, isolation forest, AdaBoost, gradient boosting (classic and
histogram-based)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._text import describe
from ._common import add_defaults, as_state, legacy_of, rename
from ._registry import migration

BAGGING_LIKE = (
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.ensemble._forest.RandomForestRegressor",
    "sklearn.ensemble._forest.ExtraTreesClassifier",
    "sklearn.ensemble._forest.ExtraTreesRegressor",
    "sklearn.ensemble._forest.RandomTreesEmbedding",
    "sklearn.ensemble._iforest.IsolationForest",
    "sklearn.ensemble._bagging.BaggingClassifier",
    "sklearn.ensemble._bagging.BaggingRegressor",
    "sklearn.ensemble._weight_boosting.AdaBoostClassifier",
    "sklearn.ensemble._weight_boosting.AdaBoostRegressor",
)
GB_CLASSIFIER = "sklearn.ensemble._gb.GradientBoostingClassifier"
GB_REGRESSOR = "sklearn.ensemble._gb.GradientBoostingRegressor"
HGB = "sklearn.ensemble._hist_gradient_boosting.gradient_boosting"
HGB_CLASSIFIER = f"{HGB}.HistGradientBoostingClassifier"
HGB_REGRESSOR = f"{HGB}.HistGradientBoostingRegressor"
PREDICTOR = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"
BIN_MAPPER = "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper"

MULTINOMIAL = (
    "sklearn.ensemble._gb.MultinomialDeviance",
    "sklearn.ensemble._gb_losses.MultinomialDeviance",
)
BINOMIAL = ("sklearn.ensemble._gb_losses.BinomialDeviance",)
LEAST_SQUARES = ("sklearn.ensemble._gb_losses.LeastSquaresError",)
PRIOR_ESTIMATOR = "sklearn.ensemble._gb.PriorProbabilityEstimator"
HGB_CROSS_ENTROPY = "sklearn.ensemble._hist_gradient_boosting.loss.CategoricalCrossEntropy"
PYX_BINOMIAL = "sklearn._loss._loss.__pyx_unpickle_CyHalfBinomialLoss"


@migration(cls=BAGGING_LIKE, versions="<1.2")
def base_estimator_renamed(state: Any, ctx: Any) -> Any:
    """Rename ``base_estimator``/``base_estimator_`` to ``estimator``/``estimator_``.

    scikit-learn 1.2 (PR #22054) renamed the parameter of the ensembles to ``estimator``;
    1.4 removed ``base_estimator``, and ``_make_estimator`` now reads ``self.estimator_``.
    """
    return rename(state, {"base_estimator": "estimator", "base_estimator_": "estimator_"})


@migration(cls=BAGGING_LIKE, versions="<1.0")
def ensemble_n_features_in(state: Any, ctx: Any) -> Any:
    """Set ``n_features_in_`` from ``n_features_`` (or from the first sub-estimator).

    scikit-learn 0.24 (SLEP010, PR #18010) introduced ``n_features_in_``, which ``predict``
    checks ``X`` against; 1.0 deprecated and 1.2 removed the ensembles' ``n_features_``.
    """
    if type(state) is not dict or "n_features_in_" in state:
        return None
    n_features = state.get("n_features_")
    if n_features is None:
        estimators = state.get("estimators_")
        if isinstance(estimators, list) and estimators:
            n_features = getattr(estimators[0], "n_features_in_", None)
    if n_features is None:
        return None
    state = dict(state)
    state["n_features_in_"] = n_features
    return state


@migration(cls="sklearn.ensemble._weight_boosting.AdaBoostClassifier", versions="<1.6")
def adaboost_samme_r(state: Any, ctx: Any) -> Any:
    """Refuse AdaBoost fitted with the removed ``SAMME.R`` algorithm.

    scikit-learn 1.6 removed ``algorithm="SAMME.R"`` (deprecated in 1.4, PR #26830): today's
    ``AdaBoostClassifier`` only computes SAMME's weighted votes, and no estimator of today's
    library computes SAMME.R's sum of centred log-probabilities with its
    ``softmax(decision / (n_classes - 1))`` probabilities, so the model can not be migrated
    exactly.
    """
    if type(state) is dict and state.get("algorithm") == "SAMME.R":
        raise ctx.refuse(
            "adaboost-samme-r",
            f"AdaBoostClassifier written by scikit-learn {ctx.version_text} uses "
            "algorithm='SAMME.R', removed in scikit-learn 1.6; today's classes can not "
            "reproduce its decision_function and predict_proba",
        )
    return None


@migration(cls="sklearn.ensemble._iforest.IsolationForest", versions="<1.4")
def isolation_forest_path_lengths(state: Any, ctx: Any) -> Any:
    """Precompute the per-tree path lengths scikit-learn 1.4 caches at fit time.

    scikit-learn 1.4 (PR #25186) stores ``_average_path_length_per_tree`` and
    ``_decision_path_lengths`` when fitting instead of recomputing them in ``score_samples``.
    They are derived here from each tree's ``n_node_samples`` and node depths (computed in
    numpy with bounds checks: the trees are not validated yet).
    """
    if type(state) is not dict or "_decision_path_lengths" in state:
        return None
    from sklearn.ensemble._iforest import _average_path_length

    estimators = state.get("estimators_")
    if not isinstance(estimators, list):
        return None
    path_length = _average_path_length_0_20 if ctx.version < (0, 21) else _average_path_length
    averages, depths = [], []
    for est in estimators:
        tree = est.tree_
        averages.append(path_length(tree.n_node_samples))
        depths.append(_node_depths(tree.children_left, tree.children_right))
    state = dict(state)
    state["_average_path_length_per_tree"] = tuple(averages)
    state["_decision_path_lengths"] = tuple(depths)
    if "_max_features" not in state:
        n_features = state.get("n_features_in_", state.get("n_features_"))
        state["_max_features"] = _iforest_max_features(state.get("max_features"), n_features)
    return state


def _average_path_length_0_20(n_samples_leaf: np.ndarray) -> np.ndarray:
    """scikit-learn 0.20's ``_average_path_length``: 1 for leaves of at most one sample and the
    harmonic-number formula otherwise (0.21, PR #13251, made it 0 for one sample, 1 for two)."""
    n = np.asarray(n_samples_leaf, dtype=np.float64)
    out = np.ones(n.shape, dtype=np.float64)
    big = n > 1
    out[big] = 2.0 * (np.log(n[big] - 1.0) + np.euler_gamma) - 2.0 * (n[big] - 1.0) / n[big]
    return out


@migration(cls="sklearn.ensemble._iforest.IsolationForest", versions="<0.22")
def isolation_forest_behaviour_old(state: Any, ctx: Any) -> Any:
    """Refuse IsolationForest fitted with ``behaviour="old"``.

    With ``behaviour="old"`` (the scikit-learn 0.20 – 0.21 default, removed in 0.24),
    ``predict`` compared ``decision_function`` with the fitted ``threshold_`` while
    ``decision_function`` was ``score_samples + 0.5``; today's ``predict`` compares with 0.  No single ``offset_``
    reproduces both outputs (unless the threshold is 0), so the model is refused.
    """
    if type(state) is dict and state.get("behaviour") == "old":
        threshold = state.get("_threshold_", 0.0)
        if threshold != 0.0:
            raise ctx.refuse(
                "iforest-behaviour-old",
                f"IsolationForest written by scikit-learn {ctx.version_text} with "
                "behaviour='old' (removed in 0.24): its predict used threshold_ "
                f"{float(threshold):.6g}, which today's class can not reproduce together "
                "with its decision_function",
            )
    return None


def _iforest_max_features(max_features: Any, n_features: Any) -> Any:
    if isinstance(max_features, (int, np.integer)):
        return int(max_features)
    return max(1, int(float(max_features) * int(n_features)))


def _node_depths(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Depth of each node (root 1), like ``Tree.compute_node_depths``; bounds-checked."""
    n = left.shape[0]
    depths = np.ones(n, dtype=np.int64)
    left_l, right_l = left.tolist(), right.tolist()
    for node in range(n):
        child = left_l[node]
        if child != -1:
            depth = depths[node] + 1
            for c in (child, right_l[node]):
                if not 0 <= c < n:
                    raise ValueError(f"tree child index {c} out of range")
                depths[c] = depth
    return depths


def _loss_of(state: dict) -> tuple[str | None, Any]:
    for key in ("_loss", "loss_"):
        value = state.get(key)
        if legacy_of(value, *MULTINOMIAL, *BINOMIAL, *LEAST_SQUARES):
            return key, value
    return None, None


def _prior_of(init: Any) -> np.ndarray:
    if legacy_of(init, PRIOR_ESTIMATOR):
        priors = (init.state or {}).get("priors")
    else:
        priors = getattr(init, "class_prior_", None)
    if not isinstance(priors, np.ndarray) or priors.ndim != 1:
        raise ValueError("gradient boosting init estimator without class priors")
    return priors.astype(np.float64)


def _shift_first_stage(estimators: Any, shift: np.ndarray, learning_rate: float) -> None:
    """Add ``shift[k]`` to the raw prediction of class ``k`` through stage 0's trees."""
    if not isinstance(estimators, np.ndarray) or estimators.ndim != 2:
        raise ValueError("estimators_ is not a 2-D array of trees")
    if estimators.shape[1] != shift.shape[0]:
        raise ValueError("estimators_ does not have one tree per class")
    for k in range(shift.shape[0]):
        if shift[k] != 0.0:
            value = estimators[0, k].tree_.value
            value[:, 0, 0] += shift[k] / learning_rate


@migration(cls=(GB_CLASSIFIER, GB_REGRESSOR), versions="<1.4")
def gradient_boosting_loss(state: Any, ctx: Any) -> Any:
    """Replace the removed ``_gb_losses`` loss objects by today's ``sklearn._loss`` losses.

    scikit-learn 1.4 (PR #26278) replaced ``sklearn.ensemble._gb_losses`` (and 0.20's losses in
    ``gradient_boosting``) by the common losses of ``sklearn._loss``.  The initial raw
    prediction changed with it: the old multinomial deviance started from ``log(prior)`` (0.21 –
    1.3) or from the priors themselves (0.20, ``PriorProbabilityEstimator``), today's loss from
    the symmetric logit ``log(prior) - mean(log(prior))``.  The per-class difference, a
    constant, is added to the leaves of the first stage's trees (divided by the learning
    rate), so ``decision_function`` and ``predict_proba`` equal the old ones.  A 0.20
    ``PriorProbabilityEstimator`` init becomes ``DummyClassifier(strategy="prior")``.
    """
    if type(state) is not dict:
        return None
    key, loss = _loss_of(state)
    if loss is None:
        return None
    from sklearn._loss.loss import HalfBinomialLoss, HalfMultinomialLoss, HalfSquaredError

    state = dict(state)
    state.pop(key)
    init = state.get("init_")
    lr = float(state["learning_rate"])
    name = loss.legacy_name
    if name in LEAST_SQUARES:
        if init is None or isinstance(init, str):
            raise ctx.refuse("gb-init", "gradient boosting without an init estimator")
        state["_loss"] = HalfSquaredError()
        state["n_trees_per_iteration_"] = 1
        state["loss"] = "squared_error"
        return _gb_common(state)
    priors = _prior_of(init)
    if name in MULTINOMIAL:
        n_classes = priors.shape[0]
        new_loss = HalfMultinomialLoss(n_classes=n_classes)
        if legacy_of(init, PRIOR_ESTIMATOR):
            old_raw = priors
        else:
            eps32 = np.finfo(np.float32).eps
            old_raw = np.log(np.clip(priors, eps32, 1 - eps32))
        eps64 = np.finfo(np.float64).eps
        new_raw = new_loss.link.link(np.clip(priors, eps64, 1 - eps64)[None, :])[0]
        state["n_trees_per_iteration_"] = n_classes
    else:  # binomial: log-odds of the positive class, with another clipping epsilon
        new_loss = HalfBinomialLoss()
        eps32 = np.finfo(np.float32).eps
        eps64 = np.finfo(np.float64).eps
        p32 = np.clip(priors[1], eps32, 1 - eps32)
        old_raw = np.array([np.log(p32 / (1 - p32))])
        new_raw = new_loss.link.link(np.clip(priors[1:2], eps64, 1 - eps64))
        state["n_trees_per_iteration_"] = 1
    _shift_first_stage(state.get("estimators_"), old_raw - new_raw, lr)
    if legacy_of(init, PRIOR_ESTIMATOR):
        state["init_"] = _dummy_prior(state["classes_"], priors)
    state["_loss"] = new_loss
    if state.get("loss") == "deviance":
        state["loss"] = "log_loss"
    return _gb_common(state)


def _gb_common(state: dict) -> dict:
    if "n_features_in_" not in state and "n_features_" in state:
        state["n_features_in_"] = state["n_features_"]
    return state


def _dummy_prior(classes: np.ndarray, priors: np.ndarray) -> Any:
    from sklearn.dummy import DummyClassifier

    dummy = DummyClassifier(strategy="prior")
    dummy.__dict__.update(
        classes_=classes,
        n_classes_=int(classes.shape[0]),
        class_prior_=priors,
        n_outputs_=1,
        _strategy="prior",
        sparse_output_=False,
        _sklearn_version=_today(),
    )
    return dummy


def _today() -> str:
    import sklearn

    return sklearn.__version__


@migration(cls=(HGB_CLASSIFIER, HGB_REGRESSOR), versions="<1.1")
def hist_gradient_boosting_loss(state: Any, ctx: Any) -> Any:
    """Replace HistGradientBoosting's own removed losses, and transpose the raw predictions.

    scikit-learn 1.1 (PR #20811) replaced ``sklearn.ensemble._hist_gradient_boosting.loss`` by
    the common ``sklearn._loss`` losses and switched raw predictions from shape
    ``(n_trees_per_iteration, n_samples)`` to ``(n_samples, n_trees_per_iteration)``; the
    baseline is transposed accordingly.  Both the old ``CategoricalCrossEntropy`` and today's
    ``HalfMultinomialLoss`` turn raw predictions into probabilities with a softmax, and the
    stored baseline (``log(prior)``) is added as is, so outputs are unchanged.  0.21's
    ``bin_mapper_``/``n_features_`` become ``_bin_mapper``/``n_features_in_``.
    """
    state = as_state(state)
    if state is None:
        return None
    changed = False
    for key in ("_loss", "loss_"):
        loss = state.get(key)
        if legacy_of(loss, HGB_CROSS_ENTROPY):
            from sklearn._loss.loss import HalfMultinomialLoss

            del state[key]
            state["_loss"] = HalfMultinomialLoss(n_classes=int(state["n_trees_per_iteration_"]))
            changed = True
    baseline = state.get("_baseline_prediction")
    if isinstance(baseline, np.ndarray) and baseline.ndim == 2 and baseline.shape[1] == 1:
        state["_baseline_prediction"] = np.ascontiguousarray(baseline.T)
        changed = True
    renamed = rename(state, {"bin_mapper_": "_bin_mapper", "n_features_": "n_features_in_"})
    if renamed is not None:
        state, changed = renamed, True
    return state if changed else None


@migration(cls=PYX_BINOMIAL, versions="*", kind="standin")
def cy_half_binomial_loss(call: Any, ctx: Any) -> Any:
    """Rebuild the ``CyHalfBinomialLoss`` that older scikit-learn pickled through a Cython helper.

    Older scikit-learn (the files seen: 1.5 – 1.6) let Cython generate ``__reduce__`` for the
    stateless ``sklearn._loss._loss.CyHalfBinomialLoss`` (held by ``HalfBinomialLoss.closs``, so
    by every binary ``HistGradientBoostingClassifier``): files call
    ``__pyx_unpickle_CyHalfBinomialLoss(cls, checksum, state)``, some under the bogus top-level
    module name ``_loss``.  Today's class pickles as
    ``CyHalfBinomialLoss()`` and the helper is gone.  The class has no fields (its Cython state
    is the empty tuple), so a fresh ``CyHalfBinomialLoss()`` is the same object; the loss only
    matters for fitting, the predictions use the link function.  The call's class argument was
    already checked to be the trusted ``CyHalfBinomialLoss``; any non-empty state is refused.
    """
    from sklearn._loss._loss import CyHalfBinomialLoss

    args = call.args
    if not (
        len(args) in (2, 3)
        and args[0] is CyHalfBinomialLoss
        and isinstance(args[1], int)
        and (len(args) == 2 or args[2] in (None, ()))
    ):
        raise ctx.refuse(
            "cy-loss-state", f"unexpected CyHalfBinomialLoss pickle: {describe(args, 80)}"
        )
    return CyHalfBinomialLoss()


@migration(cls=(HGB_CLASSIFIER, HGB_REGRESSOR), versions="<1.4")
def hist_gradient_boosting_preprocessor(state: Any, ctx: Any) -> Any:
    """Add ``_preprocessor``/``_is_categorical_remapped`` (None) and ``is_categorical_``.

    scikit-learn 1.4 (PR #26411, ``categorical_features="from_dtype"``) encodes categorical
    columns with a fitted ``_preprocessor`` before predicting; models of older versions had
    none, which ``_preprocessor = None`` reproduces.
    """
    return add_defaults(
        state, {"_preprocessor": None, "_is_categorical_remapped": None, "is_categorical_": None}
    )


@migration(cls=PREDICTOR, versions="*")
def predictor_node_dtype(state: Any, ctx: Any) -> Any:
    """Convert HistGradientBoosting predictor nodes to today's record dtype.

    The scikit-learn node record gained ``missing_go_to_left`` (0.22, PR #13911), ``is_categorical`` and
    ``bitset_idx`` (0.24, PR #18394) and renamed ``threshold`` to ``num_threshold`` (0.24);
    the predictor gained the categorical bitset arrays (empty for models without categorical
    features).  Keyed on the state's shape.  Old models sent missing values (NaN) to the right
    child, which ``missing_go_to_left = 0`` keeps.
    """
    if type(state) is not dict:
        return None
    from sklearn.ensemble._hist_gradient_boosting.common import (
        PREDICTOR_RECORD_DTYPE,
        X_BITSET_INNER_DTYPE,
    )

    nodes = state.get("nodes")
    changed = False
    state = dict(state)
    is_record = isinstance(nodes, np.ndarray) and nodes.dtype.names is not None
    if is_record and nodes.dtype != PREDICTOR_RECORD_DTYPE:
        new = np.zeros(nodes.shape, dtype=PREDICTOR_RECORD_DTYPE)
        old_names = set(nodes.dtype.names)
        for name in PREDICTOR_RECORD_DTYPE.names:
            if name in old_names:
                new[name] = nodes[name]
            elif name == "num_threshold" and "threshold" in old_names:
                new[name] = nodes["threshold"]
        state["nodes"] = new
        changed = True
    for key in ("binned_left_cat_bitsets", "raw_left_cat_bitsets"):
        if key not in state:
            state[key] = np.zeros((0, 8), dtype=X_BITSET_INNER_DTYPE)
            changed = True
    return state if changed else None


@migration(cls=BIN_MAPPER, versions="<0.24")
def bin_mapper_categorical(state: Any, ctx: Any) -> Any:
    """Add the categorical-feature attributes of ``_BinMapper`` (no categorical feature).

    scikit-learn 0.24 (PR #18394, native categorical support) added ``is_categorical_`` and
    ``known_categories``; 0.22 (PR #13911, missing values) added ``missing_values_bin_idx_`` and
    ``n_bins_non_missing_``.  Older models had no categorical features and no missing-value bin
    used at prediction time on raw data.
    """
    if type(state) is not dict or "is_categorical_" in state:
        return None
    thresholds = state.get("bin_thresholds_")
    if not isinstance(thresholds, list):
        return None
    n_bins = state.get("n_bins", state.get("max_bins", 256))
    state = dict(state)
    state["is_categorical_"] = np.zeros(len(thresholds), dtype=np.uint8)
    state.setdefault("is_categorical", None)
    state.setdefault("known_categories", None)
    state.setdefault("missing_values_bin_idx_", int(n_bins) - 1)
    if "n_bins_non_missing_" not in state:
        actual = state.get("actual_n_bins_")
        if actual is None:
            actual = [len(t) + 1 for t in thresholds]
        state["n_bins_non_missing_"] = np.asarray(actual, dtype=np.uint32)
    return state
