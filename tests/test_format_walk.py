"""The C walk of graph.json (``safeload/format/_walk.c``) against its reference, the Python
``Decoder.dec``: the same values, the same item count, the same shared-value sizes and the same
error for any graph, well-formed or hostile."""

from __future__ import annotations

import copy
import gc
import weakref
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import safeload
from safeload.build import Builder, plain_setstate
from safeload.errors import FormatError, LimitExceededError
from safeload.format import decode
from safeload.format.decode import Decoder
from safeload.limits import Limits
from safeload.policy import default_policy

pytestmark = pytest.mark.skipif(decode._walk is None, reason="C walk not built")


class _Reference(Decoder):
    """Decoder's own Python methods (the walk is only used for the exact class)."""


def _pools() -> list[np.ndarray]:
    return [np.arange(40, dtype="<i8"), np.arange(12, dtype="<f8"), np.zeros(0, dtype="<u4")]


def _run(
    cls: type, value: Any, limits: Limits, consume: bool = False, keep: Any = None
) -> tuple[str, Any, int, dict, list]:
    decoder = cls([], Builder(default_policy(), limits, {}), _pools(), consume=consume, keep=keep)
    try:
        out = decoder.dec(copy.deepcopy(value), 0)
        result: tuple[str, Any] = ("ok", out)
    except (FormatError, LimitExceededError, RuntimeError, TypeError) as exc:
        result = (type(exc).__name__, str(exc))
    items = decoder._walker.items if decoder._walker is not None else decoder.items
    return (*result, items, dict(decoder._sizes), list(decoder._pool_next.items()))


def _same(a: Any, b: Any, seen: set | None = None) -> None:
    """Equal values of equal types; a shared (or cyclic) container is compared once."""
    seen = set() if seen is None else seen
    assert type(a) is type(b)
    if isinstance(a, (dict, list, tuple)):
        if id(a) in seen:
            return
        seen.add(id(a))
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert a.flags.f_contiguous == b.flags.f_contiguous
        np.testing.assert_array_equal(a, b)
        assert (a.base is None) == (b.base is None)  # a pool slice is a view in both
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _same(a[k], b[k], seen)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _same(x, y, seen)
    else:
        assert a == b or (a != a and b != b)


def _same_outcome(a: tuple, b: tuple) -> None:
    """Two :func:`_run` results: the same value or error, counts, sizes and pool positions."""
    assert a[0] == b[0], (a[:2], b[:2])
    if a[0] == "ok":
        _same(a[1], b[1])
    else:
        assert a[1] == b[1]
    assert a[2:] == b[2:]


def _agree(value: Any, limits: Limits | None = None) -> tuple:
    limits = limits or Limits()
    fast = _run(Decoder, value, limits)
    _same_outcome(fast, _run(_Reference, value, limits))
    return fast


# ------------------------------------------------------------------------------ strategies

_atoms = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False), st.text(max_size=3)
)
_pool_slice = st.fixed_dictionaries(
    {
        "$": st.just("ndarray"),
        "i": st.one_of(st.integers(-1, 3), st.booleans(), st.just("0")),
        "at": st.one_of(st.integers(-1, 45), st.just(1.0), st.just(True)),
        "shape": st.one_of(
            st.lists(st.integers(0, 6), max_size=3),
            st.just("3"),
            st.just([2.0]),
            st.just([[1]]),
        ),
    },
    optional={
        "order": st.sampled_from(["C", "F", "K", 1]),
        "x": st.just(1),
    },
)


def _values(children: st.SearchStrategy) -> st.SearchStrategy:
    keys = st.text(alphabet="abc$", min_size=1, max_size=2)
    return st.one_of(
        st.lists(children, max_size=4),
        st.fixed_dictionaries(
            {"$": st.just("dict"), "v": st.dictionaries(keys, children, max_size=3)}
        ),
        st.fixed_dictionaries(
            {"$": st.just("dict"), "v": st.one_of(st.lists(children, max_size=2), st.none())}
        ),
        st.fixed_dictionaries({"$": st.just("tuple"), "v": st.lists(children, max_size=3)}),
        st.fixed_dictionaries({"$": st.just("ref"), "id": st.integers(-1, 12)}),
        st.fixed_dictionaries(
            {"$": st.sampled_from(["set", "frozenset"]), "v": st.lists(_atoms, max_size=3)}
        ),
        st.fixed_dictionaries({"$": st.sampled_from(["nope", "obj"]), "v": children}),
        st.dictionaries(st.sampled_from(["$", "v", "q"]), children, max_size=2),
        st.fixed_dictionaries({"$": st.just("ndarray"), "i": st.integers(0, 2)}),
    )


