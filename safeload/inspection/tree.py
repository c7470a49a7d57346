"""The format-independent half of inspection: described values → :class:`InspectNode` tree.

Each format's inspector supplies a *describer*: a function that turns one value of its own
representation (a node of the inert pickle graph, a skops schema node ...) into one of the small
records below, without building or importing anything.  :class:`TreeBuilder` then does the rest
the same way for every format — which is what makes reports of the same model agree across
formats:

* an :class:`Instance` becomes a node; its state entries are split into ``__init__`` params
  (compared with the class defaults, for scikit-learn estimators the policy trusts), fitted
  attributes (``name_``) and other attributes; objects found in entries become children;
* an :class:`Invocation` (a call the loader would make, ``os.system(...)``) becomes a ``call``
  node;
* everything else becomes a :class:`ValueSummary`.

The walk is bounded: depth of the tree (``max_depth``), children and entries per node
(``max_children``), values looked at in total (``budget``); each cut is counted and noted.
"""

from __future__ import annotations

import inspect as _pyinspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..policy import Policy, format_name
from .report import MAX_TEXT, InspectNode, ValueSummary

__all__ = [
    "Atom",
    "Array",
    "Seq",
    "Mapping",
    "Instance",
    "Invocation",
    "Reference",
    "Opaque",
    "Described",
    "TreeBuilder",
    "InspectOptions",
    "summarize_atom",
]

Pair = tuple[str, str]


@dataclass
class InspectOptions:
    """Settings of one inspection, handed to every inspector.

    Attributes
    ----------
    policy : Policy
    limits : Limits
        Parse limits (:class:`safeload.Limits`).
    path : str or None
        Display name of the file.
    max_depth : int
        Deepest object nesting shown in the tree.
    max_children : int
        Most children (and most entries of each params/fitted/attributes dict) per node.
    budget : int
        Most values looked at in the whole walk (bounds time on hostile files).
    """

    policy: Policy
    limits: Any
    path: str | None = None
    max_depth: int = 24
    max_children: int = 25
    budget: int = 200_000


# --------------------------------------------------------------------------- described values
@dataclass
class Atom:
    """A plain Python scalar or string (``int``, ``float``, ``str``, ``bytes``, ``None`` ...)."""

    value: Any


@dataclass
class Array:
    """A numpy array or scalar, described by its header only.

    ``shape`` is None for numpy scalars; ``value`` is the ``repr`` of a decoded small scalar;
    ``items`` are raw elements of an object array, searched for nested objects.
    """

    type_name: str
    shape: tuple[int, ...] | None
    dtype: str | None
    value: str | None = None
    items: list[Any] | None = None


@dataclass
class Seq:
    """A ``list``, ``tuple``, ``set`` or ``frozenset`` (``kind``) of raw values."""

    kind: str
    items: list[Any]


@dataclass
class Mapping:
    """A ``dict``: ``(key, raw value)`` pairs; keys are atoms."""

    items: list[tuple[Any, Any]]
    kind: str = "dict"
    #: the values are known to be atoms (a vocabulary's int array): nothing to walk
    atoms_only: bool = False


@dataclass
class Instance:
    """An object of class ``pair`` with its state (raw values), as the loader would build it.

    ``identity`` is a hashable identity of the object in the source (shared references and
    cycles have the same identity); ``args`` are constructor arguments, ``extra`` a non-dict
    state.
    """

    pair: Pair
    raw_pair: Pair
    state: list[tuple[Any, Any]] | None
    identity: Any
    args: list[Any] = field(default_factory=list)
    extra: Any = None


@dataclass
class Invocation:
    """A call the loader would make of ``name`` (not a reconstructor): ``os.system(...)``."""

    name: str
    raw_pair: Pair | None
    args: list[Any]
    identity: Any
    verdict: str | None = None
    reason: str | None = None


@dataclass
class Reference:
    """A global used as a value (a function or class stored in an attribute)."""

    pair: Pair
    raw_pair: Pair
    what: str = "global"


@dataclass
class Opaque:
    """Something inspect does not decode; ``verdict`` when it is itself a problem."""

    type_name: str
    verdict: str | None = None
    detail: str | None = None


Described = Atom | Array | Seq | Mapping | Instance | Invocation | Reference | Opaque


