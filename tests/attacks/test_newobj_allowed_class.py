"""Family *newobj-allowed-class*: ``NEWOBJ``/``NEWOBJ_EX`` on a class whose ``__new__`` does work.

``NEWOBJ`` calls ``cls.__new__(cls, *args)`` and ``NEWOBJ_EX`` also passes keywords; for
``numpy.memmap`` that opens — and with ``mode='w+'`` creates or truncates — the file named by
the first argument (E02/E03).  ``numpy.memmap`` is never trusted (whatever its spelling); with
a policy that does trust a memmap spelling, the ndarray class rule still refuses it.  ``NEWOBJ``
on a trusted *function* is refused, ``NEWOBJ`` on a trusted ndarray class is bounded by the
array limits, sparse classes take no constructor arguments, and ``Tree`` keeps its argument
checks whichever opcode allocates it.

Public sources (CATALOG.md): E02/E03 "NEWOBJ on allowed classes" / "NEWOBJ_EX" (brief);
E08 ``copyreg.__newobj__`` (see test_reconstructor_abuse.py).
"""

from __future__ import annotations

import os

import pytest

import safeload

from ._pickle_builder import G, New, Ops, compress, dumps
from .conftest import Forbidden, Format, Limit, Untrusted, assert_refused

TARGET = "safeload_canary_E02"
MEMMAPS = [
    ("numpy", "memmap"),
    ("numpy._core.memmap", "memmap"),
    ("numpy.core.memmap", "memmap"),
    ("numpy.core", "memmap"),
]


def memmap_new(spelling, protocol: int, ex: bool) -> bytes:
    if ex:
        expr = New(G(*spelling), (TARGET,), {"dtype": "u1", "mode": "w+", "shape": (4,)})
    else:
        expr = New(G(*spelling), (TARGET, "u1", "w+", 0, (4,)))
    return dumps(expr, protocol)


CASES = [
    pytest.param(spelling, protocol, ex, id=f"{spelling[0]}.{spelling[1]}-p{protocol}-{op}")
    for spelling in MEMMAPS
    for protocol in (2, 3, 4, 5)
    for ex, op in ((False, "NEWOBJ"), (True, "NEWOBJ_EX"))
    if not ex or protocol >= 4
]


@pytest.mark.parametrize(("spelling", "protocol", "ex"), CASES)
def test_memmap_newobj_is_refused_by_name(spelling, protocol, ex):
    assert_refused(memmap_new(spelling, protocol, ex), Untrusted(f"{spelling[0]}.{spelling[1]}"))
    assert not os.path.exists(TARGET)


@pytest.mark.parametrize("box", ["zlib", "gzip", "bz2", "xz", "lzma", "lz4"])
def test_memmap_newobj_compressed(box):
    assert_refused(compress(memmap_new(MEMMAPS[0], 4, True), box), Untrusted("numpy.memmap"))


def test_memmap_can_not_be_trusted_explicitly():
    with pytest.raises(safeload.PolicyError):
        safeload.Policy.default().extend(["numpy.memmap"])


NEVER_GAP = pytest.mark.xfail(
    strict=True,
    reason=(
        "policy gap (not a bypass): the never list is keyed by strings, and numpy._core "
        "re-exports the class, so trusted=['numpy._core.memmap'] (or its alias "
        "'numpy.core.memmap') is accepted although it resolves to numpy.memmap; the ndarray "
        "class rule still refuses to allocate it (test_memmap_trusted_through_a_gap)"
    ),
)


@pytest.mark.parametrize(
    "name",
    [
        "numpy.memmap",
        "numpy:memmap",
        "numpy._core.memmap.memmap",
        pytest.param("numpy._core.memmap", marks=NEVER_GAP),
        pytest.param("numpy.core.memmap", marks=NEVER_GAP),
    ],
)
def test_no_spelling_of_memmap_can_be_trusted(name):
    with pytest.raises(safeload.PolicyError):
        safeload.Policy.default().extend([name])


@pytest.mark.parametrize("style", ["NEWOBJ", "NEWOBJ_EX", "REDUCE", "_reconstruct"])
@pytest.mark.parametrize("name", ["numpy._core.memmap", "numpy.core.memmap"])
def test_memmap_trusted_through_a_gap(name, style):
    module, _, qualname = name.rpartition(".")
    cls = G(module, qualname)
    expr = {
        "NEWOBJ": New(cls, (TARGET, "u1", "w+", 0, (4,))),
        "NEWOBJ_EX": New(cls, (TARGET,), {"mode": "w+", "shape": (4,)}),
        "REDUCE": cls(TARGET, "u1", "w+", 0, (4,)),
        "_reconstruct": G("numpy._core.multiarray", "_reconstruct")(cls, (0,), b"b"),
    }[style]
    assert_refused(dumps(expr, 4), Forbidden("untrusted-argument"), trusted=[name])
    assert not os.path.exists(TARGET)


