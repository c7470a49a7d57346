"""Import: the safe format's JSON graph → objects, through the loader's audit and build rules.

Every global the graph names is audited on its strings by :func:`safeload.audit.audit` before
anything is imported (the same code as for pickles); every ``obj``/``call`` node then goes
through :meth:`safeload.build.Builder.invoke`, so the call rules of
:mod:`safeload.constraints` apply unchanged, state is set only on instances, and the content
validators run once the whole graph is built.  Value encodings: ``docs/FORMAT.md`` §4.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from .._hashing import check_key_nesting, collision_probes
from ..audit import audit
from ..build import (
    Builder,
    _apply_build,
    _build_dict,
    class_build,
    construct,
    construct_error,
    plain_setstate,
    state_error,
)
from ..constraints import _class_call_without_arguments
from ..errors import ForbiddenOperationError, FormatError, LimitExceededError, SafeloadError
from ..graph import ParseContext
from ..jsonnest import MAX_VALUE_NESTING
from ..limits import Limits
from ..policy import Policy
from ..statechecks import check_state
from .npyio import dtype_from_json

try:  # optional C walk (Decoder.dec at C speed); the Python methods below are the reference
    from . import _walk  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - built without a compiler
    _walk = None

__all__ = ["Decoder", "decode_globals", "ref_ids"]

_IN_PROGRESS = object()
#: the plan flag of a ``call`` node's class that :func:`~safeload.build.class_build` accepted:
#: from its second node on, the C walk builds it as :meth:`Decoder._node` would (``fast_call``)
_FAST_CALL = object()
#: the slot of a finished value no ``ref`` of the graph names (``Decoder(keep=...)``): the
#: value itself is held only by what it was built into
_DROPPED = object()
_ATOMS = (str, int, float, bool, type(None))
_HEX = re.compile(r"-?[0-9a-f]+\Z")
_CONSTS = {"Ellipsis": Ellipsis, "NotImplemented": NotImplemented}
_FLOATS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}

_MAX_DIM = np.iinfo(np.intp).max
#: a vocabulary's values become Python ints this many at a time (rule G4's ``vi`` form)
_VI_SLICE = 4096
MAX_NESTING = MAX_VALUE_NESTING  # docs/FORMAT.md §6: the C walk's stack, not max_depth
_NDARRAY_KEYS = frozenset({"$", "i", "at", "shape", "order"})
_ITEMS_WHAT = (
    "values and container items of graph.json, shared references counted each time (a "
    "reference repeats the whole value: memo and hash bombs)"
)
#: Keys each tag may carry besides "$" (rule G3); required ones are checked by the handlers.
TAG_KEYS: dict[str, frozenset[str]] = {
    "ref": frozenset({"$", "id"}),
    "int": frozenset({"$", "v"}),
    "float": frozenset({"$", "v"}),
    "bytes": frozenset({"$", "v"}),
    "bytearray": frozenset({"$", "v"}),
    "complex": frozenset({"$", "v"}),
    "slice": frozenset({"$", "v"}),
    "const": frozenset({"$", "v"}),
    "tuple": frozenset({"$", "v"}),
    "set": frozenset({"$", "v"}),
    "frozenset": frozenset({"$", "v"}),
    "dict": frozenset({"$", "v", "items", "k", "vi"}),
    "dtype": frozenset({"$", "v"}),
    "scalar": frozenset({"$", "dtype", "v", "b64"}),
    "ndarray": frozenset({"$", "i", "at", "shape", "order"}),
    "objarray": frozenset({"$", "shape", "order", "v"}),
    "masked": frozenset({"$", "data", "mask", "fill_value"}),
    "global": frozenset({"$", "g"}),
    "obj": frozenset({"$", "g", "args", "kwargs", "state", "items", "setitems"}),
    "call": frozenset({"$", "g", "args", "kwargs", "state", "items", "setitems"}),
}


#: the method handling each tag (rule G3)
_HANDLERS = {
    "ref": "_ref",
    "int": "_int",
    "float": "_float",
    "bytes": "_bytes",
    "bytearray": "_bytes",
    "complex": "_complex",
    "slice": "_slice",
    "const": "_const",
    "tuple": "_tuple",
    "set": "_set",
    "frozenset": "_set",
    "dict": "_dict",
    "dtype": "_dtype",
    "scalar": "_scalar",
    "ndarray": "_ndarray",
    "objarray": "_objarray",
    "masked": "_masked",
    "global": "_global",
    "obj": "_node",
    "call": "_node",
}
_TABLES: dict[type, dict[str, tuple[Any, frozenset[str]]]] = {}


def _dispatch_table(cls: type) -> dict[str, tuple[Any, frozenset[str]]]:
    """tag -> (``cls``'s handler function, allowed keys), built once per decoder class (a
    subclass's overrides included): one lookup per value in :meth:`Decoder.dec`, and no
    bound-method table making each decoder a reference cycle."""
    table = _TABLES.get(cls)
    if table is None:
        table = {tag: (getattr(cls, name), TAG_KEYS[tag]) for tag, name in _HANDLERS.items()}
        _TABLES[cls] = table
    return table


def _all_atoms(items: list) -> bool:
    """True when no item of a JSON list needs decoding (C-speed type scan)."""
    return set(map(type, items)) <= _ATOM_TYPES


_ATOM_TYPES = frozenset(_ATOMS)
_VI_DTYPES = (np.dtype("<i4"), np.dtype("<i8"))
_STR_ONLY = {str}


def _check_collisions(keys: list, limits: Limits) -> None:
    """Refuse inserting keys whose colliding hashes would cost more probes than
    ``Limits.max_items`` allows (:mod:`safeload._hashing`).

    Raises
    ------
    LimitExceededError
        ``max_items``.
    """
    cost = collision_probes(keys)
    if cost > limits.max_items:
        raise LimitExceededError(
            "max_items",
            cost,
            limits.max_items,
            "probes to insert dict keys or set items with colliding hashes (hash flooding)",
        )


def _bad(rule: str, message: str) -> FormatError:
    return FormatError(f"safe format rule {rule}: {message}")


def check_globals_table(doc: dict) -> list[tuple[str, str]]:
    """The (module, qualname) pairs of graph.json's ``globals`` table, checked (rule G2).

    Raises
    ------
    FormatError
        A malformed table.
    """
    table = doc.get("globals")
    if type(table) is not list:
        raise _bad("G2", "'globals' must be a list of [module, qualname]")
    pairs = []
    seen = set()
    for entry in table:
        if (
            type(entry) is not list
            or len(entry) != 2
            or type(entry[0]) is not str
            or type(entry[1]) is not str
            or not entry[0]
            or not entry[1]
        ):
            raise _bad("G2", "each global is [module, qualname], two non-empty strings")
        pair = (entry[0], entry[1])
        if pair in seen:
            raise _bad("G2", f"global {pair[0]}.{pair[1]} listed twice")
        seen.add(pair)
        pairs.append(pair)
    return pairs


def decode_globals(doc: dict, policy: Policy) -> tuple[ParseContext, list[type], dict]:
    """Audit the graph's global table on its strings; resolve the trusted ones.

    Returns
    -------
    context, placeholders, resolved
        As the pickle path's audit produces them; ``placeholders[i]`` is global ``i``.

    Raises
    ------
    UntrustedTypesError
        Listing every untrusted global (nothing imported).
    FormatError
        A malformed table (rule G2).
    """
    context = ParseContext()
    placeholders = [context.reference(*pair) for pair in check_globals_table(doc)]
    resolved = audit(context, policy)
    return context, placeholders, resolved


class Decoder:
    """Decode one graph document whose arrays were already read and verified.

    Parameters
    ----------
    placeholders : list of type
        From :func:`decode_globals`.
    builder : Builder
        Holds the resolved globals, the policy and the limits.
    arrays : list of numpy.ndarray
        Array member ``i`` as ``arrays[i]``.
    ready : callable, optional
        ``ready(i)`` returns once the bytes of ``arrays[i]`` are all read (a reader thread
        fills large members while the graph is decoded, :func:`.archive.read_arrays`), or
        raises a :class:`~safeload.errors.SafeloadError`.  Called before a member's first use;
        None: every array is complete.
    consume : bool, default False
        Drop each item of a JSON list of the graph (a list's, an ``objarray``'s) from it once
        decoded, so the parsed graph is freed as the objects are built: for a graph decoded
        once, by its owner (:func:`.archive.load_parts`).  The values, counts and errors are
        the same either way, except where a ``ref`` hands a dict that is still being decoded
        to a trusted ``__setstate__``: the JSON it then sees of the values not yet decoded
        (raw graph JSON either way, a known gap from before, review 9) has its decoded list
        items dropped.
    keep : set or frozenset of int, optional
        The slot ids the graph's ``ref`` values name (:func:`ref_ids`).  Given, a finished
        value whose slot is not in ``keep`` leaves the slot table, and a whole-member array
        leaves ``arrays`` at its use: each lives as long as what it was built into (a forest's
        node arrays and the state dicts holding them go as each ``Tree`` copies them, where
        ``pickle.load``'s memo keeps them all to the end).  Same values, counts and errors; a
        ``ref`` to a dropped slot is ``FormatError`` G5 (none in the graph that was scanned;
        one that a trusted ``__setstate__`` writes into raw graph JSON it was handed through a
        ``ref`` to an unfinished dict can be, where ``keep=None`` would resolve it: review 10,
        docs/SECURITY.md).
    """

    _in_progress = _IN_PROGRESS  # for the C walk: a slot whose value is being built
    _fast_call = _FAST_CALL  # for the C walk: a call node it builds itself
    _dropped = _DROPPED  # for the C walk: a slot whose value was not kept
    _check_state = staticmethod(check_state)  # for the C walk: _apply_build's state check
    _apply_build = staticmethod(_apply_build)  # for the C walk: BUILD in other cases
    _build_dict = staticmethod(_build_dict)  # for the C walk: BUILD without __setstate__

    def __init__(
        self,
        placeholders: list[type],
        builder: Builder,
        arrays: list[np.ndarray],
        ready: Callable[[int], None] | None = None,
        consume: bool = False,
        keep: set[int] | frozenset[int] | None = None,
    ):
        self.placeholders = placeholders
        self._consume = consume
        self._keep = keep
        self._ready = ready
        self.builder = builder
        self.limits: Limits = builder.limits
        self.arrays = arrays
        self._array_used = [False] * len(arrays)
        self.slots: list[Any] = []
        #: (g, tag) -> (builder plan, "new"/"call", "module.qualname"): resolved once per global
        self._plans: dict[tuple[int, str], tuple[Any, str, str]] = {}
        self._shapes: dict[tuple, int] = {}
        self._pool_next: dict[int, int] = {}
        self._max_depth = min(self.limits.max_depth, MAX_NESTING)
        self._max_items = self.limits.max_items
        self.items = 0
        self._sizes: dict[int, int] = {}
        self._dispatch = _dispatch_table(type(self))
        self._walker: Any = None
        if _walk is not None and type(self) is Decoder:
            self._use_walker()

    def _use_walker(self) -> None:
        """Route :meth:`dec` and :meth:`_count` to the C walk (``_walk.c``): the same
        decoding, counting and errors as the methods here, which subclasses (and builds
        without a compiler) keep using.  The item count then lives in the walker."""
        walker = _walk.Walker(
            self,
            self._dispatch,
            _ATOM_TYPES,
            _NDARRAY_KEYS,
            self._max_depth,
            self._max_items,
            self._walk_error,
        )
        self._walker = walker
        self.dec = walker.dec  # type: ignore[method-assign]
        self._count = walker.count  # type: ignore[method-assign]
        self.__dict__.pop("items", None)  # counted by the walker: ``self._walker.items``

    def _walk_error(self, kind: str, a: Any, b: Any) -> None:
        """Raise the reference's error for a failure the C walk found (``kind``: which one)."""
        if kind == "max_items":
            raise LimitExceededError("max_items", a, self._max_items, _ITEMS_WHAT)
        if kind == "max_depth":
            raise LimitExceededError(
                "max_depth", a, self._max_depth, "nesting of values in graph.json"
            )
        if kind == "ndarray_keys":
            raise _bad("G3", "an 'ndarray' value has unknown keys")
        if kind == "unknown_tag":
            raise _bad("G3", f"unknown value tag {str(a)[:40]!r}")
        if kind == "unknown_keys":
            extra = sorted(set(b) - self._dispatch[a][1])[:3]
            raise _bad("G3", f"a {a!r} value has unknown keys {extra}")
        if kind == "json_type":
            raise _bad("G4", f"unexpected JSON value of type {a.__name__}")
        raise AssertionError(kind)  # pragma: no cover

    # ------------------------------------------------------------------ entry
    def release(self) -> None:
        """Drop every reference the decoder holds (so the arrays read from the file are freed
        now, not when the last reference to the decoder goes)."""
        if self._walker is not None:
            self._walker.release()  # it holds the decoder: a cycle until released
        self.slots = []
        self.arrays = []
        self._sizes = {}
        self._plans = {}

    def decode_root(self, value: Any) -> Any:
        """Decode ``value`` and validate every built object.

        Raises
        ------
        FormatError, ForbiddenOperationError, LimitExceededError, ValidationError
            Nothing else leaves (trusted callables failing on hostile state → FormatError).
        """
        return self.builder.run(lambda: self.dec(value, 0))

    def dec(self, v: Any, depth: int) -> Any:
        tp = type(v)
        if tp is dict:
            if depth > self._max_depth:
                raise LimitExceededError(
                    "max_depth", depth, self._max_depth, "nesting of values in graph.json"
                )
            tag = v.get("$")
            if tag == "ndarray":  # the commonest tag: inlined (rule G8)
                index = v.get("i")
                if "at" in v and type(index) is int and 0 <= index < len(self.arrays):
                    if not v.keys() <= _NDARRAY_KEYS:
                        raise _bad("G3", "an 'ndarray' value has unknown keys")
                    value = self._pooled(v, index)
                    self.slots.append(value)
                    if self._keep is not None:
                        self._drop(len(self.slots) - 1)
                    return value
            found = self._dispatch.get(tag) if type(tag) is str else None
            if found is None:
                raise _bad("G3", f"unknown value tag {str(tag)[:40]!r}")
            handler, allowed = found
            if not v.keys() <= allowed:
                extra = sorted(set(v) - allowed)[:3]
                raise _bad("G3", f"a {tag!r} value has unknown keys {extra}")
            slots = self.slots
            slot = len(slots)
            start = self.items
            self.items = start + 1  # _count(1), inlined: this runs once per tagged value
            if start + 1 > self._max_items:
                self._count(0)
            result = handler(self, v, depth + 1)
            if slot < len(slots):
                # what a reference to this value repeats (memo bombs, tuple hash bombs)
                self._sizes[slot] = self.items - start
                if self._keep is not None:
                    self._drop(slot)
            return result
        if tp is list:
            if depth > self._max_depth:
                raise LimitExceededError(
                    "max_depth", depth, self._max_depth, "nesting of values in graph.json"
                )
            out: list = []
            slot = len(self.slots)
            self.slots.append(out)
            start = self.items
            self._count(1 + len(v))
            dec = self.dec
            depth += 1
            if self._consume:
                out.extend(_consumed(v, dec, depth))
            else:
                for x in v:
                    out.append(x if type(x) in _ATOMS else dec(x, depth))
            self._sizes[slot] = self.items - start
            if self._keep is not None:
                self._drop(slot)
            return out
        if tp is str or tp is int or tp is float or tp is bool or v is None:
            return v
        raise _bad("G4", f"unexpected JSON value of type {tp.__name__}")  # pragma: no cover

    def _drop(self, slot: int) -> None:
        """``Decoder(keep=...)``: a finished value whose slot no ref names is held by the
        slot table no longer (by what it was built into, if anything)."""
        if slot not in self._keep:  # type: ignore[operator]
            self.slots[slot] = _DROPPED

    def _reserve(self) -> int:
        self.slots.append(_IN_PROGRESS)
        return len(self.slots) - 1

    def _count(self, n: int) -> None:
        """Count values and container items, shared references expanded (``max_items``), as
        :meth:`safeload.build.Builder._count` does for pickles."""
        self.items += n
        if self.items > self._max_items:
            raise LimitExceededError("max_items", self.items, self._max_items, _ITEMS_WHAT)

    def _arguments(self, v: dict, kind: str, depth: int) -> tuple[tuple, dict | None]:
        """An ``obj``/``call`` node's ``args`` and ``kwargs`` (rule G4), decoded."""
        dec = self.dec
        raw_args = v.get("args")
        if raw_args is None:
            args: tuple = ()
        elif type(raw_args) is list:
            args = tuple([x if type(x) in _ATOMS else dec(x, depth) for x in raw_args])
        else:
            raise _bad("G4", f"{kind!r}.args must be a list")
        kwargs = v.get("kwargs")
        if kwargs is not None:
            if type(kwargs) is not dict or not kwargs:
                raise _bad("G4", "'kwargs' is a non-empty JSON object")
            kwargs = {k: dec(x, depth) for k, x in kwargs.items()}
        return args, kwargs

    def _items(self, v: dict, kind: str, depth: int) -> list:
        """A node's ``items``, counted and decoded."""
        raw_items = self._list_field(v, "items", kind)
        self._count(len(raw_items))
        dec = self.dec
        return [dec(x, depth) for x in raw_items]

    def _pairs(self, v: dict, key: str, what: str, depth: int) -> list[tuple[Any, Any]]:
        """``[[key, value], ...]`` pairs (a dict's ``items``, a node's ``setitems``): counted,
        decoded, and their keys checked for colliding hashes before anything is inserted."""
        raw_pairs = self._list_field(v, key, what)
        self._count(len(raw_pairs))
        dec = self.dec
        pairs = []
        for pair in raw_pairs:
            if type(pair) is not list or len(pair) != 2:
                raise _bad("G4", f"{what!r}.{key} holds [key, value] pairs")
            pairs.append((dec(pair[0], depth), dec(pair[1], depth)))
        _check_collisions([k for k, _ in pairs], self.limits)
        return pairs

    def _list_field(self, v: dict, key: str, tag: str, required: bool = True) -> list:
        items = v.get(key)
        if type(items) is not list:
            if items is None and not required:
                return []
            raise _bad("G4", f"{tag!r}.{key} must be a list")
        return items

    # ------------------------------------------------------------------ atoms
    def _ref(self, v: dict, depth: int) -> Any:
        ref = v.get("id")
        if type(ref) is not int or not 0 <= ref < len(self.slots):
            raise _bad("G5", "a reference must name an earlier value")
        hit = self.slots[ref]
        if hit is _IN_PROGRESS:
            raise _bad("G5", "a value is referenced inside its own construction")
        if hit is _DROPPED:  # keep holds every id a ref of the graph names: not reached
            raise _bad("G5", "a reference names a value the decoder did not keep")
        self._count(self._sizes.get(ref, 0))
        return hit

    def _int(self, v: dict, depth: int) -> int:
        text = v.get("v")
        if type(text) is not str or not _HEX.match(text):
            raise _bad("G4", "'int' holds a hexadecimal string")
        if len(text) > 2 * self.limits.max_int_bytes + 1:
            raise LimitExceededError(
                "max_int_bytes", len(text) // 2, self.limits.max_int_bytes, "integer literal"
            )
        return int(text, 16)

    def _float(self, v: dict, depth: int) -> float:
        value = _FLOATS.get(v.get("v")) if type(v.get("v")) is str else None
        if value is None:
            raise _bad("G4", "'float' holds one of nan, inf, -inf")
        return value

    def _real(self, x: Any) -> float:
        if type(x) is float or type(x) is int:
            return float(x)
        if type(x) is dict and x.get("$") == "float" and len(x) == 2:
            return self._float(x, 0)
        raise _bad("G4", "expected a number")

    def _bytes(self, v: dict, depth: int) -> Any:
        text = v.get("v")
        if type(text) is not str:
            raise _bad("G4", "'bytes' holds base64 text")
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise _bad("G4", "invalid base64") from None
        value = raw if v["$"] == "bytes" else bytearray(raw)
        self.slots.append(value)
        return value

    def _complex(self, v: dict, depth: int) -> complex:
        parts = v.get("v")
        if type(parts) is not list or len(parts) != 2:
            raise _bad("G4", "'complex' holds [real, imag]")
        value = complex(self._real(parts[0]), self._real(parts[1]))
        self.slots.append(value)
        return value

    def _const(self, v: dict, depth: int) -> Any:
        name = v.get("v")
        if type(name) is not str or name not in _CONSTS:
            raise _bad("G4", "'const' is Ellipsis or NotImplemented")
        value = _CONSTS[name]
        self.slots.append(value)
        return value

    # ------------------------------------------------------------------ containers
    def _slice(self, v: dict, depth: int) -> slice:
        parts = v.get("v")
        if type(parts) is not list or len(parts) != 3:
            raise _bad("G4", "'slice' holds [start, stop, step]")
        slot = self._reserve()
        value = slice(*[self.dec(x, depth) for x in parts])
        self.slots[slot] = value
        return value

    def _tuple(self, v: dict, depth: int) -> tuple:
        items = self._list_field(v, "v", "tuple")
        self._count(len(items))
        slot = self._reserve()
        dec = self.dec
        value = tuple([x if type(x) in _ATOMS else dec(x, depth) for x in items])
        self.slots[slot] = value
        return value

    def _set(self, v: dict, depth: int) -> Any:
        items = self._list_field(v, "v", v["$"])
        self._count(len(items))
        dec = self.dec
        frozen = v["$"] == "frozenset"
        slot = self._reserve()
        if _all_atoms(items):  # C speed for large sets of strings (stop_words_)
            _check_collisions(items, self.limits)
            value: Any = frozenset(items) if frozen else set(items)
        elif frozen:
            built = [dec(x, depth) for x in items]
            check_key_nesting(built, "a frozenset of graph.json")  # refs nest past the JSON's
            _check_collisions(built, self.limits)
            value = frozenset(built)
        else:
            value = set()
            self.slots[slot] = value  # a set may hold objects whose state refers back to it
            built = [dec(x, depth) for x in items]
            check_key_nesting(built, "a set of graph.json")  # refs nest past the JSON's depth
            _check_collisions(built, self.limits)
            value.update(built)
        self.slots[slot] = value
        if len(value) != len(items):
            raise _bad("G6", "a set lists the same item twice")
        return value

    def _dict(self, v: dict, depth: int) -> dict:
        # {"$", "v"} (dec checked the keys), the commonest form, needs no further key test
        if len(v) != 2 or "v" not in v:
            forms = ("v" in v) + ("items" in v) + ("k" in v)
            if forms != 1 or ("k" in v) != ("vi" in v):
                raise _bad("G4", "a 'dict' has exactly one of v, items, or k with vi")
        dec = self.dec
        if "v" in v:
            value = v["v"]
            if type(value) is not dict:
                raise _bad("G4", "'dict'.v must be a JSON object")
            self._count(len(value))
            self.slots.append(value)
            for key, item in value.items():
                if type(item) not in _ATOMS:
                    value[key] = dec(item, depth)
            return value
        if "items" in v:
            value = {}
            self.slots.append(value)
            pairs = self._pairs(v, "items", "dict", depth)
            check_key_nesting([pair[0] for pair in pairs], "a dict of graph.json")
            value.update(pairs)
            if len(value) != len(pairs):
                raise _bad("G6", "a dict lists the same key twice")
            return value
        keys = v["k"]
        if type(keys) is not list or (keys and set(map(type, keys)) != _STR_ONLY):
            raise _bad("G4", "'dict'.k holds strings")
        self._count(len(keys))
        value = {}
        self.slots.append(value)
        ints = dec(v["vi"], depth)
        if (
            type(ints) is not np.ndarray
            or ints.dtype not in _VI_DTYPES
            or ints.ndim != 1
            or ints.shape[0] != len(keys)
        ):
            raise _bad("G4", "'dict'.vi is a 1-d int32 or int64 array as long as k")
        # in slices: a list of Python ints for the whole array would double the transient
        for at in range(0, len(keys), _VI_SLICE):
            part = ints[at : at + _VI_SLICE].tolist()
            value.update(zip(keys[at : at + _VI_SLICE], part, strict=True))
        if len(value) != len(keys):
            raise _bad("G6", "a dict lists the same key twice")
        return value

    # ------------------------------------------------------------------ numpy
    def _dtype(self, v: dict, depth: int) -> np.dtype:
        descr = v.get("v")
        value = np.dtype(object) if descr == "|O" else dtype_from_json(descr)
        self.slots.append(value)
        return value

    def _scalar(self, v: dict, depth: int) -> Any:
        dtype = self._dtype({"v": v.get("dtype")}, depth)
        self.slots.pop()
        if dtype.hasobject:
            raise _bad("G7", "numpy object scalars are not allowed")
        if dtype.itemsize > self.limits.max_array_bytes:
            raise LimitExceededError(
                "max_array_bytes", dtype.itemsize, self.limits.max_array_bytes, "a numpy scalar"
            )
        if ("v" in v) == ("b64" in v):
            raise _bad("G4", "a 'scalar' holds exactly one of v, b64")
        try:
            if "v" in v:
                x = v["v"]
                kind = dtype.kind
                ok = (
                    (kind == "b" and type(x) is bool)
                    or (kind in "iu" and type(x) is int)
                    or (kind == "f" and dtype.itemsize <= 8)
                    or (kind == "U" and type(x) is str)
                )
                if not ok:
                    raise _bad("G7", f"scalar value does not fit dtype {dtype}")
                if kind == "f":
                    x = self._real(x)
                value = np.array(x, dtype=dtype)[()]
            else:
                raw = base64.b64decode(v["b64"], validate=True)
                if dtype.kind == "S":
                    value = dtype.type(raw)
                    if value.dtype != dtype:
                        raise _bad("G7", "bytes scalar does not match its dtype")
                    self.slots.append(value)
                    return value
                if len(raw) != dtype.itemsize:
                    raise _bad("G7", "scalar bytes do not match the dtype's size")
                if dtype.itemsize == 0 and dtype.kind in "SV":
                    value = dtype.type(b"")  # np.bytes_(b"") / np.void(b""): no buffer to view
                else:
                    value = np.frombuffer(raw, dtype=dtype).copy()[0]
        except SafeloadError:
            raise
        except (TypeError, ValueError, OverflowError, binascii.Error) as exc:
            raise _bad("G7", f"bad scalar: {exc}") from None
        self.slots.append(value)
        return value

    def _ndarray(self, v: dict, depth: int) -> np.ndarray:
        index = v.get("i")
        if type(index) is not int or not 0 <= index < len(self.arrays):
            raise _bad("G8", "'ndarray'.i names an array of the table")
        if "at" in v:
            value = self._pooled(v, index)
        else:
            if len(v) != 2:
                raise _bad("G8", "a whole-member 'ndarray' has only i")
            if self._array_used[index]:
                raise _bad("G8", "an array member is used by two values (use a reference)")
            self._array_used[index] = True
            if self._ready is not None:
                self._ready(index)
            value = self.arrays[index]
            if self._keep is not None:  # held from now on by what it is built into
                self.arrays[index] = None
        self.slots.append(value)
        return value

    def _pooled(self, v: dict, index: int) -> np.ndarray:
        """A small array stored as a slice of a 1-d pool member (FORMAT.md §4.4, rule G8).

        Slices of one pool must follow each other in graph order (``at`` equal to the end of
        the previous one), so no two values share bytes.  The result is a view of the pool (as
        arrays unpickled from protocol 5 are views of their buffer): writable when the pool
        was copied from the file, read-only under ``mmap_mode="r"``.
        """
        at = v["at"]
        shape = v.get("shape")
        order = v.get("order", "C")
        if type(shape) is not list:
            raise _bad("G8", "a pooled 'ndarray' has a shape list")
        key = tuple(shape)
        count = self._shapes.get(key)
        if count is None:
            if len(shape) > 64 or not all(type(n) is int and 0 <= n <= _MAX_DIM for n in shape):
                raise _bad("G8", "a pooled 'ndarray' shape is a list of ints >= 0")
            count = self._shapes[key] = math.prod(shape)
        expected = self._pool_next.get(index)
        if expected is None:  # the pool's first slice: the C walk takes the later ones
            if self._array_used[index]:
                raise _bad("G8", "a pool is a 1-d member not otherwise used")
            self._array_used[index] = True
            if self._ready is not None:
                self._ready(index)  # a large member is in arrays once asked for
            if self.arrays[index].ndim != 1:
                raise _bad("G8", "a pool is a 1-d member not otherwise used")
            expected = 0
        pool = self.arrays[index]
        if at != expected or type(at) is not int or at + count > pool.shape[0]:
            raise _bad(
                "G8", "pooled arrays follow each other inside their pool (at = end of the last)"
            )
        self._pool_next[index] = at + count
        part = pool[at : at + count]
        if len(shape) == 1 and order == "C":
            return part
        if order != "C" and order != "F":
            raise _bad("G8", "a pooled 'ndarray' has order C or F")
        return part.reshape(key, order=order)

    def _objarray(self, v: dict, depth: int) -> np.ndarray:
        shape = v.get("shape")
        order = v.get("order")
        items = self._list_field(v, "v", "objarray")
        if (
            type(shape) is not list
            or not all(type(n) is int and 0 <= n <= _MAX_DIM for n in shape)
            or order not in ("C", "F")
            or len(shape) > 64
        ):
            raise _bad("G8", "'objarray' has a shape of ints and order C or F")
        self._count(len(items))
        if math.prod(shape) != len(items):
            raise _bad("G8", "'objarray' holds as many items as its shape says")
        slot = self._reserve()
        dec = self.dec
        flat = np.fromiter(
            _consumed(items, dec, depth)
            if self._consume
            else (x if type(x) in _ATOMS else dec(x, depth) for x in items),
            dtype=object,
            count=len(items),
        )
        value = flat.reshape(shape, order=order)
        self.slots[slot] = value
        return value

    def _masked_parts(self, v: dict, depth: int) -> tuple[int, Any, Any, Any]:
        """``(slot, data, mask, fill_value)`` of a ``masked`` value, checked (rules G4, G8)."""
        if not {"data", "mask", "fill_value"} <= v.keys():
            raise _bad("G4", "'masked' holds data, mask and fill_value")
        slot = self._reserve()
        data = self.dec(v["data"], depth)
        mask = self.dec(v["mask"], depth)
        fill = self.dec(v["fill_value"], depth)
        if (
            not self._is_array(data)
            or not self._is_array(mask)
            or mask.dtype != np.bool_
            or mask.shape != data.shape
        ):
            raise _bad("G8", "'masked' data is an array and mask a bool array of its shape")
        return slot, data, mask, fill

    @staticmethod
    def _is_array(x: Any) -> bool:
        return type(x) is np.ndarray

    def _masked(self, v: dict, depth: int) -> Any:
        slot, data, mask, fill = self._masked_parts(v, depth)
        try:
            value = np.ma.MaskedArray(data, mask=mask, copy=False)
            if fill is not None:
                value.fill_value = fill
        except (TypeError, ValueError) as exc:
            raise _bad("G8", f"bad masked array: {exc}") from None
        self.slots[slot] = value
        return value

    # ------------------------------------------------------------------ globals and objects
    def _placeholder(self, v: dict) -> int:
        index = v.get("g")
        if type(index) is not int or not 0 <= index < len(self.placeholders):
            raise _bad("G2", "'g' names a global of the table")
        return index

    def _global(self, v: dict, depth: int) -> Any:
        index = self._placeholder(v)
        value = self.builder._resolve(self.placeholders[index])
        self.slots.append(value)
        return value

    def _node(self, v: dict, depth: int) -> Any:
        index = v.get("g")
        if type(index) is not int:  # before the cache: 0.0 and True equal 0 and 1 as keys
            raise _bad("G2", "'g' names a global of the table")
        key = (index, v["$"])
        entry = self._plans.get(key)
        if entry is None:
            kind = "new" if v["$"] == "obj" else "call"
            index = self._placeholder(v)
            plan = self.builder.plan(self.placeholders[index], kind)
            if kind == "new":
                plain = plan[2] in (None, _class_call_without_arguments) and plain_setstate(plan[0])
            else:  # the C walk builds later nodes of this class itself (_walk.c, fast_call)
                plain = _FAST_CALL if class_build(plan[0]) else False
            entry = self._plans[key] = (plan, kind, f"{plan[1][0]}.{plan[1][1]}", plain)
        plan, kind, name, plain = entry
        slots = self.slots
        slot = len(slots)
        slots.append(_IN_PROGRESS)
        if plain is True and len(v) == 3 and "state" in v:
            return self._plain_node(v, depth, plan, name, slot)
        if "args" in v or "kwargs" in v:
            args, kwargs = self._arguments(v, kind, depth)
        else:  # what _arguments returns for neither (most objects: state only)
            args, kwargs = (), None
        builder = self.builder
        result = builder.invoke(plan, kind, args, kwargs)
        slots[slot] = result
        if "state" in v:
            self._set_state(result, v["state"], depth, name, None)
        if "items" in v:
            _extend(result, self._items(v, kind, depth), name)
        if "setitems" in v:
            for key, item in self._pairs(v, "setitems", kind, depth):
                _setitem(result, key, item, name)
        builder.finish(result, plan[1])
        return result

    def _plain_node(self, v: dict, depth: int, plan: tuple, name: str, slot: int) -> Any:
        """``{"$": "obj", "g", "state"}`` of a class without a call rule whose ``BUILD`` is its
        ``__setstate__`` (most estimators): what :meth:`_node` does through ``invoke`` and
        ``_apply_build``, without their steps for other cases."""
        cls, pair, _rule = plan
        result = construct(cls, pair, "new", (), {}, self.limits)
        self.slots[slot] = result
        self._set_state(result, v["state"], depth, name, cls)
        self.builder.finish(result, pair)
        return result

    def _set_state(self, result: Any, state: Any, depth: int, name: str, plain: Any) -> None:
        """Decode a node's ``state`` and set it (``BUILD``): by ``__setstate__`` alone when
        ``result`` is exactly ``plain`` (a class :func:`~safeload.build.plain_setstate`
        accepted), else through :func:`~safeload.build._apply_build`."""
        if type(state) not in _ATOM_TYPES:
            state = self.dec(state, depth)
        try:
            if plain is not None and type(result) is plain:
                result.__setstate__(state)
            else:
                _apply_build(result, state, name)
        except Exception as exc:  # noqa: BLE001 - mirrors Builder._apply_ops
            error = state_error(exc, name)
            if error is exc:
                raise
            raise error from exc

    def _obj_error(self, stage: str, exc: BaseException, name: str, pair: tuple) -> None:
        """Raise what :meth:`_plain_node` raises when ``cls.__new__`` (``stage="new"``) or
        ``__setstate__`` (``"state"``) raised ``exc``, for the C walk (``_walk.c``), which
        builds those nodes itself once :meth:`_node` found their plan plain."""
        if stage == "new":
            error = construct_error(exc, pair, self.limits)
        else:
            error = state_error(exc, name)
        if error is exc:
            raise exc
        raise error from exc


def ref_ids(doc: Any) -> set[int]:
    """Every ``id`` of a ``{"$": "ref", "id": int}`` object anywhere in parsed JSON ``doc``
    (for ``Decoder(keep=...)``): every object and list is visited, whatever it means, so a
    ref the decoder could meet is never missed (an object that only looks like one, e.g. a
    dict literal's items, adds an id: a slot kept, nothing more).  In C when built."""
    if _walk is not None:
        return _walk.ref_ids(doc)
    found: set[int] = set()
    stack = [doc]
    while stack:
        x = stack.pop()
        if type(x) is dict:
            if x.get("$") == "ref" and type(x.get("id")) is int:
                found.add(x["id"])
            stack.extend(x.values())
        elif type(x) is list:
            stack.extend(x)
    return found


def _consumed(items: list, dec: Callable[[Any, int], Any], depth: int) -> Iterator[Any]:
    """Decode ``items`` (a JSON list of the graph) in order, dropping each decoded item from
    the list at once (``Decoder(consume=True)``): the parsed graph shrinks as the objects it
    describes are built (a boosted model's trees, docs/PERFORMANCE.md, session 9)."""
    for k, x in enumerate(items):
        if type(x) in _ATOMS:
            yield x
        else:
            value = dec(x, depth)
            items[k] = None
            yield value


def _extend(obj: Any, items: list, name: str) -> None:
    """``APPENDS`` as ``pickle._Unpickler.load_appends`` does it."""
    try:
        extend = getattr(obj, "extend", None)
        if extend is not None:
            extend(items)
        else:
            for x in items:
                obj.append(x)
    except SafeloadError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise FormatError(f"adding items to {name} failed: {type(exc).__name__}: {exc}") from exc


def _setitem(obj: Any, key: Any, value: Any, name: str) -> None:
    if isinstance(obj, type):
        raise ForbiddenOperationError("build-on-global", f"setitem on the class {name}")
    try:
        obj[key] = value
    except SafeloadError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise FormatError(f"setting items of {name} failed: {type(exc).__name__}: {exc}") from exc
