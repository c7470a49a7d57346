"""Family *dotted-method*: an unbound method of an allowed class through a dotted name.

``STACK_GLOBAL("numpy", "ndarray.tofile")`` is ``numpy.ndarray.tofile``; called with an array
built from trusted names and a path it writes a file (E05).  Allowlists that check only
``name.split('.')[0]`` (``ndarray`` is trusted) let it through.  safeload trusts the exact
qualname, so every method of a trusted class is refused by its full dotted spelling, whether
spelled with ``STACK_GLOBAL`` (protocol 4+) or ``GLOBAL`` (all protocols), called with
``REDUCE``, ``INST`` or ``OBJ``.

Public sources (CATALOG.md): E05 "dotted-name pitfall" (allowlists checking only
``name.split('.')[0]``); https://github.com/trailofbits/fickling/pull/287 for dotted
resolution.
"""

from __future__ import annotations

import pytest

from ._pickle_builder import G, containers, dumps, variants
from .conftest import Untrusted, assert_refused

ARRAY = G("numpy._core.multiarray", "_reconstruct")(G("numpy", "ndarray"), (0,), b"b")

METHODS = {
    "ndarray.tofile": (("numpy", "ndarray.tofile"), (ARRAY, "safeload_canary_E05")),
    "ndarray.dump": (("numpy", "ndarray.dump"), (ARRAY, "safeload_canary_dump")),
    "ndarray.__reduce__": (("numpy", "ndarray.__reduce__"), (ARRAY,)),
    "ndarray.__setstate__": (("numpy", "ndarray.__setstate__"), (ARRAY, (1, (1,), "f8"))),
    "dtype.newbyteorder": (("numpy", "dtype.newbyteorder"), (G("numpy", "dtype")("f8"),)),
    "BaseEstimator.__setstate__": (
        ("sklearn.linear_model._logistic", "LogisticRegression.__setstate__"),
        (None, {}),
    ),
    "LogisticRegression.fit": (
        ("sklearn.linear_model._logistic", "LogisticRegression.fit"),
        (None, [[0.0]], [0]),
    ),
    "Tree.__setstate__": (("sklearn.tree._tree", "Tree.__setstate__"), (None, {})),
    "dict.get": (("builtins", "dict.get"), ({}, "x")),
    "dict.update": (("builtins", "dict.update"), ({}, {})),
    "object.__reduce_ex__": (("builtins", "object.__reduce_ex__"), (None, 2)),
    "object.__subclasses__": (("builtins", "object.__subclasses__"), ()),
    "type.__call__": (("builtins", "type.__call__"), (G("numpy", "ndarray"),)),
    "str.format": (("builtins", "str.format"), ("{0.__globals__}", G("numpy", "log1p"))),
    "partial.__setstate__": (("functools", "partial.__setstate__"), (None, None)),
    "OrderedDict.__init__": (("collections", "OrderedDict.__init__"), ({},)),
    "RandomState.__setstate__": (("numpy.random", "RandomState.__setstate__"), (None, {})),
    "csr_matrix.maximum": (("scipy.sparse._csr", "csr_matrix.maximum"), (None, 0)),
}

CASES = [
    pytest.param(G(*target)(*args), f"{target[0]}.{target[1]}", stream, id=f"{name}-{label}")
    for name, (target, args) in METHODS.items()
    for label, stream in variants(G(*target)(*args), (0, 2, 4, 5)).items()
]


@pytest.mark.parametrize(("expr", "name", "data"), CASES)
def test_method_of_trusted_class_is_refused_by_full_name(expr, name, data):
    assert_refused(data, Untrusted(name))


@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize("name", list(METHODS))
def test_method_stored_as_value_is_refused_too(name, protocol):
    """Not called, only stored in a list: still not a trusted value."""
    target = METHODS[name][0]
    assert_refused(dumps([G(*target)], protocol), Untrusted(f"{target[0]}.{target[1]}"))


@pytest.mark.parametrize("box", ["zlib", "gzip", "bz2", "xz", "lzma", "lz4"])
def test_methods_compressed(box):
    exprs = [G(*target)(*args) for target, args in METHODS.values()]
    names = [f"{m}.{q}" for (m, q), _ in METHODS.values()]
    assert_refused(containers(dumps(exprs, 4))[box], Untrusted(*names))
