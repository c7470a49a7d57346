"""Checks on a state *before* a trusted C/Cython ``__setstate__`` reads it.

Validators (:mod:`safeload.validate`) look at an object once its state is set; that is too late
for ``__setstate__`` methods compiled with ``boundscheck=False`` that index the state itself:

* ``sklearn.tree._tree.Tree.__setstate__`` reads ``node_ndarray.shape[0]`` (a typed ndarray:
  the C ``dimensions`` array) before ``_check_node_ndarray`` looks at ``ndim``, so a 0-d
  ``nodes`` array reads outside its dimensions (SIGSEGV, review 5);
* ``BinaryTree64/32.__setstate__`` (``KDTree``, ``BallTree``) and
  ``DistanceMetric64/32.__setstate__`` read ``state[0]`` … ``state[n - 1]`` of a tuple with
  ``PyTuple_GET_ITEM`` and no length check: a shorter tuple is read past its end and the
  object found there gets its reference count written (heap corruption);
* ``numpy.ndarray.__setstate__`` (``numpy.matrix``, ``MaskedArray``) reads ``prod(shape)``
  items of an object array's raw-data list without checking its length;
* ``BitGenerator.__setstate__`` of PCG64/PCG64DXSM/Philox writes through pointers only their
  ``__init__`` sets, so an instance made by ``NEWOBJ`` crashes it.

A check is registered under the ``"module.qualname"`` of the class that *defines* the
``__setstate__`` (subclasses share it) and is found along the MRO, like validators.  The
loader (:func:`safeload.build._apply_build`) runs it right before ``__setstate__``; a state
that fails raises :class:`~safeload.errors.ValidationError`, and the class never sees it.

Tuple lengths are not written down here: they are what the installed library's own
``__getstate__`` returns for a small instance built once per process (scikit-learn changes
them between versions), so the check is exact for the version that will read the state.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from .errors import ValidationError

__all__ = ["check_state", "has_state_check", "StateCheck"]

#: ``check(inst, state) -> problem or None``: ``inst`` is the object about to get ``state``.
StateCheck = Callable[[Any, Any], "str | None"]

_lock = threading.Lock()
_cache: dict[type, StateCheck | None] = {}
_lengths: dict[str, int] = {}


def _defining_name(tp: type) -> str | None:
    """``"module.qualname"`` of the class along ``tp``'s MRO that defines ``__setstate__``."""
    for cls in getattr(tp, "__mro__", ()):
        if "__setstate__" in vars(cls):
            return f"{cls.__module__}.{cls.__qualname__}"
    return None


def _lookup(tp: type) -> StateCheck | None:
    found = _cache.get(tp, _MISSING)
    if found is _MISSING:
        name = _defining_name(tp)
        found = REGISTRY.get(name) if name is not None else None
        with _lock:
            if len(_cache) < 4096:
                _cache[tp] = found
    return found  # type: ignore[return-value]


_MISSING: Any = object()


def has_state_check(tp: type) -> bool:
    """Whether building an instance of ``tp`` checks its state before ``__setstate__``."""
    return _lookup(tp) is not None


def check_state(inst: Any, state: Any, name: str) -> None:
    """Refuse a state that ``type(inst).__setstate__`` (compiled code) would index out of
    bounds, or an instance it would write through uninitialised pointers.

    Parameters
    ----------
    inst : object
        The object being built (``__setstate__`` not called yet).
    state : object
        The state the file gives it (already built).
    name : str
        ``"module.qualname"`` of the global, for the message.

    Raises
    ------
    ValidationError
        Naming the class and what is wrong with the state.
    """
    check = _lookup(type(inst))
    if check is None:
        return
    problem = check(inst, state)
    if problem is not None:
        raise ValidationError(
            f"{name}: {problem}; its compiled __setstate__ would read out of bounds"
        )


# ------------------------------------------------------------------------------ checks


def _tuple_of(length_key: str, probe: Callable[[], Any]) -> StateCheck:
    """A state that must be a tuple as long as the one the library writes (``probe()`` builds
    a small instance; its ``__getstate__`` length is taken once per process)."""

    def check(inst: Any, state: Any) -> str | None:
        expected = _lengths.get(length_key)
        if expected is None:
            try:
                expected = len(probe().__getstate__())
            except Exception as exc:  # noqa: BLE001 - a library we can not probe is refused
                return f"its expected state could not be determined ({type(exc).__name__})"
            _lengths[length_key] = expected
        if type(state) is not tuple:
            return f"state is a {type(state).__name__}, not a tuple"
        if len(state) != expected:
            return f"state is a tuple of {len(state)} items, not {expected}"
        return None

    return check


