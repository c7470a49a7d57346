"""Argument checks for the trusted callables a file may *call* while it loads.

Trusting a name is not trusting every call of it.  Reconstructors such as
``copyreg._reconstructor`` or numpy's ``__randomstate_ctor`` are needed by ordinary scikit-learn
pickles, yet with attacker-chosen arguments they call ``Popen.__init__`` or any constructor
(catalogue families *reconstructor-abuse* and *newobj-allowed-class*), and allocation helpers
turn a 70-byte file into a 1 TiB allocation (*resource-pickle*).

Rules, applied by :mod:`safeload.build` just before it performs a call:

* A **trusted class** may be called (``REDUCE``) or allocated (``NEWOBJ``); classes registered
  here get their arguments checked first.
* A **trusted function** may be called only if it is registered here (a reconstructor).  Every
  other trusted function (``f_classif``, ``numpy.log1p`` ...) is a *value* an estimator stores;
  calling it at load time is refused.
* Cython pickling helpers (``__pyx_unpickle_<Class>``, ``newObj``) are accepted by their exact
  qualname shape, and only with a trusted class of the matching name as the first argument.

Each rule is a small function registered for one canonical ``(module, qualname)``; it raises
(:class:`~safeload.errors.ForbiddenOperationError`, :class:`~safeload.errors.LimitExceededError`)
or returns ``None`` to let the call proceed, or a :class:`Replace` to use another value.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._dtypestate import MAX_DTYPE_NESTING, dtype_nesting
from ._text import describe
from .errors import ForbiddenOperationError, LimitExceededError
from .limits import Limits

__all__ = ["CallSite", "Replace", "rule_for", "REGISTRY", "register", "registrar"]

Pair = tuple[str, str]


@dataclass
class CallSite:
    """One call the build stage is about to perform.

    Attributes
    ----------
    pair : (str, str)
        Canonical name of the callable.
    func : object
        The resolved trusted object.
    args : tuple
        Built positional arguments.
    kwargs : dict
        Built keyword arguments (``NEWOBJ_EX`` only).
    kind : {"call", "new"}
        ``func(*args)`` (``REDUCE``/``INST``/``OBJ``) or ``func.__new__(func, *args)``
        (``NEWOBJ``).
    limits : Limits
    is_trusted_type : callable
        ``is_trusted_type(obj) -> bool``: True when ``obj`` is a class the policy trusts.
    """

    pair: Pair
    func: Any
    args: tuple
    kwargs: dict
    kind: str
    limits: Limits
    is_trusted_type: Callable[[Any], bool]

    @property
    def name(self) -> str:
        return f"{self.pair[0]}.{self.pair[1]}"


class Replace:
    """Returned by a rule to use ``value`` instead of performing the call."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


REGISTRY: dict[Pair, Callable[[CallSite], Any]] = {}
_CLASS_RULES: list[tuple[type, Callable[[CallSite], Any]]] = []


def registrar(table: dict[Pair, Callable]) -> Callable[..., Callable]:
    """A ``@register("module:qualname", ...)`` decorator that fills ``table`` (exact names)."""

    def register_in(*pairs: str) -> Callable:
        def deco(fn):
            for text in pairs:
                module, _, qualname = text.partition(":")
                table[(module, qualname)] = fn
            return fn

        return deco

    return register_in


#: Register a rule of the build stage for exact canonical names ``"module:qualname"``.
register = registrar(REGISTRY)


def _forbid(site: CallSite, operation: str, why: str) -> ForbiddenOperationError:
    return ForbiddenOperationError(operation, f"{site.name}: {why}")


# --------------------------------------------------------------------------- dispatch


def rule_for(pair: Pair, func: Any, kind: str) -> Callable[[CallSite], Any] | None:
    """The rule that applies to calling ``func`` (``kind`` "call" or "new"), or None.

    Decided once per global and file by the build stage, so the common case — allocating a
    trusted estimator class, which no rule restricts — costs nothing per object.
    """
    rule = REGISTRY.get(pair)
    if rule is not None:
        return rule
    if isinstance(func, type):
        for base, class_rule in _CLASS_RULES:
            if issubclass(func, base):
                return class_rule
        return _class_call_without_arguments
    qualname = pair[1].rpartition(".")[2]
    if qualname.startswith("__pyx_unpickle_"):
        return lambda site: _pyx_unpickle(site, qualname[len("__pyx_unpickle_") :])
    if qualname == "newObj":
        return _new_obj
    return _call_of_value_or_newobj


