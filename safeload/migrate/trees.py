"""Migrations of ``sklearn.tree._tree.Tree`` states (decision trees and every tree ensemble)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._registry import migration

TREE = "sklearn.tree._tree.Tree"

#: Node fields of scikit-learn 0.20 – 1.2, in order (``sklearn/tree/_tree.pxd``, ``Node``).
OLD_NODE_FIELDS = (
    "left_child",
    "right_child",
    "feature",
    "threshold",
    "impurity",
    "n_node_samples",
    "weighted_n_node_samples",
)

#: Tree estimators whose ``tree_.value`` holds class distributions.
TREE_CLASSIFIERS = frozenset(
    {
        "sklearn.tree._classes.DecisionTreeClassifier",
        "sklearn.tree._classes.ExtraTreeClassifier",
    }
)


def _node_dtype() -> np.dtype:
    from sklearn.tree._tree import NODE_DTYPE

    return NODE_DTYPE


@migration(cls=TREE, versions="*")
def node_missing_go_to_left(state: Any, ctx: Any) -> Any:
    """Add the ``missing_go_to_left`` node field that scikit-learn 1.3 introduced.

    scikit-learn 1.3 (PR #23595, "missing value support in decision trees") added a
    ``missing_go_to_left`` byte to the tree ``Node`` struct; ``Tree.__setstate__`` refuses node
    arrays of the old 7-field dtype.  Keyed on the state's shape (a node dtype without the field),
    not on the version.  Old trees sent NaN to the right child (``NaN <= threshold`` is false), so
    ``missing_go_to_left = 0`` reproduces what they did.
    """
    if type(state) is not dict:
        return None
    nodes = state.get("nodes")
    if not isinstance(nodes, np.ndarray) or nodes.dtype.names != OLD_NODE_FIELDS:
        return None
    new = np.zeros(nodes.shape, dtype=_node_dtype())
    for name in OLD_NODE_FIELDS:
        new[name] = nodes[name]
    state = dict(state)
    state["nodes"] = new
    return state


@migration(cls=TREE, versions="<1.4")
def classifier_value_fractions(state: Any, ctx: Any) -> Any:
    """Turn the weighted class counts of classifier trees into fractions.

    scikit-learn 1.4 (PR #27639) stores ``tree_.value`` of classifiers as weighted class
    fractions per node instead of weighted counts, and ``predict_proba`` no longer normalizes.
    Old files therefore give unnormalized probabilities in today's stack; dividing each node's
    counts by their sum (per output) gives exactly the probabilities the old ``predict_proba``
    computed (nodes with a zero sum are left at zero, as its ``normalizer[normalizer == 0] = 1``).
    Applied only to the ``tree_`` of ``DecisionTreeClassifier``/``ExtraTreeClassifier``.
    """
    if ctx.owner not in TREE_CLASSIFIERS or type(state) is not dict:
        return None
    values = state.get("values")
    if not isinstance(values, np.ndarray) or values.ndim != 3 or values.dtype != np.float64:
        return None
    total = values.sum(axis=2, keepdims=True)
    total[total == 0.0] = 1.0
    state = dict(state)
    state["values"] = values / total
    return state


TREE_ESTIMATORS = (
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._classes.DecisionTreeRegressor",
    "sklearn.tree._classes.ExtraTreeClassifier",
    "sklearn.tree._classes.ExtraTreeRegressor",
)


@migration(cls=TREE_ESTIMATORS, versions="<1.0")
def tree_n_features_in(state: Any, ctx: Any) -> Any:
    """Set ``n_features_in_`` from the ``n_features_`` of older tree estimators.

    scikit-learn 0.24 (SLEP010, PR #18010) introduced ``n_features_in_``; 1.0 deprecated and
    1.2 removed ``n_features_``.  ``predict`` checks ``X`` against ``n_features_in_``.
    """
    if type(state) is not dict or "n_features_in_" in state:
        return None
    n_features = state.get("n_features_")
    if n_features is None:
        tree = state.get("tree_")
        n_features = getattr(tree, "n_features", None)
    if n_features is None:
        return None
    state = dict(state)
    state["n_features_in_"] = n_features
    return state


FORESTS = (
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.ensemble._forest.RandomForestRegressor",
    "sklearn.ensemble._forest.ExtraTreesClassifier",
    "sklearn.ensemble._forest.ExtraTreesRegressor",
)
GRADIENT_BOOSTING = (
    "sklearn.ensemble._gb.GradientBoostingClassifier",
    "sklearn.ensemble._gb.GradientBoostingRegressor",
)

#: What ``max_features="auto"`` meant, per class, as today's value with the same meaning.
#: scikit-learn 1.1 (what's new: "max_features='auto' is deprecated"), 1.0.2's code:
#: forests ``_forest.py`` (classifiers ``sqrt(n_features)``, regressors ``n_features``), trees
#: ``_classes.py::BaseDecisionTree.fit`` (classifiers ``max(1, int(sqrt(n_features)))``,
#: regressors ``n_features``), ``_gb.py::_check_params`` (the same split on ``is_classifier``).
#: ``"sqrt"`` is ``max(1, int(sqrt(n_features)))``; ``1.0`` is ``max(1, int(1.0 * n_features))``
#: and None is ``n_features``.
_AUTO_MAX_FEATURES = {
    "sklearn.ensemble._forest.RandomForestClassifier": "sqrt",
    "sklearn.ensemble._forest.ExtraTreesClassifier": "sqrt",
    "sklearn.ensemble._forest.RandomForestRegressor": 1.0,
    "sklearn.ensemble._forest.ExtraTreesRegressor": 1.0,
    "sklearn.tree._classes.DecisionTreeClassifier": "sqrt",
    "sklearn.tree._classes.ExtraTreeClassifier": "sqrt",
    "sklearn.tree._classes.DecisionTreeRegressor": None,
    "sklearn.tree._classes.ExtraTreeRegressor": None,
    "sklearn.ensemble._gb.GradientBoostingClassifier": "sqrt",
    "sklearn.ensemble._gb.GradientBoostingRegressor": None,
}


@migration(cls=(*TREE_ESTIMATORS, *FORESTS, *GRADIENT_BOOSTING), versions="<1.3")
def max_features_auto(state: Any, ctx: Any) -> Any:
    """Replace ``max_features="auto"`` by the value it meant for the estimator's class.

    scikit-learn 1.1 deprecated ``max_features="auto"`` for trees, forests and gradient
    boosting, and 1.3 removed it: ``fit`` (so ``clone(est).fit``, a grid search, a refit)
    rejects it.  ``"auto"`` meant ``"sqrt"`` for classifiers and all the features for
    regressors (``1.0`` for forests — today's default —, None for single trees and gradient
    boosting).  Only the parameter changes: the fitted ``max_features_`` of trees and gradient
    boosting already holds the resolved number, forests' predictions do not read it, so the
    outputs are unchanged, and a refit draws as many features per split as the old one did.
    """
    if type(state) is not dict or state.get("max_features") != "auto":
        return None
    from ._context import class_name

    state = dict(state)
    state["max_features"] = _AUTO_MAX_FEATURES[class_name(ctx.obj)]
    return state


#: Constructor parameters added since 0.20 whose default reproduces what older versions did:
#: ``ccp_alpha`` (0.22, no pruning), ``max_samples`` (0.22, forests: bootstrap samples of
#: ``n_samples``), ``monotonic_cst`` (1.4, no constraint).
_ADDED_PARAMS = {
    "ccp_alpha": 0.0,
    "max_samples": None,
    "monotonic_cst": None,
}
#: Criteria renamed in scikit-learn 1.0 (old names removed in 1.2).
_RENAMED_CRITERIA = {"mse": "squared_error", "mae": "absolute_error"}


@migration(cls=(*TREE_ESTIMATORS, *FORESTS, *GRADIENT_BOOSTING), versions="<1.4")
def tree_params_added(state: Any, ctx: Any) -> Any:
    """Add the parameters scikit-learn added since (their defaults) and rename old criteria.

    ``get_params`` — hence ``clone``, ``repr`` and grid searches — reads every constructor
    parameter: scikit-learn 0.22 added ``ccp_alpha`` (minimal cost-complexity pruning, 0.0:
    none) and the forests' ``max_samples`` (None: bootstrap samples as large as the data), 1.4
    added ``monotonic_cst`` (trees and forests, None: no constraint).  Those defaults are what
    older versions did.  scikit-learn 1.0 renamed ``criterion="mse"``/``"mae"`` to
    ``"squared_error"``/``"absolute_error"`` (removed in 1.2): the same split criteria.  Only
    parameters change; fitted attributes and outputs are untouched.
    """
    if type(state) is not dict:
        return None
    from sklearn.base import BaseEstimator

    from ._context import class_name

    obj = ctx.obj
    if not isinstance(obj, BaseEstimator):
        return None
    names = set(type(obj)._get_param_names())
    missing = {k: v for k, v in _ADDED_PARAMS.items() if k in names and k not in state}
    criterion = state.get("criterion")
    renamed = _RENAMED_CRITERIA.get(criterion) if type(criterion) is str else None
    if class_name(obj) in GRADIENT_BOOSTING and criterion == "mae":
        renamed = None  # GradientBoosting's criterion="mae" has no equivalent today
    if not missing and renamed is None:
        return None
    state = {**state, **missing}
    if renamed is not None:
        state["criterion"] = renamed
    return state
