"""Validators for ``sklearn.tree._tree.Tree`` and the estimators that walk trees in Cython.

What the C code does (``sklearn/tree/_tree.pyx``, compiled with ``boundscheck=False``):

* ``Tree._apply_dense`` / ``_apply_sparse_csr`` / ``_decision_path_*`` start at ``nodes[0]`` and
  loop ``while node.left_child != TREE_LEAF``: read ``X[i, node.feature]`` and jump to
  ``nodes[node.left_child]`` or ``nodes[node.right_child]``.  An out-of-range child or feature
  reads out of bounds; a child that points back to an ancestor loops forever.
* ``_decision_path_*`` allocate ``n_samples * (1 + max_depth)`` path slots and write one per
  visited node: a ``max_depth`` smaller than the real depth writes past the buffer, a huge one
  overflows the product.
* ``Tree.__setstate__`` takes ``node_count`` from the pickle without comparing it to the node
  array, and ``_get_node_ndarray``/``_get_value_ndarray`` wrap ``node_count`` entries of a
  ``capacity``-sized buffer: ``node_count > capacity`` exposes heap memory.
* ``compute_feature_importances`` and ``compute_partial_dependence`` visit every node below
  ``node_count`` and index ``importances[node.feature]`` and a stack of size ``node_count``.
* ``sklearn/ensemble/_gradient_boosting.pyx::predict_stages`` walks the same nodes directly and
  writes ``out[i, k]`` for ``k < estimators_.shape[1]``.

Forests call ``tree.predict(X, check_input=False)`` after checking ``X`` against the forest's own
``n_features_in_``, so each tree's ``n_features`` has to agree with its holder.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .._text import describe
from ..limits import Limits
from . import ValidationBatch, register, register_final
from ._common import (
    MISSING,
    check_children,
    check_flag,
    check_range,
    fail,
    get_array,
    get_int,
    is_type,
    state,
    tree_depth,
)

try:  # optional C kernel; the numpy code below is the reference
    from . import _treecheck
except ImportError:  # pragma: no cover - built without a compiler
    _treecheck = None

__all__ = ["validate_tree"]

TREE_NAME = "sklearn.tree._tree.Tree"
_TREE_LEAF = -1
_NODE_FIELDS = ("left_child", "right_child", "feature", "missing_go_to_left")


@register(TREE_NAME)
def validate_tree(tree: object, limits: Limits) -> None:
    """Validate the node structure of a ``sklearn.tree._tree.Tree``.

    Follows ``Tree.__setstate__``, ``_apply_dense``, ``_decision_path_dense`` and
    ``compute_feature_importances`` in ``sklearn/tree/_tree.pyx``.  Checks, in this order (the
    node array is only wrapped once ``node_count <= capacity`` is known):

    * ``n_features >= 1``, ``n_outputs >= 1``, ``n_classes`` has ``n_outputs`` entries ``>= 1``
      whose maximum is ``max_n_classes``;
    * ``1 <= node_count <= capacity`` and ``0 <= max_depth < node_count``;
    * the ``value`` array has shape ``(node_count, n_outputs, max_n_classes)``;
    * a node is a leaf iff both children are ``TREE_LEAF`` (-1), never just one of them;
    * for every internal node ``i``: ``i < children_left[i], children_right[i] < node_count``
      (forward pointers: no cycle, the traversal terminates) and ``0 <= feature[i] <
      n_features``; ``missing_go_to_left[i]`` is 0 or 1;
    * every node except the root has exactly one parent (one tree, nothing shared);
    * the real depth of the tree is at most ``max_depth``.

    Parameters
    ----------
    tree : sklearn.tree._tree.Tree
        The tree, after ``__setstate__``.
    limits : Limits
        Unused.

    Raises
    ------
    ValidationError
        Naming the field, the node and the bad value.
    """
    nodes, node_count, n_features, max_depth = _check_tree_header(tree)
    if _fast_nodes_ok(nodes, node_count, n_features, max_depth):
        return
    _check_nodes_numpy(tree, nodes, node_count, n_features, max_depth)


@register_final(validate_tree, TREE_NAME)
def _validate_tree_early(tree: object, limits: Limits, batch: ValidationBatch) -> None:
    """:func:`validate_tree` for a tree whose state was just set: the header at once, the node
    pass beside the loader (a Tree's nodes change only in ``__setstate__``, called once)."""
    nodes, node_count, n_features, max_depth = _check_tree_header(tree)
    args = _kernel_args(nodes)
    if args is not None and batch.add_nodes(
        tree, validate_tree, nodes, *args, node_count, n_features, max_depth
    ):
        return
    if _fast_nodes_ok(nodes, node_count, n_features, max_depth):
        return
    _check_nodes_numpy(tree, nodes, node_count, n_features, max_depth)


def _check_tree_header(tree: Any) -> tuple[np.ndarray, int, int, int]:
    """Everything :func:`validate_tree` checks except the per-node pass; returns the node
    array (wrapped only once ``node_count <= capacity`` is known) and the pass's bounds."""
    header = _header_fast(tree)
    if header is not None:
        return header
    n_features = get_int(tree, "n_features", tree.n_features, 1)
    n_outputs = get_int(tree, "n_outputs", tree.n_outputs, 1)
    max_n_classes = get_int(tree, "max_n_classes", tree.max_n_classes, 1)
    n_classes = get_array(tree, "n_classes", tree.n_classes, ndim=1, kinds="iu")
    if n_classes.shape[0] != n_outputs:
        fail(tree, f"n_classes has {n_classes.shape[0]} entries, n_outputs = {n_outputs}")
    classes = n_classes.tolist()  # a handful of entries: Python beats ufunc reductions here
    if min(classes) < 1 or max(classes) >= _INTP_MAX:
        check_range(tree, "n_classes", n_classes, 1, _INTP_MAX)
    if max(classes) != max_n_classes:
        fail(tree, f"max_n_classes = {max_n_classes} but max(n_classes) = {max(classes)}")

    capacity = get_int(tree, "capacity", tree.capacity, 0)
    node_count = get_int(tree, "node_count", tree.node_count, None)
    if node_count < 1:
        fail(tree, f"node_count = {node_count}: a fitted tree has at least its root node")
    if node_count > capacity:
        fail(
            tree,
            f"node_count = {node_count} is larger than the node array (capacity = {capacity})",
        )
    max_depth = get_int(tree, "max_depth", tree.max_depth, None)
    if not 0 <= max_depth < node_count:
        fail(tree, f"max_depth = {max_depth} is outside [0, {node_count}) (node_count)")

    # Safe now: __getstate__ wraps node_count <= capacity entries of the C buffers.
    st = tree.__getstate__()
    nodes = st["nodes"]
    if nodes.shape != (node_count,) or any(
        f not in (nodes.dtype.names or ()) for f in _NODE_FIELDS
    ):
        fail(tree, f"node array has shape {nodes.shape} and fields {nodes.dtype.names}")
    values = st["values"]
    if values.shape != (node_count, n_outputs, max_n_classes):
        fail(
            tree,
            f"value has shape {values.shape}, expected ({node_count}, {n_outputs}, "
            f"{max_n_classes})",
        )
    return nodes, node_count, n_features, max_depth


def _header_fast(tree: Any) -> tuple[np.ndarray, int, int, int] | None:
    """What :func:`_check_tree_header` returns, for a tree that passes all its checks, decided
    with exact-type tests and plain comparisons (a third of the checking path's cost, once
    per tree); None sends the caller to the checks that name the problem."""
    n_features = tree.n_features
    n_outputs = tree.n_outputs
    max_n_classes = tree.max_n_classes
    capacity = tree.capacity
    node_count = tree.node_count
    max_depth = tree.max_depth
    if not (  # Tree's properties give ints
        type(n_features) is int
        and type(n_outputs) is int
        and type(max_n_classes) is int
        and type(capacity) is int
        and type(node_count) is int
        and type(max_depth) is int
    ):
        return None
    if not (n_features >= 1 and n_outputs >= 1 and 1 <= max_n_classes < _INTP_MAX):
        return None
    if not (1 <= node_count <= capacity and 0 <= max_depth < node_count):
        return None
    n_classes = tree.n_classes
    if type(n_classes) is not np.ndarray or n_classes.shape != (n_outputs,):
        return None
    if n_classes.dtype.kind not in "iu":
        return None
    classes = n_classes.tolist()
    # max == max_n_classes < _INTP_MAX bounds every count from above
    if min(classes) < 1 or max(classes) != max_n_classes:
        return None
    st = tree.__getstate__()  # node_count <= capacity is known
    nodes = st["nodes"]
    if type(nodes) is not np.ndarray or nodes.shape != (node_count,):
        return None
    if not _has_node_fields(nodes.dtype):
        return None
    values = st["values"]
    if type(values) is not np.ndarray or values.shape != (node_count, n_outputs, max_n_classes):
        return None
    return nodes, node_count, n_features, max_depth


_node_fields: dict[np.dtype, bool] = {}


def _has_node_fields(dtype: np.dtype) -> bool:
    """Whether a node dtype has every field of ``_NODE_FIELDS``, cached per dtype (a load's
    trees share one dtype object)."""
    ok = _node_fields.get(dtype)
    if ok is None:
        names = dtype.names or ()
        ok = all(f in names for f in _NODE_FIELDS)
        if len(_node_fields) < 64:
            _node_fields[dtype] = ok
    return ok


def _check_nodes_numpy(
    tree: object, nodes: np.ndarray, node_count: int, n_features: int, max_depth: int
) -> None:
    """numpy reference of the node pass: the same checks as the C kernel, and the precise
    message when the kernel said no."""
    left = np.ascontiguousarray(nodes["left_child"]).astype(np.int64, copy=False)
    right = np.ascontiguousarray(nodes["right_child"]).astype(np.int64, copy=False)

    leaf_l = left == _TREE_LEAF
    leaf_r = right == _TREE_LEAF
    half = leaf_l != leaf_r
    if half.any():
        k = int(np.argmax(half))
        fail(
            tree,
            f"children_left[{k}] = {int(left[k])} but children_right[{k}] = {int(right[k])}: "
            f"a leaf has both children == {_TREE_LEAF} (TREE_LEAF), an internal node neither",
        )
    internal = np.flatnonzero(~leaf_l)
    child_l = left[internal]
    child_r = right[internal]
    check_children(
        tree, ("children_left", "children_right"), child_l, child_r, internal, node_count
    )
    check_range(tree, "feature", nodes["feature"][internal], 0, n_features, internal)
    check_flag(tree, "missing_go_to_left", nodes["missing_go_to_left"][internal], internal)

    depth = tree_depth(node_count, internal, child_l, child_r)
    if depth > max_depth:
        fail(
            tree,
            f"max_depth = {max_depth} but the tree is {depth} levels deep (decision_path "
            "allocates max_depth + 1 slots per sample)",
        )


_I8 = np.dtype(np.int64)
_INTP_MAX = int(np.iinfo(np.intp).max)


_U1 = np.dtype(np.uint8)
_layouts: dict[np.dtype, tuple[int, int, int, int, int] | None] = {}


def _kernel_args(nodes: np.ndarray) -> tuple[int, int, int, int, int] | None:
    """``(itemsize, off_left, off_right, off_feature, off_missing)`` of a C-contiguous node
    array the kernel can read, else None (cached per dtype)."""
    if _treecheck is None or not nodes.flags.c_contiguous:
        return None
    dtype = nodes.dtype
    try:
        return _layouts[dtype]
    except KeyError:
        pass
    layout = None
    fields: Mapping[str, tuple] = dtype.fields or {}
    try:
        (dl, ol), (dr, orr), (df, of) = (fields[k][:2] for k in _NODE_FIELDS[:3])
        dm, om = fields["missing_go_to_left"][:2]
    except (KeyError, TypeError):
        pass
    else:
        if dl == dr == df == _I8 and dm == _U1:
            layout = (dtype.itemsize, ol, orr, of, om)
    if len(_layouts) < 64:
        _layouts[dtype] = layout
    return layout


def _fast_nodes_ok(nodes: np.ndarray, node_count: int, n_features: int, max_depth: int) -> bool:
    """Run the per-node checks in the C kernel (``_treecheck.c``); False when it is unavailable
    or finds a problem (the numpy reference then names it)."""
    args = _kernel_args(nodes)
    if args is None:
        return False
    return _treecheck.check(nodes, *args, node_count, n_features, max_depth)


def _tree_of(holder: object, estimator: object, where: str) -> object | None:
    """Return ``estimator.tree_`` if it is a Tree (``None`` for an unfitted estimator)."""
    if not hasattr(estimator, "__dict__"):
        fail(holder, f"{where} is a {type(estimator).__name__}, not a fitted tree estimator")
    tree = vars(estimator).get("tree_", MISSING)
    if tree is MISSING:
        return None
    if not is_type(tree, TREE_NAME):
        fail(holder, f"{where}.tree_ is a {type(tree).__name__}, not {TREE_NAME}")
    return tree


def _check_tree_width(holder: object, where: str, tree: object, n_features: int) -> None:
    if tree.n_features != n_features:  # type: ignore[attr-defined]
        fail(
            holder,
            f"{where}.tree_.n_features = {tree.n_features} but the input is checked against "  # type: ignore[attr-defined]
            f"n_features_in_ = {n_features} (predict indexes X[:, feature] without bounds "
            "checks)",
        )


@register("sklearn.tree._classes.BaseDecisionTree")
def validate_decision_tree(est: object, limits: Limits) -> None:
    """Check that a fitted decision tree's ``tree_`` matches its ``n_features_in_``.

    ``BaseDecisionTree._validate_X_predict`` checks ``X`` against ``n_features_in_`` (and skips
    the check when that attribute is missing), then ``Tree.apply`` reads ``X[i, feature]``.

    Raises
    ------
    ValidationError
        If ``tree_`` is not a Tree, or ``n_features_in_`` is missing or differs from
        ``tree_.n_features``, or ``n_outputs_`` differs from ``tree_.n_outputs``.
    """
    d = state(est)
    tree = _tree_of(est, est, "self")
    if tree is None:
        return
    n_in = get_int(est, "n_features_in_", d.get("n_features_in_", MISSING), 1)
    _check_tree_width(est, "self", tree, n_in)
    n_outputs = d.get("n_outputs_", MISSING)
    if n_outputs is not MISSING and get_int(est, "n_outputs_", n_outputs) != tree.n_outputs:  # type: ignore[attr-defined]
        fail(est, f"n_outputs_ = {n_outputs} but tree_.n_outputs = {tree.n_outputs}")  # type: ignore[attr-defined]


def _estimator_list(holder: object, value: object, field: str) -> list:
    if isinstance(value, np.ndarray) and value.dtype == object:
        return list(value.ravel())
    if not isinstance(value, list | tuple):
        fail(holder, f"{field} is a {type(value).__name__}, not a list of estimators")
    return list(value)


@register("sklearn.ensemble._forest.BaseForest")
def validate_forest(est: object, limits: Limits) -> None:
    """Check that every tree of a fitted forest has the forest's input width.

    ``BaseForest.predict``/``apply`` validate ``X`` against the forest's ``n_features_in_`` and
    then call each tree with ``check_input=False`` (``sklearn/ensemble/_forest.py``).

    Raises
    ------
    ValidationError
        If ``estimators_`` is not a list of tree estimators or a tree's ``n_features`` differs
        from the forest's ``n_features_in_``.
    """
    d = state(est)
    if "estimators_" not in d:
        return
    estimators = _estimator_list(est, d["estimators_"], "estimators_")
    if not estimators:
        return
    n_in = get_int(est, "n_features_in_", d.get("n_features_in_", MISSING), 1)
    for i, sub in enumerate(estimators):
        tree = _tree_of(est, sub, f"estimators_[{i}]")
        if tree is not None:
            _check_tree_width(est, f"estimators_[{i}]", tree, n_in)


@register("sklearn.ensemble._gb.BaseGradientBoosting")
def validate_gradient_boosting(est: object, limits: Limits) -> None:
    """Check the stage array that ``predict_stages`` walks in Cython.

    Follows ``sklearn/ensemble/_gradient_boosting.pyx::predict_stages`` (reads the nodes of
    ``estimators_[i, k].tree_`` directly and writes ``out[i, k]`` for ``k <
    estimators_.shape[1]``) and ``BaseGradientBoosting._raw_predict_init`` (``out`` has
    ``n_trees_per_iteration_`` columns when ``init_ == "zero"``, else the init estimator's
    output width; ``X`` is checked against ``estimators_[0, 0].n_features_in_``).

    Raises
    ------
    ValidationError
        If ``estimators_`` is not a 2-D object array of fitted regression trees with
        ``n_trees_per_iteration_`` columns, a tree's width differs from ``n_features_in_``, or a
        multiclass ``init_`` estimator predicts a different number of classes.
    """
    d = state(est)
    if "estimators_" not in d:
        return
    stages = get_array(est, "estimators_", d["estimators_"], ndim=2, kinds="O")
    n_trees = get_int(est, "n_trees_per_iteration_", d.get("n_trees_per_iteration_", MISSING), 1)
    if stages.shape[1] != n_trees:
        fail(
            est,
            f"estimators_ has shape {stages.shape}, expected (n_stages, {n_trees}) "
            "(n_trees_per_iteration_): predict_stages writes out[:, k] for every column",
        )
    if stages.size == 0:
        return
    n_in = get_int(est, "n_features_in_", d.get("n_features_in_", MISSING), 1)
    first = stages[0, 0]
    first_in = getattr(first, "__dict__", {}).get("n_features_in_", MISSING)
    if get_int(est, "estimators_[0, 0].n_features_in_", first_in, 1) != n_in:
        fail(est, f"estimators_[0, 0].n_features_in_ = {first_in}, n_features_in_ = {n_in}")
    if not _stage_trees_fast_ok(stages, n_in):
        _check_stage_trees(est, stages, n_in)
    init = d.get("init_", MISSING)
    if n_trees > 1 and init is not MISSING and not isinstance(init, str):
        classes = getattr(init, "__dict__", {}).get("classes_", MISSING)
        if classes is MISSING or len(classes) != n_trees:
            fail(
                est,
                f"init_ must predict {n_trees} class probabilities (n_trees_per_iteration_), "
                f"its classes_ is {describe(classes, 80)}",
            )


def _stage_trees_fast_ok(stages: np.ndarray, n_in: int) -> bool:
    """Whether every stage passes :func:`_check_stage_trees`, decided with exact-type tests
    (no per-stage f-string or helper calls); False sends the caller there for the message."""
    tree_type = None  # is_type once per distinct tree type (a model has one)
    for sub in stages.ravel().tolist():
        d = getattr(sub, "__dict__", None)
        if type(d) is not dict:
            return False
        tree = d.get("tree_")
        if type(tree) is not tree_type:
            if not is_type(tree, TREE_NAME):
                return False
            tree_type = type(tree)
        if tree.n_features != n_in:
            return False
    return True


def _check_stage_trees(est: object, stages: np.ndarray, n_in: int) -> None:
    """Every stage of a gradient boosting model is a fitted tree estimator whose tree has
    ``n_in`` features (the checking path of :func:`validate_gradient_boosting`)."""
    for (i, k), sub in np.ndenumerate(stages):
        tree = _tree_of(est, sub, f"estimators_[{i}, {k}]")
        if tree is None:
            fail(est, f"estimators_[{i}, {k}] is not fitted (no tree_)")
        _check_tree_width(est, f"estimators_[{i}, {k}]", tree, n_in)


@register("sklearn.ensemble._iforest.IsolationForest")
def validate_isolation_forest(est: object, limits: Limits) -> None:
    """Check that each isolation tree fits the columns it is applied to.

    ``sklearn/ensemble/_iforest.py::_parallel_compute_tree_depths`` calls
    ``tree.apply(X[:, features], check_input=False)`` (or ``X`` itself when no features were
    subsampled), so a tree must not split on more columns than it is given.

    Raises
    ------
    ValidationError
        If ``estimators_``/``estimators_features_`` do not pair up or a tree's ``n_features``
        exceeds its feature subset or ``n_features_in_``.
    """
    d = state(est)
    if "estimators_" not in d:
        return
    estimators = _estimator_list(est, d["estimators_"], "estimators_")
    features = d.get("estimators_features_", MISSING)
    if not isinstance(features, list | tuple) or len(features) != len(estimators):
        fail(est, "estimators_features_ must be a list with one entry per tree in estimators_")
    n_in = get_int(est, "n_features_in_", d.get("n_features_in_", MISSING), 1)
    for i, (sub, feats) in enumerate(zip(estimators, features, strict=True)):
        feats = get_array(est, f"estimators_features_[{i}]", feats, ndim=1, kinds="iu")
        check_range(est, f"estimators_features_[{i}]", feats, 0, n_in)
        tree = _tree_of(est, sub, f"estimators_[{i}]")
        if tree is None:
            continue
        width = min(len(feats), n_in)
        if tree.n_features > width:  # type: ignore[attr-defined]
            fail(
                est,
                f"estimators_[{i}].tree_.n_features = {tree.n_features} but the tree is "  # type: ignore[attr-defined]
                f"applied to {width} columns",
            )