def summarize_atom(value: Any) -> ValueSummary:
    """Summary of a Python atom: small scalars shown, long strings and bytes elided."""
    tp = type(value)
    name = tp.__name__
    if tp in (bytes, bytearray):
        return ValueSummary(name, length=len(value))
    if tp is str:
        if len(value) > MAX_TEXT:
            return ValueSummary("str", value=repr(value[:MAX_TEXT]) + "…", length=len(value))
        return ValueSummary("str", value=repr(value))
    if tp is int and value.bit_length() > 128:
        return ValueSummary("int", value=f"<int of {value.bit_length()} bits>")
    if tp in (int, float, bool, complex, type(None)):
        return ValueSummary(name, value=repr(value))
    return ValueSummary(name)


# --------------------------------------------------------------------------- defaults
_EMPTY = _pyinspect.Parameter.empty


def _same(a: Any, b: Any, depth: int = 0) -> bool:
    """Whether a file's parameter value equals a default (atoms and containers of atoms)."""
    if depth > 8:
        return False
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
            return True
        return a == b
    if a is None or b is None:
        return a is b
    if type(a) is str and type(b) is str:
        return a == b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y, depth + 1) for x, y in zip(a, b, strict=True))
    return False


class TreeBuilder:
    """Builds the :class:`InspectNode` tree from a root value and a describer.

    Parameters
    ----------
    options : InspectOptions
    describe : callable
        ``describe(raw) -> Described``: never builds, imports or calls anything from the file.
    forbidden_pairs : dict of (str, str) to str, optional
        Trusted canonical names the loader would refuse in this file (value-only functions
        called at load time ...), with the reason: their nodes get the ``forbidden`` verdict.
    """

    def __init__(
        self,
        options: InspectOptions,
        describe: Callable[[Any], Described],
        forbidden_pairs: dict[Pair, str] | None = None,
    ) -> None:
        self.options = options
        self.policy = options.policy
        self.describe = describe
        self.forbidden_pairs = forbidden_pairs or {}
        self.budget = options.budget
        self.versions: list[str] = []
        self.notes: list[str] = []
        self._shown: set[Any] = set()
        self._defaults: dict[Pair, dict[str, Any] | None] = {}
        self._out_of_budget = False
        self._depth_cut = 0

    # -- entry point ----------------------------------------------------------------------
    def build(self, root: Any) -> InspectNode:
        """The tree of ``root`` (bounded; cuts are listed in :attr:`notes`)."""
        desc = self._describe(root)
        if isinstance(desc, (Instance, Invocation)):
            node = self._node(desc, None, 0)
        else:
            node = InspectNode("container", _type_name(desc), "trusted")
            summary = self._summary(desc, node, "", 0)
            node.attributes["<root>"] = summary
        if self._out_of_budget:
            self.notes.append(
                f"the walk stopped after {self.options.budget:,} values (the rest is not shown)"
            )
        if self._depth_cut:
            self.notes.append(
                f"{self._depth_cut} object(s) nested deeper than {self.options.max_depth} "
                "levels are not shown"
            )
        return node

    def _estimator_defaults(self, pair: Pair) -> dict[str, Any] | None:
        """``__init__`` defaults of a trusted scikit-learn estimator class, else None.

        Only scikit-learn classes the policy trusts are ever resolved (imported): never a name
        the caller added, never anything else the file names; nothing is called.
        """
        if pair in self._defaults:
            return self._defaults[pair]
        result = None
        if (
            pair[0].split(".")[0] == "sklearn"
            and self.policy.is_trusted(pair)
            and not self.policy.is_caller_trusted(pair)
        ):
            try:
                result = _defaults_of(self.policy.resolve(pair))
            except Exception:  # noqa: BLE001 - a trusted name missing from this scikit-learn
                result = None
        self._defaults[pair] = result
        return result

    # -- values ---------------------------------------------------------------------------
    def _describe(self, raw: Any) -> Described:
        self.budget -= 1
        if self.budget < 0:
            self._out_of_budget = True
            return Opaque("…")
        try:
            return self.describe(raw)
        except RecursionError:
            return Opaque("nested too deep")

    def _verdict(self, pair: Pair, raw_pair: Pair) -> tuple[str, str | None]:
        v = self.policy.verdict(*raw_pair)
        if v.trusted and pair in self.forbidden_pairs:
            return "forbidden", self.forbidden_pairs[pair]
        return v.state, None if v.trusted else v.reason

    def _node(self, desc: Instance | Invocation, role: str | None, depth: int) -> InspectNode:
        if isinstance(desc, Invocation):
            return self._call_node(desc, role, depth)
        verdict, reason = self._verdict(desc.pair, desc.raw_pair)
        name = format_name(desc.pair)
        written = format_name(desc.raw_pair) if desc.raw_pair != desc.pair else None
        if desc.identity in self._shown:
            return InspectNode("shared", name, verdict, role=role, reason=reason,
                               written_as=written)  # fmt: skip
        self._shown.add(desc.identity)
        defaults = self._estimator_defaults(desc.pair) if verdict == "trusted" else None
        node = InspectNode("estimator" if defaults is not None else "object", name, verdict,
                           role=role, reason=reason, written_as=written)  # fmt: skip
        for i, arg in enumerate(desc.args):
            self._entry(node, node.attributes, f"<arg {i}>", arg, depth)
        if desc.extra is not None:
            self._entry(node, node.attributes, "<state>", desc.extra, depth)
        for key, raw in desc.state or ():
            key_text = key if isinstance(key, str) else repr(key)
            if key == "_sklearn_version":
                value = self._describe(raw)
                if isinstance(value, Atom) and type(value.value) is str:
                    node.sklearn_version = value.value[:100]
                    if node.sklearn_version not in self.versions:
                        self.versions.append(node.sklearn_version)
                    continue
            if defaults is not None and key_text in defaults:
                self._param(node, key_text, raw, defaults[key_text], depth)
            elif key_text.endswith("_") and not key_text.startswith("__"):
                self._entry(node, node.fitted, key_text, raw, depth)
            else:
                self._entry(node, node.attributes, key_text, raw, depth)
        return node

    def _call_node(self, desc: Invocation, role: str | None, depth: int) -> InspectNode:
        if desc.verdict is not None:
            verdict, reason = desc.verdict, desc.reason
        elif desc.raw_pair is not None:
            verdict, reason = self._verdict(self.policy.canonical(desc.raw_pair), desc.raw_pair)
        else:
            verdict, reason = "forbidden", None
        node = InspectNode("call", desc.name, verdict, role=role, reason=reason)
        if desc.identity in self._shown:
            node.kind = "shared"
            return node
        self._shown.add(desc.identity)
        for i, arg in enumerate(desc.args):
            self._entry(node, node.attributes, f"<arg {i}>", arg, depth)
        return node

    def _room(self, node: InspectNode, table: dict[str, ValueSummary]) -> bool:
        if len(table) >= self.options.max_children:
            node.omitted += 1
            return False
        return True

    def _entry(self, node: InspectNode, table: dict[str, ValueSummary], key: str, raw: Any,
               depth: int) -> None:  # fmt: skip
        if not self._room(node, table):
            return
        desc = self._describe(raw)
        table[key] = self._summary(desc, node, key, depth)

    def _param(self, node: InspectNode, key: str, raw: Any, default: Any, depth: int) -> None:
        desc = self._describe(raw)
        if isinstance(desc, Atom) and default is not _EMPTY and _same(desc.value, default):
            return
        if isinstance(desc, Seq) and default is not _EMPTY and isinstance(default, (list, tuple)):
            atoms = [self._describe(x) for x in desc.items[:64]]
            values = [a.value for a in atoms if isinstance(a, Atom)]
            if len(values) == len(desc.items) and _same(values, list(default)):
                return
        if self._room(node, node.params):
            node.params[key] = self._summary(desc, node, key, depth)

    def _summary(self, desc: Described, node: InspectNode, path: str, depth: int) -> ValueSummary:
        """Summary of one entry; objects found in it become children of ``node``."""
        if isinstance(desc, Atom):
            return summarize_atom(desc.value)
        if isinstance(desc, Array):
            if desc.items:
                self._find_objects(Seq("list", desc.items), node, path, depth)
            return ValueSummary(desc.type_name, value=desc.value,
                                shape=None if desc.shape is None else list(desc.shape),
                                dtype=desc.dtype)  # fmt: skip
        if isinstance(desc, Reference):
            verdict, _ = self._verdict(desc.pair, desc.raw_pair)
            return ValueSummary(desc.what, value=format_name(desc.raw_pair), verdict=verdict)
        if isinstance(desc, Opaque):
            return ValueSummary(desc.type_name, value=desc.detail, verdict=desc.verdict)
        if isinstance(desc, (Instance, Invocation)):
            child = self._child(desc, path, node, depth)
            if isinstance(desc, Invocation):
                return ValueSummary("call", value=desc.name + "(…)", verdict=child)
            return ValueSummary(format_name(desc.pair), verdict=child)
        if isinstance(desc, Seq):
            self._find_objects(desc, node, path, depth)
            return ValueSummary(desc.kind, length=len(desc.items))
        self._find_objects(desc, node, path, depth)
        return ValueSummary(desc.kind, length=len(desc.items))

    def _child(self, desc: Instance | Invocation, role: str, node: InspectNode,
               depth: int) -> str:  # fmt: skip
        """Add ``desc`` as a child of ``node``; return its verdict."""
        if depth + 1 > self.options.max_depth:
            self._depth_cut += 1
            node.omitted += 1
            if isinstance(desc, Invocation):
                return desc.verdict or "forbidden"
            return self._verdict(desc.pair, desc.raw_pair)[0]
        if len(node.children) >= self.options.max_children:
            node.omitted += 1
            if isinstance(desc, Invocation):
                return desc.verdict or "forbidden"
            return self._verdict(desc.pair, desc.raw_pair)[0]
        child = self._node(desc, role, depth + 1)
        node.children.append(child)
        return child.verdict

    def _find_objects(self, desc: Seq | Mapping, node: InspectNode, path: str,
                      depth: int) -> None:  # fmt: skip
        """Walk a container (iteratively, bounded) and add the objects in it as children."""
        # (container, role prefix, level, whether it is a (name, object, ...) tuple whose
        # objects take the role of the tuple: steps['sc'] rather than steps['sc'][1])
        stack: list[tuple[Described, str, int, bool]] = [(desc, path, 0, False)]
        while stack and not self._out_of_budget:
            current, where, level, collapse = stack.pop()
            if level > 16:
                continue
            entries: list[tuple[str, Any, bool]] = []
            if isinstance(current, Seq):
                if _only_atoms(current.items):  # nothing inside can hold an object (fast path)
                    continue
                named = None if collapse else _named_items(current, self._describe)
                for i, raw in enumerate(current.items):
                    if type(raw) in _ATOM_TYPES:
                        continue
                    if collapse:
                        entries.append((where, raw, False))
                    elif named is not None:
                        entries.append((f"{where}[{named[i]}]", raw, True))
                    else:
                        entries.append((f"{where}[{i}]", raw, False))
            else:
                if getattr(current, "atoms_only", False):
                    continue
                for key, raw in current.items:  # type: ignore[union-attr]
                    if type(raw) in _ATOM_TYPES:
                        continue
                    entries.append((f"{where}[{_key_text(key)}]", raw, False))
            pending: list[tuple[Described, str, int, bool]] = []
            for index, (label, raw, named_tuple) in enumerate(entries):
                if self._out_of_budget:
                    break
                if len(node.children) >= self.options.max_children:
                    node.omitted += len(entries) - index
                    break
                item = self._describe(raw)
                if isinstance(item, (Instance, Invocation)):
                    self._child(item, label, node, depth)
                elif isinstance(item, (Seq, Mapping)):
                    pending.append((item, label, level + 1, named_tuple))
            stack.extend(reversed(pending))