_graphs = st.recursive(st.one_of(_atoms, _pool_slice), _values, max_leaves=25)

SETTINGS = settings(
    max_examples=400,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@SETTINGS
@given(_graphs, st.integers(1, 6), st.integers(1, 60))
def test_walk_agrees_with_the_reference(value: Any, max_depth: int, max_items: int) -> None:
    _agree(value)
    _agree(value, Limits(max_depth=max_depth, max_items=max_items))


@SETTINGS
@given(_graphs, st.integers(1, 6), st.integers(1, 60))
def test_keeping_only_referenced_arrays_decodes_the_same(value, max_depth, max_items):
    # Decoder(keep=ref_ids(graph)) (session 10) leaves a whole-member array out of the slot
    # table unless a ref names its slot: same values, counts, sizes and errors, both walks
    keep = decode.ref_ids(value)
    for limits in (Limits(), Limits(max_depth=max_depth, max_items=max_items)):
        for cls in (Decoder, _Reference):
            _same_outcome(_run(cls, value, limits), _run(cls, value, limits, keep=keep))


_json = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-3, 30), st.text("$refid", max_size=3)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(["$", "id", "v", "x"]), inner, max_size=3),
        st.fixed_dictionaries(
            {"$": st.just("ref"), "id": st.one_of(st.integers(-2, 40), st.booleans(), inner)}
        ),
    ),
    max_leaves=30,
)


@SETTINGS
@given(_json)
def test_ref_ids_in_c_equal_the_python_reference(doc):
    fast = decode.ref_ids(doc)
    walk, decode._walk = decode._walk, None
    try:
        assert fast == decode.ref_ids(doc)
    finally:
        decode._walk = walk
    assert all(type(i) is int for i in fast)


def test_a_referenced_array_is_kept_and_the_others_go():
    graph = [{"$": "ndarray", "i": 0}, {"$": "ndarray", "i": 1}, {"$": "ref", "id": 2}]
    keep = decode.ref_ids(graph)
    assert keep == {2}
    for cls in (Decoder, _Reference):
        decoder = cls([], Builder(default_policy(), Limits(), {}), _pools(), keep=keep)
        out = decoder.dec(copy.deepcopy(graph), 0)
        assert out[2] is out[1] and out[0].tolist() == list(range(40))
        assert decoder.arrays[:2] == [None, None]  # the decoder lets both go at their use
        assert decoder.slots[:2] == [decode._DROPPED] * 2 and decoder.slots[2] is out[1]
        # a ref to a slot left out (impossible with keep = ref_ids(graph)) is refused
        decoder = cls([], Builder(default_policy(), Limits(), {}), _pools(), keep=set())
        with pytest.raises(FormatError, match="G5: a reference names a value the decoder"):
            decoder.dec(copy.deepcopy(graph), 0)


@given(_graphs, st.integers(1, 6), st.integers(1, 60))
def test_consuming_the_graph_decodes_the_same(value: Any, max_depth: int, max_items: int):
    # Decoder(consume=True) (a load's own graph, session 9) drops each decoded list item
    # from the JSON: same values, counts, sizes and errors, on both walks
    for limits in (Limits(), Limits(max_depth=max_depth, max_items=max_items)):
        for cls in (Decoder, _Reference):
            _same_outcome(_run(cls, value, limits), _run(cls, value, limits, consume=True))


