"""Regression tests from the second attack review of deferred payloads (session 3).
Fixed: each tree records the scratch buffers it borrowed (input bytes are copied into scratch too) and checks those, after dropping its own views, for any export left.

The finding as reported:

A tree's lent node array (a view of PayloadSource's reused scratch buffer) can still end up
in the result:

1. ``load(path)``: the escape check ``still_lent((0, 1))`` only looks at the scratch buffers
   *currently* in the slots.  If another Tree is built inside the first tree's state (here in a
   list next to the escaped array), its ``borrow`` finds the first buffer exported and replaces
   the slot with a new buffer; the first tree's check then inspects the second tree's (released)
   buffer and passes.  Without the nested tree the same file is refused with FormatError.
2. ``loads(bytes)``: ``borrow`` views the input bytes and ``still_lent`` never sees anything,
   so the escape is never refused.

Either way the result holds a *read-only* array whose base is the lender's memoryview, where
``pickle.loads`` gives a writable array (BYTEARRAY8), and load(path) and loads(bytes) disagree
with each other on the same bytes.  (Content stays correct: an exported scratch buffer is never
refilled, so this is a broken guarantee / pickle difference, not memory corruption.)"""

import io
import pickle

import numpy as np
import pytest
from sklearn.tree import DecisionTreeRegressor

import safeload
from safeload.errors import FormatError


def _stream(nested_tree: bool) -> bytes:
    rng = np.random.RandomState(0)
    X, y = rng.rand(3000, 4), rng.rand(3000)
    t_a = DecisionTreeRegressor(random_state=0).fit(X, y).tree_
    t_b = DecisionTreeRegressor(random_state=1).fit(X, y + 1).tree_
    nodes_a = t_a.__getstate__()["nodes"]  # ~380 KB: written between frames, deferred
    extra = [nodes_a, t_b] if nested_tree else [nodes_a]

    class P(pickle.Pickler):
        def reducer_override(self, obj):
            if obj is t_a:
                cls, args, state = obj.__reduce__()
                state = dict(state, nodes=nodes_a, extra=extra)
                return (cls, args, state)
            return NotImplemented

    out = io.BytesIO()
    P(out, protocol=5).dump([t_a, extra])
    return out.getvalue()


def test_without_nested_tree_the_escape_is_refused(tmp_path):
    path = tmp_path / "a.pkl"
    path.write_bytes(_stream(False))
    with pytest.raises(FormatError):
        safeload.load(path)


@pytest.mark.parametrize("how", ["load", "loads"])
def test_lent_array_never_escapes(tmp_path, how):
    data = _stream(True)
    ref = pickle.loads(data)
    assert ref[1][0].flags.writeable
    path = tmp_path / "b.pkl"
    path.write_bytes(data)
    try:
        got = safeload.load(path) if how == "load" else safeload.loads(data)
    except FormatError:
        return  # refused, as the design intends for a shared tree array
    # fails: a read-only array on the lent view (PayloadSource scratch / input bytes)
    arr = got[1][0]
    assert arr.flags.writeable == ref[1][0].flags.writeable, "read-only lent view escaped"


def test_same_result_for_load_and_loads(tmp_path):
    data = _stream(False)
    path = tmp_path / "c.pkl"
    path.write_bytes(data)
    outcomes = []
    for fn in (lambda: safeload.load(path), lambda: safeload.loads(data)):
        try:
            fn()
            outcomes.append("ok")
        except FormatError:
            outcomes.append("FormatError")
    assert outcomes[0] == outcomes[1], outcomes  # fails: ['FormatError', 'ok']