_ATOM_TYPES = frozenset({str, int, float, bool, type(None), bytes})


def _only_atoms(items: Any) -> bool:
    try:
        return set(map(type, items)) <= _ATOM_TYPES
    except TypeError:
        return False


def _key_text(key: Any) -> str:
    text = repr(key)
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "…"


def _named_items(seq: Seq, describe: Callable[[Any], Described]) -> list[str] | None:
    """``'name'`` labels for ``(name, estimator, ...)`` tuples (Pipeline steps, ColumnTransformer
    transformers, VotingClassifier estimators), else None."""
    if not seq.items or len(seq.items) > 1000:
        return None
    labels: list[str] = []
    for raw in seq.items:
        item = describe(raw)
        if not isinstance(item, Seq) or not item.items:
            return None
        first = describe(item.items[0])
        if not isinstance(first, Atom) or type(first.value) is not str:
            return None
        labels.append(_key_text(first.value))
    return labels


def _type_name(desc: Described) -> str:
    if isinstance(desc, (Seq, Mapping)):
        return f"builtins.{desc.kind}"
    if isinstance(desc, Atom):
        return f"builtins.{type(desc.value).__name__}"
    if isinstance(desc, Array):
        return desc.type_name
    if isinstance(desc, Reference):
        return format_name(desc.pair)
    return getattr(desc, "type_name", "?")


def _defaults_of(cls: Any) -> dict[str, Any] | None:
    """``__init__`` parameter defaults of a scikit-learn estimator class (``empty`` for required
    parameters), or None when ``cls`` is not one."""
    try:
        from sklearn.base import BaseEstimator  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - scikit-learn is a dependency
        return None
    if not isinstance(cls, type) or not issubclass(cls, BaseEstimator):
        return None
    try:
        sig = _pyinspect.signature(cls.__init__)  # type: ignore[misc]
    except (TypeError, ValueError):
        return None
    return {
        name: p.default
        for name, p in sig.parameters.items()
        if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }
