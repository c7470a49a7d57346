"""The fast paths of the tree validators decide what their checking paths decide.

``_check_tree_header`` returns at once when ``_header_fast`` accepts a tree, and
``validate_gradient_boosting`` skips its per-stage loop when ``_stage_trees_fast_ok`` says
yes, so a fast path that accepts what the checking path refuses would be a bypass: these tests
mutate real trees, stand-ins with arbitrary attribute values and stage arrays, and compare.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from sklearn.tree._tree import Tree

import safeload.validate.tree as vt
from safeload.errors import ValidationError
from safeload.limits import DEFAULT_LIMITS
from safeload.validate import validate

RNG = np.random.RandomState(0)
X = RNG.randn(200, 4)
Y = (X[:, 0] + RNG.randn(200) > 0).astype(int) + (X[:, 1] > 1)


@pytest.fixture(scope="module")
def fitted_tree():
    return DecisionTreeClassifier(max_depth=4, random_state=0).fit(X, Y).tree_


@pytest.fixture(scope="module")
def gbc():
    return GradientBoostingClassifier(n_estimators=4, max_depth=2, random_state=0).fit(X, Y)


kernel_or_not = pytest.mark.parametrize(
    "kernel",
    [
        pytest.param(True, marks=pytest.mark.skipif(vt._treecheck is None, reason="no C kernel")),
        False,
    ],
    ids=["kernel", "numpy"],
)


def _slow_header(tree, monkeypatch):
    """``_check_tree_header`` without its fast path: the tuple, or None when refused (any
    exception: ``validate`` reports garbage a check did not anticipate as a refusal)."""
    with monkeypatch.context() as m:
        m.setattr(vt, "_header_fast", lambda tree: None)
        try:
            return vt._check_tree_header(tree)
        except Exception:
            return None


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is b
    return np.array_equal(a[0], b[0]) and a[0].dtype == b[0].dtype and a[1:] == b[1:]


def test_fast_header_accepts_a_real_tree(fitted_tree, monkeypatch):
    fast = vt._header_fast(fitted_tree)
    assert fast is not None
    assert _same(fast, _slow_header(fitted_tree, monkeypatch))


@settings(max_examples=200, deadline=None)
@given(
    field=st.sampled_from(["n_features", "max_n_classes", "node_count", "max_depth", "capacity"]),
    value=st.integers(-3, 40),
)
def test_fast_header_agrees_on_real_trees(fitted_tree, field, value):
    """Every scalar a Tree exposes as writable (n_outputs excepted: n_classes would read past
    its C array); capacity only shrinks, so __getstate__ never wraps more than the buffer."""
    tree = Tree(fitted_tree.n_features, fitted_tree.n_classes, fitted_tree.n_outputs)
    tree.__setstate__(fitted_tree.__getstate__())
    if field == "capacity":
        value = min(value, tree.capacity)
    setattr(tree, field, value)
    with pytest.MonkeyPatch.context() as m:
        assert _same(vt._header_fast(tree), _slow_header(tree, m))


class _FakeTree:
    """A stand-in with any attribute values (the checks only read attributes and state)."""

    def __init__(self, **attrs):
        self.__dict__.update(attrs)

    def __getstate__(self):
        return {"nodes": self.nodes_, "values": self.values_}


_NODE_DTYPE = np.dtype(
    [
        ("left_child", "<i8"),
        ("right_child", "<i8"),
        ("feature", "<i8"),
        ("missing_go_to_left", "u1"),
    ]
)
_SCALARS = [np.int64(2), np.int32(3), True, 2.0, "2", None, 2**63, -1, 0, 1, 2, 3, 4]
_CANDIDATES = {
    "n_features": _SCALARS,
    "n_outputs": _SCALARS,
    "max_n_classes": _SCALARS,
    "capacity": _SCALARS,
    "node_count": _SCALARS,
    "max_depth": _SCALARS,
    "n_classes": [
        np.array([3]),
        np.array([3, 1]),
        np.array([3], dtype=np.uint8),
        np.array([0]),
        np.array([3.0]),
        np.array([[3]]),
        np.array([], dtype=np.int64),
        [3],
        np.array([2**62]),
    ],
    "nodes_": [
        np.zeros(3, dtype=np.dtype([("left_child", "<i8")])),
        np.zeros(3, dtype=np.int64),
        np.zeros(2, dtype=_NODE_DTYPE),
        np.zeros((3, 1), dtype=_NODE_DTYPE),
        [0, 0, 0],
    ],
    "values_": [
        np.zeros((3, 1, 2)),
        np.zeros((3, 2, 3)),
        np.zeros((2, 1, 3)),
        np.zeros(3),
        np.zeros((3, 1, 3)).tolist(),
    ],
}
_NOT_SCALARS = ("n_classes", "nodes_", "values_")


def _valid_fake() -> dict:
    return {
        "n_features": 2,
        "n_outputs": 1,
        "max_n_classes": 3,
        "capacity": 4,
        "node_count": 3,
        "max_depth": 1,
        "n_classes": np.array([3]),
        "nodes_": np.zeros(3, dtype=_NODE_DTYPE),
        "values_": np.zeros((3, 1, 3)),
    }


_changes = st.lists(
    st.sampled_from(sorted(_CANDIDATES)).flatmap(
        lambda field: st.tuples(st.just(field), st.sampled_from(_CANDIDATES[field]))
    ),
    max_size=3,
)


@settings(max_examples=400, deadline=None)
@given(changes=_changes)
def test_fast_header_never_accepts_what_the_checks_refuse(changes):
    """A valid stand-in with up to three attributes replaced (wrong types, ranges, shapes)."""
    attrs = _valid_fake()
    attrs.update(changes)
    tree = _FakeTree(**attrs)
    fast = vt._header_fast(tree)
    with pytest.MonkeyPatch.context() as m:
        slow = _slow_header(tree, m)
    event("accepted" if slow is not None else "refused")
    if fast is not None:
        assert _same(fast, slow)
    scalars = [value for key, value in attrs.items() if key not in _NOT_SCALARS]
    if slow is not None and all(type(v) is int for v in scalars):
        assert type(attrs["n_classes"]) is np.ndarray
        assert _same(fast, slow)  # exact on what a real Tree exposes (ints, an ndarray)


# --------------------------------------------------------------------------- stages


class _SubTree(Tree):
    pass


def _narrow_regressor():
    return DecisionTreeRegressor(max_depth=2).fit(X[:, :3], Y)


_STAGE_KINDS = ["tree", "narrow", "unfitted", "no-dict", "not-a-tree", "tree-subclass"]


def _stage(kind, gbc):
    if kind == "tree":
        return gbc.estimators_[0, 0]
    if kind == "narrow":
        return _narrow_regressor()
    if kind == "unfitted":
        return DecisionTreeRegressor()
    if kind == "no-dict":
        return 3
    est = DecisionTreeRegressor.__new__(DecisionTreeRegressor)
    est.__dict__.update(vars(gbc.estimators_[0, 0]))
    if kind == "not-a-tree":
        est.tree_ = object()
    else:
        tree = _SubTree(4, np.array([1]), 1)
        tree.__setstate__(gbc.estimators_[0, 0].tree_.__getstate__())
        est.tree_ = tree
    return est


@settings(max_examples=150, deadline=None)
@given(kinds=st.lists(st.sampled_from(_STAGE_KINDS), min_size=1, max_size=6))
def test_stage_fast_path_agrees_with_the_loop(gbc, kinds):
    stages = np.empty((len(kinds), 1), dtype=object)
    for i, kind in enumerate(kinds):
        stages[i, 0] = _stage(kind, gbc)
    try:
        vt._check_stage_trees(gbc, stages, 4)
        reference = True
    except ValidationError:
        reference = False
    assert vt._stage_trees_fast_ok(stages, 4) == reference


@kernel_or_not
def test_stage_message_names_the_stage(gbc, monkeypatch, kernel):
    if not kernel:
        monkeypatch.setattr(vt, "_treecheck", None)
    est = GradientBoostingClassifier.__new__(GradientBoostingClassifier)
    est.__dict__.update(vars(gbc))
    est.estimators_ = gbc.estimators_.copy()
    validate(est, DEFAULT_LIMITS)
    est.estimators_[2, 1] = _narrow_regressor()
    with pytest.raises(ValidationError) as info:
        validate(est, DEFAULT_LIMITS)
    assert str(info.value) == (
        "sklearn.ensemble._gb.GradientBoostingClassifier: estimators_[2, 1].tree_.n_features = 3 "
        "but the input is checked against n_features_in_ = 4 (predict indexes X[:, feature] "
        "without bounds checks)"
    )
    est.estimators_[3, 2] = DecisionTreeRegressor()
    est.estimators_[2, 1] = gbc.estimators_[2, 1]
    with pytest.raises(ValidationError) as info:
        validate(est, DEFAULT_LIMITS)
    assert str(info.value) == (
        "sklearn.ensemble._gb.GradientBoostingClassifier: estimators_[3, 2] is not fitted (no "
        "tree_)"
    )


@kernel_or_not
def test_header_messages_with_and_without_kernel(fitted_tree, monkeypatch, kernel):
    if not kernel:
        monkeypatch.setattr(vt, "_treecheck", None)
    validate(fitted_tree, DEFAULT_LIMITS)
    tree = Tree(fitted_tree.n_features, fitted_tree.n_classes, fitted_tree.n_outputs)
    tree.__setstate__(fitted_tree.__getstate__())
    tree.max_n_classes = 2
    with pytest.raises(ValidationError) as info:
        validate(tree, DEFAULT_LIMITS)
    assert str(info.value) == (
        f"sklearn.tree._tree.Tree: max_n_classes = 2 but max(n_classes) = "
        f"{int(fitted_tree.n_classes.max())}"
    )
    tree.max_n_classes = fitted_tree.max_n_classes
    tree.max_depth = 1
    with pytest.raises(ValidationError) as info:
        validate(tree, DEFAULT_LIMITS)
    assert str(info.value) == (
        f"sklearn.tree._tree.Tree: max_depth = 1 but the tree is {fitted_tree.max_depth} levels "
        "deep (decision_path allocates max_depth + 1 slots per sample)"
    )
