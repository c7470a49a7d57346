"""The C tree kernel (``safeload/validate/_treecheck.c``) agrees with the numpy reference.

``validate_tree`` trusts the kernel's "valid" verdict and only falls back to numpy for the
message, so a kernel that says "valid" where numpy would refuse would be a bypass: these tests
mutate real trees and compare both verdicts.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.tree import DecisionTreeClassifier

import safeload.validate.tree as vt
from safeload.errors import ValidationError
from safeload.limits import DEFAULT_LIMITS

pytestmark = pytest.mark.skipif(vt._treecheck is None, reason="C kernel not built")


@pytest.fixture(scope="module")
def tree_state():
    rng = np.random.RandomState(0)
    X = rng.randn(300, 4)
    y = (X[:, 0] + rng.randn(300) > 0).astype(int)
    tree = DecisionTreeClassifier(random_state=0).fit(X, y).tree_
    return tree.__reduce__()[1], tree.__getstate__()


def _numpy_verdict(tree) -> bool:
    saved = vt._treecheck
    vt._treecheck = None
    try:
        vt.validate_tree(tree, DEFAULT_LIMITS)
        return True
    except ValidationError:
        return False
    finally:
        vt._treecheck = saved


def _kernel_verdict(tree) -> bool:
    st_ = tree.__getstate__()
    nodes = st_["nodes"]
    return vt._fast_nodes_ok(nodes, tree.node_count, tree.n_features, tree.max_depth)


def _rebuild(args, state, field, index, value):
    from sklearn.tree._tree import Tree

    nodes = state["nodes"].copy()
    nodes[field][index] = value
    tree = Tree(*args)
    tree.__setstate__({**state, "nodes": nodes})
    return tree


def test_kernel_accepts_a_real_tree(tree_state):
    from sklearn.tree._tree import Tree

    tree = Tree(*tree_state[0])
    tree.__setstate__(tree_state[1])
    assert _kernel_verdict(tree) is True
    assert _numpy_verdict(tree) is True


@settings(max_examples=150, deadline=None)
@given(
    field=st.sampled_from(["left_child", "right_child", "feature", "missing_go_to_left"]),
    index=st.integers(0, 10_000),
    value=st.one_of(st.integers(-3, 80), st.sampled_from([-1, 2**31, 2**62])),
)
def test_kernel_and_numpy_agree_on_mutations(tree_state, field, index, value):
    args, state = tree_state
    index %= state["nodes"].shape[0]
    if field == "missing_go_to_left":
        value = value % 256
    tree = _rebuild(args, state, field, index, value)
    assert _kernel_verdict(tree) == _numpy_verdict(tree)


def test_kernel_refuses_a_shallow_max_depth(tree_state):
    from sklearn.tree._tree import Tree

    tree = Tree(*tree_state[0])
    tree.__setstate__({**tree_state[1], "max_depth": 1})
    assert _kernel_verdict(tree) is False
    with pytest.raises(ValidationError, match="max_depth"):
        vt.validate_tree(tree, DEFAULT_LIMITS)
