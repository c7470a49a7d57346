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


# --------------------------------------------------------------------------- overlapped checks


def _batch_args(tree):
    nodes = tree.__getstate__()["nodes"]
    return (nodes, *vt._kernel_args(nodes), tree.node_count, tree.n_features, tree.max_depth)


def _tree(args, state, **changes):
    from sklearn.tree._tree import Tree

    tree = Tree(*args)
    tree.__setstate__({**state, **changes})
    return tree


@pytest.mark.parametrize("n_before", [0, 3_000])
def test_batch_reports_the_failed_trees(tree_state, n_before):
    """Inline (first jobs) and worker-thread (after 65536 nodes) passes report the same."""
    args, state = tree_state
    good = _tree(args, state)
    bad = _rebuild(
        args, state, "feature", int(np.flatnonzero(state["nodes"]["left_child"] >= 0)[0]), 99
    )
    batch = vt._treecheck.Batch()
    for i in range(n_before):
        batch.add(("good", i), *_batch_args(good))
    batch.add("bad", *_batch_args(bad))
    batch.add("good", *_batch_args(good))
    batch.add("garbage", state["nodes"], 8, 0, 0, 0, -1, 10, 4, 3)  # left == right
    batch.add("unreadable", state["nodes"], 4, 0, 0, 0, -1, 10, 4, 3)  # fields past a record
    batch.add("too long", state["nodes"], 64, 0, 8, 16, -1, 10**9, 4, 3)
    assert batch.join() == ["bad", "garbage", "unreadable", "too long"]
    with pytest.raises(RuntimeError):
        batch.join()
    with pytest.raises(RuntimeError):
        batch.add("late", *_batch_args(good))


def test_batch_dropped_without_join(tree_state):
    args, state = tree_state
    good = _tree(args, state)
    for _ in range(3):
        batch = vt._treecheck.Batch()
        for i in range(5_000):
            batch.add(i, *_batch_args(good))
        del batch  # cancels the queued passes, waits for the running one


def test_batch_refuses_bad_arguments():
    with pytest.raises(TypeError):
        vt._treecheck.Batch(1)
    batch = vt._treecheck.Batch()
    with pytest.raises(TypeError):
        batch.add()
    with pytest.raises(TypeError):
        batch.add("token", np.zeros(3))
    with pytest.raises(ValueError):
        batch.add("token", np.zeros((4, 4))[:, ::2], 8, 0, 0, 0, -1, 2, 1, 0)
    assert batch.join() == []


@settings(max_examples=60, deadline=None)
@given(
    field=st.sampled_from(["left_child", "right_child", "feature", "missing_go_to_left"]),
    index=st.integers(0, 10_000),
    value=st.one_of(st.integers(-3, 80), st.sampled_from([-1, 2**31, 2**62])),
)
def test_batch_agrees_with_the_kernel(tree_state, field, index, value):
    args, state = tree_state
    index %= state["nodes"].shape[0]
    if field == "missing_go_to_left":
        value = value % 256
    tree = _rebuild(args, state, field, index, value)
    good = _tree(args, state)
    batch = vt._treecheck.Batch()
    for _ in range(1_500):  # past the inline budget: the mutated tree goes to the worker
        batch.add("good", *_batch_args(good))
    batch.add("mutated", *_batch_args(tree))
    assert (batch.join() == []) == _kernel_verdict(tree) == _numpy_verdict(tree)


def test_validation_batch_checks_trees(tree_state):
    """The loader's early path: the header at once, the node pass by join()."""
    from safeload.validate import ValidationBatch

    args, state = tree_state
    good = _tree(args, state)
    batch = ValidationBatch(DEFAULT_LIMITS)
    assert batch.submit(good) is True
    assert batch.submit(object()) is False  # no validator: nothing to do ...
    batch.join()

    k = int(np.flatnonzero(state["nodes"]["left_child"] >= 0)[0])
    bad = _rebuild(args, state, "feature", k, 99)
    batch = ValidationBatch(DEFAULT_LIMITS)
    assert batch.submit(bad) is True  # the node pass runs beside the caller
    with pytest.raises(ValidationError, match=rf"feature\[{k}\] = 99 is outside"):
        batch.join()

    batch = ValidationBatch(DEFAULT_LIMITS)
    with pytest.raises(ValidationError, match="max_depth"):
        batch.submit(_tree(args, state, max_depth=10**6))  # header: refused at once
    batch.join()
    assert batch.add_nodes(good, vt.validate_tree) is False  # joined: the caller checks


def test_validation_batch_leaves_other_types_to_validate():
    from sklearn.tree import DecisionTreeClassifier as DTC

    from safeload.validate import ValidationBatch

    est = DTC().fit([[0.0], [1.0]], [0, 1])
    batch = ValidationBatch(DEFAULT_LIMITS)
    assert batch.submit(est) is False  # holds sub-objects: validated once the graph is built
    batch.join()


@pytest.mark.parametrize("which", [0, -1])
def test_load_refuses_a_bad_tree_in_a_large_forest(which):
    """End to end: enough nodes that the loader's node passes go to the worker thread."""
    import pickle

    from sklearn.ensemble import RandomForestClassifier

    import safeload

    rng = np.random.RandomState(1)
    X = rng.randn(3000, 5)
    y = rng.randint(0, 2, 3000)  # noise: deep trees, ~1,000 nodes each
    forest = RandomForestClassifier(n_estimators=100, random_state=0).fit(X, y)
    assert sum(e.tree_.node_count for e in forest.estimators_) > 65536 + 10_000
    assert type(safeload.loads(pickle.dumps(forest))) is RandomForestClassifier

    tree = forest.estimators_[which].tree_
    state = tree.__getstate__()
    nodes = state["nodes"].copy()
    k = int(np.flatnonzero(nodes["left_child"] >= 0)[-1])
    nodes["right_child"][k] = k  # a cycle
    tree.__setstate__({**state, "nodes": nodes})
    with pytest.raises(ValidationError, match=rf"children_right\[{k}\] = {k} does not come"):
        safeload.loads(pickle.dumps(forest))


def test_validation_batch_takes_exact_trees_only(tree_state):
    """A subclass may set its state differently: it is validated after the build."""
    from sklearn.tree._tree import Tree

    from safeload.validate import ValidationBatch

    class SubTree(Tree):
        pass

    args, state = tree_state
    sub = SubTree(*args)
    sub.__setstate__(state)
    batch = ValidationBatch(DEFAULT_LIMITS)
    assert batch.submit(sub) is False
    batch.join()
