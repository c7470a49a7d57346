"""Export: Python objects → the safe format's JSON graph and ``.npy`` arrays.

The walk is the one a pickler makes (``copyreg.dispatch_table``, then ``__reduce_ex__(4)``, as
``pickle._Pickler.save`` does), but every global it would name is checked against the
:class:`~safeload.policy.Policy` on its (module, qualname) strings and refused unless trusted, so
a file written by :func:`safeload.dump` always loads back.  Value encodings are specified in
``docs/FORMAT.md`` §4; the walk order defines the implicit reference ids (§4.2).
"""

from __future__ import annotations

import base64
import copyreg
import math
import pickle
import sys
import types
from collections.abc import Callable
from math import isfinite
from typing import Any

import numpy as np

from .._text import describe
from ..errors import FormatError, LimitExceededError, UntrustedTypesError
from ..policy import Policy, format_name
from .npyio import descr_to_json

__all__ = ["Encoder"]

_INT64 = 2**63
_FUNCTION_TYPES = (types.FunctionType, types.BuiltinFunctionType)
#: a dict of str keys and int values this long or longer stores its values as one int64 array
STRINTDICT_MIN = 64
#: arrays smaller than this (bytes) share one pool member per dtype (FORMAT.md §4.4)
POOL_BELOW = 64 << 10
_STR_ONLY = frozenset({str})
_INT_ONLY = {int}


def _float(x: float) -> Any:
    if math.isfinite(x):
        return x
    return {"$": "float", "v": "nan" if x != x else ("inf" if x > 0 else "-inf")}


def _int64_values(obj: dict) -> np.ndarray | None:
    """The dict's values as an int64 array when they are all ``int`` in int64 range, else None.

    Type test and conversion at C speed (a vocabulary has ~10**5 entries); ``np.fromiter``
    raises ``OverflowError`` for an int outside int64.
    """
    if set(map(type, obj.values())) != _INT_ONLY:
        return None
    try:
        return np.fromiter(obj.values(), dtype=np.int64, count=len(obj))
    except OverflowError:
        return None


def _global_name(obj: Any, name: str | None = None) -> tuple[str, str]:
    """(module, qualname) the way ``pickle._Pickler.save_global`` finds it."""
    qualname = name or getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    if not isinstance(qualname, str):
        raise FormatError(f"cannot name {obj!r}: it has no __qualname__")
    module = getattr(obj, "__module__", None)
    if not isinstance(module, str):
        module = pickle.whichmodule(obj, qualname)
    return module, qualname


