"""Inspector of safe-format files (``safeload.dump``): the JSON graph, described without
building anything and without reading any array data.

The archive's structure, ``manifest.json`` and ``graph.json`` are read by the loader's own strict
reader (:func:`safeload.format.archive.open_archive`, which also checks the SHA-256 of
``graph.json``); array members are never opened: an array's shape and dtype come from the graph's
``arrays`` table.  Tagged values (``docs/FORMAT.md`` §4) map onto the shared tree records:

* ``obj`` nodes, and ``call`` nodes that carry a state or items (``Tree(...)`` + state,
  numpy's random-state constructor + state, Cython's ``__pyx_unpickle_*``) → objects;
* other ``call`` nodes → calls the loader would make;
* ``ndarray`` → its shape (its own, for a slice of a pooled member, else its ``arrays``
  entry's) and its dtype from the ``dtypes`` table; ``objarray``, ``masked`` and ``scalar`` → arrays and
  numpy scalars; ``global`` → references; ``ref`` → the value it refers back to (implicit ids
  are numbered in document order, as the decoder numbers them).

Every global gets the policy's verdict from its strings; nothing is imported except the trusted
scikit-learn classes :class:`~safeload.inspection.tree.TreeBuilder` reads defaults from.
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import Any

import numpy as np

from ..errors import FormatError
from ..format.archive import open_archive
from ..format.npyio import dtype_from_json
from ..policy import format_name
from ..source import Source
from .dtypes import decode_scalar, label_of
from .report import GlobalInfo, InspectReport, Problem
from .tree import (
    Array,
    Atom,
    Described,
    InspectOptions,
    Instance,
    Invocation,
    Mapping,
    Opaque,
    Reference,
    Seq,
    TreeBuilder,
)

__all__ = ["inspect_safe_file", "SafeGraphDescriber", "number_values"]

Pair = tuple[str, str]

_NO_ID = frozenset({"ref", "int", "float"})
_RANDOM_STATE = {
    ("numpy.random._pickle", "__randomstate_ctor"): ("numpy.random.mtrand", "RandomState"),
    ("numpy.random._pickle", "__generator_ctor"): ("numpy.random._generator", "Generator"),
}
_CONTAINERS = {
    ("builtins", "set"): "set",
    ("builtins", "frozenset"): "frozenset",
    ("builtins", "list"): "list",
    ("builtins", "tuple"): "tuple",
}
_FLOATS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
#: Items of an object array searched for nested objects.
_OBJECT_ARRAY_ITEMS = 1000
#: Longest hexadecimal ``int`` literal decoded (longer ones are shown by size).
_MAX_HEX = 64


def _as_list(value: Any) -> list[Any]:
    return value if type(value) is list else []


def _children(v: Any) -> list[Any]:
    """The values directly inside ``v``, in the decoder's order (structural lists excluded)."""
    if type(v) is list:
        return v
    if type(v) is not dict:
        return []
    tag = v.get("$")
    out: list[Any] = []
    if tag in ("tuple", "set", "frozenset", "slice", "objarray"):
        items = v.get("v")
        return items if type(items) is list else []
    if tag == "dict":
        if type(v.get("v")) is dict:
            return list(v["v"].values())
        if type(v.get("items")) is list:
            for pair in v["items"]:
                if type(pair) is list:
                    out.extend(pair)
            return out
        return [v["vi"]] if "vi" in v else []
    if tag == "masked":
        return [v.get("data"), v.get("mask"), v.get("fill_value")]
    if tag in ("obj", "call"):
        if type(v.get("args")) is list:
            out.extend(v["args"])
        if type(v.get("kwargs")) is dict:
            out.extend(v["kwargs"].values())
        if "state" in v:
            out.append(v["state"])
        if type(v.get("items")) is list:
            out.extend(v["items"])
        if type(v.get("setitems")) is list:
            for pair in v["setitems"]:
                if type(pair) is list:
                    out.extend(pair)
        return out
    return out


