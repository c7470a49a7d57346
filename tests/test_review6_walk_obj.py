"""Review 6: the C walk's plain obj nodes (``_walk.c`` ``fast_obj``) against the reference
``Decoder._plain_node`` on generated graphs with hostile trusted classes: the same objects
(and sharing), the same errors, items, sizes, slot table and the same builder.finish calls."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from safeload.api import make_policy
from safeload.build import Builder
from safeload.format import decode
from safeload.format.decode import Decoder, decode_globals
from safeload.limits import Limits

from ._hostilenode import NAMES

pytestmark = pytest.mark.skipif(decode._walk is None, reason="C walk not built")
_POLICY = make_policy(NAMES)


class _Reference(Decoder):
    """No walker: Decoder's own Python methods."""


class _Recording(Builder):
    def finish(self, result: Any, pair: tuple[str, str]) -> None:
        self.finished.append((type(result).__name__, pair))
        super().finish(result, pair)


def _run(cls: type, graph: Any, limits: Limits, keep: Any = None) -> tuple:
    doc = {"globals": [n.rsplit(".", 1) for n in NAMES], "dtypes": [], "arrays": [], "root": graph}
    _ctx, placeholders, resolved = decode_globals(doc, _POLICY)
    builder = _Recording(_POLICY, limits, resolved)
    builder.finished = []
    decoder = cls(placeholders, builder, [], keep=keep)
    try:
        out: tuple = ("ok", decoder.decode_root(copy.deepcopy(graph)))
    except Exception as exc:  # noqa: BLE001 - compared below; must be a SafeloadError
        out = (type(exc).__name__, str(exc), type(exc.__cause__).__name__)
    items = decoder._walker.items if decoder._walker is not None else decoder.items
    return out, items, dict(decoder._sizes), len(decoder.slots), builder.finished


def _same(a: Any, b: Any, memo: dict) -> None:
    """Equal structure, equal types, and the same sharing (a bijection of identities)."""
    if id(a) in memo:
        assert memo[id(a)] is b
        return
    assert type(a) is type(b), (a, b)
    if isinstance(a, (dict, list, tuple)) or hasattr(a, "__dict__"):
        memo[id(a)] = b
    if isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _same(a[k], b[k], memo)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _same(x, y, memo)
    elif hasattr(a, "__dict__") and not isinstance(a, type):
        _same(vars(a), vars(b), memo)
    else:
        assert a == b or (a != a and b != b)


_atoms = st.one_of(st.none(), st.booleans(), st.integers(0, 7), st.text("ar", max_size=2))
_g = st.sampled_from([0, 0, 0, 1, 1, 1, 2, 3, 4, 5, 6, 7])  # mostly the plain classes
_bad_g = st.sampled_from([True, 0.0, -1, 99])
#: call nodes (``_walk.c`` ``fast_call`` from a global's second node on): every class above,
#: the ones without ``__setstate__`` or whose lookup of it raises too
_call_g = st.sampled_from([0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10, 11, 12])


def _values(children: st.SearchStrategy) -> st.SearchStrategy:
    keys = st.sampled_from(["a", "r", "m", "z"])
    return st.one_of(
        st.lists(children, max_size=4),
        st.fixed_dictionaries(
            {"$": st.just("dict"), "v": st.dictionaries(keys, children, max_size=3)}
        ),
        st.fixed_dictionaries({"$": st.just("tuple"), "v": st.lists(children, max_size=3)}),
        st.fixed_dictionaries({"$": st.just("ref"), "id": st.integers(0, 8)}),
        st.fixed_dictionaries({"$": st.just("obj"), "g": _g, "state": children}),
        st.fixed_dictionaries({"$": st.just("obj"), "g": _g, "state": children}),
        st.fixed_dictionaries({"$": st.just("obj"), "g": _g, "state": children}),
        st.lists(
            st.fixed_dictionaries({"$": st.just("obj"), "g": _g, "state": children}),
            min_size=2,
            max_size=4,
        ),
        st.fixed_dictionaries(
            {"$": st.just("call"), "g": _call_g},
            optional={"args": st.lists(children, max_size=2), "state": children},
        ),
        st.lists(
            st.fixed_dictionaries(
                {"$": st.just("call"), "g": _call_g, "args": st.just([]), "state": children}
            ),
            min_size=2,
            max_size=4,
        ),
        # rarer: hostile forms next to plain ones (bad g, args/items, unknown keys, refs past the end)
        st.one_of(
            st.fixed_dictionaries({"$": st.just("obj"), "g": _bad_g, "state": children}),
            st.fixed_dictionaries(
                {"$": st.just("obj"), "g": _g},
                optional={
                    "state": children,
                    "args": st.just([]),
                    "items": st.lists(children, max_size=2),
                },
            ),
            st.fixed_dictionaries(
                {"$": st.just("obj"), "g": _g, "state": children, "x": st.just(1)}
            ),
            st.fixed_dictionaries({"$": st.just("ref"), "id": st.integers(-1, 40)}),
            st.fixed_dictionaries(
                {"$": st.just("call"), "g": _call_g, "state": children},
                optional={
                    "args": st.sampled_from([{}, "x", [1]]),
                    "kwargs": st.just({"a": 1}),
                    "items": st.lists(children, max_size=2),
                },
            ),
        ),
    )


