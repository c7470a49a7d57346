"""Family *build-setstate*: ``BUILD`` calls ``__setstate__`` of an allowed object.

``functools.partial`` is trusted (scikit-learn stores partials), and ``partial.__setstate__``
replaces the wrapped function, its arguments and keywords: ``partial(print)`` + ``BUILD
(exec, (code,), {}, None)`` turns a harmless value into ``exec`` (E04).  The swapped-in
callable is a global of the stream, so it is audited like any other: an untrusted one is
refused by name, whatever the protocol, however the partial was created (``REDUCE``,
``NEWOBJ``, memo) and however often its state is set.  ``__setstate__`` of other trusted types
(numpy arrays, dtypes, random generators, trees, sparse matrices) with hostile state must fail
cleanly as ``FormatError``/``ValidationError``, never with another exception.

Public sources (CATALOG.md): E04 "BUILD/__setstate__ on allowed callables" (brief); fickling
PR 210 (functools.partial wrapper bypass).
"""

from __future__ import annotations

import contextlib
import functools

import numpy as np
import pytest

import safeload

from ._pickle_builder import B, G, New, Ref, containers, dumps
from .conftest import Forbidden, Format, Invalid, Untrusted, assert_refused

PY = "import os; open(os.path.join(os.environ['SAFELOAD_CANARY_DIR'], 'setstate'), 'w').close()"
PARTIAL = G("functools", "partial")
LOG1P = G("numpy", "log1p")

SWAPS = {
    "exec": ((G("builtins", "exec"), (PY,), {}, None), ["builtins.exec"]),
    "eval": ((G("builtins", "eval"), (f"exec({PY!r})",), {}, {}), ["builtins.eval"]),
    "os.system": ((G("os", "system"), ("true",), {}, None), ["os.system"]),
    "keywords": ((LOG1P, (), {"x": G("os", "system")}, None), ["os.system"]),
    "args": ((LOG1P, (G("subprocess", "Popen"),), None, None), ["subprocess.Popen"]),
    "dict-state": ((LOG1P, (), {}, {"__call__": G("builtins", "exec")}), ["builtins.exec"]),
}
MAKERS = {
    "reduce": lambda: PARTIAL(LOG1P),
    "newobj": lambda: New(PARTIAL, (LOG1P,)),
    "memo": lambda: Ref("p", PARTIAL(LOG1P)),
}


@pytest.mark.parametrize(
    ("maker", "protocol"),
    [(m, p) for m in MAKERS for p in range(6) if m != "newobj" or p >= 2],  # NEWOBJ: proto 2+
)
@pytest.mark.parametrize("swap", list(SWAPS))
def test_partial_swap_to_untrusted_callable(swap, maker, protocol):
    state, types = SWAPS[swap]
    expr = B(MAKERS[maker](), state)
    assert_refused(dumps(expr, protocol), Untrusted(*types))


@pytest.mark.parametrize("protocol", [2, 4])
def test_partial_state_set_twice(protocol):
    """The first BUILD is harmless, the second swaps: both are audited."""
    p = Ref("p", PARTIAL(LOG1P))
    expr = [B(p, (G("numpy", "exp"), (), {}, None)), B(p, SWAPS["exec"][0])]
    assert_refused(dumps(expr, protocol), Untrusted("builtins.exec"))


@pytest.mark.parametrize("box", ["zlib", "gzip", "bz2", "xz", "lzma"])
def test_partial_swap_compressed(box):
    data = dumps(B(PARTIAL(LOG1P), SWAPS["exec"][0]), 4)
    assert_refused(containers(data)[box], Untrusted("builtins.exec"))


@pytest.mark.parametrize(
    "state",
    [5, "x", (LOG1P,), (5, (), {}, None), (LOG1P, 5, {}, None), (LOG1P, (), 5, None)],
    ids=["int", "str", "short", "non-callable", "args-int", "kw-int"],
)
def test_partial_bad_state_is_a_format_error(state):
    assert_refused(dumps(B(PARTIAL(LOG1P), state), 4), Format())


@pytest.mark.parametrize("func", [5, "os.system", b"x", None], ids=["int", "str", "bytes", "none"])
def test_partial_of_a_non_callable(func):
    assert_refused(dumps(PARTIAL(func), 2), Forbidden("bad-arguments"))


def test_partial_swap_to_trusted_function_loads():
    """Control: swapping to another trusted value is a legitimate partial state."""
    p = safeload.loads(dumps(B(PARTIAL(LOG1P), (G("numpy", "exp"), (), {}, None)), 4))
    assert isinstance(p, functools.partial) and p.func is np.exp


# ------------------------------------------------------------ other trusted __setstate__
RECON = G("numpy._core.multiarray", "_reconstruct")
EMPTY = RECON(G("numpy", "ndarray"), (0,), b"b")
F8 = G("numpy", "dtype")("f8", False, True)

BAD_STATES = {
    "ndarray-short-data": (EMPTY, (1, (2**20,), F8, False, b"\0" * 8)),
    "ndarray-huge-shape": (EMPTY, (1, (2**40,), F8, False, b"\0" * 8)),
    "ndarray-negative-shape": (EMPTY, (1, (-1,), F8, False, b"")),
    "ndarray-not-a-tuple": (EMPTY, 5),
    "ndarray-dtype-not-dtype": (EMPTY, (1, (1,), "f8", False, b"\0" * 8)),
    "randomstate-bad": (G("numpy.random._pickle", "__randomstate_ctor")("MT19937"), {"x": 1}),
    "bitgen-bad": (G("numpy.random._pickle", "__bit_generator_ctor")("PCG64"), {"state": 5}),
    "ordereddict-list": (G("collections", "OrderedDict")(), [1, 2]),
}


@pytest.mark.parametrize("name", list(BAD_STATES))
def test_hostile_state_of_trusted_types_fails_cleanly(name):
    obj, state = BAD_STATES[name]
    assert_refused(dumps(B(obj, state), 2), Format())


DTYPE_STATES = {
    "byteorder": (3, ">", None, None, None, -1, -1, 0),
    "itemsize": (3, "<", None, None, None, 4, 4, 0),
    "metadata": (3, "<", None, None, None, -1, -1, 0, {"meta": 1}),
}


@pytest.mark.parametrize("name", list(DTYPE_STATES))
def test_dtype_setstate_never_changes_the_shared_builtin_dtype(name):
    """``numpy.dtype('f8', False, False)`` is numpy's process-wide float64 singleton: BUILD on
    it must not change what every other array of the process sees."""
    before = (np.dtype("f8").str, np.dtype("f8").itemsize, np.dtype("f8").metadata)
    with contextlib.suppress(safeload.SafeloadError):
        safeload.loads(dumps(B(G("numpy", "dtype")("f8", False, False), DTYPE_STATES[name]), 2))
    after = (np.dtype("f8").str, np.dtype("f8").itemsize, np.dtype("f8").metadata)
    assert before == after
    assert np.array([1.0]).tobytes() == b"\0\0\0\0\0\0\xf0?"


def test_dtype_state_inconsistent_with_its_type_is_invalid():
    """A float64 dtype given a 1 MiB sub-array state: caught by the dtype validator."""
    sub = (G("numpy", "dtype")("i1", False, True), (2**20,))
    state = (3, "<", sub, None, None, -1, -1, 0)
    assert_refused(dumps(B(F8, state), 2), Invalid())