class Encoder:
    """One export: walk ``obj`` and produce the graph document.

    Parameters
    ----------
    policy : Policy
        Every global the graph names must be trusted by it.
    emit_array : callable
        ``emit_array(index, array)`` writes array member ``index`` (C- or Fortran-contiguous,
        not object dtype) as soon as it is met, so arrays stream to the file.
    max_depth : int
        Deepest nesting accepted, as for loading.

    Attributes
    ----------
    globals : list of [str, str]
    arrays : list of dict
        ``{"dtype": descr, "shape": [...], "order": "C" | "F"}`` per array member.
    """

    def __init__(
        self, policy: Policy, emit_array: Callable[[int, np.ndarray], None], max_depth: int
    ):
        self.policy = policy
        self.emit_array = emit_array
        self.max_depth = max_depth
        self.globals: list[list[str]] = []
        self._global_index: dict[tuple[str, str], int] = {}
        self.arrays: list[dict] = []
        self.dtypes: list[Any] = []
        self._dtype_objects: list[np.dtype] = []
        # dtype index -> (bytes of the small arrays, their ndarray tags, [elements so far])
        self._pools: dict[int, tuple[list, list, list]] = {}
        self._dtype_index: dict[np.dtype, int] = {}
        # id(obj) -> ref id; ints, not per-object lists: fewer container allocations, so
        # fewer garbage collections during the walk
        self._memo: dict[int, int] = {}
        self._kept: list = []  # the objects of _memo (kept alive: their ids stay theirs)
        self._in_args: set[int] = set()  # ids of objects whose constructor args are encoded
        self.untrusted: dict[str, str] = {}
        self._named_cache: dict[tuple[int, str | None], tuple[Any, int]] = {}
        self._dispatch: dict[type, Callable[[Any, int], Any]] = {
            list: self._list,
            tuple: self._tuple,
            dict: self._dict,
            set: self._set,
            frozenset: self._set,
            bytes: self._bytes,
            bytearray: self._bytes,
            complex: self._complex,
            slice: self._slice,
            np.ndarray: self._ndarray,
            np.memmap: self._ndarray,
            np.ma.MaskedArray: self._masked,
        }

    # ------------------------------------------------------------------ entry
    def document(self, obj: Any) -> dict:
        """The graph document for ``obj`` (call :meth:`check_trusted` once it is complete).

        Raises
        ------
        FormatError
            A value the format cannot represent (named in the message).
        """
        root = self.enc(obj, 0)
        return {
            "globals": self.globals,
            "dtypes": self.dtypes,
            "arrays": self.arrays,
            "root": root,
        }

    def check_trusted(self) -> None:
        """Refuse the export if any global it named is not trusted.

        Raises
        ------
        UntrustedTypesError
            Listing every global the policy would not load back.
        """
        if self.untrusted:
            raise UntrustedTypesError(
                sorted(self.untrusted.items()),
                "safeload.dump refuses to write objects the policy would not load back",
            )

    # ------------------------------------------------------------------ values
    def enc(self, obj: Any, depth: int) -> Any:
        tp = type(obj)
        if tp is str or tp is bool or obj is None:
            return obj
        if tp is int:
            return obj if -_INT64 <= obj < _INT64 else {"$": "int", "v": format(obj, "x")}
        if tp is float:
            return _float(obj)
        key = id(obj)
        hit = self._memo.get(key)
        if hit is not None:
            if key in self._in_args:
                raise FormatError(
                    f"a {tp.__qualname__} is reachable from its own constructor arguments; "
                    "the safe format (like pickle) can only close cycles through mutable state"
                )
            return {"$": "ref", "id": hit}
        if depth > self.max_depth:
            raise LimitExceededError("max_depth", depth, self.max_depth, "nesting while dumping")
        handler = self._dispatch.get(tp)
        if handler is None:
            if obj is Ellipsis or obj is NotImplemented:
                return self._new_id(obj, {"$": "const", "v": repr(obj)})
            if isinstance(obj, np.dtype):
                handler = self._dtype
            elif isinstance(obj, np.generic):
                handler = self._scalar
            elif isinstance(obj, (type, *_FUNCTION_TYPES)):
                handler = self._global_value
            else:
                handler = self._reduce
        return handler(obj, depth + 1)

    def _new_id(self, obj: Any, value: Any = None, in_args: bool = False) -> Any:
        key = id(obj)
        self._memo[key] = len(self._kept)
        self._kept.append(obj)
        if in_args:
            self._in_args.add(key)
        return value

    def _list(self, obj: list, depth: int) -> list:
        self._new_id(obj)
        enc = self.enc
        return [enc(x, depth) for x in obj]

    def _tuple(self, obj: tuple, depth: int) -> dict:
        self._new_id(obj, in_args=True)
        enc = self.enc
        items = [enc(x, depth) for x in obj]
        self._in_args.discard(id(obj))
        return {"$": "tuple", "v": items}

    def _dict(self, obj: dict, depth: int) -> dict:
        self._new_id(obj)
        enc = self.enc
        if set(map(type, obj)) <= _STR_ONLY:
            values = _int64_values(obj) if len(obj) >= STRINTDICT_MIN else None
            if values is not None:
                if values.size and values.min() >= -(2**31) and values.max() < 2**31:
                    values = values.astype(np.int32)  # vocabulary indices: half the bytes
                return {"$": "dict", "k": list(obj), "vi": enc(values, depth)}
            # atoms written as they are without a call of enc each (an estimator's params):
            # the same values enc returns for them
            out = {}
            for k, v in obj.items():
                tp = type(v)
                if (
                    tp is str
                    or tp is bool
                    or v is None
                    or (tp is int and -_INT64 <= v < _INT64)
                    or (tp is float and isfinite(v))
                ):
                    out[k] = v
                else:
                    out[k] = enc(v, depth)
            return {"$": "dict", "v": out}
        return {"$": "dict", "items": [[enc(k, depth), enc(v, depth)] for k, v in obj.items()]}

    def _set(self, obj: Any, depth: int) -> dict:
        frozen = type(obj) is frozenset
        self._new_id(obj, in_args=frozen)
        kinds = {type(x) for x in obj}
        items = list(obj)
        if len(kinds) == 1 and kinds <= {str, int, float, bytes}:
            items.sort()  # sets iterate in hash order, which varies between processes
        enc = self.enc
        values = [enc(x, depth) for x in items]
        self._in_args.discard(id(obj))
        return {"$": "frozenset" if frozen else "set", "v": values}

    def _bytes(self, obj: Any, depth: int) -> dict:
        tag = "bytes" if type(obj) is bytes else "bytearray"
        return self._new_id(obj, {"$": tag, "v": base64.b64encode(obj).decode("ascii")})

    def _complex(self, obj: complex, depth: int) -> dict:
        return self._new_id(obj, {"$": "complex", "v": [_float(obj.real), _float(obj.imag)]})

    def _slice(self, obj: slice, depth: int) -> dict:
        self._new_id(obj, in_args=True)
        value = {"$": "slice", "v": [self.enc(x, depth) for x in (obj.start, obj.stop, obj.step)]}
        self._in_args.discard(id(obj))
        return value

    def _dtype(self, obj: np.dtype, depth: int) -> dict:
        if obj == np.dtype(object):
            descr: Any = "|O"
        else:
            try:
                descr = descr_to_json(obj)
            except ValueError as exc:
                raise FormatError(f"cannot store dtype {obj}: {exc}") from None
        return self._new_id(obj, {"$": "dtype", "v": descr})

    def _scalar(self, obj: np.generic, depth: int) -> dict:
        dtype = obj.dtype
        if dtype.hasobject:
            raise FormatError("numpy object scalars cannot be stored")
        value: dict = {"$": "scalar", "dtype": descr_to_json(dtype)}
        kind = dtype.kind
        if kind == "b":
            value["v"] = bool(obj)
        elif kind in "iu":
            value["v"] = int(obj)
        elif kind == "f" and dtype.itemsize <= 8 and obj == obj:
            value["v"] = _float(float(obj))  # a NaN goes to b64 below: its sign and payload
        elif kind == "U":
            value["v"] = str(obj)
        elif kind == "S":
            value["b64"] = base64.b64encode(bytes(obj)).decode("ascii")  # np.bytes_ drops NULs
        else:
            value["b64"] = base64.b64encode(np.asarray(obj).tobytes()).decode("ascii")
        return self._new_id(obj, value)

    def _ndarray(self, obj: np.ndarray, depth: int) -> dict:
        if obj.dtype.hasobject:
            if obj.dtype != np.dtype(object):
                raise FormatError("structured arrays with object fields cannot be stored")
            self._new_id(obj, in_args=True)
            order = (
                "F"
                if obj.ndim > 1 and obj.flags.f_contiguous and not obj.flags.c_contiguous
                else "C"
            )
            enc = self.enc
            # tolist() of an object array returns the stored objects themselves
            items = [enc(x, depth) for x in obj.ravel(order=order).tolist()]
            self._in_args.discard(id(obj))
            return {"$": "objarray", "shape": list(obj.shape), "order": order, "v": items}
        dtype = obj.dtype
        if dtype.itemsize == 0:
            raise FormatError(f"arrays of the zero-size dtype {dtype} cannot be stored")
        flags = obj.flags
        if flags.c_contiguous:
            order, arr = "C", obj
        elif flags.f_contiguous:
            order, arr = "F", obj
        else:
            order, arr = "C", np.ascontiguousarray(obj)
        dtype_index = self._dtype_index.get(dtype)
        if dtype_index is None:
            dtype_index = self._dtype_of(dtype)
        self._memo[id(obj)] = len(self._kept)  # _new_id(obj), inline: one per array
        self._kept.append(obj)
        if arr.nbytes < POOL_BELOW:
            # a small array goes into its dtype's pool: one member for many arrays (§4.4)
            pool = self._pools.get(dtype_index)
            if pool is None:
                pool = self._pools[dtype_index] = ([], [], [0])
            tag = {"$": "ndarray", "i": -1, "at": pool[2][0], "shape": list(arr.shape)}
            if order == "F":
                tag["order"] = "F"
            # a copy of a small array costs less than numpy's checks of a uint8 view of it
            pool[0].append(arr.tobytes(order=order))
            pool[1].append(tag)
            pool[2][0] += arr.size
            return tag
        index = len(self.arrays)
        self.arrays.append({"dtype": dtype_index, "shape": list(arr.shape), "order": order})
        self.emit_array(index, arr)
        return {"$": "ndarray", "i": index}

    def _dtype_of(self, dtype: np.dtype) -> int:
        dtype_index = self._dtype_index.get(dtype)
        if dtype_index is None:
            try:
                descr = descr_to_json(dtype)
            except ValueError as exc:
                raise FormatError(f"cannot store an array of dtype {dtype}: {exc}") from None
            dtype_index = self._dtype_index[dtype] = len(self.dtypes)
            self.dtypes.append(descr)
            self._dtype_objects.append(dtype)
        return dtype_index

    def flush_pools(self) -> None:
        """Write each dtype's pool of small arrays as one 1-d member and point the values'
        ``ndarray`` tags at it (called once the walk is complete)."""
        for dtype_index, (parts, tags, length) in self._pools.items():
            # bytes, not values: np.concatenate would repack a padded structured dtype
            pool = np.frombuffer(b"".join(parts), self._dtype_objects[dtype_index])
            index = len(self.arrays)
            self.arrays.append({"dtype": dtype_index, "shape": [length[0]], "order": "C"})
            self.emit_array(index, pool)
            for tag in tags:
                tag["i"] = index
        self._pools.clear()

    def _masked(self, obj: np.ma.MaskedArray, depth: int) -> dict:
        self._new_id(obj, in_args=True)
        value = {
            "$": "masked",
            "data": self.enc(np.ma.getdata(obj), depth),
            "mask": self.enc(np.ma.getmaskarray(obj), depth),
            "fill_value": self.enc(obj._fill_value, depth),
        }
        self._in_args.discard(id(obj))
        return value

    # ------------------------------------------------------------------ globals and objects
    def _global(self, pair: tuple[str, str], what: str) -> int:
        index = self._global_index.get(pair)
        if index is None:
            verdict = self.policy.verdict(*pair)
            if not verdict.trusted:
                self.untrusted[format_name(pair)] = f"{verdict.reason} ({what})"
            index = self._global_index[pair] = len(self.globals)
            self.globals.append([pair[0], pair[1]])
        return index

    def _global_value(self, obj: Any, depth: int) -> dict:
        return self._new_id(obj, {"$": "global", "g": self._named(obj, None, "stored as a value")})

    def _named(self, obj: Any, name: str | None, what: str) -> int:
        # a model names the same few classes hundreds of times (one per tree): resolve each
        # once; only clean names are cached, so a refused one is reported as before
        hit = self._named_cache.get((id(obj), name))
        if hit is not None and hit[0] is obj:
            return hit[1]
        pair = _global_name(obj, name)
        problem = _naming_problem(obj, pair)
        if problem is not None:
            self.untrusted[format_name(pair)] = problem
        index = self._global(pair, what)
        if problem is None and not self.untrusted.get(format_name(pair)):
            self._named_cache[(id(obj), name)] = (obj, index)
        return index

    def _reduce(self, obj: Any, depth: int) -> Any:
        tp = type(obj)
        reducer = copyreg.dispatch_table.get(tp)
        try:
            rv = reducer(obj) if reducer is not None else obj.__reduce_ex__(4)
        except Exception as exc:  # noqa: BLE001 - e.g. "cannot pickle '_thread.lock' object"
            raise FormatError(
                f"cannot store a {tp.__module__}.{tp.__qualname__}: {type(exc).__name__}: {exc}"
            ) from None
        if isinstance(rv, str):
            return self._new_id(
                obj, {"$": "global", "g": self._named(obj, rv, "stored as a value")}
            )
        if not isinstance(rv, tuple) or not 2 <= len(rv) <= 6:
            raise FormatError(f"{tp.__qualname__}.__reduce_ex__ returned {type(rv).__name__}")
        func, args, state, listitems, dictitems, setter = (tuple(rv) + (None,) * 4)[:6]
        if setter is not None:
            raise FormatError(f"{tp.__qualname__} uses a state setter, which is not supported")
        name = getattr(func, "__name__", "")
        node: dict
        self._new_id(obj, in_args=True)
        enc = self.enc
        if name == "__newobj__" and func is copyreg.__newobj__:
            cls = args[0]
            node = {"$": "obj", "g": self._class(cls, tp)}
            if len(args) > 1:
                node["args"] = [enc(a, depth) for a in args[1:]]
        elif name == "__newobj_ex__" and func is copyreg.__newobj_ex__:
            cls, cargs, ckwargs = args
            node = {"$": "obj", "g": self._class(cls, tp)}
            if cargs:
                node["args"] = [enc(a, depth) for a in cargs]
            if ckwargs:
                node["kwargs"] = {str(k): enc(v, depth) for k, v in ckwargs.items()}
        else:
            node = {
                "$": "call",
                "g": self._named(func, None, f"called to rebuild a {tp.__qualname__}"),
            }
            if args:
                node["args"] = [enc(a, depth) for a in args]
        self._in_args.discard(id(obj))
        if state is not None:
            node["state"] = enc(state, depth)
        if listitems is not None:
            node["items"] = [enc(x, depth) for x in listitems]
        if dictitems is not None:
            node["setitems"] = [[enc(k, depth), enc(v, depth)] for k, v in dictitems]
        return node

    def _class(self, cls: Any, tp: type) -> int:
        if not isinstance(cls, type):
            raise FormatError(f"{tp.__qualname__}.__reduce_ex__ gave a non-class to __newobj__")
        return self._named(cls, None, "an object's class")


def _naming_problem(obj: Any, pair: tuple[str, str]) -> str | None:
    """Why ``pair`` does not name ``obj`` (as ``pickle`` checks), or None.

    Lambdas and local functions have no importable name; a name that leads to another object
    would load something else.  Only already-imported modules are looked at (nothing imported).
    """
    module, qualname = pair
    if "<lambda>" in qualname or "<locals>" in qualname:
        return "a lambda or local function has no importable name"
    target: Any = sys.modules.get(module)
    for part in qualname.split("."):
        target = getattr(target, part, None)
        if target is None:
            break
    if target is not obj:
        return f"the name does not lead back to the object ({describe(obj, 60)})"
    return None