def _call_of_value_or_newobj(site: CallSite) -> None:
    if site.kind == "new":
        raise _forbid(site, "newobj-on-non-class", "NEWOBJ needs a class")
    raise _forbid(
        site,
        "call-of-value",
        "this function is trusted as a value an estimator may store (e.g. a score function), "
        "but a file may not call it while loading",
    )


def _expect_trusted_type(site: CallSite, obj: Any, role: str) -> type:
    if not isinstance(obj, type) or not site.is_trusted_type(obj):
        raise _forbid(
            site, "untrusted-argument", f"{role} must be a trusted class, got {_describe(obj)}"
        )
    return obj


def _describe(obj: Any) -> str:
    if isinstance(obj, type):
        return f"class {obj.__module__}.{obj.__qualname__}"
    return f"{type(obj).__module__}.{type(obj).__qualname__} object"


# --------------------------------------------------------------------------- copyreg

#: Bases ``copyreg._reconstructor`` may receive: the builtin types whose ``__new__``/``__init__``
#: only copy their argument (CPython ``Lib/copyreg.py``: ``base.__init__(obj, state)``).
_SAFE_BASES = (object, dict, list, set, frozenset, tuple, int, float, complex, str, bytes)


@register("copyreg:_reconstructor")
def _reconstructor(site: CallSite) -> None:
    if len(site.args) != 3 or site.kwargs:
        raise _forbid(site, "bad-arguments", "expects (cls, base, state)")
    cls, base, state = site.args
    _expect_trusted_type(site, cls, "cls")
    if base not in _SAFE_BASES:
        raise _forbid(
            site,
            "untrusted-argument",
            f"base must be object or a builtin container type, got {_describe(base)} "
            "(base.__init__ is called with the state)",
        )
    if not issubclass(cls, base):
        raise _forbid(site, "bad-arguments", f"{cls.__qualname__} is not a subclass of {base}")
    if base is object and state is not None:
        raise _forbid(site, "bad-arguments", "base object takes no state")
    _check_class_new(site, cls, ())


@register("copyreg:__newobj__")
def _copyreg_newobj(site: CallSite) -> None:
    if not site.args:
        raise _forbid(site, "bad-arguments", "expects (cls, *args)")
    cls = _expect_trusted_type(site, site.args[0], "cls")
    _check_class_new(site, cls, site.args[1:])


@register("copyreg:__newobj_ex__")
def _copyreg_newobj_ex(site: CallSite) -> None:
    if len(site.args) != 3:
        raise _forbid(site, "bad-arguments", "expects (cls, args, kwargs)")
    cls = _expect_trusted_type(site, site.args[0], "cls")
    _check_class_new(site, cls, tuple(site.args[1]))


def _check_class_new(site: CallSite, cls: type, args: tuple) -> None:
    """Apply the rule of ``cls`` itself to ``cls.__new__(cls, *args)`` done by a helper."""
    pair = (cls.__module__, cls.__qualname__)
    sub = CallSite(pair, cls, args, {}, "new", site.limits, site.is_trusted_type)
    rule = rule_for(pair, cls, "new")
    if rule is not None:
        rule(sub)


def _new_obj(site: CallSite) -> None:
    """Cython ``newObj(cls)`` helpers (``sklearn.neighbors._kd_tree.newObj``): ``cls.__new__``."""
    if len(site.args) != 1 or site.kwargs:
        raise _forbid(site, "bad-arguments", "expects (cls,)")
    _expect_trusted_type(site, site.args[0], "cls")


def _pyx_unpickle(site: CallSite, class_name: str) -> None:
    """``__pyx_unpickle_<Class>(cls, checksum, state)``: Cython's generated reconstructor."""
    if not site.args or site.kwargs:
        raise _forbid(site, "bad-arguments", "expects (cls, checksum, state)")
    cls = _expect_trusted_type(site, site.args[0], "cls")
    if cls.__name__ != class_name:
        raise _forbid(
            site, "untrusted-argument", f"reconstructs {class_name} but was given {_describe(cls)}"
        )


