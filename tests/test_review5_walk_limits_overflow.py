"""Review 5: the C walk (``_walk.Walker``) can not hold every limit ``Limits`` accepts.

``Limits`` accepts any non-negative int (``Limits(max_items=2**64)``, ``max_depth=10**30`` as
"no limit").  The pickle path and the Python reference ``Decoder.dec`` (any subclass of
``Decoder``) compare with Python ints and load.  ``Walker.__init__`` parses the limits with
``PyArg_ParseTuple`` formats ``L`` and ``n``, so every safe-format load with such limits
raises a bare ``OverflowError``: not a ``SafeloadError``, not the ``ValueError``/``TypeError``
the README promises for wrong arguments, and not what the reference does (the walk must agree
with it).  Same cause: ``count()`` adds to a ``long long`` without an overflow check (signed
overflow is undefined behaviour) when ``max_items`` is near ``2**63``.

Expected: the C walk behaves as the reference (clamp the limits to what C can count, or fall
back to the Python walk): the file loads.
"""

from __future__ import annotations

import pickle

import pytest

import safeload
from safeload.format import archive
from safeload.format.decode import Decoder


class _Reference(Decoder):
    """The Python reference (the walk is only used for the exact class)."""


@pytest.mark.parametrize("field", ["max_items", "max_depth"])
def test_huge_limits_load_a_safe_file_as_the_reference_does(
    field: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    limits = safeload.Limits(**{field: 2**64})
    value = [1, {"a": (2, 3)}]
    data = safeload.dumps(value)
    assert safeload.loads(pickle.dumps(value), limits=limits) == value  # the pickle path
    with monkeypatch.context() as m:
        m.setattr(archive, "Decoder", _Reference)
        assert safeload.loads(data, limits=limits) == value  # the reference decoder
    assert safeload.loads(data, limits=limits) == value  # the C walk: OverflowError today