@pytest.mark.parametrize("cls", [Decoder, _Reference])
def test_a_consumed_list_keeps_its_atoms_and_drops_what_was_decoded(cls):
    graph = [
        1,
        "s",
        {"$": "tuple", "v": [1, 2]},
        [3, {"$": "tuple", "v": []}],
        {"$": "objarray", "shape": [2], "order": "C", "v": [{"$": "tuple", "v": [4]}, 5]},
    ]
    decoder = cls([], Builder(default_policy(), Limits(), {}), _pools(), consume=True)
    out = decoder.dec(graph, 0)
    assert out[:4] == [1, "s", (1, 2), [3, ()]]
    assert out[4].tolist() == [(4,), 5]
    assert graph == [1, "s", None, None, None]  # the objarray's own list went with it
    kept = cls([], Builder(default_policy(), Limits(), {}), _pools())
    again = copy.deepcopy(graph[:2])
    kept.dec(again, 0)
    assert again == [1, "s"]  # consume=False (the default) leaves the JSON as it was


def test_an_objarray_consumes_its_items_one_by_one():
    items = [{"$": "tuple", "v": [k]} for k in range(3)] + ["x"]
    seen = []
    decoder = Decoder([], Builder(default_policy(), Limits(), {}), _pools(), consume=True)
    real = decoder.dec

    def dec(v, depth):
        seen.append(sum(x is None for x in items))  # items dropped before this one
        return real(v, depth)

    decoder.dec = dec
    out = decoder._objarray({"$": "objarray", "shape": [4], "order": "C", "v": items}, 1)
    assert out.tolist() == [(0,), (1,), (2,), "x"]
    assert seen == [0, 1, 2] and items == [None, None, None, "x"]


# ------------------------------------------------------------------------------ examples


def test_pooled_slices_views_and_reshapes() -> None:
    value = [
        {"$": "ndarray", "i": 0, "at": 0, "shape": [6]},
        {"$": "ndarray", "i": 0, "at": 6, "shape": [2, 3]},
        {"$": "ndarray", "i": 0, "at": 12, "shape": [2, 3], "order": "F"},
        {"$": "ndarray", "i": 2, "at": 0, "shape": [0, 8]},
        {"$": "ndarray", "i": 2, "at": 0, "shape": [0, 8]},
    ]
    status, out, items, sizes, pool_next = _agree(value)
    assert status == "ok"
    np.testing.assert_array_equal(out[1], [[6, 7, 8], [9, 10, 11]])
    np.testing.assert_array_equal(out[2], [[12, 14, 16], [13, 15, 17]])
    assert out[2].flags.f_contiguous and not out[2].flags.c_contiguous
    assert out[3].shape == out[4].shape == (0, 8)
    assert items == 6  # the list and its five items; inline ndarray values add none
    assert pool_next == [(0, 18), (2, 0)]


@pytest.mark.parametrize(
    ("second", "error"),
    [
        ({"at": 5}, "pooled arrays follow each other"),  # a gap
        ({"at": 0}, "pooled arrays follow each other"),  # overlapping the first
        ({"at": 39, "shape": [2]}, "pooled arrays follow each other"),  # past the pool
        ({"order": "K", "shape": [2, 2]}, "order C or F"),
        ({"shape": "4"}, "shape list"),
        ({"extra": 1}, "unknown keys"),
    ],
)
def test_pooled_slice_errors_match(second: dict, error: str) -> None:
    first = {"$": "ndarray", "i": 0, "at": 0, "shape": [4]}
    value = [first, {"$": "ndarray", "i": 0, "at": 4, "shape": [4], **second}]
    status, message, *_ = _agree(value)
    assert status == "FormatError" and error in message


def test_counts_and_sizes_of_shared_values() -> None:
    value = [{"$": "dict", "v": {"a": [1, 2, 3]}}, {"$": "ref", "id": 1}]
    status, out, items, sizes, _ = _agree(value)
    assert status == "ok" and out[1] is out[0]
    # the outer list: 1 + 2 items; the dict: 1 + 1 key; its list: 1 + 3 items; the reference:
    # 1 + the dict's whole size again (6), so a shared value costs what it would if repeated
    assert sizes == {0: 16, 1: 6, 2: 4}
    assert items == 16


def test_limits_match() -> None:
    deep: Any = 1
    for _ in range(10):
        deep = [deep]
    status, message, *_ = _agree(deep, Limits(max_depth=4))
    assert status == "LimitExceededError" and "max_depth" in message
    status, message, *_ = _agree(list(range(50)), Limits(max_items=20))
    assert status == "LimitExceededError" and "max_items" in message