# --------------------------------------------------------------------------- numpy


def _itemsize(dtype: Any) -> int:
    if isinstance(dtype, np.dtype):
        return max(dtype.itemsize, 1)
    if isinstance(dtype, (str, bytes)):
        try:
            return max(np.dtype(dtype).itemsize, 1)
        except (TypeError, ValueError):
            return 1
    return 1


def _check_shape(site: CallSite, shape: Any, itemsize: int) -> None:
    if type(shape) is tuple and all(type(d) is int and d >= 0 for d in shape) and len(shape) <= 64:
        nbytes = math.prod(shape) * itemsize  # the common case, without building messages
        if nbytes <= site.limits.max_array_bytes:
            return
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)) or not all(
        isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in shape
    ):
        raise _forbid(
            site, "bad-arguments", f"shape must be a tuple of ints, got {describe(shape)}"
        )
    if len(shape) > 64:
        raise _forbid(site, "bad-arguments", f"{len(shape)} dimensions")
    if any(d < 0 for d in shape):
        raise _forbid(site, "bad-arguments", f"negative dimension in {describe(shape)}")
    nbytes = math.prod(int(d) for d in shape) * itemsize
    site.limits.check("max_array_bytes", nbytes, f"{site.name} with shape {describe(tuple(shape))}")


@register("numpy._core.multiarray:_reconstruct", "numpy.core.multiarray:_reconstruct")
def _np_reconstruct(site: CallSite) -> None:
    if len(site.args) != 3 or site.kwargs:
        raise _forbid(site, "bad-arguments", "expects (subtype, shape, dtype)")
    subtype, shape, dtype = site.args
    _expect_trusted_type(site, subtype, "subtype")
    if not issubclass(subtype, np.ndarray) or issubclass(subtype, np.memmap):
        raise _forbid(
            site,
            "untrusted-argument",
            f"subtype must be an ndarray class (not memmap), got {_describe(subtype)}",
        )
    _check_dtype_nesting(site, dtype)
    _check_shape(site, shape, _itemsize(dtype))


def _ndarray_class(site: CallSite) -> None:
    """ndarray classes come from ``_reconstruct``/``_frombuffer`` + state, never from a shape.

    ``numpy.ndarray(shape)`` hands out uninitialised memory of any size the file names, which a
    trusted consumer (``KDTree(ndarray((2**23, 8)))``) then crunches: arguments are refused.
    """
    if issubclass(site.func, np.memmap):
        raise _forbid(site, "untrusted-argument", "numpy.memmap opens files")
    if site.args or site.kwargs:
        raise _forbid(
            site,
            "class-call-with-arguments",
            "arrays are restored from their data, not allocated from a shape (uninitialised "
            "memory of any size)",
        )


@register("numpy.ma.core:_mareconstruct")
def _np_mareconstruct(site: CallSite) -> None:
    """numpy/ma/core.py: ``_mareconstruct(subtype, baseclass, baseshape, basetype)``."""
    if len(site.args) != 4 or site.kwargs:
        raise _forbid(site, "bad-arguments", "expects (subtype, baseclass, baseshape, basetype)")
    subtype, baseclass, baseshape, basetype = site.args
    for role, cls in (("subtype", subtype), ("baseclass", baseclass)):
        _expect_trusted_type(site, cls, role)
        if not issubclass(cls, np.ndarray) or issubclass(cls, np.memmap):
            raise _forbid(site, "untrusted-argument", f"{role} must be an ndarray class")
    _check_dtype_nesting(site, basetype)
    _check_shape(site, baseshape, _itemsize(basetype))


@register("numpy._core.multiarray:scalar", "numpy.core.multiarray:scalar")
def _np_scalar(site: CallSite) -> None:
    if not 1 <= len(site.args) <= 2 or site.kwargs:
        raise _forbid(site, "bad-arguments", "expects (dtype, obj)")
    if not isinstance(site.args[0], np.dtype):
        raise _forbid(
            site, "bad-arguments", f"dtype must be a numpy.dtype, got {_describe(site.args[0])}"
        )


