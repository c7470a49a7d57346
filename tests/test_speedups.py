"""The C helper of the build stage agrees with its Python reference (``build._all_atomic_py``).

A C ``atomic`` verdict that is wrong would let the builder skip a container holding an
unbuilt node, so both must agree on every container shape the parser can produce.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safeload import build
from safeload.graph import Call, ParseContext

pytestmark = pytest.mark.skipif(not hasattr(build, "_speedups"), reason="C helper not built")

_NODE = Call(ParseContext().placeholder("m", "f"), (), {})


class _IntSubclass(int):
    pass


atoms = st.one_of(
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=3),
    st.binary(max_size=3),
    st.booleans(),
    st.none(),
    st.complex_numbers(allow_nan=False),
)
items = st.one_of(
    atoms,
    st.just(_NODE),
    st.just(_IntSubclass(3)),
    st.just(np.zeros(2)),
    st.just([1]),
    st.just((1,)),
    st.just({1: 2}),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(items, max_size=8))
def test_sequences_agree(values):
    for container in (values, tuple(values)):
        assert build._all_atomic(container) == build._all_atomic_py(container)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.one_of(atoms, st.just(_NODE)), items), max_size=8))
def test_dicts_agree(pairs):
    d = {}
    for k, v in pairs:
        try:
            d[k] = v
        except TypeError:  # unhashable key
            continue
    assert build._dict_atomic(d) == (build._all_atomic_py(d), build._all_atomic_py(d.values()))


def test_sets_and_frozensets():
    assert build._all_atomic({1, "a"}) is True
    assert build._all_atomic(frozenset({1, _NODE})) is False
    assert build._all_atomic([_IntSubclass(1)]) is False  # exact types only