def _tree_state(inst: Any, state: Any) -> str | None:
    """``Tree.__setstate__(d)``: ``d["nodes"].shape[0]`` is read before any check of the array;
    ``_check_node_ndarray``/``_check_value_ndarray`` then check dtype, shape and order."""
    if type(state) is not dict:
        return f"state is a {type(state).__name__}, not a dict"
    nodes = state.get("nodes")
    if nodes is not None and (type(nodes) is not np.ndarray or nodes.ndim != 1):
        return "nodes is not a 1-d numpy array"
    values = state.get("values")
    if values is not None and (type(values) is not np.ndarray or values.ndim != 3):
        return "values is not a 3-d numpy array"
    return None


def _array_state(inst: Any, state: Any) -> str | None:
    """``ndarray.__setstate__((version, shape, dtype, is_fortran, rawdata))`` (or without the
    version): for a dtype holding objects numpy's ``_setlist_pkl`` reads ``prod(shape)`` items
    of the ``rawdata`` list with ``PyList_GET_ITEM`` and no length check (numpy ``methods.c``);
    ``MaskedArray.__setstate__`` hands its raw data (item 4 of 7) to it."""
    if type(state) is not tuple:
        return None  # numpy's own argument parsing refuses it
    if len(state) == 7:  # MaskedArray: (version, shape, dtype, is_fortran, raw, mask, fill)
        shape, dtype, raw = state[1], state[2], state[4]
    elif len(state) in (4, 5):
        shape, dtype, raw = state[-4], state[-3], state[-1]
    else:
        return None
    if not isinstance(raw, list) or not isinstance(dtype, np.dtype) or not dtype.hasobject:
        return None  # bytes are length-checked by numpy
    if type(shape) is not tuple or not all(type(n) is int and n >= 0 for n in shape):
        return "the shape of an object array is not a tuple of ints >= 0"
    count = 1
    for n in shape:
        count *= n
    if len(raw) != count:
        return f"an object array of shape {shape} lists {len(raw)} items, not {count}"
    return None


def _bit_generator(inst: Any, state: Any) -> str | None:
    """``BitGenerator.__setstate__`` of PCG64/PCG64DXSM/Philox writes through pointers that
    their ``__init__`` sets; an instance made by ``NEWOBJ`` (``__new__`` without ``__init__``,
    which numpy never writes: it pickles through ``__bit_generator_ctor``) has them NULL.
    ``lock`` is set by ``BitGenerator.__init__`` alone."""
    if getattr(inst, "lock", None) is None:
        return "the bit generator was never initialised (made without its __init__)"
    return None


def _kd_tree(dtype: type) -> Callable[[], Any]:
    def probe() -> Any:
        from sklearn.neighbors import _kd_tree

        cls = _kd_tree.KDTree32 if dtype is np.float32 else _kd_tree.KDTree64
        return cls(np.zeros((2, 1), dtype=dtype))

    return probe


def _ball_tree(dtype: type) -> Callable[[], Any]:
    def probe() -> Any:
        from sklearn.neighbors import _ball_tree

        cls = _ball_tree.BallTree32 if dtype is np.float32 else _ball_tree.BallTree64
        return cls(np.zeros((2, 1), dtype=dtype))

    return probe


def _metric(bits: int) -> Callable[[], Any]:
    def probe() -> Any:
        from sklearn.metrics import _dist_metrics

        return getattr(_dist_metrics, f"EuclideanDistance{bits}")()

    return probe


#: class defining ``__setstate__`` ("module.qualname") -> check
REGISTRY: dict[str, StateCheck] = {
    "sklearn.tree._tree.Tree": _tree_state,
    "sklearn.neighbors._kd_tree.BinaryTree64": _tuple_of("kd64", _kd_tree(np.float64)),
    "sklearn.neighbors._kd_tree.BinaryTree32": _tuple_of("kd32", _kd_tree(np.float32)),
    "sklearn.neighbors._ball_tree.BinaryTree64": _tuple_of("ball64", _ball_tree(np.float64)),
    "sklearn.neighbors._ball_tree.BinaryTree32": _tuple_of("ball32", _ball_tree(np.float32)),
    "sklearn.metrics._dist_metrics.DistanceMetric64": _tuple_of("metric64", _metric(64)),
    "sklearn.metrics._dist_metrics.DistanceMetric32": _tuple_of("metric32", _metric(32)),
    "numpy.ndarray": _array_state,
    "numpy.ma.MaskedArray": _array_state,
    "numpy.random.bit_generator.BitGenerator": _bit_generator,
}