@register("numpy._core.numeric:_frombuffer", "numpy.core.numeric:_frombuffer")
def _np_frombuffer(site: CallSite) -> None:
    """numpy/_core/numeric.py: ``_frombuffer(buf, dtype, shape, order, axis_order=None)``.

    numpy >= 2.3 adds ``axis_order`` for arrays whose axes are permuted in memory.
    """
    if not 4 <= len(site.args) <= 5 or site.kwargs:
        raise _forbid(site, "bad-arguments", "expects (buffer, dtype, shape, order[, axis_order])")
    buf, dtype, shape, order = site.args[:4]
    # memoryview: a deferred payload lent to a tree's state (safeload.readers.payloads); a
    # stream can not make one (its own out-of-band buffer opcodes are refused)
    if not isinstance(buf, (bytes, bytearray, memoryview)):
        raise _forbid(site, "bad-arguments", f"buffer must be bytes, got {_describe(buf)}")
    if not isinstance(dtype, np.dtype):
        raise _forbid(site, "bad-arguments", "dtype must be a numpy.dtype")
    _check_shape(site, shape, dtype.itemsize or 1)
    if order not in ("C", "F", "A", "K"):
        raise _forbid(site, "bad-arguments", f"order {describe(order)}")
    if len(site.args) == 5 and site.args[4] is not None:
        axis_order = site.args[4]
        if not isinstance(axis_order, (tuple, list)) or sorted(
            a for a in axis_order if isinstance(a, int) and not isinstance(a, bool)
        ) != list(range(len(shape))):
            raise _forbid(
                site,
                "bad-arguments",
                f"axis_order must permute the axes, got {describe(axis_order)}",
            )


def _check_dtype_nesting(site: CallSite, spec: Any) -> None:
    """A dtype (or a description numpy converts into one) nested past ``MAX_DTYPE_NESTING``:
    numpy converts, compares and prints it recursively in C (review 7)."""
    if dtype_nesting(spec) > MAX_DTYPE_NESTING:
        raise _forbid(
            site, "bad-arguments", f"a dtype nested more than {MAX_DTYPE_NESTING} levels deep"
        )


@register("numpy:dtype")
def _np_dtype(site: CallSite) -> None:
    if not site.args:
        raise _forbid(site, "bad-arguments", "expects a type code")
    spec = site.args[0]
    if not isinstance(spec, (str, bytes, list, tuple, dict, np.dtype)) and not (
        isinstance(spec, type) and site.is_trusted_type(spec)
    ):
        raise _forbid(site, "untrusted-argument", f"dtype spec {_describe(spec)}")
    _check_dtype_nesting(site, spec)


def _random_name(site: CallSite, name: Any) -> None:
    from numpy.random import _pickle as nprp

    known = nprp.BitGenerators
    if isinstance(name, str):
        if name not in known:
            raise _forbid(site, "untrusted-argument", f"unknown bit generator {describe(name)}")
    elif isinstance(name, type):
        if name not in known.values():
            raise _forbid(site, "untrusted-argument", f"bit generator {_describe(name)}")
    else:
        raise _forbid(site, "untrusted-argument", f"bit generator name {_describe(name)}")


@register(
    "numpy.random._pickle:__randomstate_ctor",
    "numpy.random._pickle:__generator_ctor",
    "numpy.random:__RandomState_ctor",
)
def _np_random_ctor(site: CallSite) -> None:
    """numpy/random/_pickle.py: ``__randomstate_ctor(name, ctor)`` calls ``ctor(name)``."""
    from numpy.random import _pickle as nprp

    args = list(site.args)
    name = args[0] if args else site.kwargs.get("bit_generator_name", "MT19937")
    ctor = args[1] if len(args) > 1 else site.kwargs.get("bit_generator_ctor")
    if len(args) > 2 or set(site.kwargs) - {"bit_generator_name", "bit_generator_ctor"}:
        raise _forbid(site, "bad-arguments", "expects (bit_generator_name, bit_generator_ctor)")
    if ctor is not None and ctor is not nprp.__bit_generator_ctor:
        raise _forbid(
            site,
            "untrusted-argument",
            "bit_generator_ctor must be numpy.random._pickle.__bit_generator_ctor, got "
            f"{_describe(ctor)} (the constructor is called with the name)",
        )
    if isinstance(name, np.random.BitGenerator):
        return None
    _random_name(site, name)
    return None


