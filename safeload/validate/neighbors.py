"""Validators for KD/Ball trees and the neighbors estimators.

``BinaryTree.__setstate__`` (``sklearn/neighbors/_binary_tree.pxi.tp``) assigns ``data``,
``idx_array``, ``node_data``, ``node_bounds``, ``leaf_size``, ``n_levels``, ``n_nodes`` and
``dist_metric`` from the pickle without any consistency check.  The queries then, unchecked
(``boundscheck=False``, ``cdivision=True``, ``nonecheck=False``):

* recurse from node 0 to ``2 * i + 1`` and ``2 * i + 2`` until ``node_data[i].is_leaf``;
* read ``node_bounds[0|1, i, j]`` for ``j < data.shape[1]`` (``_kd_tree.pyx.tp::min_rdist``,
  ``_ball_tree.pyx.tp`` centroids);
* read ``data[idx_array[k]]`` and ``sample_weight[idx_array[k]]`` for ``k`` in
  ``[idx_start, idx_end)`` of a leaf;
* size arrays by ``n_nodes`` (``kernel_density``) and divide ``data.shape[0] // leaf_size``
  (C division: ``leaf_size == 0`` is SIGFPE);
* call ``dist_metric.rdist`` (a ``None`` metric is a NULL dereference).

The brute-force class-mode reductions (``_argkmin_classmode.pyx.tp``,
``_radius_neighbors_classmode.pyx.tp``) write ``class_scores[i][Y_labels[j]]`` with
``Y_labels = self._y``, so a classifier's encoded labels must index its ``classes_``.
"""

from __future__ import annotations

import sys

import numpy as np

from .._text import describe
from ..limits import Limits
from . import register
from ._common import MISSING, check_flag, check_range, fail, get_array, get_int, is_type, state
from .dist_metrics import check_metric_width

__all__ = ["validate_binary_tree", "validate_neighbors"]

_KD = "sklearn.neighbors._kd_tree"
_BALL = "sklearn.neighbors._ball_tree"
BINARY_TREE_NAMES = (
    f"{_KD}.BinaryTree64",
    f"{_KD}.BinaryTree32",
    f"{_BALL}.BinaryTree64",
    f"{_BALL}.BinaryTree32",
    f"{_KD}.KDTree",
    f"{_KD}.KDTree64",
    f"{_KD}.KDTree32",
    f"{_BALL}.BallTree",
    f"{_BALL}.BallTree64",
    f"{_BALL}.BallTree32",
)
_NODE_FIELDS = ("idx_start", "idx_end", "is_leaf", "radius")


def _valid_metric_names(tree: object) -> list[str] | None:
    """``VALID_METRICS64``/``VALID_METRICS32`` of the module that defines the tree class."""
    for cls in type(tree).__mro__:
        if cls.__module__ in (_KD, _BALL) and cls.__name__.startswith("BinaryTree"):
            module = sys.modules.get(cls.__module__)
            suffix = cls.__name__[-2:]
            return getattr(module, f"VALID_METRICS{suffix}", None)
    return None