_graphs = st.recursive(_atoms, _values, max_leaves=30)


@settings(
    max_examples=int(__import__("os").environ.get("REVIEW6_EXAMPLES", "300")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(_graphs, st.integers(1, 12), st.integers(1, 80))
def test_plain_obj_nodes_agree_with_the_reference(graph, max_depth, max_items):
    keep = decode.ref_ids(graph)  # Decoder(keep=...) (session 10) decodes the same
    for limits, kept in (
        (Limits(), None),
        (Limits(max_depth=max_depth, max_items=max_items), None),
        (Limits(), keep),
    ):
        fast = _run(Decoder, graph, limits, kept)
        ref = _run(_Reference, graph, limits)
        assert fast[0][0] == ref[0][0], (fast[0], ref[0])
        if fast[0][0] == "ok":
            _same(fast[0][1], ref[0][1], {})
        else:
            assert fast[0] == ref[0]
            # nothing but a SafeloadError leaves a decode
            assert fast[0][0] in {
                "FormatError",
                "LimitExceededError",
                "ForbiddenOperationError",
                "ValidationError",
            }, fast[0]
        assert fast[1:] == ref[1:]


# ``call`` nodes (session 10): from a global's second node on, ``_walk.c`` ``fast_call`` does
# what Decoder._node does (arguments, builder.invoke, the slot, check_state + __setstate__ or
# _apply_build, builder.finish).


def _calls(g: int, states: list, args: list | None = None) -> list[dict]:
    node = {"$": "call", "g": g}
    if args is not None:
        node["args"] = args
    return [{**node, "state": s} for s in states]


def _python_nodes(monkeypatch, graph: Any, limits: Limits | None = None) -> tuple[tuple, int]:
    """The fast decode of ``graph`` (call nodes with a state only) and how many of its nodes
    Python's _node built (each sets its state through _set_state; the walk's never does)."""
    seen = []
    real = Decoder._set_state

    def counting(self, *args):
        seen.append(1)
        return real(self, *args)

    monkeypatch.setattr(Decoder, "_set_state", counting)
    out = _run(Decoder, graph, limits or Limits())
    monkeypatch.undo()
    return out, len(seen)


def test_repeated_call_nodes_are_built_by_the_walk_as_by_the_reference(monkeypatch):
    graph = [
        *_calls(0, [1, {"$": "dict", "v": {"a": [2]}}, {"$": "ref", "id": 1}], args=[]),
        *_calls(9, [{"$": "dict", "v": {"a": 1}}, {"$": "dict", "v": {"z": 2}}]),  # Bare
        *_calls(6, [None, None]),  # NewClass: BUILD on a class is forbidden, in either path
    ]
    fast, python_nodes = _python_nodes(monkeypatch, graph[:5])
    ref = _run(_Reference, graph[:5], Limits())
    assert python_nodes == 2  # the first node of each class; the walk built the other three
    assert fast[0][0] == "ok"
    _same(fast[0][1], ref[0][1], {})
    p, q = fast[0][1][0], fast[0][1][3]
    assert type(p).__name__ == "P" and p.state == 1
    assert type(q).__name__ == "Bare" and vars(q) == {"a": 1}
    assert vars(fast[0][1][4]) == {"z": 2}
    assert fast[1:] == ref[1:]
    fast, _ = _python_nodes(monkeypatch, graph)
    assert fast[0][0] == "ForbiddenOperationError"
    assert fast == _run(_Reference, graph, Limits())


@pytest.mark.parametrize(
    "states, error",
    [
        ([None, {"$": "dict", "v": {"r": 1}}], "FormatError"),  # ValueError in __setstate__
        ([None, {"$": "dict", "v": {"r": 3}}], "FormatError"),  # its own SafeloadError
        ([None, {"$": "dict", "v": {"r": 4}}], "FormatError"),  # MemoryError (state_error)
        ([None, {"$": "ref", "id": 2}], "ok"),  # its own slot: filled before the state
    ],
)
def test_a_later_failing_call_node_is_the_reference_error(monkeypatch, states, error):
    graph = _calls(3, states, args=[])  # Raising
    fast, python_nodes = _python_nodes(monkeypatch, graph)
    ref = _run(_Reference, graph, Limits())
    assert python_nodes == 1
    assert fast[0][0] == ref[0][0] == error
    if error == "ok":
        _same(fast[0][1], ref[0][1], {})
        assert fast[0][1][1].state is fast[0][1][1]  # a cycle through the state
    else:
        assert fast[0] == ref[0]
    assert fast[1:] == ref[1:]


def test_a_call_node_whose_arguments_name_itself_is_the_reference_error(monkeypatch):
    graph = _calls(0, [None], args=[]) + _calls(0, [None], args=[{"$": "ref", "id": 2}])
    fast, _ = _python_nodes(monkeypatch, graph)
    assert fast[0][:2] == (
        "FormatError",
        "safe format rule G5: a value is referenced inside its own construction",
    )
    assert fast == _run(_Reference, graph, Limits())


def test_a_none_or_missing_setstate_is_looked_up_once_and_builds_the_dict(monkeypatch):
    # review 10: fast_call called a __setstate__ that is None (TypeError), and looked a
    # missing one up twice (its own lookup, then _apply_build's)
    state = {"$": "dict", "v": {"a": 1}}
    for g in (11, 12):  # NoneSetstate, CountingGetattr
        graph = _calls(g, [state, state, state], args=[])
        fast, python_nodes = _python_nodes(monkeypatch, graph)
        ref = _run(_Reference, graph, Limits())
        assert python_nodes == 1 and fast[0][0] == ref[0][0] == "ok"
        _same(fast[0][1], ref[0][1], {})
        for obj in fast[0][1]:
            assert vars(obj) == ({"a": 1} if g == 11 else {"lookups": 1, "a": 1})
        assert fast[1:] == ref[1:]


def test_a_setstate_lookup_that_raises_is_the_reference_error(monkeypatch):
    graph = _calls(10, [None], args=[]) + _calls(10, [None], args=[1])  # AttrRaising
    fast, python_nodes = _python_nodes(monkeypatch, graph)
    assert python_nodes == 1
    assert fast[0][:2] == (
        "FormatError",
        "restoring the state of tests._hostilenode.AttrRaising failed: ValueError: lookup",
    )
    assert fast == _run(_Reference, graph, Limits())


def test_call_nodes_the_walk_builds_get_their_state_check(monkeypatch):
    from safeload import statechecks

    monkeypatch.setitem(
        statechecks.REGISTRY,
        "tests._hostilenode.P",
        lambda inst, state: "state 'bad'" if state == "bad" else None,
    )
    monkeypatch.setattr(statechecks, "_cache", {})
    graph = _calls(0, ["ok", "ok", "bad"], args=[])
    fast, python_nodes = _python_nodes(monkeypatch, graph)
    assert python_nodes == 1
    assert fast[0][:2] == (
        "ValidationError",
        "tests._hostilenode.P: state 'bad'; its compiled __setstate__ would read out of bounds",
    )
    monkeypatch.setitem(
        statechecks.REGISTRY,
        "tests._hostilenode.P",
        lambda inst, state: "state 'bad'" if state == "bad" else None,
    )
    monkeypatch.setattr(statechecks, "_cache", {})
    assert fast == _run(_Reference, graph, Limits())


def test_trees_the_walk_builds_are_checked_before_use():
    # the third Tree is built by fast_call: its out-of-range child must still be refused
    import numpy as np
    from sklearn.tree import DecisionTreeRegressor

    import safeload

    X = np.random.default_rng(1).random((50, 3))
    trees = [DecisionTreeRegressor(max_depth=2, random_state=k).fit(X, X[:, k]) for k in range(3)]
    state = trees[2].tree_.__getstate__()
    nodes = state["nodes"].copy()
    nodes["left_child"][0] = 99  # past node_count: _apply_dense would read out of bounds
    trees[2].tree_.__setstate__({**state, "nodes": nodes})
    good = safeload.loads(safeload.dumps(trees[:2]))
    assert [t.predict(X[:5]).tolist() for t in good] == [
        t.predict(X[:5]).tolist() for t in trees[:2]
    ]
    with pytest.raises(safeload.ValidationError, match="children_left"):
        safeload.loads(safeload.dumps(trees))


def test_a_ref_that_trusted_code_writes_into_raw_graph_json_fails_closed_under_keep(tmp_path):
    # review 10: CopyAtoC, handed the dict D still being decoded (through a ref), copies its
    # decoded "a" -- a dict that spells {"$": "ref", "id": 1} -- into D["c"], which is then
    # decoded as graph JSON: a ref that ref_ids never saw.  Without keep it is slot 1's value;
    # with keep (a path load of a file over 1 MiB whose large member is read beside the
    # decode) slot 1 was left out: FormatError G5, never a wrong value (docs/SECURITY.md)
    import numpy as np

    import safeload

    from . import _safezip as z

    def edit(doc):
        doc["globals"] = [["tests._hostilenode", "CopyAtoC"]]
        doc["root"] = [  # slots: 0 the list, 1 [7], 2 the array, 3 the dict D
            [7],
            {"$": "ndarray", "i": 0},
            {
                "$": "dict",
                "v": {
                    "a": {"$": "dict", "items": [["$", "ref"], ["id", 1]]},
                    "b": {"$": "obj", "g": 0, "state": {"$": "ref", "id": 3}},
                    "c": 0,
                },
            },
        ]

    data = z.edit(safeload.dumps([np.zeros(200_000)]), graph=edit)
    trusted = ["tests._hostilenode.CopyAtoC"]
    assert safeload.loads(data, trusted=trusted)[2]["c"] == [7]
    path = tmp_path / "copy.safeload"
    path.write_bytes(data)
    with pytest.raises(safeload.FormatError, match="G5: a reference names a value the decoder"):
        safeload.load(path, trusted=trusted)
