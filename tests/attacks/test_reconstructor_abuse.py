"""Family *reconstructor-abuse*: legitimate reconstructors called with dangerous arguments.

Ordinary scikit-learn pickles need a few helpers that call something they are given:
``copyreg._reconstructor(cls, base, state)`` calls ``base.__init__(obj, state)`` (E01: ``base =
Popen``); ``copyreg.__newobj__(cls, *args)`` calls ``cls.__new__`` (E08: ``numpy.memmap``
creates files); numpy's ``__randomstate_ctor(name, ctor)`` / ``__generator_ctor`` call
``ctor(name)`` (E06); ``_reconstruct``/``_frombuffer``/``_mareconstruct`` allocate the shape they
are given; Cython ``__pyx_unpickle_<Class>``/``newObj`` allocate the class they are given;
``sklearn.tree._tree.Tree(n_features, n_classes, n_outputs)`` copies ``n_outputs`` entries of
``n_classes`` without a bounds check.  Trusting the name is not trusting the call: each rule
must refuse a foreign class/callable (``ForbiddenOperationError``) or an absurd size
(``LimitExceededError``) *before* the call, and a trusted ``Tree`` whose nodes point out of
bounds is refused after its state is set (``ValidationError``).

``copyreg.__newobj__``/``__newobj_ex__`` are never trusted by the default policy (refused by
name); their rules are exercised with a small explicit policy that trusts them.

Public sources (CATALOG.md): E01 ``copyreg._reconstructor`` semantics (brief); E06
numpy/random/_pickle.py semantics; E08 ``copyreg.__newobj__`` (brief); G02 numpy reconstruct
with absurd shape; scikit-learn PR #34558 (tree node indices).
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import safeload

from ._pickle_builder import G, containers, dumps
from .conftest import Forbidden, Format, Invalid, Limit, Untrusted, assert_refused

CMD = 'touch "$SAFELOAD_CANARY_DIR/recon"'
PROTOCOLS = (0, 1, 2, 4, 5)
LOGREG = G("sklearn.linear_model._logistic", "LogisticRegression")
RECON = G("copyreg", "_reconstructor")
NDARRAY = G("numpy", "ndarray")


def ints(*values: int, dtype: str = "<i8"):
    """A numpy int array as a pickle expression (``_frombuffer``, as protocol 5 writes it)."""
    data = np.array(values, dtype=dtype).tobytes()
    return G("numpy._core.numeric", "_frombuffer")(
        data, G("numpy", "dtype")(dtype[1:]), (len(values),), "C"
    )


def floats(*values: float):
    data = np.array(values, dtype="<f8").tobytes()
    return G("numpy._core.numeric", "_frombuffer")(
        data, G("numpy", "dtype")("f8"), (len(values),), "C"
    )


# ------------------------------------------------------------ copyreg._reconstructor
RECONSTRUCTOR_UNTRUSTED = {
    "base=Popen": (
        RECON(LOGREG, G("subprocess", "Popen"), ["sh", "-c", CMD]),
        ["subprocess.Popen"],
    ),
    "base=Thread": (RECON(LOGREG, G("threading", "Thread"), None), ["threading.Thread"]),
    "cls=Popen": (
        RECON(G("subprocess", "Popen"), G("builtins", "object"), None),
        ["subprocess.Popen"],
    ),
    "py2-alias base=Popen": (
        G("copy_reg", "_reconstructor")(LOGREG, G("subprocess", "Popen"), ["sh"]),
        ["subprocess.Popen"],
    ),
}


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("name", list(RECONSTRUCTOR_UNTRUSTED))
def test_reconstructor_with_untrusted_class(name, protocol):
    expr, types = RECONSTRUCTOR_UNTRUSTED[name]
    assert_refused(dumps(expr, protocol), Untrusted(*types))


RECONSTRUCTOR_TRUSTED_BAD = {
    # base must be object or a builtin container, and a base of cls
    "base=ndarray": (RECON(LOGREG, NDARRAY, (0,)), "untrusted-argument"),
    "base=Tree": (RECON(LOGREG, G("sklearn.tree._tree", "Tree"), None), "untrusted-argument"),
    "base=cls": (RECON(LOGREG, LOGREG, {}), "untrusted-argument"),
    "base=partial": (RECON(LOGREG, G("functools", "partial"), None), "untrusted-argument"),
    "base=reconstructor": (RECON(LOGREG, RECON, None), "untrusted-argument"),
    "base=dict-not-a-base": (RECON(LOGREG, G("builtins", "dict"), {}), "bad-arguments"),
    "base=object-with-state": (RECON(LOGREG, G("builtins", "object"), 5), "bad-arguments"),
    "cls=function": (
        RECON(G("numpy", "log1p"), G("builtins", "object"), None),
        "untrusted-argument",
    ),
    "cls=str": (
        RECON("sklearn.base.BaseEstimator", G("builtins", "object"), None),
        "untrusted-argument",
    ),
    "cls=instance": (RECON(LOGREG(), G("builtins", "object"), None), "untrusted-argument"),
    "two-args": (RECON(LOGREG, G("builtins", "object")), "bad-arguments"),
    "four-args": (RECON(LOGREG, G("builtins", "object"), None, None), "bad-arguments"),
}


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("name", list(RECONSTRUCTOR_TRUSTED_BAD))
def test_reconstructor_with_trusted_but_wrong_arguments(name, protocol):
    expr, operation = RECONSTRUCTOR_TRUSTED_BAD[name]
    assert_refused(dumps(expr, protocol), Forbidden(operation))


@pytest.mark.parametrize("protocol", [0, 1])
def test_reconstructor_via_inst(protocol):
    expr = RECON(LOGREG, NDARRAY, (0,))
    assert_refused(dumps(expr, protocol, call_style="INST"), Forbidden("untrusted-argument"))


# ------------------------------------------------------------ copyreg.__newobj__ / __newobj_ex__
NEWOBJ = G("copyreg", "__newobj__")
NEWOBJ_EX = G("copyreg", "__newobj_ex__")


@pytest.mark.parametrize("protocol", [0, 2, 4])
@pytest.mark.parametrize(
    ("expr", "types"),
    [
        (
            NEWOBJ(G("numpy", "memmap"), "safeload_canary_mm", "u1", "w+", 0, (4,)),
            ["copyreg.__newobj__", "numpy.memmap"],
        ),
        (
            G("copy_reg", "__newobj__")(G("numpy", "memmap"), "safeload_canary_mm"),
            ["copy_reg.__newobj__", "numpy.memmap"],
        ),
        (
            NEWOBJ_EX(G("numpy", "memmap"), ("safeload_canary_mm",), {"mode": "w+"}),
            ["copyreg.__newobj_ex__", "numpy.memmap"],
        ),
        (NEWOBJ(LOGREG), ["copyreg.__newobj__"]),
        (NEWOBJ(G("numpy", "log1p")), ["copyreg.__newobj__"]),
    ],
    ids=["memmap", "py2-alias-memmap", "ex-memmap", "trusted-cls", "function"],
)
def test_newobj_helpers_are_never_trusted_by_default(expr, types, protocol):
    assert_refused(dumps(expr, protocol), Untrusted(*types))


def test_newobj_helpers_can_not_be_trusted_explicitly():
    with pytest.raises(safeload.PolicyError):
        safeload.Policy.default().extend(["copyreg.__newobj__"])
    with pytest.raises(safeload.PolicyError):
        safeload.Policy.default().extend(["copyreg.__newobj_ex__"])


#: A hand-made policy that does trust the helpers (a user could build one): the rules must hold.
HELPERS = safeload.Policy(
    {
        pair: "test"
        for pair in [
            ("copyreg", "__newobj__"),
            ("copyreg", "__newobj_ex__"),
            ("numpy", "log1p"),
            ("numpy", "ndarray"),
            ("numpy", "memmap"),
            ("numpy._core.memmap", "memmap"),
            ("numpy.ma", "MaskedArray"),
            ("sklearn.tree._tree", "Tree"),
            ("sklearn.linear_model._logistic", "LogisticRegression"),
            ("scipy.sparse._csr", "csr_matrix"),
            ("numpy._core.numeric", "_frombuffer"),
            ("numpy", "dtype"),
        ]
    }
)
MEMMAP_SPELLINGS = [G("numpy", "memmap"), G("numpy._core.memmap", "memmap")]

HELPER_CASES = {
    "function": (NEWOBJ(G("numpy", "log1p")), Forbidden("untrusted-argument")),
    "string": (NEWOBJ("numpy.memmap"), Forbidden("untrusted-argument")),
    "no-args": (NEWOBJ(), Forbidden("bad-arguments")),
    "ex-function": (NEWOBJ_EX(G("numpy", "log1p"), (), {}), Forbidden("untrusted-argument")),
    "ex-two-args": (NEWOBJ_EX(LOGREG, ()), Forbidden("bad-arguments")),
    **{
        f"memmap-{i}": (
            NEWOBJ(m, "safeload_canary_mm", "u1", "w+", 0, (4,)),
            Forbidden("untrusted-argument"),
        )
        for i, m in enumerate(MEMMAP_SPELLINGS)
    },
    **{
        f"ex-memmap-{i}": (
            NEWOBJ_EX(m, ("safeload_canary_mm",), {"mode": "w+", "shape": (4,)}),
            Forbidden("untrusted-argument"),
        )
        for i, m in enumerate(MEMMAP_SPELLINGS)
    },
    "ndarray-huge": (NEWOBJ(NDARRAY, (2**40,)), Forbidden("class-call-with-arguments")),
    "ndarray-2d-huge": (
        NEWOBJ(NDARRAY, (2**20, 2**20), "f8"),
        Forbidden("class-call-with-arguments"),
    ),
    "maskedarray-huge": (
        NEWOBJ(G("numpy.ma", "MaskedArray"), (2**40,)),
        Forbidden("class-call-with-arguments"),
    ),
    "tree-bad-n_classes": (
        NEWOBJ(G("sklearn.tree._tree", "Tree"), 2, ints(2, 3), 1),
        Forbidden("bad-arguments"),
    ),
    "sparse-with-shape": (
        NEWOBJ(G("scipy.sparse._csr", "csr_matrix"), (2**31, 2**31)),
        Forbidden("bad-arguments"),
    ),
}


@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize("name", list(HELPER_CASES))
def test_newobj_helper_rules_with_an_explicit_policy(name, protocol):
    expr, expected = HELPER_CASES[name]
    assert_refused(dumps(expr, protocol), expected, policy=HELPERS)


# ------------------------------------------------------------ numpy random reconstructors
RANDOM_CTORS = [
    ("numpy.random._pickle", "__randomstate_ctor"),
    ("numpy.random._pickle", "__generator_ctor"),
    ("numpy.random", "__RandomState_ctor"),
]
FOREIGN_CTORS = {
    "ufunc": (G("numpy", "log1p"), Forbidden("untrusted-argument")),
    "trusted-class": (LOGREG, Forbidden("untrusted-argument")),
    "reconstructor": (RECON, Forbidden("untrusted-argument")),
    "partial": (G("functools", "partial"), Forbidden("untrusted-argument")),
    "string": ("os.system", Forbidden("untrusted-argument")),
    "bitgen-class": (G("numpy.random._mt19937", "MT19937"), Forbidden("untrusted-argument")),
    "os.system": (G("os", "system"), Untrusted("os.system")),
    "eval": (G("builtins", "eval"), Untrusted("builtins.eval")),
}


@pytest.mark.parametrize("protocol", [0, 2, 4])
@pytest.mark.parametrize("ctor", list(FOREIGN_CTORS))
@pytest.mark.parametrize("func", RANDOM_CTORS, ids=[n for _, n in RANDOM_CTORS])
def test_random_ctor_with_a_foreign_constructor(func, ctor, protocol):
    """E06: ``__randomstate_ctor(name, ctor)`` calls ``ctor(name)``."""
    value, expected = FOREIGN_CTORS[ctor]
    arg = CMD if ctor in ("os.system", "eval") else "MT19937"
    assert_refused(dumps(G(*func)(arg, value), protocol), expected)


@pytest.mark.parametrize(
    "name",
    ["Nope", "os.system", "", "MT19937 ", 5, None, b"MT19937"],
    ids=["unknown", "dotted", "empty", "space", "int", "none", "bytes"],
)
@pytest.mark.parametrize("func", RANDOM_CTORS + [("numpy.random._pickle", "__bit_generator_ctor")])
def test_random_ctor_with_a_bad_bit_generator_name(func, name):
    assert_refused(dumps(G(*func)(name), 2), Forbidden("untrusted-argument"))


@pytest.mark.parametrize("func", RANDOM_CTORS)
def test_random_ctor_with_too_many_arguments(func):
    ctor = G("numpy.random._pickle", "__bit_generator_ctor")
    assert_refused(dumps(G(*func)("MT19937", ctor, 1), 2), Forbidden("bad-arguments"))


def test_bit_generator_ctor_with_a_trusted_non_generator_class():
    expr = G("numpy.random._pickle", "__bit_generator_ctor")(LOGREG)
    assert_refused(dumps(expr, 2), Forbidden("untrusted-argument"))


# ------------------------------------------------------------ numpy array reconstructors
RECONSTRUCT = G("numpy._core.multiarray", "_reconstruct")
RECONSTRUCT_OLD = G("numpy.core.multiarray", "_reconstruct")
ARRAY_CASES = {
    "shape-2**40": (RECONSTRUCT(NDARRAY, (2**40,), b"b"), Limit("max_array_bytes")),
    "old-module-2**40": (RECONSTRUCT_OLD(NDARRAY, (2**40,), b"b"), Limit("max_array_bytes")),
    "2d-huge": (RECONSTRUCT(NDARRAY, (2**20, 2**20), b"b"), Limit("max_array_bytes")),
    "int-shape": (RECONSTRUCT(NDARRAY, 2**40, b"b"), Limit("max_array_bytes")),
    "2**64": (RECONSTRUCT(NDARRAY, (2**64,), b"b"), Limit("max_array_bytes")),
    "negative": (RECONSTRUCT(NDARRAY, (-1,), b"b"), Forbidden("bad-arguments")),
    "70-dims": (RECONSTRUCT(NDARRAY, (1,) * 70, b"b"), Forbidden("bad-arguments")),
    "float-shape": (RECONSTRUCT(NDARRAY, (1.5,), b"b"), Forbidden("bad-arguments")),
    "bool-shape": (RECONSTRUCT(NDARRAY, (True,), b"b"), Forbidden("bad-arguments")),
    "huge-itemsize": (
        RECONSTRUCT(NDARRAY, (1024,), G("numpy", "dtype")("V2147483647")),
        Limit("max_array_bytes"),
    ),
    "subtype=trusted-class": (RECONSTRUCT(LOGREG, (0,), b"b"), Forbidden("untrusted-argument")),
    "subtype=function": (
        RECONSTRUCT(G("numpy", "log1p"), (0,), b"b"),
        Forbidden("untrusted-argument"),
    ),
    "subtype=memmap": (RECONSTRUCT(G("numpy", "memmap"), (0,), b"b"), Untrusted("numpy.memmap")),
    "subtype=core-memmap": (
        RECONSTRUCT(G("numpy._core.memmap", "memmap"), (0,), b"b"),
        Untrusted("numpy._core.memmap.memmap"),
    ),
    "wrong-arity": (RECONSTRUCT(NDARRAY, (0,)), Forbidden("bad-arguments")),
    "frombuffer-huge": (
        G("numpy._core.numeric", "_frombuffer")(
            b"\0" * 8, G("numpy", "dtype")("f8"), (2**40,), "C"
        ),
        Limit("max_array_bytes"),
    ),
    "frombuffer-str": (
        G("numpy._core.numeric", "_frombuffer")("x", G("numpy", "dtype")("f8"), (1,), "C"),
        Forbidden("bad-arguments"),
    ),
    "frombuffer-order": (
        G("numpy._core.numeric", "_frombuffer")(b"\0" * 8, G("numpy", "dtype")("f8"), (1,), "Z"),
        Forbidden("bad-arguments"),
    ),
    "mareconstruct-huge": (
        G("numpy.ma.core", "_mareconstruct")(G("numpy.ma", "MaskedArray"), NDARRAY, (2**40,), b"b"),
        Limit("max_array_bytes"),
    ),
    "mareconstruct-memmap": (
        G("numpy.ma.core", "_mareconstruct")(
            G("numpy.ma", "MaskedArray"), G("numpy", "memmap"), (0,), b"b"
        ),
        Untrusted("numpy.memmap"),
    ),
    "scalar-str-dtype": (
        G("numpy._core.multiarray", "scalar")("f8", b"\0" * 8),
        Forbidden("bad-arguments"),
    ),
    "ndarray-call-huge": (NDARRAY((2**40,)), Forbidden("class-call-with-arguments")),
    "dtype-of-function": (
        G("numpy", "dtype")(G("numpy", "log1p")),
        Forbidden("untrusted-argument"),
    ),
    "dtype-of-int": (G("numpy", "dtype")(5), Forbidden("untrusted-argument")),
}


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
@pytest.mark.parametrize("name", list(ARRAY_CASES))
def test_numpy_reconstructor_arguments(name, protocol):
    expr, expected = ARRAY_CASES[name]
    assert_refused(dumps(expr, protocol), expected)


@pytest.mark.parametrize("box", ["zlib", "gzip", "bz2", "xz", "lzma", "lz4"])
def test_numpy_reconstructor_compressed(box):
    data = dumps(RECONSTRUCT(NDARRAY, (2**40,), b"b"), 4)
    assert_refused(containers(data)[box], Limit("max_array_bytes"))


def test_limit_is_the_callers():
    """A 1 MiB array is fine by default and refused under a 1 KiB limit."""
    data = dumps(RECONSTRUCT(NDARRAY, (2**20,), b"b"), 2)
    safeload.loads(data)
    assert_refused(data, Limit("max_array_bytes"), limits=safeload.Limits(max_array_bytes=1024))


# ------------------------------------------------------------ Cython helpers
PYX = G("sklearn._loss._loss", "__pyx_unpickle_CyHalfMultinomialLoss")
CYTHON_CASES = {
    "pyx-other-class": (
        PYX(G("sklearn._loss._loss", "CyHalfSquaredError"), 0, None),
        "untrusted-argument",
    ),
    "pyx-function": (PYX(G("numpy", "log1p"), 0, None), "untrusted-argument"),
    "pyx-str": (PYX("CyHalfMultinomialLoss", 0, None), "untrusted-argument"),
    "pyx-no-args": (PYX(), "bad-arguments"),
    "newObj-function": (
        G("sklearn.neighbors._kd_tree", "newObj")(G("numpy", "log1p")),
        "untrusted-argument",
    ),
    "newObj-str": (G("sklearn.neighbors._ball_tree", "newObj")("BallTree"), "untrusted-argument"),
    "newObj-two-args": (
        G("sklearn.metrics._dist_metrics", "newObj")(LOGREG, 1),
        "bad-arguments",
    ),
}


@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize("name", list(CYTHON_CASES))
def test_cython_helpers(name, protocol):
    expr, operation = CYTHON_CASES[name]
    assert_refused(dumps(expr, protocol), Forbidden(operation))


def test_newobj_helper_without_state_is_invalid():
    """``newObj(KDTree)`` with no state leaves C buffers unset: the validator refuses it."""
    expr = G("sklearn.neighbors._kd_tree", "newObj")(G("sklearn.neighbors._kd_tree", "KDTree"))
    assert_refused(dumps(expr, 2), Invalid())


# ------------------------------------------------------------ sklearn.tree._tree.Tree
TREE = G("sklearn.tree._tree", "Tree")


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((2, ints(2, 3), 1), Forbidden("bad-arguments")),  # n_classes longer than n_outputs
        ((2, ints(2), 3), Forbidden("bad-arguments")),  # shorter: C code reads past its end
        ((2, ints(2, 2, 2, 2), 2), Forbidden("bad-arguments")),
        ((2, ints(2**40), 1), Forbidden("bad-arguments")),  # huge class count
        ((2, ints(0), 1), Forbidden("bad-arguments")),  # no class
        ((2, ints(-3), 1), Forbidden("bad-arguments")),
        ((2, ints(2**31), 1), Forbidden("bad-arguments")),  # first count past int32
        ((2, ints(3, 0), 2), Forbidden("bad-arguments")),  # a bad count after a good one
        ((2, ints(2, 2**64 - 1, dtype="<u8"), 2), Forbidden("bad-arguments")),
        ((2, floats(2.0), 1), Forbidden("bad-arguments")),
        ((2, ints(2, dtype="<i4"), 3), Forbidden("bad-arguments")),
        ((-1, ints(2), 1), Forbidden("bad-arguments")),
        ((2**40, ints(2), 1), Forbidden("bad-arguments")),
        ((2, ints(2, 2, 2), 2**30), Forbidden("bad-arguments")),
        ((2, ints(2), 0), Forbidden("bad-arguments")),
        ((2, ints(2)), Forbidden("bad-arguments")),  # arity
        ((2, "2", 1), Forbidden("bad-arguments")),
        ((2, [2, 2, 2], 1), Forbidden("bad-arguments")),  # a list, wrong length
        ((2, [2], 1), Format("n_classes")),  # right length, refused by the Cython signature
    ],
    ids=[
        "long",
        "short",
        "long-4",
        "huge-class",
        "zero-class",
        "negative-class",
        "class-2**31",
        "second-zero-class",
        "uint64-huge-class",
        "float",
        "int32-short",
        "neg-features",
        "huge-features",
        "huge-outputs",
        "zero-outputs",
        "arity",
        "str",
        "list-long",
        "list",
    ],
)
def test_tree_constructor_arguments(args, expected, protocol):
    assert_refused(dumps(TREE(*args), protocol), expected)


@pytest.fixture(scope="module")
def fitted_tree():
    from sklearn.tree import DecisionTreeClassifier

    X = np.arange(40.0).reshape(20, 2)
    y = np.arange(20) % 3
    return DecisionTreeClassifier(random_state=0).fit(X, y).tree_


class _Reduce:
    """Pickles as ``(Tree, args, state)``: a real ``Tree`` stream with chosen content."""

    def __init__(self, args, state):
        self.args, self.state = args, state

    def __reduce__(self):
        from sklearn.tree._tree import Tree

        return (Tree, self.args, self.state)


def _tree_stream(tree, protocol, field=None, value=None, **extra):
    state = dict(tree.__getstate__())
    if field is not None:
        nodes = state["nodes"].copy()
        nodes[field][0] = value
        state["nodes"] = nodes
    state.update(extra)
    args = (tree.n_features, np.array(tree.n_classes, dtype=np.intp), tree.n_outputs)
    return pickle.dumps(_Reduce(args, state), protocol)


@pytest.mark.parametrize("protocol", [0, 2, 5])
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("left_child", 10**6),
        ("left_child", -5),
        ("right_child", 2**40),
        ("left_child", 0),  # a cycle back to the root
        ("feature", 99),
        ("feature", -7),
    ],
)
def test_trusted_tree_with_bad_node_indices(fitted_tree, field, value, protocol):
    assert_refused(_tree_stream(fitted_tree, protocol, field, value), Invalid())


def test_trusted_tree_control_loads(fitted_tree):
    tree = safeload.loads(_tree_stream(fitted_tree, 4))
    assert tree.node_count == fitted_tree.node_count
