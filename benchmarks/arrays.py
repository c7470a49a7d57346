"""The "limit" rows: the numeric arrays of a fitted model, written as plain ``.npy`` files.

No loader can be faster than reading the bytes of the model's arrays, so every model gets three
pseudo-methods: ``limit`` (``np.load`` of every array of the model from a folder of ``.npy``
files), ``limit-mmap`` (the same with ``mmap_mode='r'``) and ``limit-bytes`` (one ``np.load`` of
all those bytes concatenated in a single file: the floor without any per-array cost).

Arrays are found by walking the fitted object: instance ``__dict__``, lists, tuples, dicts, sets,
and the ``__getstate__()`` of extension types without a ``__dict__`` (scikit-learn's Cython
``Tree``). Object-dtype arrays are left out: they have no raw bytes (``.npy`` would need pickle
for them), but the objects they hold are walked (GradientBoosting keeps its trees in one).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

_ATOMIC = (str, bytes, int, float, complex, bool, type(None), type)


def iter_objects(obj: Any, max_depth: int = 200) -> Iterator[Any]:
    """Yield every object reachable from ``obj`` once (depth-first, by identity).

    Parameters
    ----------
    obj : object
        Root object, e.g. a fitted estimator.
    max_depth : int
        Containers nested deeper than this are not entered.

    Yields
    ------
    object
        ``obj`` and every object reachable through ``__dict__``, ``__slots__``, list / tuple /
        set / dict items and keys, and ``__getstate__()`` of extension types.
    """
    seen: dict[int, Any] = {}  # keeps temporaries (__getstate__ dicts) alive: ids stay unique
    stack: list[tuple[Any, int]] = [(obj, 0)]
    while stack:
        cur, depth = stack.pop()
        if id(cur) in seen:
            continue
        seen[id(cur)] = cur
        yield cur
        if isinstance(cur, _ATOMIC) or depth >= max_depth:
            continue
        children: list[Any] = []
        if isinstance(cur, np.ndarray):
            if cur.dtype == object:  # e.g. GradientBoosting's estimators_ holds trees
                children.extend(cur.ravel().tolist())
            else:
                continue
        elif isinstance(cur, dict):
            children.extend(cur.keys())
            children.extend(cur.values())
        elif isinstance(cur, list | tuple | set | frozenset):
            children.extend(cur)
        elif isinstance(cur, np.generic) or callable(cur) and not hasattr(cur, "fit"):
            continue
        else:
            children.extend(_state_of(cur))
        stack.extend((c, depth + 1) for c in children)


def _state_of(obj: Any) -> list[Any]:
    """Attribute values of ``obj``: ``__dict__`` and slots, or ``__getstate__()`` without them."""
    out: list[Any] = []
    d = getattr(obj, "__dict__", None)
    if isinstance(d, dict):
        out.extend(d.values())
    for slot in getattr(type(obj), "__slots__", ()) or ():
        if isinstance(slot, str) and hasattr(obj, slot):
            out.append(getattr(obj, slot))
    if d is None and type(obj).__module__.split(".")[0] in {"sklearn", "scipy", "numpy"}:
        try:
            state = obj.__getstate__()
        except Exception:  # noqa: BLE001 - best effort: some extension types refuse
            state = None
        if state is not None:
            out.append(state)
    return out


def model_arrays(members: dict[str, Any]) -> dict[str, list[np.ndarray]]:
    """Return the non-object ndarrays reachable from every member, per member.

    Parameters
    ----------
    members : dict of str to estimator
        Fitted estimators.

    Returns
    -------
    dict of str to list of ndarray
        Each array once (by identity); views of one base are kept as they are.
    """
    return {
        name: [o for o in iter_objects(est) if isinstance(o, np.ndarray) and not o.dtype.hasobject]
        for name, est in members.items()
    }


def model_modules(members: dict[str, Any]) -> list[str]:
    """Return the modules that define the types of all objects reachable from ``members``.

    A load subprocess imports them before it starts the clock, so import time never counts as
    load time.

    Parameters
    ----------
    members : dict of str to estimator
        Fitted estimators.

    Returns
    -------
    list of str
        Sorted module names (``builtins`` and the benchmark's own modules left out).
    """
    mods = {type(o).__module__ for est in members.values() for o in iter_objects(est)}
    return sorted(m for m in mods if m and m != "builtins" and not m.startswith("benchmarks"))


def array_nbytes(arrays: dict[str, list[np.ndarray]]) -> int:
    """Return the sum of ``nbytes`` of every array.

    Parameters
    ----------
    arrays : dict of str to list of ndarray
        As returned by :func:`model_arrays`.

    Returns
    -------
    int
        Bytes.
    """
    return sum(a.nbytes for arrs in arrays.values() for a in arrs)


def write_npy_set(arrays: list[np.ndarray], folder: Path) -> None:
    """Write ``arrays`` as ``folder/00000.npy``, ``00001.npy``, ... (no pickle).

    Parameters
    ----------
    arrays : list of ndarray
        Non-object arrays (non-contiguous ones are written contiguous).
    folder : Path
        Created if missing; ``.npy`` files already in it are removed first.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.npy"):
        old.unlink()
    for i, arr in enumerate(arrays):
        np.save(folder / f"{i:05d}.npy", np.ascontiguousarray(arr), allow_pickle=False)


def write_blob(arrays: list[np.ndarray], path: Path) -> None:
    """Write the raw bytes of all ``arrays``, concatenated, as one uint8 ``.npy`` file.

    Parameters
    ----------
    arrays : list of ndarray
        Non-object arrays.
    path : Path
        Target ``.npy`` file.
    """
    parts = [np.ascontiguousarray(a).reshape(-1).view(np.uint8) for a in arrays]
    blob = np.concatenate(parts) if parts else np.empty(0, np.uint8)
    np.save(path, blob, allow_pickle=False)


def read_npy_set(folder: Path, mmap_mode: str | None = None) -> list[np.ndarray]:
    """Read every ``.npy`` file of ``folder`` with ``np.load(allow_pickle=False)``.

    Parameters
    ----------
    folder : Path
        Written by :func:`write_npy_set`.
    mmap_mode : {None, "r"}
        Passed to ``np.load``.

    Returns
    -------
    list of ndarray
        In file-name order.
    """
    return [
        np.load(p, mmap_mode=mmap_mode, allow_pickle=False) for p in sorted(folder.glob("*.npy"))
    ]
