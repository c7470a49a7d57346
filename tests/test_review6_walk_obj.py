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


def _run(cls: type, graph: Any, limits: Limits) -> tuple:
    doc = {"globals": [n.rsplit(".", 1) for n in NAMES], "dtypes": [], "arrays": [], "root": graph}
    _ctx, placeholders, resolved = decode_globals(doc, _POLICY)
    builder = _Recording(_POLICY, limits, resolved)
    builder.finished = []
    decoder = cls(placeholders, builder, [])
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
    for limits in (Limits(), Limits(max_depth=max_depth, max_items=max_items)):
        fast = _run(Decoder, graph, limits)
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
