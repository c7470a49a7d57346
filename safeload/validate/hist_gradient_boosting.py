"""Validators for histogram gradient boosting (``sklearn.ensemble._hist_gradient_boosting``).

What the C code does (compiled with ``boundscheck=False``):

* ``_predictor.pyx::_predict_one_from_raw_data`` / ``_predict_one_from_binned_data`` start at
  ``nodes[0]`` and loop until ``node.is_leaf``: read ``X[row, node.feature_idx]``, jump to
  ``nodes[node.left]``/``nodes[node.right]`` and, for categorical splits, read
  ``raw_left_cat_bitsets[node.bitset_idx, val // 32]`` and
  ``known_cat_bitsets[f_idx_map[node.feature_idx], val // 32]`` (``utils/_bitset.pyx``,
  ``val`` is a ``uint8`` so ``val // 32 < 8``).
* ``_compute_partial_dependence`` keeps a node stack of ``len(nodes)`` entries.
* ``_binning.pyx::_map_to_bins`` indexes the Python list ``bin_thresholds_[feature_idx]`` and
  ``is_categorical_[feature_idx]`` for every input column, unchecked.
* ``BinMapper.make_known_categories_bitsets`` builds ``f_idx_map`` with ``is_categorical_.size``
  entries and one bitset row per categorical feature.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import numpy as np

from .._text import describe
from ..limits import Limits
from . import register
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
)

try:  # optional C kernel; the numpy code below is the reference
    from . import _treecheck
except ImportError:  # pragma: no cover - built without a compiler
    _treecheck = None

__all__ = ["validate_tree_predictor", "validate_bin_mapper", "validate_hist_gradient_boosting"]

PREDICTOR_NAME = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"
BIN_MAPPER_NAME = "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper"
_BITSET_WORDS = 8  # 256 bits, X_BINNED_DTYPE is uint8
_INTP_MAX = int(np.iinfo(np.intp).max)
_KERNEL_FIELDS = (
    "is_leaf",
    "left",
    "right",
    "feature_idx",
    "is_categorical",
    "missing_go_to_left",
    "bitset_idx",
)
# built at import: the first np.dtype("<u4") of a fresh process costs ~20 us
_KERNEL_DTYPES = tuple(np.dtype(t) for t in ("u1", "<u4", "<u4", "<i8", "u1", "u1", "<u4"))
_NATIVE_LITTLE_ENDIAN = np.dtype("<u4") == np.dtype("=u4")
_F8 = np.dtype(np.float64)
_U4 = np.dtype(np.uint32)


@functools.cache
def _record_dtype() -> np.dtype:
    from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE

    return PREDICTOR_RECORD_DTYPE


@functools.cache
def _kernel_layout() -> tuple[int, ...] | None:
    """``(itemsize, offsets of _KERNEL_FIELDS)`` of ``PREDICTOR_RECORD_DTYPE`` when the C
    kernel can read it (native little-endian fields of the expected types), else None."""
    dtype = _record_dtype()
    fields: Mapping[str, tuple] = dtype.fields or {}
    offsets = []
    for name, want in zip(_KERNEL_FIELDS, _KERNEL_DTYPES, strict=True):
        if name not in fields or fields[name][0] != want:
            return None
        offsets.append(fields[name][1])
    if not _NATIVE_LITTLE_ENDIAN:  # pragma: no cover - big-endian host
        return None
    return (dtype.itemsize, *offsets)


_record_dtypes: dict[np.dtype, bool] = {}


def _is_record(dtype: np.dtype) -> bool:
    """``dtype == PREDICTOR_RECORD_DTYPE``, cached per dtype: comparing structured dtypes
    costs ~0.7 µs and every predictor of a load shares one dtype object."""
    ok = _record_dtypes.get(dtype)
    if ok is None:
        ok = bool(dtype == _record_dtype())
        if len(_record_dtypes) < 64:
            _record_dtypes[dtype] = ok
    return ok


def _fast_predictor_ok(nodes: np.ndarray, n_bitsets: int) -> bool:
    """Run the node checks in the C kernel (``_treecheck.check_predictor``); False when it is
    unavailable or finds a problem (the numpy reference then names it).  ``nodes`` must have
    exactly ``PREDICTOR_RECORD_DTYPE``."""
    if _treecheck is None:
        return False
    layout = _kernel_layout()
    if layout is None or not nodes.flags.c_contiguous:
        return False
    return _treecheck.check_predictor(nodes, *layout, n_bitsets, _INTP_MAX)


def _predictor_fast_ok(d: dict) -> bool:
    """Whether the predictor state ``d`` passes every check of :func:`validate_tree_predictor`,
    decided by exact-type tests and one kernel pass; False sends the caller to the checks that
    name the problem (the common case costs a fraction of theirs)."""
    nodes = d.get("nodes")
    binned = d.get("binned_left_cat_bitsets")
    raw = d.get("raw_left_cat_bitsets")
    if (
        type(nodes) is not np.ndarray
        or type(binned) is not np.ndarray
        or type(raw) is not np.ndarray
    ):
        return False
    shape = raw.shape
    # equal shapes of the form (rows, 8): both bitset shape checks and the equal-rows check
    if binned.shape != shape or len(shape) != 2 or shape[1] != _BITSET_WORDS:
        return False
    if raw.dtype != _U4 or binned.dtype != _U4 or not raw.flags.c_contiguous:
        return False
    if nodes.ndim != 1 or not _is_record(nodes.dtype):
        return False
    return _fast_predictor_ok(nodes, shape[0])


def _bitsets(obj: object, field: str, value: object, c_contiguous: bool) -> np.ndarray:
    return get_array(
        obj,
        field,
        value,
        ndim=2,
        dtype=np.uint32,
        shape=(None, _BITSET_WORDS),
        c_contiguous=c_contiguous,
    )


@register(PREDICTOR_NAME)
def validate_tree_predictor(pred: object, limits: Limits) -> None:
    """Validate the node records of a ``TreePredictor``.

    Follows ``_predictor.pyx`` (``_predict_one_from_raw_data``, ``_predict_one_from_binned_data``,
    ``_compute_partial_dependence``) and ``TreePredictor.__setstate__``.  Checks:

    * ``nodes`` is a non-empty 1-D array with exactly ``PREDICTOR_RECORD_DTYPE``;
    * ``is_leaf`` is 0 or 1; for every internal node ``i``: ``i < left[i], right[i] < n_nodes``
      (forward pointers, no cycles), ``feature_idx[i] >= 0`` (the upper bound is checked by the
      estimator, which knows the input width), ``is_categorical``/``missing_go_to_left`` are 0
      or 1;
    * every node except the root has exactly one parent;
    * both bitset arrays are ``uint32`` with 8 columns (``raw_left_cat_bitsets`` C-contiguous as
      its memoryview requires) and the same number of rows, and ``bitset_idx`` of every
      categorical split is a valid row.

    Parameters
    ----------
    pred : TreePredictor
        The predictor, after ``__setstate__``.
    limits : Limits
        Unused.

    Raises
    ------
    ValidationError
        Naming the field, the node and the bad value.
    """
    d = state(pred)
    if _predictor_fast_ok(d):
        return
    nodes = get_array(pred, "nodes", d.get("nodes", MISSING), ndim=1, dtype=_record_dtype())
    n = nodes.shape[0]
    if n < 1:
        fail(pred, "nodes is empty: a fitted predictor has at least its root node")
    binned = _bitsets(pred, "binned_left_cat_bitsets", d.get("binned_left_cat_bitsets"), False)
    raw = _bitsets(pred, "raw_left_cat_bitsets", d.get("raw_left_cat_bitsets"), True)
    if binned.shape[0] != raw.shape[0]:
        fail(
            pred,
            f"binned_left_cat_bitsets has {binned.shape[0]} rows but raw_left_cat_bitsets has "
            f"{raw.shape[0]}",
        )
    if _fast_predictor_ok(nodes, raw.shape[0]):
        return
    _check_predictor_numpy(pred, nodes, n, raw.shape[0])


def _check_predictor_numpy(pred: object, nodes: np.ndarray, n: int, n_bitsets: int) -> None:
    """numpy reference of the predictor node checks (and the messages)."""
    is_leaf = nodes["is_leaf"]
    check_flag(pred, "nodes['is_leaf']", is_leaf)
    internal = np.flatnonzero(is_leaf == 0)
    left = nodes["left"][internal].astype(np.int64)
    right = nodes["right"][internal].astype(np.int64)
    check_children(pred, ("nodes['left']", "nodes['right']"), left, right, internal, n)
    feature = nodes["feature_idx"][internal]
    check_range(pred, "nodes['feature_idx']", feature, 0, _INTP_MAX, internal)
    is_cat = nodes["is_categorical"][internal]
    check_flag(pred, "nodes['is_categorical']", is_cat, internal)
    check_flag(pred, "nodes['missing_go_to_left']", nodes["missing_go_to_left"][internal], internal)
    cat = is_cat == 1
    if cat.any():
        check_range(
            pred,
            "nodes['bitset_idx']",
            nodes["bitset_idx"][internal[cat]].astype(np.int64),
            0,
            n_bitsets,
            internal[cat],
        )


@register(BIN_MAPPER_NAME)
def validate_bin_mapper(mapper: object, limits: Limits) -> None:
    """Validate a fitted ``_BinMapper`` (only when ``bin_thresholds_`` is set).

    Follows ``_binning.pyx::_map_to_bins`` (unchecked ``bin_thresholds_[f]`` and
    ``is_categorical_[f]`` for every column), ``_BinMapper.transform`` (checks the input width
    against ``n_bins_non_missing_``) and ``_BinMapper.make_known_categories_bitsets``.  Checks:

    * ``is_categorical_`` is a C-contiguous 1-D ``uint8`` array of flags, ``n_bins_non_missing_``
      a 1-D integer array and ``bin_thresholds_`` a list of 1-D ``float64`` arrays, all with the
      same length (the number of features);
    * ``missing_values_bin_idx_`` is in ``[0, 255]``;
    * the thresholds of a categorical feature are integral category codes in ``[0, 255]``.

    Parameters
    ----------
    mapper : _BinMapper
        The bin mapper.
    limits : Limits
        Unused.

    Raises
    ------
    ValidationError
        Naming the field and the bad value.
    """
    d = state(mapper)
    if "bin_thresholds_" not in d:
        return
    thresholds = d["bin_thresholds_"]
    if type(thresholds) is not list:
        fail(mapper, f"bin_thresholds_ is a {type(thresholds).__name__}, not a list")
    is_cat = get_array(
        mapper,
        "is_categorical_",
        d.get("is_categorical_"),
        ndim=1,
        dtype=np.uint8,
        c_contiguous=True,
    )
    check_flag(mapper, "is_categorical_", is_cat)
    n_bins = get_array(
        mapper, "n_bins_non_missing_", d.get("n_bins_non_missing_"), ndim=1, kinds="iu"
    )
    n_features = is_cat.shape[0]
    if len(thresholds) != n_features or n_bins.shape[0] != n_features:
        fail(
            mapper,
            f"bin_thresholds_ has {len(thresholds)} entries, n_bins_non_missing_ "
            f"{n_bins.shape[0]} and is_categorical_ {n_features}: _map_to_bins indexes all "
            "three by feature",
        )
    get_int(mapper, "missing_values_bin_idx_", d.get("missing_values_bin_idx_"), 0, 255)
    categorical = is_cat.tolist()
    for f, thr in enumerate(thresholds):
        # get_array (and its f-string) only when the exact-type test does not settle it
        if type(thr) is not np.ndarray or thr.ndim != 1 or thr.dtype != _F8:
            thr = get_array(mapper, f"bin_thresholds_[{f}]", thr, ndim=1, dtype=np.float64)
        if categorical[f] and thr.size:
            ok = np.isfinite(thr) & (thr == np.round(thr)) & (thr >= 0) & (thr <= 255)
            if not ok.all():
                k = int(np.argmax(~ok))
                fail(
                    mapper,
                    f"bin_thresholds_[{f}][{k}] = {describe(thr[k])} is not a category code in [0, 255] "
                    "(feature is categorical)",
                )


@register("sklearn.ensemble._hist_gradient_boosting.gradient_boosting.BaseHistGradientBoosting")
def validate_hist_gradient_boosting(est: object, limits: Limits) -> None:
    """Check a fitted HistGradientBoosting estimator's predictors against its input width.

    Follows ``BaseHistGradientBoosting._raw_predict``/``_predict_iterations``: ``X`` is checked
    against ``n_features_in_``, ``f_idx_map`` has ``_bin_mapper.is_categorical_.size`` entries
    and one bitset row per categorical feature, and ``_in_fit`` (a transient flag) switches
    prediction to the binned path without any input validation.  Checks:

    * ``_in_fit`` is not set; ``_bin_mapper`` is a ``_BinMapper`` whose feature count equals
      ``n_features_in_``;
    * ``_predictors`` is a list of lists of ``n_trees_per_iteration_`` ``TreePredictor``;
    * every split reads a feature ``< n_features_in_`` and categorical splits only use features
      marked categorical in the bin mapper.

    Parameters
    ----------
    est : HistGradientBoostingClassifier or HistGradientBoostingRegressor
        The estimator.
    limits : Limits
        Unused.

    Raises
    ------
    ValidationError
        Naming the predictor, the node and the bad value.
    """
    d = state(est)
    if d.get("_in_fit", False):
        fail(est, "_in_fit is set: predict would use the binned path on unchecked input")
    if "_predictors" not in d:
        return
    n_in = get_int(est, "n_features_in_", d.get("n_features_in_", MISSING), 1)
    n_trees = get_int(est, "n_trees_per_iteration_", d.get("n_trees_per_iteration_"), 1)
    mapper = d.get("_bin_mapper", MISSING)
    if not is_type(mapper, BIN_MAPPER_NAME):
        fail(est, f"_bin_mapper is a {type(mapper).__name__}, not {BIN_MAPPER_NAME}")
    is_cat = get_array(
        est,
        "_bin_mapper.is_categorical_",
        vars(mapper).get("is_categorical_"),
        ndim=1,
        dtype=np.uint8,
    )
    if is_cat.shape[0] != n_in:
        fail(
            est,
            f"_bin_mapper.is_categorical_ has {is_cat.shape[0]} entries, n_features_in_ = {n_in}",
        )
    predictors = d["_predictors"]
    if not isinstance(predictors, list):
        fail(est, f"_predictors is a {type(predictors).__name__}, not a list")
    if _splits_fast_ok(predictors, n_trees, n_in, is_cat):
        return
    _check_predictors_numpy(est, predictors, n_trees, n_in, is_cat)


def _splits_fast_ok(predictors: list, n_trees: int, n_in: int, is_cat: np.ndarray) -> bool:
    """Whether every predictor passes the per-predictor checks of
    :func:`validate_hist_gradient_boosting`, decided by exact-type tests and one kernel call
    over all node arrays (``_treecheck.check_splits``); False sends the caller to
    :func:`_check_predictors_numpy`, which names the problem."""
    layout = _kernel_layout() if _treecheck is not None else None
    if layout is None or not is_cat.flags.c_contiguous:
        return False
    arrays = []
    # is_type and _is_record once per distinct type and dtype (a model has one of each); the
    # kernel checks that every array is 1-D and C-contiguous
    pred_type: type | None = None
    record: np.dtype | None = None
    for per_iter in predictors:
        if type(per_iter) is not list or len(per_iter) != n_trees:
            return False
        for pred in per_iter:
            if type(pred) is not pred_type:
                if not is_type(pred, PREDICTOR_NAME):
                    return False
                pred_type = type(pred)
            nodes = vars(pred).get("nodes")
            if type(nodes) is not np.ndarray:
                return False
            if nodes.dtype is not record:
                if not _is_record(nodes.dtype):
                    return False
                record = nodes.dtype
            arrays.append(nodes)
    itemsize, off_leaf, _, _, off_feature, off_cat = layout[:6]
    return _treecheck.check_splits(arrays, itemsize, off_leaf, off_feature, off_cat, n_in, is_cat)


def _check_predictors_numpy(
    est: object, predictors: list, n_trees: int, n_in: int, is_cat: np.ndarray
) -> None:
    """numpy reference of the per-predictor checks of :func:`validate_hist_gradient_boosting`
    (and the messages)."""
    record = _record_dtype()
    for i, per_iter in enumerate(predictors):
        if not isinstance(per_iter, list) or len(per_iter) != n_trees:
            fail(
                est,
                f"_predictors[{i}] must be a list of {n_trees} predictors (n_trees_per_iteration_)",
            )
        for k, pred in enumerate(per_iter):
            where = f"_predictors[{i}][{k}]"
            if not is_type(pred, PREDICTOR_NAME):
                fail(est, f"{where} is a {type(pred).__name__}, not {PREDICTOR_NAME}")
            nodes = get_array(est, f"{where}.nodes", vars(pred).get("nodes"), ndim=1, dtype=record)
            internal = np.flatnonzero(nodes["is_leaf"] == 0)
            feature = nodes["feature_idx"][internal]
            check_range(est, f"{where}.nodes['feature_idx']", feature, 0, n_in, internal)
            cat = nodes["is_categorical"][internal] != 0
            if cat.any():
                not_cat = is_cat[feature[cat]] == 0
                if not_cat.any():
                    j = int(np.argmax(not_cat))
                    fail(
                        est,
                        f"{where}.nodes[{int(internal[cat][j])}] is a categorical split on "
                        f"feature {int(feature[cat][j])}, which the bin mapper does not mark "
                        "categorical",
                    )
