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
