"""Static mirror of :mod:`safeload.constraints`: the build stage's call checks, on inert graphs.

The build stage checks every call just before it performs it, on *built* arguments
(:func:`safeload.constraints.rule_for`).  The scanner never builds, so each rule here decides on
the inert graph alone — atoms, builtin containers, placeholder globals (compared by their
canonical names, never resolved) and nodes (whose result type is unknown) — and reports a call
only when the loader would certainly refuse it.  An argument whose value depends on building
something (a node) is left to the loader, with documented exceptions: a constructed value is
never a class; the result types of a few builtins (``range``, ``int``, ``_codecs.encode`` ...)
are known; small numeric arrays (``_reconstruct`` + state, ``_frombuffer``) are decoded with
``numpy.frombuffer`` to check a tree's ``n_classes``; and ``numpy.dtype`` subgraphs are
evaluated (their states checked first, see :mod:`safeload._dtypestate`).

The rules follow the registry of :mod:`safeload.constraints` (``REGISTRY`` is consulted at run
time, so a newly registered rule without a static counterpart is simply not mirrored, and
``tests/test_scan_rules.py`` fails until one is written).

Each rule takes a :class:`StaticSite` and returns a list of ``(rule, message)`` pairs, where
``rule`` is a finding rule name of :data:`safeload.report.RULES`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.random import _pickle as _np_random_pickle

from .. import constraints
from .._dtypestate import dtype_state_problem
from .._text import describe
from ..graph import ATOMIC_TYPES, OP_BUILD, Call, Global, New
from ..limits import Limits
from ..policy import Policy

__all__ = [
    "StaticSite",
    "STATIC_RULES",
    "NodeChecker",
    "rule_for",
    "VALUE_GROUPS",
    "VALUE_FUNCTIONS",
    "DtypeEvaluator",
    "is_value_function",
    "is_dtype_node",
    "placeholder_pair",
    "result_pair",
]

Pair = tuple[str, str]
Issue = tuple[str, str]

#: Policy groups whose names are functions an estimator stores as values (never called while
#: loading).  ``tests/test_scan_rules.py`` checks that none of them is a class or a registered
#: reconstructor, and that every other trusted function of the default policy is listed in
#: :data:`VALUE_FUNCTIONS` or registered.
VALUE_GROUPS = frozenset({"sklearn-functions", "numpy-functions"})
#: Trusted value-only functions of the default policy outside :data:`VALUE_GROUPS`.
VALUE_FUNCTIONS = frozenset({("scipy._lib.array_api_compat.numpy._aliases", "asarray")})

_UNKNOWN = object()
_NUMPY_MODULES = (
    "numpy",
    "numpy._core",
    "numpy.core",
    "numpy._core.multiarray",
    "numpy.core.multiarray",
    "numpy._core.memmap",
    "numpy.core.memmap",
    "numpy._core.records",
    "numpy.core.records",
    "numpy._core.defchararray",
    "numpy.core.defchararray",
    "numpy.matrixlib.defmatrix",
    "numpy.ma",
    "numpy.ma.core",
    "numpy.rec",
    "numpy.char",
)


def _pairs(*classes: type) -> frozenset[Pair]:
    """Each class under its own module and every numpy module that re-exports it."""
    out = set()
    for c in classes:
        out.add((c.__module__, c.__qualname__))
        out.update((module, c.__qualname__) for module in _NUMPY_MODULES)
    return frozenset(out)


def _atom(value: Any) -> bool:
    """True for values without references to other graph objects (arrays included)."""
    return type(value) in ATOMIC_TYPES or isinstance(value, np.ndarray)


_NDARRAY_CLASSES = _pairs(np.ndarray, np.matrix, np.recarray, np.ma.MaskedArray, np.char.chararray)
_MEMMAP_CLASSES = _pairs(np.memmap)
_SPARSE_CLASSES = frozenset(
    (obj.__module__, obj.__qualname__)
    for obj in vars(sp).values()
    if isinstance(obj, type) and issubclass(obj, (sp.spmatrix, sp.sparray))
)
_TREE = ("sklearn.tree._tree", "Tree")
_BITGEN_NAMES = frozenset(_np_random_pickle.BitGenerators)
_BITGEN_CLASSES = _pairs(*_np_random_pickle.BitGenerators.values())
_BITGEN_CTOR = ("numpy.random._pickle", "__bit_generator_ctor")
_SAFE_BASES = frozenset(
    ("builtins", n)
    for n in ("object", "dict", "list", "set", "frozenset", "tuple", "int", "float", "complex")
    + ("str", "bytes")
)
_CONCRETE_ATOMS = (str, bytes, bytearray)
_CONCRETE_CONTAINERS = (list, tuple, set, frozenset, dict)
#: Callables whose result is a lazy iterable, never a concrete container.
_LAZY_RESULTS = frozenset({("builtins", "range")})
_TEXT_CODECS = ("latin1", "latin-1", "iso-8859-1", "utf-8", "utf8", "ascii")


def placeholder_pair(policy: Policy, value: Any) -> Pair | None:
    """Canonical name of a placeholder global, or None when ``value`` is not one."""
    if isinstance(value, type) and issubclass(value, Global):
        return policy.canonical((value.module, value.qualname))
    return None


def is_dtype_node(policy: Policy, value: Any) -> bool:
    """True for an inert ``numpy.dtype(...)`` call node."""
    return type(value) is Call and result_pair(policy, value) == ("numpy", "dtype")


def result_pair(policy: Policy, value: Any) -> Pair | None:
    """Canonical name of the callable whose result ``value`` (a node) is, or None."""
    if type(value) in (Call, New) and isinstance(value.func, type):
        return policy.canonical((value.func.module, value.func.qualname))
    return None


#: What calling a trusted class or helper returns, for arguments that are nodes.
_RESULT_TYPES: dict[Pair, type] = {
    ("builtins", "range"): range,
    ("builtins", "slice"): slice,
    ("builtins", "object"): object,
    ("builtins", "int"): int,
    ("builtins", "float"): float,
    ("builtins", "complex"): complex,
    ("builtins", "str"): str,
    ("builtins", "bool"): bool,
    ("builtins", "bytes"): bytes,
    ("builtins", "bytearray"): bytearray,
    ("builtins", "list"): list,
    ("builtins", "tuple"): tuple,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "dict"): dict,
    ("_codecs", "encode"): bytes,
    ("codecs", "encode"): bytes,
}
_RECONSTRUCT = frozenset(
    {("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "_reconstruct")}
)
_FROMBUFFER = frozenset(
    {("numpy._core.numeric", "_frombuffer"), ("numpy.core.numeric", "_frombuffer")}
)
#: Largest array the scanner decodes to check a small argument (a tree's n_classes).
MAX_STATIC_ARRAY = 1 << 16


class DtypeEvaluator:
    """Evaluates ``numpy.dtype(...)`` subgraphs (with their ``BUILD`` state), as the joblib
    reader does for array wrappers, and small numeric arrays (``_reconstruct`` with its
    ``BUILD`` state, ``_frombuffer``) by decoding their bytes with ``numpy.frombuffer``;
    anything else in the subgraph makes the result unknown.

    Shared sub-objects are evaluated once (cache by identity) and each evaluation visits at most
    10,000 items.
    """

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._cache: dict[int, tuple[Any, Any]] = {}

    def result_type(self, value: Any) -> type | None:
        """The type ``value`` builds to, when the scanner knows it (None: unknown).

        Placeholders build to classes or functions: ``type`` stands for both.
        """
        if _atom(value) or type(value) in (list, tuple, set, frozenset, dict):
            return type(value)
        if placeholder_pair(self.policy, value) is not None:
            return type
        pair = result_pair(self.policy, value)
        return _RESULT_TYPES.get(pair) if pair is not None else None

    def small_array(self, value: Any) -> np.ndarray | None:
        """The numeric array ``value`` builds to when it is small and decodable, else None."""
        if isinstance(value, np.ndarray):
            return None if type(value) is not np.ndarray else value
        tp = type(value)
        if tp not in (Call, New):
            try:
                return np.asarray(value) if tp in (int, float, str, bool, list, tuple) else None
            except (TypeError, ValueError, OverflowError):
                return None
        pair = result_pair(self.policy, value)
        try:
            if pair in _RECONSTRUCT:
                return self._reconstructed(value)
            if pair in _FROMBUFFER:
                return self._frombuffer(value)
        except (TypeError, ValueError, OverflowError, _Unknown):
            return None
        return None

    def _decode(self, raw: Any, dtype: Any, shape: Any, fortran: bool) -> np.ndarray | None:
        if (
            type(raw) is Call
            and result_pair(self.policy, raw) == ("_codecs", "encode")
            and len(raw.args) == 2
            and type(raw.args[0]) is str
            and raw.args[1] == "latin1"
        ):
            raw = raw.args[0].encode("latin1")
        if not isinstance(raw, (bytes, bytearray)) or len(raw) > MAX_STATIC_ARRAY:
            return None
        if not isinstance(dtype, np.dtype) or dtype.hasobject:
            return None
        if type(shape) is not tuple or not all(type(d) is int and d >= 0 for d in shape):
            return None
        if math.prod(shape) * dtype.itemsize != len(raw):
            return None
        array = np.frombuffer(raw, dtype=dtype)
        return array.reshape(shape, order="F" if fortran else "C")

    def _reconstructed(self, node: Any) -> np.ndarray | None:
        ops = node.ops or []
        if len(node.args) != 3 or len(ops) != 1 or ops[0][0] != OP_BUILD:
            return None
        state = ops[0][1]
        if type(state) is not tuple or len(state) not in (4, 5):
            return None
        shape, dtype, fortran, raw = state[-4:]
        return self._decode(raw, self.evaluate(dtype), shape, bool(fortran))

    def _frombuffer(self, node: Any) -> np.ndarray | None:
        if len(node.args) != 4 or node.ops:
            return None
        buf, dtype, shape, order = node.args
        return self._decode(buf, self.evaluate(dtype), shape, order == "F")

    def itemsize(self, value: Any) -> int | None:
        """``_itemsize`` of :mod:`safeload.constraints` for an inert value (None: unknown).

        Strings are parsed by numpy; a ``numpy.dtype`` node is evaluated; any other node is
        unknown; every other value counts 1 byte, as at build time.
        """
        tp = type(value)
        if tp in (str, bytes):
            try:
                return max(np.dtype(value).itemsize, 1)
            except (TypeError, ValueError):
                return 1
        if tp is Call and result_pair(self.policy, value) == ("numpy", "dtype"):
            dtype = self.evaluate(value)
            return max(dtype.itemsize, 1) if isinstance(dtype, np.dtype) else None
        if tp in (Call, New):
            return None
        return 1

    def evaluate(self, value: Any) -> Any:
        """The dtype a ``numpy.dtype`` call node builds, ``_UNKNOWN``, or ``None`` on error."""
        cached = self._cache.get(id(value))
        if cached is not None:
            return cached[1]
        try:
            result = self._eval(value, 0, [10_000])
        except _Unknown:
            result = _UNKNOWN
        except (TypeError, ValueError, KeyError, IndexError, OverflowError, RecursionError):
            result = None
        self._cache[id(value)] = (value, result)
        return result

    def _eval(self, obj: Any, depth: int, budget: list[int]) -> Any:
        budget[0] -= 1
        if budget[0] < 0 or depth > 32:
            raise _Unknown
        tp = type(obj)
        if tp in ATOMIC_TYPES:
            return obj
        if tp is tuple:
            return tuple(self._eval(x, depth + 1, budget) for x in obj)
        if tp is list:
            return [self._eval(x, depth + 1, budget) for x in obj]
        if tp is dict:
            return {
                self._eval(k, depth + 1, budget): self._eval(v, depth + 1, budget)
                for k, v in obj.items()
            }
        if tp is Call and result_pair(self.policy, obj) == ("numpy", "dtype"):
            args = [self._eval(a, depth + 1, budget) for a in obj.args]
            if obj.kwargs or not args or not isinstance(args[0], (str, bytes)) or len(args) > 3:
                raise _Unknown
            dtype = np.dtype(*args)
            for op in obj.ops or ():
                if op[0] != OP_BUILD:
                    raise _Unknown
                state = self._eval(op[1], depth + 1, budget)
                if dtype_state_problem(state) is not None:
                    raise _Unknown  # numpy's __setstate__ may crash on it: never replay it
                dtype.__setstate__(state)
            return dtype
        raise _Unknown


class _Unknown(Exception):
    """The value depends on something the scanner does not evaluate."""


@dataclass
class StaticSite:
    """One call of the inert graph: what :class:`safeload.constraints.CallSite` is at build time,
    with the arguments not built."""

    pair: Pair
    args: tuple
    kwargs: dict
    kind: str
    limits: Limits
    policy: Policy
    dtypes: DtypeEvaluator

    @property
    def name(self) -> str:
        return f"{self.pair[0]}.{self.pair[1]}"

    def forbid(self, operation: str, why: str) -> list[Issue]:
        return [("forbidden-call", f"{operation}: {self.name}: {why}")]

    def trusted_class(self, value: Any) -> Pair | None:
        """The canonical pair when ``value`` is a trusted placeholder, else None."""
        pair = placeholder_pair(self.policy, value)
        if pair is not None and self.policy.is_trusted(pair):
            return pair
        return None

    def not_a_class(self, value: Any) -> bool:
        """True when ``value`` can not build to a class: an atom, a container, a node, or a
        trusted value-only function.

        A node builds to whatever a trusted callable returns; the reconstructors and classes a
        policy trusts return instances, never classes.
        """
        pair = placeholder_pair(self.policy, value)
        if pair is None:
            return True
        return is_value_function(self.policy, pair)


def is_value_function(policy: Policy, pair: Pair) -> bool:
    """True for a trusted name known to be a function stored as a value (never called)."""
    return pair in VALUE_FUNCTIONS or policy.trusted.get(pair, "").partition(":")[0] in VALUE_GROUPS


STATIC_RULES: dict[Pair, Callable[[StaticSite], list[Issue] | None]] = {}


_register = constraints.registrar(STATIC_RULES)


# --------------------------------------------------------------------------- helpers
def _shape_issues(site: StaticSite, shape: Any, itemsize: int | None) -> list[Issue]:
    """Mirror of ``constraints._check_shape`` for an inert shape (nodes: unknown)."""
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    if type(shape) not in (tuple, list):
        if _atom(shape) or type(shape) in _CONCRETE_CONTAINERS:
            return site.forbid(
                "bad-arguments", f"shape must be a tuple of ints, got {describe(shape)}"
            )
        return []
    if any(type(d) in (Call, New) for d in shape):
        return []
    if not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        return site.forbid("bad-arguments", f"shape must be a tuple of ints, got {describe(shape)}")
    if len(shape) > 64:
        return site.forbid("bad-arguments", f"{len(shape)} dimensions")
    if any(d < 0 for d in shape):
        return site.forbid("bad-arguments", f"negative dimension in {describe(tuple(shape))}")
    count = math.prod(shape)
    if count == 0:
        return []
    allowed = site.limits.max_array_bytes
    if itemsize is None:
        if count <= allowed:
            return []  # depends on a dtype the scanner does not evaluate
        itemsize = 1  # an itemsize is at least 1
    nbytes = count * itemsize
    if nbytes > allowed:
        return [
            (
                "limit-exceeded",
                f"limit max_array_bytes exceeded ({site.name} with shape "
                f"{describe(tuple(shape))}): the file needs {nbytes:,}, the limit is {allowed:,}",
            )
        ]
    return []


def _expect_class(site: StaticSite, value: Any, role: str) -> list[Issue]:
    if site.not_a_class(value):
        return site.forbid(
            "untrusted-argument", f"{role} must be a trusted class, got {describe(value)}"
        )
    return []


def _class_rule_issues(site: StaticSite, cls_pair: Pair, args: tuple, kwargs: dict) -> list[Issue]:
    """Class rules of ``constraints._CLASS_RULES`` applied to allocating ``cls_pair``."""
    sub = StaticSite(cls_pair, args, kwargs, "new", site.limits, site.policy, site.dtypes)
    rule = _class_rule(cls_pair)
    return (rule(sub) or []) if rule is not None else []


def _class_rule(pair: Pair) -> Callable[[StaticSite], list[Issue] | None] | None:
    if pair in _MEMMAP_CLASSES:
        return _memmap_class
    if pair in _NDARRAY_CLASSES:
        return _ndarray_class
    if pair == _TREE:
        return _tree_class
    if pair in _SPARSE_CLASSES:
        return _sparse_class
    return None


# --------------------------------------------------------------------------- classes
def _memmap_class(site: StaticSite) -> list[Issue]:
    return site.forbid("untrusted-argument", "numpy.memmap opens files")


def _ndarray_class(site: StaticSite) -> list[Issue]:
    if site.args or site.kwargs:
        return site.forbid(
            "class-call-with-arguments",
            "arrays are restored from their data, not allocated from a shape (uninitialised "
            "memory of any size)",
        )
    return []


def _tree_class(site: StaticSite) -> list[Issue]:
    if not site.args and not site.kwargs:
        return []
    if len(site.args) != 3 or site.kwargs:
        return site.forbid("bad-arguments", "expects (n_features, n_classes, n_outputs)")
    n_features, n_classes, n_outputs = site.args
    out: list[Issue] = []
    for role, value, low, high in (
        ("n_features", n_features, 0, 2**31),
        ("n_outputs", n_outputs, 1, 2**20),
    ):
        if type(value) in (Call, New):
            continue
        if not isinstance(value, int):
            out += site.forbid("bad-arguments", f"{role} must be an int")
        elif not low <= value < high:
            out += site.forbid("bad-arguments", f"{role}={value}")
    if out or not isinstance(n_outputs, int):
        return out
    arr = site.dtypes.small_array(n_classes)
    if arr is None:
        return out
    if arr.ndim != 1 or arr.shape[0] != n_outputs or arr.dtype.kind not in "iu":
        return site.forbid(
            "bad-arguments",
            f"n_classes must be an int array of length n_outputs={n_outputs}, got shape "
            f"{arr.shape} dtype {arr.dtype}",
        )
    if arr.size and (arr.min() < 1 or arr.max() >= 2**31):
        return site.forbid("bad-arguments", "n_classes entries out of range")
    return out


def _sparse_class(site: StaticSite) -> list[Issue]:
    if site.args or site.kwargs:
        return site.forbid(
            "bad-arguments",
            "sparse matrices are restored from their state, not constructed with arguments "
            "(a shape argument allocates)",
        )
    return []


# --------------------------------------------------------------------------- copyreg
@_register("copyreg:_reconstructor")
def _reconstructor(site: StaticSite) -> list[Issue]:
    if len(site.args) != 3 or site.kwargs:
        return site.forbid("bad-arguments", "expects (cls, base, state)")
    cls, base, state = site.args
    out = _expect_class(site, cls, "cls")
    base_pair = placeholder_pair(site.policy, base)
    if base_pair not in _SAFE_BASES:  # a constructed value is never a class
        out += site.forbid(
            "untrusted-argument",
            f"base must be object or a builtin container type, got {describe(base)} "
            "(base.__init__ is called with the state)",
        )
    if base_pair == ("builtins", "object") and state is not None and type(state) not in (Call, New):
        out += site.forbid("bad-arguments", "base object takes no state")
    return out


@_register("copyreg:__newobj__")
def _copyreg_newobj(site: StaticSite) -> list[Issue]:
    if not site.args:
        return site.forbid("bad-arguments", "expects (cls, *args)")
    out = _expect_class(site, site.args[0], "cls")
    pair = site.trusted_class(site.args[0])
    if pair is not None:
        out += _class_rule_issues(site, pair, site.args[1:], {})
    return out


@_register("copyreg:__newobj_ex__")
def _copyreg_newobj_ex(site: StaticSite) -> list[Issue]:
    if len(site.args) != 3:
        return site.forbid("bad-arguments", "expects (cls, args, kwargs)")
    out = _expect_class(site, site.args[0], "cls")
    pair = site.trusted_class(site.args[0])
    if pair is not None and type(site.args[1]) in (tuple, list):
        out += _class_rule_issues(site, pair, tuple(site.args[1]), {})
    return out


def _new_obj(site: StaticSite) -> list[Issue]:
    if len(site.args) != 1 or site.kwargs:
        return site.forbid("bad-arguments", "expects (cls,)")
    return _expect_class(site, site.args[0], "cls")


def _pyx_unpickle(site: StaticSite, class_name: str) -> list[Issue]:
    if not site.args or site.kwargs:
        return site.forbid("bad-arguments", "expects (cls, checksum, state)")
    out = _expect_class(site, site.args[0], "cls")
    pair = placeholder_pair(site.policy, site.args[0])
    if pair is not None and pair[1].rpartition(".")[2] != class_name:
        out += site.forbid(
            "untrusted-argument",
            f"reconstructs {class_name} but was given {pair[0]}.{pair[1]}",
        )
    return out


# --------------------------------------------------------------------------- numpy
def _ndarray_subtype(site: StaticSite, value: Any, role: str) -> list[Issue]:
    out = _expect_class(site, value, role)
    pair = placeholder_pair(site.policy, value)
    if pair in _MEMMAP_CLASSES:
        out += site.forbid(
            "untrusted-argument", f"{role} must be an ndarray class (not memmap), got {pair[1]}"
        )
    return out


@_register("numpy._core.multiarray:_reconstruct", "numpy.core.multiarray:_reconstruct")
def _np_reconstruct(site: StaticSite) -> list[Issue]:
    if len(site.args) != 3 or site.kwargs:
        return site.forbid("bad-arguments", "expects (subtype, shape, dtype)")
    subtype, shape, dtype = site.args
    out = _ndarray_subtype(site, subtype, "subtype")
    return out + _shape_issues(site, shape, site.dtypes.itemsize(dtype))


@_register("numpy.ma.core:_mareconstruct")
def _np_mareconstruct(site: StaticSite) -> list[Issue]:
    if len(site.args) != 4 or site.kwargs:
        return site.forbid("bad-arguments", "expects (subtype, baseclass, baseshape, basetype)")
    subtype, baseclass, baseshape, basetype = site.args
    out = _ndarray_subtype(site, subtype, "subtype") + _ndarray_subtype(
        site, baseclass, "baseclass"
    )
    return out + _shape_issues(site, baseshape, site.dtypes.itemsize(basetype))


def _is_dtype_value(site: StaticSite, value: Any) -> bool | None:
    """True for a ``numpy.dtype(...)`` node, False for what can not be a dtype, None unknown."""
    if type(value) is Call and result_pair(site.policy, value) == ("numpy", "dtype"):
        return True
    if type(value) in (Call, New):
        return None
    return False


@_register("numpy._core.multiarray:scalar", "numpy.core.multiarray:scalar")
def _np_scalar(site: StaticSite) -> list[Issue]:
    if not 1 <= len(site.args) <= 2 or site.kwargs:
        return site.forbid("bad-arguments", "expects (dtype, obj)")
    if _is_dtype_value(site, site.args[0]) is False:
        return site.forbid(
            "bad-arguments", f"dtype must be a numpy.dtype, got {describe(site.args[0])}"
        )
    return []


@_register("numpy._core.numeric:_frombuffer", "numpy.core.numeric:_frombuffer")
def _np_frombuffer(site: StaticSite) -> list[Issue]:
    if not 4 <= len(site.args) <= 5 or site.kwargs:
        return site.forbid("bad-arguments", "expects (buffer, dtype, shape, order[, axis_order])")
    buf, dtype, shape, order = site.args[:4]
    out: list[Issue] = []
    if type(buf) not in (Call, New) and not isinstance(buf, (bytes, bytearray)):
        out += site.forbid("bad-arguments", f"buffer must be bytes, got {describe(buf)}")
    is_dtype = _is_dtype_value(site, dtype)
    if is_dtype is False:
        return out + site.forbid("bad-arguments", "dtype must be a numpy.dtype")
    itemsize = site.dtypes.itemsize(dtype) if is_dtype else None
    out += _shape_issues(site, shape, itemsize)
    if type(order) not in (Call, New) and order not in ("C", "F", "A", "K"):
        out += site.forbid("bad-arguments", f"order {describe(order)}")
    if len(site.args) == 5:
        axis_order = site.args[4]
        if (
            axis_order is not None
            and type(axis_order) not in (Call, New)
            and type(shape) in (tuple, list)
            and (
                type(axis_order) not in (tuple, list)
                or sorted(a for a in axis_order if isinstance(a, int) and not isinstance(a, bool))
                != list(range(len(shape)))
            )
        ):
            out += site.forbid(
                "bad-arguments", f"axis_order must permute the axes, got {describe(axis_order)}"
            )
    return out


@_register("numpy:dtype")
def _np_dtype(site: StaticSite) -> list[Issue]:
    if not site.args:
        return site.forbid("bad-arguments", "expects a type code")
    spec = site.args[0]
    if type(spec) in (Call, New):
        return []
    if isinstance(spec, (str, bytes, list, tuple, dict)):
        return []
    pair = placeholder_pair(site.policy, spec)
    if pair is not None and not is_value_function(site.policy, pair):
        return []  # a trusted class (an untrusted one is reported by the audit)
    return site.forbid("untrusted-argument", f"dtype spec {describe(spec)}")


def _random_name(site: StaticSite, name: Any) -> list[Issue]:
    if isinstance(name, str):
        if name not in _BITGEN_NAMES:
            return site.forbid("untrusted-argument", f"unknown bit generator {describe(name)}")
        return []
    pair = placeholder_pair(site.policy, name)
    if pair is not None:
        if pair not in _BITGEN_CLASSES:
            return site.forbid("untrusted-argument", f"bit generator {pair[0]}.{pair[1]}")
        return []
    if type(name) in (Call, New):
        return []  # may build to a BitGenerator instance
    return site.forbid("untrusted-argument", f"bit generator name {describe(name)}")


@_register(
    "numpy.random._pickle:__randomstate_ctor",
    "numpy.random._pickle:__generator_ctor",
    "numpy.random:__RandomState_ctor",
)
def _np_random_ctor(site: StaticSite) -> list[Issue]:
    args = list(site.args)
    name = args[0] if args else site.kwargs.get("bit_generator_name", "MT19937")
    ctor = args[1] if len(args) > 1 else site.kwargs.get("bit_generator_ctor")
    if len(args) > 2 or set(site.kwargs) - {"bit_generator_name", "bit_generator_ctor"}:
        return site.forbid("bad-arguments", "expects (bit_generator_name, bit_generator_ctor)")
    if ctor is not None and placeholder_pair(site.policy, ctor) != _BITGEN_CTOR:
        return site.forbid(
            "untrusted-argument",
            "bit_generator_ctor must be numpy.random._pickle.__bit_generator_ctor, got "
            f"{describe(ctor)} (the constructor is called with the name)",
        )
    return _random_name(site, name)


@_register("numpy.random._pickle:__bit_generator_ctor")
def _np_bitgen_ctor(site: StaticSite) -> list[Issue]:
    if len(site.args) > 1 or site.kwargs:
        return site.forbid("bad-arguments", "expects (bit_generator_name,)")
    return _random_name(site, site.args[0] if site.args else "MT19937")


@_register(
    "numpy._core._ufunc_config:_ufunc_reconstruct",
    "numpy.core:_ufunc_reconstruct",
    "numpy._core:_ufunc_reconstruct",
)
def _np_ufunc_reconstruct(site: StaticSite) -> list[Issue]:
    return site.forbid("import-by-name", "_ufunc_reconstruct imports any module by name")


# --------------------------------------------------------------------------- builtins
def _not_concrete(site: StaticSite, value: Any) -> bool:
    """True when ``value`` certainly does not build to a concrete container, str or bytes."""
    tp = type(value)
    if tp in (Call, New):
        built = site.dtypes.result_type(value)
        return built is not None and not issubclass(built, _CONCRETE_ATOMS + _CONCRETE_CONTAINERS)
    # other atoms, placeholders (classes) and ndarrays are not concrete containers
    return not (isinstance(value, _CONCRETE_ATOMS) or tp in _CONCRETE_CONTAINERS)


@_register(
    "builtins:set",
    "builtins:frozenset",
    "builtins:list",
    "builtins:tuple",
    "builtins:dict",
    "collections:OrderedDict",
    "collections:deque",
)
def _builtin_container(site: StaticSite) -> list[Issue]:
    for value in (*site.args, *site.kwargs.values()):
        if _not_concrete(site, value):
            return site.forbid(
                "lazy-iterable",
                f"argument must be a concrete container, got {describe(value)} (a range or "
                "iterator could expand without bound)",
            )
    return []


@_register("builtins:bytearray", "builtins:bytes")
def _builtin_bytes(site: StaticSite) -> list[Issue]:
    if not site.args:
        return []
    first = site.args[0]
    if isinstance(first, int) and not isinstance(first, bool):
        if first > 1 << 20:
            return [
                (
                    "limit-exceeded",
                    f"limit max_array_bytes exceeded ({site.name}(int) allocates zeroed "
                    f"memory): the file needs {first:,}, the limit is {1 << 20:,}",
                )
            ]
        return []
    if isinstance(first, bool):
        return []
    if _not_concrete(site, first):
        return site.forbid("lazy-iterable", f"argument {describe(first)}")
    return []


@_register("collections:defaultdict")
def _defaultdict(site: StaticSite) -> list[Issue]:
    factory = site.args[0] if site.args else None
    if factory is not None and site.not_a_class(factory):
        return site.forbid(
            "untrusted-argument",
            f"default_factory must be None or a trusted class, got {describe(factory)}",
        )
    for value in site.args[1:]:
        if _not_concrete(site, value):
            return site.forbid("lazy-iterable", f"argument {describe(value)}")
    return []


@_register("_codecs:encode", "codecs:encode")
def _codecs_encode(site: StaticSite) -> list[Issue]:
    if not site.args or site.kwargs:
        return site.forbid("bad-arguments", "expects (str, encoding)")
    built = site.dtypes.result_type(site.args[0])
    if built is not None and not issubclass(built, str):
        return site.forbid("bad-arguments", "expects (str, encoding)")
    encoding = site.args[1] if len(site.args) > 1 else "utf-8"
    if type(encoding) not in (Call, New) and encoding not in _TEXT_CODECS:
        return site.forbid(
            "untrusted-argument",
            f"codec {describe(encoding)} (only text encodings are allowed; rot13 etc. compute "
            "names at load time)",
        )
    if len(site.args) > 3:
        return site.forbid("bad-arguments", "too many arguments")
    return []


@_register("functools:partial")
def _partial(site: StaticSite) -> list[Issue]:
    if not site.args:
        return site.forbid("bad-arguments", "partial needs a callable")
    first = site.args[0]
    if _atom(first) or type(first) in _CONCRETE_CONTAINERS:
        return site.forbid("bad-arguments", "partial needs a callable")
    return []


_HARMLESS_ARGS = (int, float, complex, str, bytes, type(None))


def _names_checked_by(rule) -> list[str]:
    """The ``module:qualname`` names the loader registered ``rule`` for (one list, not two)."""
    return sorted(f"{m}:{q}" for (m, q), fn in constraints.REGISTRY.items() if fn is rule)


@_register(*_names_checked_by(constraints._harmless_builtin))
def _harmless_builtin(site: StaticSite) -> list[Issue]:
    for value in (*site.args, *site.kwargs.values()):
        built = site.dtypes.result_type(value)
        if built is None:
            continue  # a node whose result the scanner does not know
        if not issubclass(built, _HARMLESS_ARGS) or issubclass(built, np.ndarray):
            return site.forbid("bad-arguments", f"argument {describe(value)}")
    return []


def _numbers_only(site: StaticSite) -> list[Issue]:
    """Mirror of ``constraints._numbers_only`` (Cython loss classes called with floats)."""
    for value in (*site.args, *site.kwargs.values()):
        built = site.dtypes.result_type(value)
        if built is None:
            continue  # a numpy scalar node may build to a number
        if not issubclass(built, (int, float)) or issubclass(built, bool):
            return site.forbid("bad-arguments", f"expects numbers, got {describe(value)}")
    return []


def _class_call(site: StaticSite) -> list[Issue]:
    """An unregistered trusted name called with arguments: refused whether it is a class
    (``class-call-with-arguments``) or a function (``call-of-value``)."""
    if site.kind == "call" and (site.args or site.kwargs):
        return site.forbid(
            "class-call-with-arguments",
            "real pickles never call this class with arguments (objects are restored from "
            "their state); calling it would run its constructor on file-chosen values",
        )
    return []


#: Rules of :mod:`safeload.constraints` mirrored by identity when they are registered there
#: for names this module does not list (loss classes registered from scikit-learn at import).
_MIRRORED = (
    {constraints._numbers_only: _numbers_only} if hasattr(constraints, "_numbers_only") else {}
)


# --------------------------------------------------------------------------- dispatch
#: Registered names that are functions (NEWOBJ on them is refused), as opposed to classes.
_FUNCTION_RULES = frozenset(
    pair
    for pair, fn in STATIC_RULES.items()
    if fn
    in (
        _reconstructor,
        _copyreg_newobj,
        _copyreg_newobj_ex,
        _np_reconstruct,
        _np_mareconstruct,
        _np_scalar,
        _np_frombuffer,
        _np_random_ctor,
        _np_bitgen_ctor,
        _np_ufunc_reconstruct,
        _codecs_encode,
    )
)


def rule_for(pair: Pair, kind: str, policy: Policy) -> Callable[[StaticSite], list[Issue]] | None:
    """The static rule for calling the trusted canonical ``pair`` (``kind`` "call" or "new"),
    or None when the build stage performs such a call unchecked (a trusted class)."""
    if not policy.is_trusted(pair):
        return None  # the audit reports it
    registered = constraints.REGISTRY.get(pair)
    if registered is not None and pair not in STATIC_RULES:
        return _MIRRORED.get(registered)
    rule = STATIC_RULES.get(pair)
    if rule is not None:
        if kind == "new" and pair in _FUNCTION_RULES:
            return lambda site: (rule(site) or []) + _not_a_class(site)
        return rule
    class_rule = _class_rule(pair)
    if class_rule is not None:
        return class_rule
    qualname = pair[1].rpartition(".")[2]
    if qualname == "newObj" or qualname.startswith("__pyx_unpickle_"):
        name = qualname[len("__pyx_unpickle_") :]
        base = _new_obj if qualname == "newObj" else (lambda site: _pyx_unpickle(site, name))
        if kind == "new":
            return lambda site: base(site) + _not_a_class(site)
        return base
    if is_value_function(policy, pair):
        return _not_a_class if kind == "new" else _call_of_value
    caller_trusted = getattr(policy, "is_caller_trusted", None)
    if caller_trusted is not None and caller_trusted(pair):
        return None  # trusted explicitly by the caller: its constructor calls are allowed
    return _class_call


def _not_a_class(site: StaticSite) -> list[Issue]:
    return site.forbid("newobj-on-non-class", f"{site.name} is not a class")


def _call_of_value(site: StaticSite) -> list[Issue]:
    return site.forbid(
        "call-of-value",
        "this function is trusted as a value an estimator may store (e.g. a score function), "
        "but a file may not call it while loading",
    )


class NodeChecker:
    """Applies the static rules to nodes, deciding the rule once per global and kind.

    Parameters
    ----------
    policy : Policy
    limits : Limits
    """

    def __init__(self, policy: Policy, limits: Limits) -> None:
        self.policy = policy
        self.limits = limits
        self.dtypes = DtypeEvaluator(policy)
        self._plans: dict[tuple[type, str], tuple[Pair, Any]] = {}

    def check(self, node: Any) -> list[Issue]:
        """The issues the build stage would certainly raise for calling ``node``.

        Parameters
        ----------
        node : Call or New
            A node whose ``func`` is a placeholder (calls of results are reported by the walk).

        Returns
        -------
        list of (str, str)
            ``(finding rule, message)``; empty when the call is fine or can not be decided.
        """
        func = node.func
        kind = "new" if type(node) is New else "call"
        plan = self._plans.get((func, kind))
        if plan is None:
            pair = self.policy.canonical((func.module, func.qualname))
            plan = self._plans[(func, kind)] = (pair, rule_for(pair, kind, self.policy))
        pair, rule = plan
        if rule is None:
            return []
        site = StaticSite(
            pair, node.args, node.kwargs or {}, kind, self.limits, self.policy, self.dtypes
        )
        return rule(site) or []