@register("numpy.random._pickle:__bit_generator_ctor")
def _np_bitgen_ctor(site: CallSite) -> None:
    if len(site.args) > 1 or site.kwargs:
        raise _forbid(site, "bad-arguments", "expects (bit_generator_name,)")
    _random_name(site, site.args[0] if site.args else "MT19937")


@register(
    "numpy._core._ufunc_config:_ufunc_reconstruct",
    "numpy.core:_ufunc_reconstruct",
    "numpy._core:_ufunc_reconstruct",
)
def _np_ufunc_reconstruct(site: CallSite) -> None:  # pragma: no cover - never trusted by default
    raise _forbid(site, "import-by-name", "_ufunc_reconstruct imports any module by name")


# --------------------------------------------------------------------------- builtins

_CONCRETE = (list, tuple, set, frozenset, dict, str, bytes, bytearray)


@register(
    "builtins:set",
    "builtins:frozenset",
    "builtins:list",
    "builtins:tuple",
    "builtins:dict",
    "collections:OrderedDict",
    "collections:deque",
)
def _builtin_container(site: CallSite) -> None:
    for value in (*site.args, *site.kwargs.values()):
        if not isinstance(value, _CONCRETE):
            raise _forbid(
                site,
                "lazy-iterable",
                f"argument must be a concrete container, got {_describe(value)} "
                "(a range or iterator could expand without bound)",
            )
    return None


@register("builtins:bytearray", "builtins:bytes")
def _builtin_bytes(site: CallSite) -> None:
    if site.args and isinstance(site.args[0], int):
        size = operator.index(site.args[0])
        if size > 1 << 20:
            raise LimitExceededError(
                "max_array_bytes", size, 1 << 20, f"{site.name}(int) allocates zeroed memory"
            )
    elif site.args and not isinstance(site.args[0], _CONCRETE):
        raise _forbid(site, "lazy-iterable", f"argument {_describe(site.args[0])}")
    return None


@register("collections:defaultdict")
def _defaultdict(site: CallSite) -> None:
    factory = site.args[0] if site.args else None
    if factory is not None and not (isinstance(factory, type) and site.is_trusted_type(factory)):
        raise _forbid(
            site,
            "untrusted-argument",
            f"default_factory must be None or a trusted class, got {_describe(factory)}",
        )
    for value in site.args[1:]:
        if not isinstance(value, _CONCRETE):
            raise _forbid(site, "lazy-iterable", f"argument {_describe(value)}")


@register("_codecs:encode", "codecs:encode")
def _codecs_encode(site: CallSite) -> None:
    """Protocol 0–2 pickles store ``bytes`` as ``_codecs.encode(text, 'latin1')``."""
    if not site.args or not isinstance(site.args[0], str) or site.kwargs:
        raise _forbid(site, "bad-arguments", "expects (str, encoding)")
    encoding = site.args[1] if len(site.args) > 1 else "utf-8"
    if encoding not in ("latin1", "latin-1", "iso-8859-1", "utf-8", "utf8", "ascii"):
        raise _forbid(
            site,
            "untrusted-argument",
            f"codec {describe(encoding)} (only text encodings are allowed; rot13 etc. "
            "compute names at load time)",
        )
    if len(site.args) > 3:
        raise _forbid(site, "bad-arguments", "too many arguments")


@register("functools:partial")
def _partial(site: CallSite) -> None:
    if not site.args or not callable(site.args[0]):
        raise _forbid(site, "bad-arguments", "partial needs a callable")


@register(
    "builtins:range",
    "builtins:slice",
    "builtins:complex",
    "builtins:object",
    "builtins:int",
    "builtins:float",
    "builtins:str",
    "builtins:bool",
)
def _harmless_builtin(site: CallSite) -> None:
    for value in (*site.args, *site.kwargs.values()):
        if not isinstance(value, (int, float, complex, str, bytes, type(None))):
            raise _forbid(site, "bad-arguments", f"argument {_describe(value)}")


# --------------------------------------------------------------------------- scikit-learn