def number_values(root: Any, max_items: int) -> list[Any]:
    """The values that take implicit ids (``docs/FORMAT.md`` §4.2), in id order: every list
    and every tagged value except ``ref``, ``int`` and ``float``, in document pre-order.

    Raises
    ------
    FormatError
        More than ``max_items`` values.
    """
    table: list[Any] = []
    stack = [root]
    while stack:
        v = stack.pop()
        tp = type(v)
        if tp is list:
            table.append(v)
        elif tp is dict:
            if v.get("$") not in _NO_ID:
                table.append(v)
        else:
            continue
        if len(table) > max_items:
            raise FormatError(f"graph.json holds more than {max_items:,} values")
        stack.extend(reversed(_children(v)))
    return table


def _state_items(state: Any, resolve: Any) -> list[tuple[Any, Any]] | None:
    """Entries of an object's state: a dict, or ``(dict, slots dict)``."""
    state = resolve(state)
    if type(state) is dict and state.get("$") == "dict":
        return _dict_items(state)
    if type(state) is dict and state.get("$") == "tuple" and type(state.get("v")) is list:
        parts = [resolve(p) for p in state["v"]]
        if len(parts) == 2 and all(
            p is None or (type(p) is dict and p.get("$") == "dict") for p in parts
        ):
            out: list[tuple[Any, Any]] = []
            for part in parts:
                if part is not None:
                    out.extend(_dict_items(part))
            return out
    return None


class _IntFromArray:
    """Stands for one value of a ``dict`` stored as keys + an int64 array (``k``/``vi``)."""


_ARRAY_INT = _IntFromArray()


class _KeysOfIntArray:
    """``(key, int)`` pairs of a ``k``/``vi`` dict, produced lazily (200k-term vocabularies)."""

    def __init__(self, keys: list) -> None:
        self.keys = keys

    def __len__(self) -> int:
        return len(self.keys)

    def __iter__(self):
        return ((k, _ARRAY_INT) for k in self.keys)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [(k, _ARRAY_INT) for k in self.keys[index]]
        return (self.keys[index], _ARRAY_INT)


def _dict_items(v: dict) -> list[tuple[Any, Any]]:
    if type(v.get("v")) is dict:
        return list(v["v"].items())
    if type(v.get("items")) is list:
        return [(p[0], p[1]) for p in v["items"] if type(p) is list and len(p) == 2]
    if type(v.get("k")) is list:
        return [(k, _ARRAY_INT) for k in v["k"]]
    return []


