"""Family *resource-pickle*: memo "billion laughs" that expand at load time.

A memo reference bomb is a few hundred bytes: ``t0 = (0,)``, ``t[i] = (t[i-1],) * fan`` built
with ``BINGET`` of the previous level, so ``levels`` levels reference ``fan ** levels`` leaves.
Any walk that does not remember what it already visited (``repr``, a recursive converter, JSON
conversion) needs exponential time and memory.

Public sources (CATALOG.md): G04 "1 KB file, 10^9 references to a shared leaf" (memo /
billion-laughs, brief); CVE-2018-20406 for the memo machinery; python/cpython#115952 for
allocations sized by the stream.

Only the checks needed to pin down the bypass found while writing this family are here:
``Builder`` expands shared references with ``max_items`` (control test), while the joblib
reader walks and prints the *raw* state of a ``NumpyArrayWrapper`` without a memo (bypass).
"""

from __future__ import annotations

import pytest

import safeload

from ._pickle_builder import Ops
from .conftest import Format, Limit, assert_refused, run_bounded

FAN = 16
LEVELS = 8  # 16 ** 8 = 4.3e9 leaves; depth 8 stays below every nesting limit

#: A policy that trusts one harmless container, so these tests do not depend on the default
#: policy data (the bomb never reaches the audit in the joblib cases).
LIST_ONLY = safeload.Policy({("builtins", "list"): "test"})


def push_bomb(o: Ops, fan: int = FAN, levels: int = LEVELS) -> Ops:
    """Push one memo bomb (a tuple expanding to ``fan ** levels`` leaves) on the stack."""
    o.int_(0).tuple_(1).binput(0).pop()
    for i in range(1, levels + 1):
        o.mark()
        for _ in range(fan):
            o.binget(i - 1)
        o.tuple_marked().binput(i)
        if i < levels:
            o.pop()
    return o


_WRAPPER_FIELDS = {
    "subclass": lambda o: o.global_("numpy", "ndarray"),
    "shape": lambda o: o.int_(0).tuple_(1),
    "order": lambda o: o.unicode("C"),
    "dtype": lambda o: o.global_("numpy", "dtype").unicode("f8").tuple_(1).reduce(),
}


def joblib_wrapper_with_bomb(field: str) -> bytes:
    """A raw joblib stream: one ``NumpyArrayWrapper`` whose state ``field`` is a memo bomb."""
    o = Ops(4)
    o.global_("joblib.numpy_pickle", "NumpyArrayWrapper").tuple_(0).newobj()
    o.empty_dict().mark()
    for name, emit in _WRAPPER_FIELDS.items():
        o.unicode(name)
        if name == field:
            push_bomb(o)
        else:
            emit(o)
    o.setitems().build()
    return o.done()


def test_bomb_in_plain_pickle_is_refused_by_the_builder():
    """Control: the same bomb as the argument of a trusted call stops at ``max_items``."""
    o = Ops(4).global_("builtins", "list")
    push_bomb(o)
    data = o.tuple_(1).reduce().done()
    assert len(data) < 400
    assert_refused(data, Limit("max_items"), policy=LIST_ONLY)


@pytest.mark.parametrize("field", ["subclass", "shape", "order", "dtype"])
def test_joblib_wrapper_state_bomb_is_refused_quickly(field):
    data = joblib_wrapper_with_bomb(field)
    assert len(data) < 600
    out = run_bounded(data, policy=LIST_ONLY, timeout=3.0)
    assert not out.timed_out, "no answer within 3 s"
    assert out.error in ("FormatError", "LimitExceededError"), out.message
    assert not out.memory_error_cause, out.message
    assert out.rss_growth < 256 << 20


def test_joblib_wrapper_bomb_message_is_bounded():
    """Regression: the message used to hold the fully expanded repr of the shared tuple
    (``{value!r:.80}`` renders everything before truncating); it is now bounded."""
    o = Ops(4)
    o.global_("joblib.numpy_pickle", "NumpyArrayWrapper").tuple_(0).newobj()
    o.empty_dict().mark().unicode("subclass")
    push_bomb(o, fan=2, levels=12)
    o.setitems().build()
    exc = assert_refused(
        o.done(), Format("joblib array subclass must be numpy.ndarray"), policy=LIST_ONLY
    )
    assert len(str(exc)) < 200
    assert "((((((((((((" not in str(exc)
