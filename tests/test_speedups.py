"""The C helper of the build stage agrees with its Python reference (``build._all_atomic_py``).

A C ``atomic`` verdict that is wrong would let the builder skip a container holding an
unbuilt node, so both must agree on every container shape the parser can produce.
"""

from __future__ import annotations

import collections

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


# --------------------------------------------------------------------------- vocabularies

from safeload import _speedups  # noqa: E402
from safeload.errors import ValidationError  # noqa: E402
from safeload.limits import DEFAULT_LIMITS  # noqa: E402
from safeload.validate import feature_extraction as fe  # noqa: E402


def _reference_accepts(vocab) -> bool:
    saved = fe.is_index_permutation
    fe.is_index_permutation = None
    try:
        fe._check_vocab(object(), vocab, DEFAULT_LIMITS)
        return True
    except ValidationError:
        return False
    finally:
        fe.is_index_permutation = saved


vocab_values = st.one_of(
    st.integers(-2, 8),
    st.sampled_from([True, False, 2**63, -(2**63) - 1, 2**64, 1.0, np.int64(1), None, "1"]),
    st.just(_IntSubclass(1)),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(vocab_values, max_size=8), st.booleans())
def test_vocabulary_permutation_agrees(values, permute):
    if permute:  # a real vocabulary: a permutation of range(n), maybe with one value changed
        values = list(range(len(values)))[::-1] + values[:1]
    vocab = {f"t{i}": v for i, v in enumerate(values)}
    fast = _speedups.is_index_permutation(vocab)
    reference = _reference_accepts(vocab)
    if fast:
        assert reference
    if all(type(v) is int for v in values):
        assert fast == reference


def test_vocabulary_permutation_other_containers():
    assert _speedups.is_index_permutation({}) is True
    assert _speedups.is_index_permutation({"a": 0, "b": 1}) is True
    assert _speedups.is_index_permutation({"a": 1, "b": 1}) is False
    assert _speedups.is_index_permutation([0, 1]) is False
    assert _speedups.is_index_permutation(collections.OrderedDict(a=0)) is False  # reference