class SafeGraphDescriber:
    """Turns values of a safe-format graph into :mod:`.tree` descriptions (never decodes
    arrays, never builds objects).

    Parameters
    ----------
    doc : dict
        ``graph.json``.
    policy : Policy
        Gives today's spelling of each global (aliases); nothing is resolved.
    ids : list
        :func:`number_values` of the graph's values, for ``ref``.
    """

    def __init__(self, doc: dict, policy: Any, ids: list[Any]) -> None:
        self.globals = _as_list(doc.get("globals"))
        self.arrays = _as_list(doc.get("arrays"))
        self.dtypes = _as_list(doc.get("dtypes"))
        self._labels: dict[int, str | None] = {}
        self.policy = policy
        self.ids = ids

    # -- helpers ------------------------------------------------------------------------------
    def resolve(self, v: Any) -> Any:
        """Follow ``ref`` values (a few hops at most) to the value they name."""
        for _ in range(4):
            if type(v) is dict and v.get("$") == "ref":
                ref = v.get("id")
                if type(ref) is not int or not 0 <= ref < len(self.ids):
                    return None
                v = self.ids[ref]
            else:
                break
        return v

    def pair(self, v: dict) -> tuple[Pair, Pair] | None:
        """``(canonical, raw)`` of the global a node's ``g`` names, or None."""
        g = v.get("g")
        if type(g) is not int or not 0 <= g < len(self.globals):
            return None
        entry = self.globals[g]
        if type(entry) is not list or len(entry) != 2 or not all(type(x) is str for x in entry):
            return None
        raw = (entry[0], entry[1])
        return self.policy.canonical(raw), raw

    def dtype_label(self, descr: Any) -> str | None:
        if descr == "|O":
            return "object"
        try:
            return label_of(dtype_from_json(descr))
        except Exception:  # noqa: BLE001 - FormatError, TypeError from numpy
            return None

    def table_label(self, index: Any) -> str | None:
        """Name of entry ``index`` of the graph's ``dtypes`` table (array members)."""
        if type(index) is not int or not 0 <= index < len(self.dtypes):
            return None
        if index not in self._labels:
            self._labels[index] = self.dtype_label(self.dtypes[index])
        return self._labels[index]

    # -- values -------------------------------------------------------------------------------
    def __call__(self, v: Any) -> Described:
        if v is _ARRAY_INT:
            return Opaque("int", detail="in an int64 array")
        tp = type(v)
        if tp in (str, int, float, bool) or v is None:
            return Atom(v)
        if tp is list:
            return Seq("list", v)
        if tp is not dict:
            return Opaque(tp.__name__)
        tag = v.get("$")
        if tag == "ref":
            target = self.resolve(v)
            if target is None or target is v:
                return Opaque("ref", verdict="forbidden", detail="refers to no earlier value")
            return self(target)
        handler = _HANDLERS.get(tag) if type(tag) is str else None
        if handler is None:
            return Opaque("value", verdict="forbidden", detail=f"unknown tag {str(tag)[:40]!r}")
        return handler(self, v)

    def _int(self, v: dict) -> Described:
        text = v.get("v")
        if type(text) is not str:
            return Opaque("int", verdict="forbidden", detail="malformed int")
        if len(text) > _MAX_HEX:
            return Opaque("int", detail=f"<int of about {len(text) * 4} bits>")
        try:
            return Atom(int(text, 16))
        except ValueError:
            return Opaque("int", verdict="forbidden", detail="malformed int")

    def _float(self, v: dict) -> Described:
        value = _FLOATS.get(str(v.get("v")))
        return Atom(value) if value is not None else Opaque("float", detail="malformed float")

    def _bytes(self, v: dict) -> Described:
        text = v.get("v")
        try:
            raw = base64.b64decode(text, validate=True) if type(text) is str else None
        except (binascii.Error, ValueError):
            raw = None
        if raw is None:
            return Opaque(v["$"], verdict="forbidden", detail="invalid base64")
        return Atom(raw if v["$"] == "bytes" else bytearray(raw))

    _bytearray = _bytes

    def _complex(self, v: dict) -> Described:
        parts = v.get("v")
        if type(parts) is list and len(parts) == 2:
            nums = [
                p if type(p) in (int, float) else _FLOATS.get(str(p.get("v")), math.nan)
                for p in parts
                if type(p) in (int, float, dict)
            ]
            if len(nums) == 2:
                return Atom(complex(float(nums[0]), float(nums[1])))
        return Opaque("complex", detail="malformed complex")

    def _const(self, v: dict) -> Described:
        return Opaque(str(v.get("v"))[:20])

    def _slice(self, v: dict) -> Described:
        return Opaque("slice")

    def _tuple(self, v: dict) -> Described:
        return Seq("tuple", _as_list(v.get("v")))

    def _set(self, v: dict) -> Described:
        return Seq(v["$"], _as_list(v.get("v")))

    _frozenset = _set

    def _dict(self, v: dict) -> Described:
        if type(v.get("k")) is list:  # keys + an int array: values are ints, shown by count
            return Mapping(_KeysOfIntArray(v["k"]), atoms_only=True)  # type: ignore[arg-type]
        return Mapping(_dict_items(v))

    def _dtype(self, v: dict) -> Described:
        return Opaque("numpy.dtype", detail=self.dtype_label(v.get("v")) or "?")

    def _scalar(self, v: dict) -> Described:
        label = self.dtype_label(v.get("dtype"))
        if label is None:
            return Opaque("numpy scalar", detail="malformed dtype")
        name = label.lstrip(">")
        type_name = f"numpy.{name}" if name.isidentifier() else "numpy.generic"
        raw = None
        try:
            dtype = dtype_from_json(v.get("dtype"))
            if "b64" in v and type(v["b64"]) is str and len(v["b64"]) <= 64:
                raw = base64.b64decode(v["b64"], validate=True)
            elif type(v.get("v")) in (int, float, bool) and dtype.kind in "biuf":
                raw = np.array(v["v"], dtype=dtype).tobytes()
            elif type(v.get("v")) is dict and dtype.kind == "f":
                raw = np.array(_FLOATS.get(v["v"].get("v"), math.nan), dtype=dtype).tobytes()
        except Exception:  # noqa: BLE001 - overflow, bad base64: shown without a value
            raw = None
        return Array(type_name, None, label, value=decode_scalar(label, raw))

    def _ndarray(self, v: dict) -> Described:
        index = v.get("i")
        if type(index) is not int or not 0 <= index < len(self.arrays):
            return Opaque("numpy.ndarray", verdict="forbidden", detail="no such array member")
        spec = self.arrays[index]
        if type(spec) is not dict:
            return Opaque("numpy.ndarray", verdict="forbidden", detail="malformed array entry")
        # a pooled array (a slice of a 1-d member shared by small arrays) has its own shape
        shape = v.get("shape") if "at" in v else spec.get("shape")
        if type(shape) is not list or not all(type(d) is int for d in shape):
            return Opaque("numpy.ndarray", verdict="forbidden", detail="malformed array shape")
        return Array("numpy.ndarray", tuple(shape), self.table_label(spec.get("dtype")))

    def _objarray(self, v: dict) -> Described:
        shape = v.get("shape")
        items = _as_list(v.get("v"))
        if type(shape) is not list or not all(type(d) is int for d in shape):
            return Opaque("numpy.ndarray", verdict="forbidden", detail="malformed object array")
        return Array("numpy.ndarray", tuple(shape), "object", items=items[:_OBJECT_ARRAY_ITEMS])

    def _masked(self, v: dict) -> Described:
        data = self(v.get("data"))
        if isinstance(data, Array):
            data.type_name = "numpy.ma.MaskedArray"
            return data
        return Opaque("numpy.ma.MaskedArray")

    def _global(self, v: dict) -> Described:
        names = self.pair(v)
        if names is None:
            return Opaque("global", verdict="forbidden", detail="names no global of the table")
        return Reference(names[0], names[1])

    def _obj(self, v: dict) -> Described:
        names = self.pair(v)
        if names is None:
            return Opaque("object", verdict="forbidden", detail="names no global of the table")
        pair, raw = names
        args = list(v.get("args") or []) + list((v.get("kwargs") or {}).values())
        if v["$"] == "obj":
            return self._instance(pair, raw, v, args)
        has_state = "state" in v
        if pair in _RANDOM_STATE and has_state:
            state = v.get("state")
            return Instance(_RANDOM_STATE[pair], raw, _state_items(state, self.resolve), id(v),
                            extra=self._extra(state))  # fmt: skip
        if pair in _CONTAINERS and len(args) <= 1 and not has_state:
            inner = self.resolve(args[0]) if args else []
            described = self(inner) if args else Seq(_CONTAINERS[pair], [])
            if isinstance(described, Seq):
                return Seq(_CONTAINERS[pair], described.items)
        if pair[1].rpartition(".")[2].startswith("__pyx_unpickle_") and args:
            cls = self(args[0])
            if isinstance(cls, Reference):
                inner_state = args[2] if len(args) > 2 else None
                return Instance(cls.pair, cls.raw_pair, _state_items(inner_state, self.resolve),
                                id(v), extra=self._extra(inner_state))  # fmt: skip
        if has_state or v.get("items") or v.get("setitems"):
            return self._instance(pair, raw, v, args)
        return Invocation(format_name(raw), raw, args, id(v))

    _call = _obj

    def _instance(self, pair: Pair, raw: Pair, v: dict, args: list) -> Instance:
        state = v.get("state")
        entries = _state_items(state, self.resolve) if "state" in v else None
        items: list[Any] = list(v.get("items") or [])
        items += [{"$": "tuple", "v": p} for p in v.get("setitems") or [] if type(p) is list]
        if items:
            entries = (entries or []) + [("<items>", items)]
        extra = self._extra(state) if "state" in v else None
        return Instance(pair, raw, entries, id(v), args=args, extra=extra)

    def _extra(self, state: Any) -> Any:
        return None if state is None or _state_items(state, self.resolve) is not None else state