def test_unknown_tags_keys_and_json_types() -> None:
    assert "unknown value tag 'nope'" in _agree({"$": "nope"})[1]
    assert "unknown value tag 'None'" in _agree({"v": 1})[1]
    assert "a 'tuple' value has unknown keys ['x']" in _agree({"$": "tuple", "v": [], "x": 1})[1]
    fast = _run(Decoder, [(1, 2)], Limits())
    assert fast[:2] == ("FormatError", "safe format rule G4: unexpected JSON value of type tuple")


def test_a_dict_changed_during_its_own_walk_is_an_error() -> None:
    """A handler reached through a reference may shrink the dict being walked (a trusted
    ``__setstate__`` popping a key); the walk raises as ``dict.items()`` iteration does."""

    decoder = Decoder([], Builder(default_policy(), Limits(), {}), _pools())
    table = dict(decoder._dispatch)
    handler, allowed = table["tuple"]

    def popping_tuple(self: Decoder, v: dict, depth: int) -> Any:
        self.slots[0].pop("z", None)  # slot 0: the dict being walked
        return handler(self, v, depth)

    table["tuple"] = (popping_tuple, allowed)
    decoder._dispatch = table
    decoder._use_walker()
    value = {"$": "dict", "v": {"a": {"$": "tuple", "v": []}, "z": 1}}
    with pytest.raises(RuntimeError, match="changed size during iteration"):
        decoder.dec(value, 0)


def test_released_walker_frees_the_decoder() -> None:
    decoder = Decoder([], Builder(default_policy(), Limits(), {}), _pools())
    assert decoder._walker is not None
    ref = weakref.ref(decoder)
    decoder.release()
    del decoder
    gc.collect()
    assert ref() is None


# ------------------------------------------------------------------------------ obj nodes
# {"$": "obj", "g", "state"} of a class whose BUILD is its __setstate__ takes Decoder's
# _plain_node; everything else the general _node (invoke + _apply_build).

_TRUSTED = [f"tests._plainnode.{name}" for name in ("Plain", "Other", "Redirecting", "Failing")]


def _roundtrip(obj: Any) -> Any:
    from tests import _plainnode  # noqa: F401 - importable for the policy

    trusted = [*_TRUSTED, "tests._plainnode.NoSetstate"]
    return safeload.loads(safeload.dumps(obj, trusted=trusted), trusted=trusted)


def test_plain_setstate_objects_are_built_by_their_setstate():
    from tests._plainnode import NoSetstate, Plain

    out = _roundtrip([Plain(1), Plain([2, 3]), NoSetstate({"a": 4})])
    assert type(out[0]) is Plain and out[0].value == ("set", 1)
    assert out[1].value == ("set", [2, 3])
    assert type(out[2]) is NoSetstate and out[2].value == {"a": 4}
    assert plain_setstate(Plain) and not plain_setstate(NoSetstate)
    assert not plain_setstate(type) and not plain_setstate(np.dtype)


def test_a_new_that_returns_another_type_gets_the_general_build():
    from tests._plainnode import Other, Redirecting

    obj = object.__new__(Redirecting)
    obj.value = 5
    out = _roundtrip([obj])
    assert type(out[0]) is Other and out[0].value == ("set", 5)


def test_a_failing_setstate_is_a_format_error_naming_the_class():
    from tests._plainnode import Failing

    obj = object.__new__(Failing)
    obj.value = 1
    with pytest.raises(
        FormatError,
        match=r"restoring the state of tests\._plainnode\.Failing "
        r"failed: ValueError: no such state",
    ):
        _roundtrip([obj])


# The C walk builds plain obj nodes itself once Decoder._node cached their plan (the second
# node of a class on): the same objects, the same errors as Decoder._plain_node.
_MORE = [*_TRUSTED, "tests._plainnode.Picky", "tests._plainnode.Exploding"]


