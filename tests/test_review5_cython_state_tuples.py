"""Review 5: a state tuple one item short kills the process in trusted Cython ``__setstate__``.

``sklearn.neighbors._kd_tree.KDTree`` / ``BallTree`` (``BinaryTree64.__setstate__``) read
``state[0]`` … ``state[12]`` and ``sklearn.metrics._dist_metrics.DistanceMetric64`` subclasses
``state[0]`` … ``state[2]`` with Cython's ``boundscheck=False`` item access, i.e.
``PyTuple_GET_ITEM`` past the end of a shorter tuple: a read of whatever follows the tuple in
memory, used as an object (reference count written: SIGSEGV under the default allocator, a
WRITE to the zero page under AddressSanitizer, heap corruption in general).  Both names are on
the default policy (every fitted ``KNeighbors*`` model references them) and safeload calls
``__setstate__`` with the file's tuple as it is: the KD/ball tree validator only runs after the
build.  Pickle and safe format alike; present before today's changes.

Expected: ``safeload.load`` raises a ``SafeloadError`` (a call/state rule refusing a state tuple
of the wrong length, say) and the process survives.
"""

from __future__ import annotations

import pytest

from ._child import load_in_child

_CHILD = """
    from sklearn.metrics import DistanceMetric
    from sklearn.neighbors import KDTree

    which, kind, keep = sys.argv[1], sys.argv[2], int(sys.argv[3])
    obj = KDTree(np.random.RandomState(0).rand(20, 3)) if which == "kdtree" else (
        DistanceMetric.get_metric("euclidean"))
    func, args, state = obj.__reduce__()[:3]
    assert type(state) is tuple and len(state) > keep
    if kind == "pickle":

        class Short:
            def __reduce__(self):
                return (func, args, state[:keep])

        data = pickle.dumps(Short(), protocol=5)
    else:

        def cut(graph):
            st = graph["root"]["state"]
            assert st["$"] == "tuple"
            st["v"] = st["v"][:keep]

        data = sz.edit(safeload.dumps(obj), graph=cut)
    """


@pytest.mark.parametrize("kind", ["safe", "pickle"])
@pytest.mark.parametrize(("which", "keep"), [("kdtree", 12), ("kdtree", 0), ("metric", 2)])
def test_short_state_tuple_is_refused_not_a_crash(which: str, keep: int, kind: str) -> None:
    proc = load_in_child(_CHILD, which, kind, str(keep))
    assert proc.returncode == 0, (
        f"safeload.load died (returncode {proc.returncode}) on a {which} state tuple cut to "
        f"{keep} items ({kind}); stderr: {proc.stderr[-500:]}"
    )
    assert proc.stdout.strip().startswith("refused"), proc.stdout