_HANDLERS = {
    tag: getattr(SafeGraphDescriber, f"_{tag}")
    for tag in ("int", "float", "bytes", "bytearray", "complex", "const", "slice", "tuple", "set",
                "frozenset", "dict", "dtype", "scalar", "ndarray", "objarray", "masked", "global",
                "obj", "call")
}  # fmt: skip


def _manifest_view(manifest: dict) -> dict:
    """The manifest as the report shows it: every field, the members table summarised
    (count and bytes; their hashes are checked by ``safeload verify``, not here)."""
    view = dict(manifest)
    members = manifest.get("members")
    if isinstance(members, dict):
        total = sum(e.get("size", 0) for e in members.values() if isinstance(e, dict))
        view["members"] = {"count": len(members), "bytes": total}
    return view


def inspect_safe_file(src: Source, options: InspectOptions) -> InspectReport:
    """Inspect a safe-format file from its manifest and graph (no array data is read).

    Parameters
    ----------
    src : Source
    options : InspectOptions

    Returns
    -------
    InspectReport
        ``format`` is ``"safeload"``, ``protocol`` None; ``manifest`` the
        manifest with its members table summarised to ``{"count", "bytes"}``; ``metadata``
        the producer's versions (``producer_scikit-learn`` ...) and, when the file stores a
        probe, its rows and methods.

    Raises
    ------
    FormatError
        A zip structure, manifest or graph that breaks the format's rules.
    IntegrityError
        ``graph.json`` does not match the SHA-256 its manifest records.
    LimitExceededError
        ``max_members``, ``max_json_bytes``, or more values than ``max_items``.
    """
    safe = open_archive(src.data, options.limits, verify=True)
    doc, manifest = safe.doc, safe.manifest
    policy = options.policy
    table = doc["globals"] if type(doc["globals"]) is list else None
    globals_: list[GlobalInfo] = []
    for entry in table or []:
        if type(entry) is list and len(entry) == 2 and all(type(x) is str for x in entry):
            verdict = policy.verdict(entry[0], entry[1])
            globals_.append(GlobalInfo(format_name((entry[0], entry[1])), verdict.state,
                                       verdict.reason))  # fmt: skip
    problems: list[Problem] = []
    if table is None or len(globals_) != len(table):
        problems.append(Problem("safe-format-malformed", "'globals' holds an entry that is not "
                                "[module, qualname]"))  # fmt: skip
    ids = number_values(doc["root"], options.limits.max_items)
    builder = TreeBuilder(options, SafeGraphDescriber(doc, policy, ids))
    root = builder.build(doc["root"])
    metadata: dict[str, Any] = {}
    producer = manifest.get("producer")
    if isinstance(producer, dict):
        for key in ("scikit-learn", "numpy", "scipy", "python", "safeload"):
            if isinstance(producer.get(key), str):
                metadata[f"producer_{key}"] = producer[key][:100]
    probe = manifest.get("probe")
    if isinstance(probe, dict):
        methods = _as_list(probe.get("methods"))
        metadata["probe"] = f"{probe.get('rows')} rows; " + ", ".join(map(str, methods))
    file_version = producer.get("scikit-learn") if isinstance(producer, dict) else None
    return InspectReport(
        path=options.path,
        format="safeload",
        root=root,
        globals=globals_,
        problems=problems,
        sklearn_version=root.sklearn_version
        or next(iter(builder.versions), None)
        or (file_version if isinstance(file_version, str) else None),
        sklearn_versions=list(builder.versions),
        protocol=None,  # no pickle protocol: the format version is in the manifest
        metadata=metadata,
        manifest=_manifest_view(manifest),
        notes=builder.notes,
    )