@register(*BINARY_TREE_NAMES)
def validate_binary_tree(tree: object, limits: Limits) -> None:
    """Validate the state of a ``KDTree``/``BallTree`` (64- and 32-bit variants).

    Follows ``BinaryTree.__init__``/``_recursive_build``/``_query_single_depthfirst`` in
    ``sklearn/neighbors/_binary_tree.pxi.tp`` and ``allocate_data`` in ``_kd_tree.pyx.tp`` /
    ``_ball_tree.pyx.tp``.  Checks:

    * ``data`` is 2-D with at least one sample and one feature;
    * ``idx_array`` is a permutation of ``range(n_samples)``;
    * ``node_data`` has the ``NodeData`` fields and ``n_nodes == len(node_data) ==
      2**n_levels - 1``; for every node ``0 <= idx_start <= idx_end <= n_samples``,
      ``is_leaf`` is 0 or 1, and an internal node ``i`` has its children ``2i+1, 2i+2`` inside
      the array;
    * ``node_bounds`` has shape ``(2, n_nodes, n_features)`` (KD) or ``(1, n_nodes,
      n_features)`` (Ball) and the data's dtype;
    * ``leaf_size >= 1``;
    * ``dist_metric`` is a DistanceMetric of the tree's precision whose class is one the tree
      supports (``VALID_METRICS``), and whose parameters fit ``n_features``;
    * ``sample_weight`` is ``None`` or has ``n_samples`` entries.

    Parameters
    ----------
    tree : KDTree, BallTree, KDTree32, BallTree32
        The tree, after ``__setstate__``.
    limits : Limits
        Unused.

    Raises
    ------
    ValidationError
        Naming the field and the bad value.
    """
    st = tree.__getstate__()  # type: ignore[attr-defined]
    if not isinstance(st, tuple) or len(st) != 13:
        fail(tree, "state is not the 13-tuple of BinaryTree.__getstate__")
    (data, idx_array, node_data, node_bounds, leaf_size, n_levels, n_nodes, *_, metric, sw) = st
    data = get_array(tree, "data", data, ndim=2, kinds="f")
    n_samples, n_features = data.shape
    if n_samples < 1 or n_features < 1:
        fail(tree, f"data has shape {data.shape}; a built tree has at least one sample and feature")

    idx = get_array(tree, "idx_array", idx_array, ndim=1, kinds="i", shape=(n_samples,))
    check_range(tree, "idx_array", idx, 0, n_samples)
    counts = np.bincount(idx, minlength=n_samples)
    if (counts != 1).any():
        k = int(np.argmax(counts != 1))
        fail(
            tree,
            f"idx_array is not a permutation of range({n_samples}): {k} appears "
            f"{int(counts[k])} times",
        )

    get_int(tree, "leaf_size", leaf_size, 1)
    n_levels = get_int(tree, "n_levels", n_levels, 1, 62)
    n_nodes = get_int(tree, "n_nodes", n_nodes, 1)
    if n_nodes != 2**n_levels - 1:
        fail(tree, f"n_nodes = {n_nodes} but n_levels = {n_levels} gives {2**n_levels - 1} nodes")
    nd = get_array(tree, "node_data", node_data, ndim=1, shape=(n_nodes,))
    if any(f not in (nd.dtype.names or ()) for f in _NODE_FIELDS):
        fail(tree, f"node_data has fields {nd.dtype.names}, expected {_NODE_FIELDS}")
    start = nd["idx_start"].astype(np.int64)
    end = nd["idx_end"].astype(np.int64)
    check_range(tree, "node_data['idx_start']", start, 0, n_samples + 1)
    check_range(tree, "node_data['idx_end']", end, 0, n_samples + 1)
    backwards = start > end
    if backwards.any():
        k = int(np.argmax(backwards))
        fail(tree, f"node_data[{k}] has idx_start = {int(start[k])} > idx_end = {int(end[k])}")
    is_leaf = nd["is_leaf"]
    check_flag(tree, "node_data['is_leaf']", is_leaf)
    internal = np.flatnonzero(is_leaf == 0)
    if internal.size and 2 * int(internal[-1]) + 2 >= n_nodes:
        k = int(internal[np.argmax(2 * internal + 2 >= n_nodes)])
        fail(
            tree,
            f"node_data[{k}] is not a leaf but its children {2 * k + 1}, {2 * k + 2} are "
            f"outside the {n_nodes} nodes",
        )

    is_kd = any(c.__module__ == _KD for c in type(tree).__mro__)
    lead = 2 if is_kd else 1
    get_array(
        tree,
        "node_bounds",
        node_bounds,
        ndim=3,
        dtype=data.dtype,
        shape=(lead, n_nodes, n_features),
    )

    if metric is None or not is_type(metric, "sklearn.metrics._dist_metrics.DistanceMetric"):
        fail(tree, f"dist_metric is a {type(metric).__name__}, not a DistanceMetric")
    valid = _valid_metric_names(tree)
    if valid is not None and type(metric).__name__ not in valid:
        fail(tree, f"dist_metric {type(metric).__name__} is not one of {valid}")
    check_metric_width(tree, "dist_metric", metric, n_features)
    if sw is not None:
        get_array(tree, "sample_weight", sw, ndim=1, kinds="f", shape=(n_samples,))