def _load_both(obj: Any, monkeypatch, prepare=lambda: None) -> list[Any]:
    """``obj`` round-tripped with the C walk and with the reference (``_walk`` unset): the
    results, or the errors as ``(type, message)``; also how often Python's _plain_node ran."""
    data = safeload.dumps(obj, trusted=_MORE)
    out = []
    for walk in (decode._walk, None):
        calls = []
        real = decode.Decoder._plain_node
        with monkeypatch.context() as m:
            m.setattr(decode, "_walk", walk)
            m.setattr(
                decode.Decoder,
                "_plain_node",
                lambda s, *a, calls=calls, real=real: calls.append(1) or real(s, *a),
            )
            prepare()
            try:
                out.append((safeload.loads(data, trusted=_MORE), len(calls)))
            except safeload.SafeloadError as exc:
                out.append(((type(exc), str(exc)), len(calls)))
    return out


def test_repeated_plain_objects_are_built_by_the_walk_as_by_the_reference(monkeypatch):
    from tests._plainnode import Other, Plain, Redirecting

    redirected = [object.__new__(Redirecting) for _ in range(3)]
    for k, r in enumerate(redirected):
        r.value = k
    objs = [Plain(k) for k in range(4)] + [Plain([Plain("in")])] + redirected
    (fast, fast_calls), (ref, ref_calls) = _load_both(objs, monkeypatch)
    assert ref_calls == 9 and fast_calls == 2  # the C walk: after each class's first node
    for out in (fast, ref):
        assert [type(x) for x in out] == [Plain] * 5 + [Other] * 3
        assert [x.value for x in out[:4]] == [("set", k) for k in range(4)]
        inner = out[4].value[1][0]
        assert type(inner) is Plain and inner.value == ("set", "in")
        assert [x.value for x in out[5:]] == [("set", k) for k in range(3)]


def test_shared_and_cyclic_plain_objects_match_the_reference(monkeypatch):
    from tests._plainnode import Plain

    shared = Plain("s")
    loop = Plain(None)
    loop.value = [loop, shared]
    (fast, _), (ref, _) = _load_both([Plain(0), shared, loop, shared], monkeypatch)
    for out in (fast, ref):
        assert out[1] is out[3]
        assert out[2].value[0] == "set" and out[2].value[1][0] is out[2]
        assert out[2].value[1][1] is out[1]


def test_a_later_failing_setstate_is_the_reference_format_error(monkeypatch):
    from tests._plainnode import Picky

    objs = [object.__new__(Picky) for _ in range(3)]
    for obj, value in zip(objs, ["ok", "ok", "bad"], strict=True):
        obj.value = value
    (fast, fast_calls), (ref, _) = _load_both(objs, monkeypatch)
    assert (
        fast
        == ref
        == (
            FormatError,
            "restoring the state of tests._plainnode.Picky failed: ValueError: bad value",
        )
    )
    assert fast_calls == 1


@pytest.mark.parametrize(
    "error, expected",
    [
        (ValueError("no more"), (FormatError, "failed on the file's arguments: ValueError")),
        (MemoryError(), (LimitExceededError, "max_array_bytes")),
    ],
)
def test_a_later_failing_new_is_the_reference_error(monkeypatch, error, expected):
    from tests._plainnode import Exploding

    objs = [object.__new__(Exploding) for _ in range(3)]
    for obj in objs:
        obj.value = 1

    def prepare():
        monkeypatch.setattr(Exploding, "budget", 1)
        monkeypatch.setattr(Exploding, "error", error)

    (fast, _), (ref, _) = _load_both(objs, monkeypatch, prepare)
    assert fast == ref
    assert fast[0] is expected[0] and expected[1] in fast[1]


def test_objects_the_walk_builds_are_still_validated():
    # the second tree takes the C walk's path: builder.finish must queue it for validation
    from sklearn.tree import DecisionTreeClassifier

    X = np.random.default_rng(0).random((40, 3))
    y = (X[:, 0] > 0.5).astype(int)
    trees = [DecisionTreeClassifier(max_depth=2).fit(X, y) for _ in range(2)]
    trees[1].n_features_in_ = 2  # predict would index X[:, 2] past a 2-column input
    with pytest.raises(safeload.ValidationError, match="n_features_in_"):
        safeload.loads(safeload.dumps(trees))