@pytest.mark.parametrize("ex", [False, True], ids=["NEWOBJ", "NEWOBJ_EX"])
def test_memmap_module_that_no_longer_exists(ex):
    """``numpy.core.memmap.memmap`` (an old spelling of ``numpy.memmap``) can not be trusted."""
    with pytest.raises(safeload.PolicyError, match="can never be trusted"):
        safeload.loads(
            memmap_new(("numpy.core.memmap", "memmap"), 4, ex), trusted=["numpy.core.memmap.memmap"]
        )


@pytest.mark.parametrize("ex", [False, True], ids=["NEWOBJ", "NEWOBJ_EX"])
def test_memmap_in_a_hand_made_policy_is_still_refused(ex):
    policy = safeload.Policy({("numpy", "memmap"): "test"})
    assert_refused(memmap_new(MEMMAPS[0], 4, ex), Forbidden("untrusted-argument"), policy=policy)
    assert not os.path.exists(TARGET)


@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize(
    ("cls", "args", "kwargs", "expected"),
    [
        (("numpy", "log1p"), (), None, Forbidden("newobj-on-non-class")),
        (("numpy", "sum"), ([1],), None, Forbidden("newobj-on-non-class")),
        (
            ("sklearn.feature_selection._univariate_selection", "f_classif"),
            (),
            {},
            Forbidden("newobj-on-non-class"),
        ),
        (("copyreg", "_reconstructor"), (), None, Forbidden("bad-arguments")),
        # arrays are never allocated from a shape (uninitialised memory), whatever the size
        (("numpy", "ndarray"), ((2**40,),), None, Forbidden("class-call-with-arguments")),
        (
            ("numpy", "ndarray"),
            ((2**20, 2**20), "f8"),
            None,
            Forbidden("class-call-with-arguments"),
        ),
        (
            ("numpy", "ndarray"),
            ((2**31,),),
            {"dtype": "f8"},
            Forbidden("class-call-with-arguments"),
        ),
        (("numpy", "ndarray"), ((-1,),), None, Forbidden("class-call-with-arguments")),
        (("numpy", "ndarray"), ((2, 3),), None, Forbidden("class-call-with-arguments")),
        (("numpy", "matrix"), ((2**40,),), None, Forbidden("class-call-with-arguments")),
        (("scipy.sparse._csr", "csr_matrix"), ((2**31, 2**31),), None, Forbidden("bad-arguments")),
        (("scipy.sparse._coo", "coo_array"), ((10, 10),), None, Forbidden("bad-arguments")),
        (
            ("scipy.sparse._dok", "dok_matrix"),
            (),
            {"arg1": (2**31, 2**31)},
            Forbidden("bad-arguments"),
        ),
        (("sklearn.tree._tree", "Tree"), (2, "x", 1), None, Forbidden("bad-arguments")),
        (("builtins", "bytes"), (2**36,), None, Limit("max_array_bytes")),
        (("builtins", "set"), (G("builtins", "range")(2**40),), None, Forbidden("lazy-iterable")),
        (("functools", "partial"), (5,), None, Forbidden("bad-arguments")),
    ],
    ids=[
        "ufunc",
        "function",
        "score-func",
        "reconstructor",
        "ndarray-huge",
        "ndarray-2d",
        "ndarray-kw",
        "ndarray-neg",
        "ndarray-small",
        "matrix-huge",
        "csr-shape",
        "coo-shape",
        "dok-kw",
        "tree",
        "bytes-huge",
        "set-range",
        "partial-int",
    ],
)
def test_newobj_on_trusted_names(cls, args, kwargs, expected, protocol):
    if kwargs is not None and protocol < 4:
        protocol = 4
    assert_refused(dumps(New(G(*cls), args, kwargs), protocol), expected)


def test_newobj_on_a_call_result_is_refused():
    """NEWOBJ whose class is the result of a call (not a named global)."""
    o = Ops(4).global_("functools", "partial").global_("numpy", "exp").tuple_(1).reduce()
    data = o.tuple_(0).newobj().done()
    assert_refused(data, Format("NEWOBJ"))