def _sklearn_tree(site: CallSite) -> None:
    """``sklearn.tree._tree.Tree(n_features, n_classes, n_outputs)``: ``__cinit__`` copies
    ``n_outputs`` entries of ``n_classes`` without a bounds check (sklearn/tree/_tree.pyx)."""
    if not site.args and not site.kwargs:
        return None
    if len(site.args) != 3 or site.kwargs:
        raise _forbid(site, "bad-arguments", "expects (n_features, n_classes, n_outputs)")
    n_features, n_classes, n_outputs = site.args
    if not isinstance(n_features, (int, np.integer)) or not isinstance(
        n_outputs, (int, np.integer)
    ):
        raise _forbid(site, "bad-arguments", "n_features and n_outputs must be ints")
    if not (0 <= n_features < 2**31) or not (1 <= n_outputs < 2**20):
        raise _forbid(site, "bad-arguments", f"n_features={n_features}, n_outputs={n_outputs}")
    arr = np.asarray(n_classes)
    if arr.ndim != 1 or arr.shape[0] != n_outputs or arr.dtype.kind not in "iu":
        raise _forbid(
            site,
            "bad-arguments",
            f"n_classes must be an int array of length n_outputs={n_outputs}, got "
            f"shape {arr.shape} dtype {arr.dtype}",
        )
    counts = arr.tolist()  # n_outputs entries, usually one: min/max beat numpy reductions
    if counts and (min(counts) < 1 or max(counts) >= 2**31):
        raise _forbid(site, "bad-arguments", "n_classes entries out of range")
    return None


def _sparse_class(site: CallSite) -> None:
    if site.args or site.kwargs:
        raise _forbid(
            site,
            "bad-arguments",
            "sparse matrices are restored from their state, not constructed with "
            "arguments (a shape argument allocates)",
        )


# --------------------------------------------------------------------------- class calls

_PLAIN_VALUES = (int, float, complex, str, bytes, bool, type(None))


def _numbers_only(site: CallSite) -> None:
    """Cython loss objects (``sklearn._loss._loss.Cy*``, ``sklearn.linear_model._sgd_fast``)
    are pickled as ``cls(*params)`` with a few float parameters."""
    for value in (*site.args, *site.kwargs.values()):
        if not isinstance(value, (int, float, np.floating, np.integer)) or isinstance(value, bool):
            raise _forbid(site, "bad-arguments", f"expects numbers, got {_describe(value)}")


def _class_call_without_arguments(site: CallSite) -> None:
    """A trusted class whose pickles never call it with arguments.

    Real scikit-learn/numpy/scipy pickles rebuild objects with ``NEWOBJ``/``copyreg`` and their
    state; calling the class with file-chosen arguments runs its constructor on them (an
    ``MT19937(range(2**40))`` seeds forever, a ``KDTree(data)`` builds a tree).  Only the
    classes registered in this module may be called with arguments, each with its own check.
    """
    if site.kind == "call" and (site.args or site.kwargs):
        raise _forbid(
            site,
            "class-call-with-arguments",
            "real pickles never call this class with arguments (objects are restored from "
            "their state); calling it would run its constructor on file-chosen values",
        )
    if site.kind == "new" and (site.args or site.kwargs) and not _new_ignores_arguments(site.func):
        raise _forbid(
            site,
            "class-call-with-arguments",
            "NEWOBJ arguments would reach this class's own __new__/__cinit__",
        )


def _new_ignores_arguments(cls: type) -> bool:
    """``cls.__new__(cls, *args)`` only stores or ignores ``args``: Python classes using
    ``object.__new__`` (it ignores them when ``__init__`` is overridden) and namedtuples (the
    arguments become the fields)."""
    new = cls.__new__
    if new is object.__new__ or new is tuple.__new__:
        return True
    return issubclass(cls, tuple) and hasattr(cls, "_fields")


def _register_loss_classes() -> None:
    import sklearn._loss._loss as cy_loss
    import sklearn.linear_model._sgd_fast as sgd_fast

    for module in (cy_loss, sgd_fast):
        for name in dir(module):
            obj = getattr(module, name)
            if isinstance(obj, type) and obj.__module__ == module.__name__:
                REGISTRY[(module.__name__, name)] = _numbers_only


def _init_class_rules() -> None:
    import scipy.sparse as sp
    from sklearn.tree._tree import Tree

    _CLASS_RULES.extend(
        [
            (np.ndarray, _ndarray_class),
            (Tree, _sklearn_tree),
            (sp.spmatrix, _sparse_class),
            (sp.sparray, _sparse_class),
        ]
    )


_init_class_rules()
_register_loss_classes()
