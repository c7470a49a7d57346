"""Migrations of nearest-neighbour estimators and their KD/ball trees."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._text import describe
from ._registry import migration

EUCLIDEAN = "sklearn.metrics._dist_metrics.EuclideanDistance"
NEIGHBORS = (
    "sklearn.neighbors._classification.KNeighborsClassifier",
    "sklearn.neighbors._classification.RadiusNeighborsClassifier",
    "sklearn.neighbors._regression.KNeighborsRegressor",
    "sklearn.neighbors._regression.RadiusNeighborsRegressor",
    "sklearn.neighbors._unsupervised.NearestNeighbors",
    "sklearn.neighbors._lof.LocalOutlierFactor",
)


@migration(cls=EUCLIDEAN, versions="*", kind="standin")
def euclidean_distance(standin: Any, ctx: Any) -> Any:
    """Replace the removed ``EuclideanDistance`` metric by today's ``EuclideanDistance64``.

    scikit-learn 1.1 (PR #22590) split the distance metrics into float64 and float32 variants
    (``EuclideanDistance64``/``EuclideanDistance32``) and removed ``EuclideanDistance``.  The
    Euclidean metric has no parameters (its state ``(p, vec, mat)`` is ``(2.0, [0.], [[0.]])``),
    so a fresh ``DistanceMetric.get_metric("euclidean")`` is the same metric.
    """
    state = standin.state
    if not (type(state) is tuple and len(state) == 3 and state[0] == 2.0):
        raise ctx.refuse(
            "euclidean-state", f"unexpected EuclideanDistance state: {describe(state, 80)}"
        )
    from sklearn.metrics import DistanceMetric

    return DistanceMetric.get_metric("euclidean")


@migration(cls=NEIGHBORS, versions="<1.0")
def neighbors_fit_shape(state: Any, ctx: Any) -> Any:
    """Set ``n_samples_fit_`` and ``n_features_in_`` from the training data ``_fit_X``.

    scikit-learn 0.24 added ``n_features_in_`` (SLEP010) and ``n_samples_fit_`` (PR #18016),
    which ``kneighbors`` reads to bound ``n_neighbors``.
    """
    if type(state) is not dict:
        return None
    fit_x = state.get("_fit_X")
    if not isinstance(fit_x, np.ndarray) or fit_x.ndim != 2:
        return None
    if "n_samples_fit_" in state and "n_features_in_" in state:
        return None
    state = dict(state)
    state.setdefault("n_samples_fit_", int(fit_x.shape[0]))
    state.setdefault("n_features_in_", int(fit_x.shape[1]))
    return state


KD_BINARY_TREE = "sklearn.neighbors._kd_tree.BinaryTree"

#: Items of ``BinaryTree.__getstate__`` before ``sample_weight`` was appended (scikit-learn 0.19,
#: ``sklearn/neighbors/binary_tree.pxi``); today's ``__setstate__`` reads 13.
_OLD_TREE_STATE_LEN = 12
_TREE_ARRAY_DTYPES = (np.float64, np.intp, None, np.float64)  # data, idx_array, node_data, bounds


@migration(cls=KD_BINARY_TREE, versions="*", kind="standin")
def kd_tree_binary_tree(standin: Any, ctx: Any) -> Any:
    """Rebuild a ``KDTree`` that old scikit-learn pickled as its base class ``BinaryTree``.

    In old scikit-learn (0.19), ``BinaryTree.__reduce__`` (``binary_tree.pxi``, included in
    ``kd_tree.pyx``) returned ``(newObj, (BinaryTree,), state)``: the file names the base class
    of the KD-tree module, whose methods answered queries with the module's KD-tree node
    functions.  Today's scikit-learn has no ``BinaryTree``: it split it into
    ``BinaryTree64``/``BinaryTree32`` (float32 support) and appended ``sample_weight`` to the
    state.  Today's ``KDTree`` (64-bit, what ``KNeighborsClassifier(algorithm="kd_tree")``
    builds) set with the same arrays, metric and counters — no sample weights, as a tree built
    for neighbors queries has none — answers the same queries: the array values are kept
    exactly (only the ``NodeData`` record is re-laid out field by field), and the KD-tree
    content validator checks the rebuilt tree.  Keyed on the state's shape (12 or 13 items).
    """
    state = standin.state
    if not (type(state) is tuple and len(state) in (_OLD_TREE_STATE_LEN, 13)):
        raise ctx.refuse("kd-tree-state", f"unexpected BinaryTree state: {describe(state, 80)}")
    if len(state) == 13 and state[12] is not None:
        raise ctx.refuse("kd-tree-state", "BinaryTree with sample weights (no KD-tree has them)")
    from sklearn.neighbors import KDTree
    from sklearn.neighbors._kd_tree import NodeData

    items = list(state[:_OLD_TREE_STATE_LEN])
    for i, dtype in enumerate(_TREE_ARRAY_DTYPES):
        arr = items[i]
        if not isinstance(arr, np.ndarray):
            raise ctx.refuse("kd-tree-state", f"BinaryTree state item {i} is not an array")
        if dtype is None:  # node_data: the same four fields, maybe another record layout
            if arr.dtype.names != NodeData.names:
                raise ctx.refuse("kd-tree-state", f"node_data fields {arr.dtype.names}")
            new = np.zeros(arr.shape, dtype=NodeData)
            for name in NodeData.names:
                new[name] = arr[name]
            items[i] = new
        elif arr.dtype != dtype:
            if not np.can_cast(arr.dtype, dtype, casting="same_kind"):
                raise ctx.refuse("kd-tree-state", f"BinaryTree array {i} has dtype {arr.dtype}")
            items[i] = arr.astype(dtype)
    tree = KDTree.__new__(KDTree)
    tree.__setstate__((*items, None))
    ctx.created.append(tree)  # checked by the KD-tree validator once the graph is built
    return tree
