"""Review 5: a ``Tree`` whose state holds a 0-d ``nodes`` array kills the loading process.

``sklearn.tree._tree.Tree.__setstate__`` reads ``node_ndarray.shape[0]`` (a typed Cython
ndarray: no bounds check on ``shape``) *before* ``_check_node_ndarray`` looks at ``ndim``; for a
0-d structured array that read is outside the array's dimensions and the process dies with
SIGSEGV.  safeload's tree validator runs only after ``__setstate__``, and nothing checks the
state's shape before the call, so one file (pickle or safe format, default policy, no
``trusted=``) crashes ``safeload.load``.  Found by random mutation of a valid safe file (the
pooled slice's ``"shape": [11]`` changed to ``[]``); present before today's changes too.

Expected: every load of these files raises a ``SafeloadError`` (e.g. ``ValidationError`` or
``ForbiddenOperationError`` for a ``nodes`` array that is not 1-d), never a signal.
"""

from __future__ import annotations

import pytest

from ._child import load_in_child

_MAKE = """
    from sklearn.tree import DecisionTreeClassifier

    X = np.random.RandomState(0).rand(30, 3)
    y = (X[:, 0] > 0.5).astype(int)
    clf = DecisionTreeClassifier(max_depth=2, random_state=0).fit(X, y)
    kind = sys.argv[1]
    if kind == "pickle":
        tree = clf.tree_
        state = tree.__getstate__()
        state["nodes"] = state["nodes"][:1].reshape(())  # a 0-d structured array

        class T:
            def __reduce__(self):
                return (type(tree), (tree.n_features, tree.n_classes, tree.n_outputs), state)

        clf.tree_ = T()
        data = pickle.dumps(clf, protocol=5)
    else:

        def zero_d(graph):
            nodes = graph["root"]["state"]["v"]["tree_"]["state"]["v"]["nodes"]
            assert nodes["$"] == "ndarray" and len(nodes["shape"]) == 1
            nodes["shape"] = []  # one record of the pool, reshaped to ()

        data = sz.edit(safeload.dumps(clf), graph=zero_d)
    """


@pytest.mark.parametrize("kind", ["safe", "pickle"])
def test_zero_d_tree_nodes_are_refused_not_a_segfault(kind: str) -> None:
    proc = load_in_child(_MAKE, kind)
    assert proc.returncode == 0, (
        f"safeload.load died (returncode {proc.returncode}, a negative value is the signal) "
        f"on a Tree state with a 0-d nodes array ({kind}); stderr: {proc.stderr[-500:]}"
    )
    assert proc.stdout.strip().startswith("refused"), proc.stdout
