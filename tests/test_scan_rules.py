"""The scanner's static mirror of the build stage (``safeload/scanners/callrules.py``).

Two kinds of tests keep ``scan`` and ``load`` from drifting apart:

* structural guards: every rule the build stage registers has a static counterpart, and the
  scanner's knowledge of which trusted names are functions matches the installed objects;
* parity on crafted streams: for each one, ``scan`` reports it unsafe exactly when ``load``
  refuses it — and whenever ``scan`` says unsafe, ``load`` refuses (never the other way round).
"""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

import safeload
from safeload import constraints
from safeload.policy import Policy
from safeload.scanners import callrules

from .attacks._pickle_builder import B, G, New, Ops, dumps

POLICY = Policy.default()


def test_every_registered_build_rule_has_a_static_counterpart():
    missing = [
        pair
        for pair, rule in constraints.REGISTRY.items()
        if pair not in callrules.STATIC_RULES and rule not in callrules._MIRRORED
    ]
    assert missing == []


def test_value_groups_hold_functions_only():
    for pair, reason in POLICY.trusted.items():
        if reason.partition(":")[0] in callrules.VALUE_GROUPS or pair in callrules.VALUE_FUNCTIONS:
            obj = POLICY.resolve(pair)
            assert not isinstance(obj, type), pair
            assert pair not in constraints.REGISTRY, pair


def test_every_trusted_function_is_known_to_the_scanner():
    """A trusted name that is not a class is registered (a reconstructor) or a value."""
    for pair in POLICY.trusted:
        try:
            obj = POLICY.resolve(pair)
        except (ImportError, AttributeError):
            continue
        if isinstance(obj, type):
            continue
        qualname = pair[1].rpartition(".")[2]
        assert (
            pair in constraints.REGISTRY
            or qualname.startswith("__pyx_unpickle_")
            or qualname == "newObj"
            or callrules.is_value_function(POLICY, pair)
        ), pair


RECONSTRUCT = G("numpy._core.multiarray", "_reconstruct")
NDARRAY = G("numpy", "ndarray")
TREE = G("sklearn.tree._tree", "Tree")
LOGREG = G("sklearn.linear_model._logistic", "LogisticRegression")
OBJECT = G("builtins", "object")


def _int_array(values: list[int], protocol: int = 2):
    """An int64 array as numpy pickles it: ``_reconstruct`` + BUILD state."""
    raw = np.asarray(values, dtype="<i8").tobytes()
    dtype = B(G("numpy", "dtype")("i8", False, True), (3, "<", None, None, None, -1, -1, 0))
    return B(RECONSTRUCT(NDARRAY, (0,), b"b"), (1, (len(values),), dtype, False, raw))


