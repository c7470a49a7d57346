"""The C predictor kernel (``_treecheck.check_predictor``) agrees with the numpy reference.

``validate_tree_predictor`` and ``validate_hist_gradient_boosting`` trust the kernel's "valid"
verdict and only fall back to numpy for the message, so a kernel that says "valid" where numpy
would refuse would be a bypass: these tests mutate real predictors and compare both verdicts.
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

pytestmark = pytest.mark.skipif(vh._treecheck is None, reason="C kernel not built")

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


def test_kernel_accepts_real_predictors(hgb):
    is_cat = hgb._bin_mapper.is_categorical_
    for it in hgb._predictors:
        for p in it:
            n_bitsets = p.raw_left_cat_bitsets.shape[0]
            assert vh._fast_predictor_ok(p.nodes, n_bitsets, vh._INTP_MAX, None)
            assert vh._fast_predictor_ok(p.nodes, n_bitsets, hgb.n_features_in_, is_cat)
    assert _numpy(vh.validate_hist_gradient_boosting, hgb, DEFAULT_LIMITS)


@settings(max_examples=300, deadline=None)
@given(field=st.sampled_from(FIELDS), index=st.integers(0, 10_000), value=values)
def test_predictor_kernel_and_numpy_agree(predictor, field, index, value):
    pred = _mutated(predictor, field, index, value)
    n_bitsets = pred.raw_left_cat_bitsets.shape[0]
    kernel = vh._fast_predictor_ok(pred.nodes, n_bitsets, vh._INTP_MAX, None)
    assert kernel == _numpy(vh.validate_tree_predictor, pred, DEFAULT_LIMITS)


@settings(max_examples=200, deadline=None)
@given(
    field=st.sampled_from(["feature_idx", "is_categorical", "is_leaf"]),
    index=st.integers(0, 10_000),
    value=values,
)
def test_estimator_kernel_and_numpy_agree(hgb, predictor, field, index, value):
    """With the input width and the categorical mask, the kernel decides the estimator-level
    checks too (on a predictor that also passes its own checks)."""
    pred = _mutated(predictor, field, index, value)
    n_bitsets = pred.raw_left_cat_bitsets.shape[0]
    is_cat = hgb._bin_mapper.is_categorical_
    kernel = vh._fast_predictor_ok(pred.nodes, n_bitsets, hgb.n_features_in_, is_cat)
    est = HistGradientBoostingClassifier.__new__(HistGradientBoostingClassifier)
    est.__dict__.update({**vars(hgb), "_predictors": [[pred]], "n_trees_per_iteration_": 1})
    reference = _numpy(vh.validate_tree_predictor, pred, DEFAULT_LIMITS) and _numpy(
        vh.validate_hist_gradient_boosting, est, DEFAULT_LIMITS
    )
    assert kernel == reference
    # the validators with the kernel give the same verdict as without it
    try:
        vh.validate_tree_predictor(pred, DEFAULT_LIMITS)
        vh.validate_hist_gradient_boosting(est, DEFAULT_LIMITS)
        with_kernel = True
    except ValidationError:
        with_kernel = False
    assert with_kernel == reference


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
    assert not check(nodes, *layout, 10, 5, np.zeros(2, dtype=np.int32))  # not uint8
    with pytest.raises(TypeError):
        check(nodes, *layout)
    with pytest.raises((BufferError, ValueError)):
        check(nodes[::2], *layout, 10, 5)  # not contiguous


def test_kernel_reads_unaligned_records(predictor):
    """The record has unaligned uint32/int64 fields; an offset copy reads the same."""
    raw = np.zeros(predictor.nodes.nbytes + 3, dtype=np.uint8)
    raw[3:] = predictor.nodes.view(np.uint8)
    shifted = raw[3:].view(predictor.nodes.dtype)
    n_bitsets = predictor.raw_left_cat_bitsets.shape[0]
    assert vh._fast_predictor_ok(shifted, n_bitsets, vh._INTP_MAX, None)