_FIT_METHODS = ("brute", "kd_tree", "ball_tree")


def _check_labels(est: object, field: str, y: np.ndarray, classes: object) -> None:
    try:
        n_classes = len(classes)  # type: ignore[arg-type]
    except TypeError:
        fail(est, f"classes_ is a {type(classes).__name__}, not a sequence")
    check_range(est, field, y, 0, n_classes)


@register("sklearn.neighbors._base.NeighborsBase")
def validate_neighbors(est: object, limits: Limits) -> None:
    """Check the fitted state shared by the neighbors estimators (only once ``_fit_X`` is set).

    Follows ``NeighborsBase._fit``/``KNeighborsMixin.kneighbors`` (``sklearn/neighbors/_base.py``)
    and ``KNeighborsClassifier.predict_proba`` /
    ``RadiusNeighborsClassifier.predict_proba`` (``_classification.py``), which hand ``_y`` to
    the class-mode reductions as ``Y_labels``.  Checks:

    * ``_fit_method`` is one of ``brute``, ``kd_tree``, ``ball_tree``;
    * ``_fit_X`` is 2-D with ``n_samples_fit_`` rows and ``n_features_in_`` columns;
    * a tree method has ``_tree`` built on data of the same shape;
    * ``_y`` (when present) has one entry per sample and, for a classifier, indexes ``classes_``
      (per output for multi-output ``_y``).

    Parameters
    ----------
    est : NeighborsBase subclass
        The estimator.
    limits : Limits
        Unused.

    Raises
    ------
    ValidationError
        Naming the field and the bad value.
    """
    d = state(est)
    if "_fit_X" not in d:
        return
    method = d.get("_fit_method", MISSING)
    if method not in _FIT_METHODS:
        fail(est, f"_fit_method = {describe(method, 80)} is not one of {_FIT_METHODS}")
    fit_x = d["_fit_X"]
    shape = getattr(fit_x, "shape", None)
    if not isinstance(fit_x, np.ndarray) and not is_type(fit_x, "scipy.sparse._base._spbase"):
        fail(est, f"_fit_X is a {type(fit_x).__name__}, not an array")
    if not isinstance(shape, tuple) or len(shape) != 2:
        fail(est, f"_fit_X has shape {describe(shape, 80)}, expected 2-D")
    n_samples = get_int(est, "n_samples_fit_", d.get("n_samples_fit_", MISSING), 1)
    if shape[0] != n_samples:
        fail(est, f"_fit_X has {shape[0]} rows, n_samples_fit_ = {n_samples}")
    n_in = d.get("n_features_in_", MISSING)
    if get_int(est, "n_features_in_", n_in, 1) != shape[1]:
        fail(est, f"_fit_X has {shape[1]} columns, n_features_in_ = {n_in}")
    tree = d.get("_tree", None)
    if method != "brute":
        if not is_type(tree, *BINARY_TREE_NAMES):
            fail(est, f"_fit_method = {describe(method)} but _tree is a {type(tree).__name__}")
        tree_shape = tree.__getstate__()[0].shape  # type: ignore[union-attr]
        if tree_shape != shape:
            fail(est, f"_tree was built on data of shape {tree_shape}, _fit_X has {shape}")

    y = d.get("_y", MISSING)
    if y is MISSING or y is None:
        return
    y = get_array(est, "_y", y)
    if y.ndim not in (1, 2) or y.shape[0] != n_samples:
        fail(est, f"_y has shape {y.shape}, expected ({n_samples},) or ({n_samples}, n_outputs)")
    classes = d.get("classes_", MISSING)
    if classes is MISSING:
        return  # a regressor: _y values are averaged, never used as indices
    get_array(est, "_y", y, kinds="iu")
    if y.ndim == 1:
        _check_labels(est, "_y", y, classes)
    else:
        if not isinstance(classes, list | tuple) or len(classes) != y.shape[1]:
            fail(est, f"_y has {y.shape[1]} outputs but classes_ is not a list of that length")
        for k in range(y.shape[1]):
            _check_labels(est, f"_y[:, {k}]", np.ascontiguousarray(y[:, k]), classes[k])