# (id, expression, trusted names, refused by both? or "validation": by load's validators only)
CASES = [
    ("reconstruct-ok", RECONSTRUCT(NDARRAY, (3,), b"b"), (), False),
    ("reconstruct-huge", RECONSTRUCT(NDARRAY, (2**40,), b"b"), (), True),
    ("reconstruct-negative", RECONSTRUCT(NDARRAY, (-1,), b"b"), (), True),
    ("reconstruct-65-dims", RECONSTRUCT(NDARRAY, (1,) * 65, b"b"), (), True),
    ("reconstruct-shape-str", RECONSTRUCT(NDARRAY, "x", b"b"), (), True),
    ("reconstruct-subtype-atom", RECONSTRUCT(1, (1,), b"b"), (), True),
    ("reconstruct-two-args", RECONSTRUCT(NDARRAY, (1,)), (), True),
    ("ndarray-with-shape", NDARRAY((2**20,)), (), True),
    ("bytearray-small", G("builtins", "bytearray")(16), ("builtins.bytearray",), False),
    ("bytearray-huge", G("builtins", "bytearray")(2**36), ("builtins.bytearray",), True),
    ("bytes-float", G("builtins", "bytes")(1.5), (), True),
    ("set-of-list", G("builtins", "set")([1, 2]), (), False),
    ("set-of-range", G("builtins", "set")(G("builtins", "range")(10)), (), True),
    ("set-of-int", G("builtins", "set")(5), (), True),
    ("str-of-range", G("builtins", "str")(G("builtins", "range")(3)), (), True),
    ("slice-ok", G("builtins", "slice")(1, 5, None), (), False),
    ("slice-of-list", G("builtins", "slice")([1]), (), True),
    ("encode-latin1", G("_codecs", "encode")("abc", "latin1"), (), False),
    ("encode-rot13", G("_codecs", "encode")("abc", "rot13"), (), True),
    ("encode-bytes", G("_codecs", "encode")(b"abc", "latin1"), (), True),
    ("dtype-ok", G("numpy", "dtype")("f8", False, True), (), False),
    ("dtype-int", G("numpy", "dtype")(5), (), True),
    ("dtype-of-value-function", G("numpy", "dtype")(G("numpy", "log1p")), (), True),
    ("scalar-without-dtype", G("numpy._core.multiarray", "scalar")("f8", b"\0" * 8), (), True),
    ("partial-of-int", G("functools", "partial")(5), (), True),
    ("call-of-value", G("sklearn.metrics._regression", "r2_score")([1], [1]), (), True),
    ("newobj-of-value", New(G("numpy", "log1p")), (), True),
    ("class-called-with-arguments", LOGREG(1.0), (), True),
    ("caller-trusted-class-called", G("datetime", "timedelta")(1), ("datetime.timedelta",), False),
    ("reconstructor-ok", G("copyreg", "_reconstructor")(LOGREG, OBJECT, None), (), False),
    ("reconstructor-bad-base", G("copyreg", "_reconstructor")(LOGREG, G("numpy", "dtype"), None),
     (), True),
    ("reconstructor-object-state", G("copyreg", "_reconstructor")(LOGREG, OBJECT, 5), (), True),
    ("newobj-helper-is-never-trusted", G("copyreg", "__newobj__")(LOGREG), (), True),
    ("reconstructor-cls-atom", G("copyreg", "_reconstructor")("x", OBJECT, None), (), True),
    ("randomstate-ok", G("numpy.random._pickle", "__randomstate_ctor")(
        "MT19937", G("numpy.random._pickle", "__bit_generator_ctor")), (), False),
    ("randomstate-foreign-ctor", G("numpy.random._pickle", "__randomstate_ctor")(
        "MT19937", G("numpy", "dtype")), (), True),
    ("randomstate-unknown-name", G("numpy.random._pickle", "__randomstate_ctor")("Evil"), (),
     True),
    # a Tree built without its state fails content validation, which only load can do
    ("tree-ok", TREE(2, _int_array([3]), 1), (), "validation"),
    ("tree-n_classes-length", TREE(2, _int_array([3, 4]), 1), (), True),
    ("tree-n_classes-zero", TREE(2, _int_array([0]), 1), (), True),
    ("tree-n_classes-str", TREE(2, "x", 1), (), True),
    ("tree-n_outputs-huge", TREE(2, _int_array([3]), 2**30), (), True),
    ("sparse-with-shape", G("scipy.sparse._csr", "csr_matrix")((10, 10)), (), True),
    ("slot-state-class", B(New(LOGREG), ({}, {"__class__": LOGREG})), (), True),
    ("pyx-unpickle-mismatch", G("sklearn.neighbors._kd_tree", "newObj")(5), (), True),
]  # fmt: skip


def _load_refuses(data: bytes, trusted) -> BaseException | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            safeload.loads(data, trusted=list(trusted) or None)
    except safeload.SafeloadError as exc:
        return exc
    return None


@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_scan_and_load_agree(case, protocol):
    _, expr, trusted, refused = case
    data = dumps(expr, protocol)
    report = safeload.scan(data, trusted=list(trusted) or None)
    exc = _load_refuses(data, trusted)
    if refused == "validation":
        assert isinstance(exc, safeload.ValidationError) and report.safe, (exc, report.findings)
        return
    assert not isinstance(exc, safeload.ValidationError), exc
    assert (exc is not None) == refused, exc
    assert report.safe == (not refused), report.findings
    if not report.safe:
        assert exc is not None  # soundness: scan never calls a file unsafe that loads


def test_graph_limits_mirror_the_builder():
    deep = Ops(2).raw(b"]" * 300 + b"a" * 299).stop().value()
    for limits in (safeload.Limits(max_depth=50), safeload.Limits()):
        report = safeload.scan(deep, limits=limits)
        exc = _load_refuses_with(deep, limits)
        assert report.safe == (exc is None)
    ok = Ops(2).raw(b"]" * 150 + b"a" * 149).stop().value()
    assert safeload.scan(ok).safe and _load_refuses_with(ok, safeload.Limits()) is None
    shared = dumps([[1, 2, 3]] * 1, 2)
    assert safeload.scan(shared, limits=safeload.Limits(max_items=3)).safe is False
    assert _load_refuses_with(shared, safeload.Limits(max_items=3)) is not None
    assert safeload.scan(shared, limits=safeload.Limits(max_items=4)).safe
    assert _load_refuses_with(shared, safeload.Limits(max_items=4)) is None


def _load_refuses_with(data: bytes, limits) -> BaseException | None:
    try:
        safeload.loads(data, limits=limits)
    except safeload.SafeloadError as exc:
        return exc
    return None


def test_cycle_through_constructor_arguments():
    """``l = []; l.append(f(l))`` is fine; ``x = f(x)`` is refused by both."""
    o = Ops(2).empty_list().binput(0).global_("builtins", "list")
    o.mark().binget(0).op(pickle.TUPLE).reduce().append().stop()
    data = o.value()
    assert safeload.scan(data).safe == (_load_refuses(data, ()) is None)
