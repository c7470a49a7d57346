"""States checked before a trusted compiled ``__setstate__`` reads them
(:mod:`safeload.statechecks`; review 5 found the crashes these refuse)."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from sklearn.metrics import DistanceMetric
from sklearn.neighbors import BallTree, KDTree
from sklearn.tree import DecisionTreeClassifier

import safeload
from safeload import statechecks
from safeload.build import plain_setstate
from safeload.errors import ValidationError

from . import _safezip as sz


@pytest.mark.parametrize("name", sorted(statechecks.REGISTRY))
def test_every_registered_class_defines_its_setstate(name):
    """A rename in scikit-learn must not silently drop a check."""
    module, _, qualname = name.rpartition(".")
    cls = getattr(importlib.import_module(module), qualname)
    assert "__setstate__" in vars(cls)
    assert statechecks.has_state_check(cls)


def _tree_file() -> bytes:
    X = np.random.RandomState(0).rand(30, 3)
    clf = DecisionTreeClassifier(max_depth=2, random_state=0).fit(X, X[:, 0] > 0.5)
    return safeload.dumps(clf)


def _tree_state(graph: dict) -> dict:
    return graph["root"]["state"]["v"]["tree_"]["state"]["v"]


@pytest.mark.parametrize(
    ("field", "shape", "message"),
    [
        ("nodes", lambda s: [1, s[0]], "nodes is not a 1-d numpy array"),
        ("nodes", lambda s: [], "nodes is not a 1-d numpy array"),
        ("values", lambda s: [s[0], s[1] * s[2]], "values is not a 3-d numpy array"),
    ],
)
def test_tree_arrays_of_the_wrong_ndim_are_refused_before_setstate(field, shape, message):
    def change(graph):
        value = _tree_state(graph)[field]
        value["shape"] = shape(value["shape"])

    with pytest.raises(ValidationError, match=f"sklearn.tree._tree.Tree: {message}; its compiled"):
        safeload.loads(sz.edit(_tree_file(), graph=change))


def test_a_tree_state_that_is_not_a_dict_is_refused():
    assert statechecks._tree_state(None, [1]) == "state is a list, not a dict"
    assert statechecks._tree_state(None, {"nodes": np.zeros(3)}) is None


@pytest.mark.parametrize(
    "obj",
    [
        KDTree(np.random.RandomState(0).rand(20, 3)),
        BallTree(np.random.RandomState(0).rand(20, 3)),
        DistanceMetric.get_metric("euclidean"),
        DistanceMetric.get_metric("minkowski", p=3),
    ],
    ids=["kdtree", "balltree", "euclidean", "minkowski"],
)
@pytest.mark.parametrize("change", ["longer", "shorter", "list"])
def test_tuple_states_must_have_the_written_length(obj, change):
    data = safeload.dumps(obj)
    n = len(obj.__getstate__())

    def edit(graph):
        state = graph["root"]["state"]
        assert state["$"] == "tuple" and len(state["v"]) == n
        if change == "longer":
            state["v"].append(0)
        elif change == "shorter":
            state["v"].pop()
        else:
            graph["root"]["state"] = state["v"]  # a JSON list: a Python list

    expected = (
        f"tuple of {n + 1} items"
        if change == "longer"
        else (f"tuple of {n - 1} items" if change == "shorter" else "state is a list, not a tuple")
    )
    with pytest.raises(ValidationError, match=expected):
        safeload.loads(sz.edit(data, graph=edit))
    assert type(safeload.loads(data)) is type(obj)  # the file as written still loads


def test_checked_classes_never_take_the_plain_setstate_path():
    from sklearn.tree._tree import Tree

    assert not plain_setstate(KDTree) and not plain_setstate(BallTree) and not plain_setstate(Tree)
    assert not plain_setstate(type(DistanceMetric.get_metric("euclidean")))


def test_a_class_whose_state_can_not_be_probed_is_refused(monkeypatch):
    def broken():
        raise RuntimeError("no")

    monkeypatch.setitem(
        statechecks.REGISTRY,
        "sklearn.neighbors._kd_tree.BinaryTree64",
        statechecks._tuple_of("broken", broken),
    )
    monkeypatch.setattr(statechecks, "_cache", {})
    data = safeload.dumps(KDTree(np.random.RandomState(0).rand(20, 3)))
    with pytest.raises(ValidationError, match="could not be determined"):
        safeload.loads(data)


# ------------------------------------------------------------------------------ numpy


class _Reduce:
    """Pickles as the given ``__reduce__`` tuple (hand-written hostile pickles)."""

    def __init__(self, *reduce):
        self.reduce = reduce

    def __reduce__(self):
        return self.reduce


def _loads_pickle(obj):
    import pickle

    return safeload.loads(pickle.dumps(obj, protocol=2))


@pytest.mark.parametrize(
    ("cls", "dtype", "raw", "shape"),
    [
        (np.ndarray, np.dtype(object), [1], (5,)),
        (np.ndarray, np.dtype(object), [], (3,)),
        (np.ndarray, np.dtype([("a", "O"), ("b", "f8")]), [(1, 2.0)], (2,)),
        (np.matrix, np.dtype(object), [1, 2], (2, 2)),
    ],
)
def test_object_arrays_must_list_every_item(cls, dtype, raw, shape):
    """numpy's ``_setlist_pkl`` reads ``prod(shape)`` items of the list without a length
    check (review 5 survey: SIGSEGV through ``safeload.loads``)."""
    from numpy._core.multiarray import _reconstruct

    hostile = _Reduce(_reconstruct, (cls, (0,), b"b"), (1, shape, dtype, False, raw))
    with pytest.raises(ValidationError, match=f"lists {len(raw)} items, not"):
        _loads_pickle(hostile)
    good = np.empty(shape, dtype=dtype)
    assert _loads_pickle(good).shape == shape  # the state numpy writes still loads


def test_masked_object_arrays_must_list_every_item():
    data = np.ma.MaskedArray(np.array(["a", "b", "c"], dtype=object), mask=[0, 1, 0])
    state = data.__reduce__()
    assert len(state[2]) == 7
    short = (*state[2][:4], state[2][4][:1], *state[2][5:])
    with pytest.raises(ValidationError, match="lists 1 items, not 3"):
        _loads_pickle(_Reduce(state[0], state[1], short))
    out = _loads_pickle(data)
    assert out.tolist() == ["a", None, "c"]


@pytest.mark.parametrize("name", ["PCG64", "PCG64DXSM", "Philox", "MT19937"])
def test_bit_generators_made_without_init_are_refused(name):
    """PCG64/PCG64DXSM/Philox ``__setstate__`` write through pointers only ``__init__`` sets:
    ``NEWOBJ`` then ``BUILD`` crashed the process (review 5 survey)."""
    import pickle

    import numpy.random

    cls = getattr(numpy.random, name)
    state = pickle.dumps(cls(0).__getstate__(), protocol=2)[2:-1]  # without PROTO and STOP
    glob = f"c{cls.__module__}\n{cls.__qualname__}\n".encode()
    hostile = b"\x80\x02" + glob + b")\x81" + state + b"b."  # NEWOBJ, then BUILD
    with pytest.raises(ValidationError, match="never initialised"):
        safeload.loads(hostile)
    assert _loads_pickle(cls(0)).random_raw() == cls(0).random_raw()  # numpy's own pickle
