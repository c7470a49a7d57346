"""Content validators: trusting a type is not trusting its content.

The loader builds only allowlisted types, but a type-trusted object can still carry content that
scikit-learn's Cython/C code indexes without bounds checks (scikit-learn compiles with
``boundscheck=False, wraparound=False, cdivision=True, nonecheck=False``).  A
``sklearn.tree._tree.Tree`` whose child indices point outside its node array loads fine and
segfaults on ``predict`` (scikit-learn PR #34558); a ``CountVectorizer`` whose vocabulary maps a
word to column 10**8 loads fine and writes out of bounds in ``transform(...).toarray()``.

After the loader has built an object and set its state, it calls :func:`validate` on it.  A
validator registered for the object's type (exact type first, then along the MRO) checks the
content the C code will index and raises :class:`~safeload.errors.ValidationError` naming the
object, the field and the bad value.  Validators are vectorised and never modify the object: they
read ``vars(obj)`` (no properties run) and, for extension types whose state is not otherwise
visible, read-only accessors (``__getstate__``, ``get_state()``, ``state``); scipy's
``check_format`` runs on a shallow copy because it rebinds attributes.

Registering is by class or by ``"module.qualname"`` string.  Strings are matched against the names
of the classes in ``type(obj).__mro__``; nothing is imported to resolve them, so registering a
validator for a library that is not installed (or not trusted) costs nothing.

Objects whose checked content is final once their state is set (a ``Tree`` copies its nodes
into its own C buffers in its single ``__setstate__``) may instead be checked while the loader
goes on building: :class:`ValidationBatch` runs their Python checks at once and their C node
pass beside the loader, and :meth:`ValidationBatch.join` reports before the load returns.

The families live in submodules (``tree``, ``hist_gradient_boosting``, ``neighbors``,
``dist_metrics``, ``sparse``, ``svm``, ``cluster``, ``feature_extraction``, ``preprocessing``,
``numpy_types``, ``interpolate``) and register themselves when this package is imported.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ..errors import SafeloadError, ValidationError
from ..limits import Limits
from ._common import type_name

try:  # optional C kernels (tree and predictor node passes); numpy references otherwise
    from . import _treecheck  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - built without a compiler
    _treecheck = None

__all__ = [
    "validate",
    "register",
    "register_final",
    "has_validator",
    "registered_names",
    "Validator",
    "ValidationBatch",
]

Validator = Callable[[object, Limits], None]

_lock = threading.RLock()
_by_name: dict[str, list[Validator]] = {}
_by_class: dict[type, list[Validator]] = {}
_cache: dict[type, tuple[Validator, ...]] = {}
# validator -> (its form for objects that are final once built, the exact type names it covers)
_final: dict[Validator, tuple[Callable[[object, Limits, ValidationBatch], None], frozenset]] = {}


def _normalize(name: str) -> str:
    if not isinstance(name, str) or not name or any(c in name for c in "*?[] \t\n"):
        raise TypeError(f"register() takes classes or 'module.qualname' strings, got {name!r}")
    module, sep, qualname = name.partition(":")
    if sep:
        if not module or not qualname:
            raise TypeError(f"{name!r} is not a 'module:qualname' name")
        return f"{module}.{qualname}"
    if "." not in name.strip("."):
        raise TypeError(f"{name!r} is not a 'module.qualname' name")
    return name


def register(*types_or_names: type | str) -> Callable[[Validator], Validator]:
    """Register the decorated function as the content validator of some types.

    Parameters
    ----------
    *types_or_names : type or str
        Classes, or ``"module.qualname"`` strings (``"module:Outer.Inner"`` is accepted too).
        Strings are matched against ``f"{cls.__module__}.{cls.__qualname__}"`` of the classes in
        an object's MRO, so nothing is imported.  A validator registered for a base class also
        covers its subclasses unless a subclass has its own validator.

    Returns
    -------
    callable
        A decorator that registers ``func(obj, limits) -> None`` and returns it unchanged.

    Raises
    ------
    TypeError
        If a name is not a class or a ``module.qualname`` string.

    Examples
    --------
    >>> @register("mypkg.models.Forest")
    ... def _check_forest(obj, limits):
    ...     ...
    """
    keys: list[type | str] = []
    for item in types_or_names:
        keys.append(item if isinstance(item, type) else _normalize(item))
    if not keys:
        raise TypeError("register() needs at least one class or name")

    def decorator(func: Validator) -> Validator:
        with _lock:
            for key in keys:
                table = _by_class if isinstance(key, type) else _by_name
                bucket = table.setdefault(key, [])  # type: ignore[arg-type]
                if func not in bucket:
                    bucket.append(func)
            _cache.clear()
        return func

    return decorator


def _lookup(tp: type) -> tuple[Validator, ...]:
    found = _cache.get(tp)
    if found is not None:
        return found
    with _lock:
        result: tuple[Validator, ...] = ()
        for cls in getattr(tp, "__mro__", (tp,)):
            funcs = _by_class.get(cls, []) + _by_name.get(type_name(cls), [])
            if funcs:
                result = tuple(dict.fromkeys(funcs))
                break
        _cache[tp] = result
        return result


def has_validator(tp: type) -> bool:
    """Whether a validator is registered for ``tp`` (exact type, then its MRO).

    Cached per type, so after the first call for a type this is one dict lookup: the loader calls
    it on every object it builds.

    Parameters
    ----------
    tp : type
        The class of a freshly built object.

    Returns
    -------
    bool
    """
    found = _cache.get(tp)
    if found is None:
        found = _lookup(tp)
    return bool(found)


def validate(obj: object, limits: Limits) -> None:
    """Validate one freshly built object if a validator is registered for ``type(obj)``.

    Lookup is by exact type, then along the MRO; the first class with validators wins.  Called by
    the loader bottom-up (inner objects before the estimators that hold them), after the
    object's state was set.

    Parameters
    ----------
    obj : object
        The object to check.  It is never modified.
    limits : Limits
        The limits of the current load (validators may use them to bound their own work).

    Raises
    ------
    ValidationError
        If the content would make scikit-learn/scipy C code read or write out of bounds, loop
        forever or divide by zero.  Any unexpected exception inside a validator (garbage that a
        check did not anticipate) is reported as a ``ValidationError`` too.
    """
    validators = _cache.get(type(obj))
    if validators is None:
        validators = _lookup(type(obj))
    for func in validators:
        _run(func, obj, limits)


def _run(func: Callable[..., None], obj: object, *args: object) -> None:
    try:
        func(obj, *args)
    except (SafeloadError, MemoryError):
        raise
    except Exception as exc:  # garbage a check did not anticipate is still refused
        raise ValidationError(
            f"{type_name(type(obj))}: content could not be validated ({type(exc).__name__}: {exc})"
        ) from exc


def register_final(
    validator: Validator, *names: str
) -> Callable[[Callable[[object, Limits, ValidationBatch], None]], Callable]:
    """Register the decorated function as the early form of ``validator`` for some types.

    Only for types whose checked content can not change once the loader has set their state
    (``sklearn.tree._tree.Tree``: its nodes live in C buffers that only its ``__setstate__``
    replaces, and the loader sets an object's state once).  The early form makes every check
    ``validator`` makes: what is cheap at once, the node pass through
    :meth:`ValidationBatch.add_nodes`.

    Parameters
    ----------
    validator : callable
        A function registered with :func:`register`.
    *names : str
        ``"module.qualname"`` of the exact types the early form covers (never their
        subclasses, which may set state differently).

    Returns
    -------
    callable
        A decorator registering ``func(obj, limits, batch) -> None`` and returning it.
    """

    exact = frozenset(_normalize(name) for name in names)
    if not exact:
        raise TypeError("register_final() needs the names of the exact types it covers")

    def decorator(func: Callable[[object, Limits, ValidationBatch], None]) -> Callable:
        with _lock:
            _final[validator] = (func, exact)
        return func

    return decorator


class ValidationBatch:
    """Validation of objects that are final once built, overlapped with the rest of a load.

    One per load (not shared between threads).  The loader calls :meth:`submit` on each object
    as soon as its state is set and :meth:`join` once the whole graph is built, before the
    other objects are validated and before the load returns.  Types without an early form
    (:func:`register_final`) are left to :func:`validate` at the end.

    Parameters
    ----------
    limits : Limits
        The limits of the current load.
    """

    __slots__ = ("limits", "_kernel", "_plans", "_joined")

    def __init__(self, limits: Limits):
        self.limits = limits
        self._kernel: Any = None  # a _treecheck.Batch once a node pass is queued
        self._plans: dict[type, tuple | None] = {}
        self._joined = False

    def submit(self, obj: object) -> bool:
        """Validate ``obj`` now, or start its node pass beside the caller.

        Parameters
        ----------
        obj : object
            A freshly built object whose state was just set.

        Returns
        -------
        bool
            False when ``obj``'s type has a validator without an early form: the caller
            validates it with :func:`validate` once the graph is built.

        Raises
        ------
        ValidationError
            From the checks made at once.
        """
        tp = type(obj)
        try:
            plan = self._plans[tp]
        except KeyError:
            name = type_name(tp)
            early = []
            for func in _lookup(tp):
                form, exact = _final.get(func, (None, frozenset()))
                early.append(form if name in exact else None)
            plan = self._plans[tp] = tuple(early) if early and None not in early else None
        if plan is None:
            return False
        for func in plan:
            _run(func, obj, self.limits, self)
        return True

    def add_nodes(self, obj: object, recheck: Validator, *kernel_args: object) -> bool:
        """Queue one C tree-node pass (``_treecheck.check`` arguments) about ``obj``.

        ``obj`` must keep the node buffer unchanged until :meth:`join`.  When the pass fails,
        :meth:`join` runs ``recheck(obj, limits)``, which names the problem.

        Returns
        -------
        bool
            False when the C kernel is not built or the batch was joined already: the caller
            checks the nodes itself.
        """
        kernel = self._kernel
        if kernel is None:
            if _treecheck is None or self._joined:
                return False
            kernel = self._kernel = _treecheck.Batch()
        kernel.add((obj, recheck), *kernel_args)
        return True

    def join(self) -> None:
        """Wait for every queued node pass and report the first failure.

        Raises
        ------
        ValidationError
            Naming the object, the field and the bad value.
        """
        self._joined = True
        kernel, self._kernel = self._kernel, None
        if kernel is None:
            return
        for obj, recheck in kernel.join():
            _run(recheck, obj, self.limits)


def registered_names() -> list[str]:
    """Return the sorted ``module.qualname`` of every registered type (for docs and reports)."""
    with _lock:
        names = set(_by_name) | {type_name(c) for c in _by_class}
    return sorted(names)


# Families register themselves on import.  They import nothing from scikit-learn or scipy at
# module level.
from . import (  # noqa: E402, F401
    cluster,
    dist_metrics,
    feature_extraction,
    hist_gradient_boosting,
    interpolate,
    neighbors,
    numpy_types,
    preprocessing,
    sparse,
    svm,
    tree,
)
