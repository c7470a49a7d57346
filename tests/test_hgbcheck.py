"""The C predictor kernels (``_treecheck.check_predictor``, ``_treecheck.check_splits``) and
the fast paths around them agree with the numpy reference.

``validate_tree_predictor`` and ``validate_hist_gradient_boosting`` trust a fast path's "valid"
verdict and only fall back to numpy for the message, so a fast path that says "valid" where
numpy would refuse would be a bypass: these tests mutate real predictors and compare both
verdicts, and pin the messages with and without the kernel.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.ensemble import HistGradientBoostingClassifier

import safeload.validate.hist_gradient_boosting as vh
from safeload.errors import ValidationError
from safeload.limits import DEFAULT_LIMITS
from safeload.validate import validate

needs_kernel = pytest.mark.skipif(vh._treecheck is None, reason="C kernel not built")

FIELDS = [
    "is_leaf",
    "left",
    "right",
    "feature_idx",
    "is_categorical",
    "missing_go_to_left",
    "bitset_idx",
]


@pytest.fixture(scope="module")
def hgb():
    rng = np.random.RandomState(0)
    X = np.c_[rng.randn(400, 3), rng.randint(0, 6, 400)]
    y = np.isin(X[:, 3], [1, 3, 4]).astype(int) ^ (X[:, 0] > 0.5)
    est = HistGradientBoostingClassifier(max_iter=6, categorical_features=[3], random_state=0)
    return est.fit(X, y)


@pytest.fixture(scope="module")
def predictor(hgb):
    for it in hgb._predictors:
        for p in it:
            if ((p.nodes["is_leaf"] == 0) & (p.nodes["is_categorical"] == 1)).any():
                return p
    raise AssertionError("no categorical split")


def _numpy(func, *args) -> bool:
    saved = vh._treecheck
    vh._treecheck = None
    try:
        func(*args)
        return True
    except ValidationError:
        return False
    finally:
        vh._treecheck = saved


def _mutated(predictor, field, index, value):
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor

    nodes = predictor.nodes.copy()
    info = np.iinfo(nodes.dtype.fields[field][0])
    nodes[field][index % nodes.shape[0]] = min(max(value, info.min), info.max)
    pred = TreePredictor.__new__(TreePredictor)
    pred.__dict__.update({**vars(predictor), "nodes": nodes})
    return pred


values = st.one_of(
    st.integers(-3, 40),
    st.sampled_from([255, 256, 2**31, 2**32 - 1, 2**62, 2**63 - 1, -(2**63)]),
)


def _splits(predictors, n_trees, hgb) -> bool:
    return vh._splits_fast_ok(
        predictors, n_trees, hgb.n_features_in_, hgb._bin_mapper.is_categorical_
    )


def _estimator_with(hgb, predictors, n_trees=1):
    est = HistGradientBoostingClassifier.__new__(HistGradientBoostingClassifier)
    est.__dict__.update({**vars(hgb), "_predictors": predictors, "n_trees_per_iteration_": n_trees})
    return est


@needs_kernel
def test_kernel_accepts_real_predictors(hgb):
    for it in hgb._predictors:
        for p in it:
            n_bitsets = p.raw_left_cat_bitsets.shape[0]
            assert vh._fast_predictor_ok(p.nodes, n_bitsets)
            assert vh._predictor_fast_ok(vars(p))
    assert _splits(hgb._predictors, hgb.n_trees_per_iteration_, hgb)
    assert _numpy(vh.validate_hist_gradient_boosting, hgb, DEFAULT_LIMITS)


@needs_kernel
@settings(max_examples=300, deadline=None)
@given(field=st.sampled_from(FIELDS), index=st.integers(0, 10_000), value=values)
def test_predictor_kernel_and_numpy_agree(predictor, field, index, value):
    pred = _mutated(predictor, field, index, value)
    n_bitsets = pred.raw_left_cat_bitsets.shape[0]
    kernel = vh._fast_predictor_ok(pred.nodes, n_bitsets)
    assert kernel == _numpy(vh.validate_tree_predictor, pred, DEFAULT_LIMITS)
    assert vh._predictor_fast_ok(vars(pred)) == kernel


@needs_kernel
@settings(max_examples=200, deadline=None)
@given(
    field=st.sampled_from(["feature_idx", "is_categorical", "is_leaf"]),
    index=st.integers(0, 10_000),
    value=values,
    position=st.integers(0, 100),
)
def test_split_kernel_and_numpy_agree(hgb, predictor, field, index, value, position):
    """``check_splits`` over every predictor decides exactly the estimator's numpy checks,
    wherever the mutated predictor sits in the list."""
    pred = _mutated(predictor, field, index, value)
    others = [p for it in hgb._predictors for p in it]
    position %= len(others) + 1
    predictors = [[p] for p in others[:position] + [pred] + others[position:]]
    est = _estimator_with(hgb, predictors)
    reference = _numpy(vh.validate_hist_gradient_boosting, est, DEFAULT_LIMITS)
    assert _splits(predictors, 1, hgb) == reference
    # the validators with the kernel give the same verdict as without it
    reference &= _numpy(vh.validate_tree_predictor, pred, DEFAULT_LIMITS)
    try:
        vh.validate_tree_predictor(pred, DEFAULT_LIMITS)
        vh.validate_hist_gradient_boosting(est, DEFAULT_LIMITS)
        with_kernel = True
    except ValidationError:
        with_kernel = False
    assert with_kernel == reference


@needs_kernel
@settings(max_examples=100, deadline=None)
@given(
    field=st.sampled_from(["binned_left_cat_bitsets", "raw_left_cat_bitsets"]),
    rows=st.integers(0, 3),
    cols=st.sampled_from([7, 8, 9]),
    dtype=st.sampled_from(["<u4", ">u4", "<i4", "<u8"]),
    order=st.sampled_from(["C", "F", "strided"]),
)
def test_predictor_fast_path_and_numpy_agree_on_bitsets(predictor, field, rows, cols, dtype, order):
    """The inline bitset checks of the fast path accept exactly what ``get_array`` does."""
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor

    bitsets = np.zeros((rows, 2 * cols) if order == "strided" else (rows, cols), dtype=dtype)
    bitsets = bitsets[:, ::2] if order == "strided" else np.asarray(bitsets, order=order)
    pred = TreePredictor.__new__(TreePredictor)
    pred.__dict__.update({**vars(predictor), field: bitsets})
    reference = _numpy(vh.validate_tree_predictor, pred, DEFAULT_LIMITS)
    assert vh._predictor_fast_ok(vars(pred)) == reference
    try:
        vh.validate_tree_predictor(pred, DEFAULT_LIMITS)
        with_kernel = True
    except ValidationError:
        with_kernel = False
    assert with_kernel == reference


@needs_kernel
def test_kernel_refuses_unreadable_layouts(predictor):
    nodes = predictor.nodes
    layout = vh._kernel_layout()
    itemsize = layout[0]
    check = vh._treecheck.check_predictor
    assert check(nodes, *layout, 10, 5)
    assert not check(nodes[:0], *layout, 10, 5)  # no root
    assert not check(nodes.view(np.uint8)[:-1], *layout, 10, 5)  # not whole records
    assert not check(nodes, itemsize, *([itemsize] * 7), 10, 5)  # fields past the record
    assert not check(nodes, itemsize, *layout[1:], -1, 5)
    with pytest.raises(TypeError):
        check(nodes, *layout)
    with pytest.raises(TypeError):
        check(nodes, *layout, 10, 5, None)  # the categorical mask is check_splits' business
    with pytest.raises((BufferError, ValueError)):
        check(nodes[::2], *layout, 10, 5)  # not contiguous


@needs_kernel
def test_split_kernel_refuses_unreadable_layouts(hgb, predictor):
    nodes = predictor.nodes
    itemsize, off_leaf, _, _, off_feature, off_cat = vh._kernel_layout()[:6]
    mask = hgb._bin_mapper.is_categorical_
    check = vh._treecheck.check_splits

    def ok(arrays, *, mask=mask, layout=(itemsize, off_leaf, off_feature, off_cat), end=4):
        return check(arrays, *layout, end, mask)

    assert ok([nodes, nodes])
    assert ok([])  # no predictors: nothing to check
    assert ok([nodes[:0]])  # an empty node array has no split (its predictor check refuses it)
    assert not ok([nodes, nodes[::2]])  # not contiguous
    assert not ok([nodes.reshape(1, -1)])  # not 1-D
    assert not ok([nodes.view(np.uint8)[:-1]])  # not whole records
    assert not ok([nodes], layout=(itemsize, itemsize, off_feature, off_cat))  # past the record
    assert not ok([nodes], layout=(itemsize, off_leaf, itemsize - 7, off_cat))
    assert not ok([nodes], end=-1)
    assert not ok([nodes], mask=mask.astype(np.int32))  # not bytes
    with pytest.raises(TypeError):
        ok((nodes,))  # a list, nothing else
    with pytest.raises(TypeError):
        ok([nodes, object()])  # no buffer
    with pytest.raises((BufferError, ValueError)):
        ok([nodes], mask=np.zeros(8, dtype=np.uint8)[::2])  # mask not contiguous


@needs_kernel
def test_kernel_reads_unaligned_records(hgb, predictor):
    """The record has unaligned uint32/int64 fields; an offset copy reads the same."""
    raw = np.zeros(predictor.nodes.nbytes + 3, dtype=np.uint8)
    raw[3:] = predictor.nodes.view(np.uint8)
    shifted = raw[3:].view(predictor.nodes.dtype)
    n_bitsets = predictor.raw_left_cat_bitsets.shape[0]
    assert vh._fast_predictor_ok(shifted, n_bitsets)
    itemsize, off_leaf, _, _, off_feature, off_cat = vh._kernel_layout()[:6]
    mask = hgb._bin_mapper.is_categorical_
    assert vh._treecheck.check_splits([shifted], itemsize, off_leaf, off_feature, off_cat, 4, mask)
    width = int(predictor.nodes["feature_idx"][predictor.nodes["is_leaf"] == 0].max())
    assert not vh._treecheck.check_splits(
        [shifted], itemsize, off_leaf, off_feature, off_cat, width, mask
    )


# ------------------------------------------------------------------ messages, with and without C

kernel_or_not = pytest.mark.parametrize(
    "kernel",
    [pytest.param(True, marks=needs_kernel), False],
    ids=["kernel", "numpy"],
)
PREDICTOR = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor: "
ESTIMATOR = (
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier: "
)


def _message(monkeypatch, kernel, obj) -> str:
    if not kernel:
        monkeypatch.setattr(vh, "_treecheck", None)
    with pytest.raises(ValidationError) as info:
        validate(obj, DEFAULT_LIMITS)
    return str(info.value)


def _split(predictor, categorical):
    k = np.flatnonzero(
        (predictor.nodes["is_leaf"] == 0) & (predictor.nodes["is_categorical"] == categorical)
    )
    assert k.size, "fixture has no such split"
    return int(k[0])


@kernel_or_not
def test_message_feature_outside_estimator_width(monkeypatch, kernel, hgb, predictor):
    k = _split(predictor, 0)
    pred = _mutated(predictor, "feature_idx", k, 4)
    validate(pred, DEFAULT_LIMITS)  # the predictor alone does not know the input width
    est = _estimator_with(hgb, [[p] for p in [predictor, predictor, pred]])
    assert _message(monkeypatch, kernel, est) == (
        f"{ESTIMATOR}_predictors[2][0].nodes['feature_idx'][{k}] = 4 is outside [0, 4)"
    )


@kernel_or_not
def test_message_categorical_split_on_numeric_feature(monkeypatch, kernel, hgb, predictor):
    k = _split(predictor, 1)
    numeric = int(np.flatnonzero(hgb._bin_mapper.is_categorical_ == 0)[0])
    pred = _mutated(predictor, "feature_idx", k, numeric)
    validate(pred, DEFAULT_LIMITS)
    est = _estimator_with(hgb, [[predictor], [pred]])
    assert _message(monkeypatch, kernel, est) == (
        f"{ESTIMATOR}_predictors[1][0].nodes[{k}] is a categorical split on feature {numeric}, "
        "which the bin mapper does not mark categorical"
    )


@kernel_or_not
def test_message_bad_bitset_idx(monkeypatch, kernel, predictor):
    k = _split(predictor, 1)
    n_bitsets = predictor.raw_left_cat_bitsets.shape[0]
    pred = _mutated(predictor, "bitset_idx", k, n_bitsets)
    assert _message(monkeypatch, kernel, pred) == (
        f"{PREDICTOR}nodes['bitset_idx'][{k}] = {n_bitsets} is outside [0, {n_bitsets})"
    )


@kernel_or_not
def test_message_predictor_outside_any_estimator(monkeypatch, kernel, predictor):
    """A lone predictor gets every structural check without an estimator around it."""
    k = _split(predictor, 0)
    pred = _mutated(predictor, "left", k, k)
    assert _message(monkeypatch, kernel, pred) == (
        f"{PREDICTOR}nodes['left'][{k}] = {k} does not come after its parent node {k} (children "
        "must have a larger index than their parent; a smaller one allows cycles)"
    )
    pred = _mutated(predictor, "feature_idx", k, -1)
    assert _message(monkeypatch, kernel, pred) == (
        f"{PREDICTOR}nodes['feature_idx'][{k}] = -1 is outside [0, {vh._INTP_MAX})"
    )
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor

    pred = TreePredictor.__new__(TreePredictor)
    pred.__dict__.update(
        {**vars(predictor), "binned_left_cat_bitsets": predictor.binned_left_cat_bitsets[:0]}
    )
    rows = predictor.raw_left_cat_bitsets.shape[0]
    assert _message(monkeypatch, kernel, pred) == (
        f"{PREDICTOR}binned_left_cat_bitsets has 0 rows but raw_left_cat_bitsets has {rows}"
    )


@kernel_or_not
def test_valid_models_pass_with_and_without_kernel(monkeypatch, kernel, hgb):
    if not kernel:
        monkeypatch.setattr(vh, "_treecheck", None)
    for it in hgb._predictors:
        for p in it:
            validate(p, DEFAULT_LIMITS)
    validate(hgb._bin_mapper, DEFAULT_LIMITS)
    validate(hgb, DEFAULT_LIMITS)


def _complete_predictor(depth: int) -> np.ndarray:
    """A complete binary tree of ``2**depth - 1`` nodes in breadth-first order."""
    n = 2**depth - 1
    nodes = np.zeros(n, dtype=vh._record_dtype())
    internal = np.arange(n // 2)
    nodes["left"][internal] = 2 * internal + 1
    nodes["right"][internal] = 2 * internal + 2
    nodes["feature_idx"][internal] = internal % 3
    nodes["is_leaf"][n // 2 :] = 1
    return nodes


@needs_kernel
@pytest.mark.parametrize("depth", [3, 11, 15])  # stack memory; heap; heap without the GIL
def test_kernels_on_predictors_of_every_size(hgb, depth):
    nodes = _complete_predictor(depth)
    assert vh._fast_predictor_ok(nodes, 0)
    itemsize, off_leaf, _, _, off_feature, off_cat = vh._kernel_layout()[:6]
    mask = hgb._bin_mapper.is_categorical_

    def splits(arrays, width=3):
        return vh._treecheck.check_splits(
            arrays, itemsize, off_leaf, off_feature, off_cat, width, mask
        )

    assert splits([nodes, nodes])
    assert not splits([nodes, nodes], width=2)
    last = nodes.shape[0] // 2 - 1
    shared = nodes.copy()
    shared["right"][last] = shared["left"][last]  # one node with two parent links
    assert not vh._fast_predictor_ok(shared, 0)
    flagged = nodes.copy()
    flagged["is_categorical"][last] = 1  # feature last % 3, and no bitset row
    assert not vh._fast_predictor_ok(flagged, 0)
    assert vh._fast_predictor_ok(flagged, 1)
    assert splits([flagged]) == bool(mask[last % 3])
