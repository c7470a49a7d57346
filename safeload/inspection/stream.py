"""Inspector of pickle and joblib files (every protocol and compressor): the inert graph of
:func:`safeload.readers.read_source`, described without building anything.

The readers hand over placeholders for globals and :class:`~safeload.graph.Call` /
:class:`~safeload.graph.New` nodes for constructions; :func:`describe_graph_value` recognises
what the loader would build from them:

* objects — ``NEWOBJ`` of a class, ``copyreg._reconstructor(cls, base, state)`` (protocols 0
  and 1), ``copyreg.__newobj__``, Cython's ``__pyx_unpickle_<Class>``, any call followed by
  ``BUILD`` — with their ``BUILD`` state;
* numpy arrays — ``_reconstruct`` + ``BUILD (version, shape, dtype, fortran, raw)``,
  ``_frombuffer(raw, dtype, shape, order)`` (protocol 5), ``_mareconstruct`` (masked arrays),
  real arrays from joblib files — by shape and dtype only;
* numpy scalars — ``scalar(dtype, raw)``, decoded when numeric;
* every other call (``os.system(...)``) as a call the loader would make.

Dtypes are named from their code and state strings (:mod:`.dtypes`); the only objects created
are strings and the numpy scalars of numeric dtypes built here from those names.
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np

from ..graph import OP_ADD, OP_BUILD, OP_EXTEND, OP_SETITEM, Call, Global, New, Node
from ..policy import Policy, format_name
from ..readers import read_source
from ..readers.compression import detect_compressor, open_decompressed
from ..readers.joblib_reader import JOBLIB_MODULES
from ..readers.pickle_reader import ParsedStream
from ..scanners.graphcheck import check_graph
from ..source import Source
from .dtypes import decode_scalar, label_from_code, label_of
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

__all__ = ["inspect_stream", "GraphDescriber"]

Pair = tuple[str, str]

_RECONSTRUCT = ("numpy._core.multiarray", "_reconstruct")
_FROMBUFFER = ("numpy._core.numeric", "_frombuffer")
_SCALAR = ("numpy._core.multiarray", "scalar")
_MARECONSTRUCT = ("numpy.ma.core", "_mareconstruct")
_DTYPE = ("numpy", "dtype")
_CODECS_ENCODE = (("_codecs", "encode"), ("codecs", "encode"))
_TEXT_CODECS = frozenset({"latin1", "latin-1", "iso-8859-1", "utf-8", "utf8", "ascii"})
_RECONSTRUCTOR = ("copyreg", "_reconstructor")
_NEWOBJ = ("copyreg", "__newobj__")
_NEWOBJ_EX = ("copyreg", "__newobj_ex__")
#: Constructors whose result is shown as the class they build.
_BUILDS = {
    ("numpy.random._pickle", "__randomstate_ctor"): ("numpy.random.mtrand", "RandomState"),
    ("numpy.random._pickle", "__generator_ctor"): ("numpy.random._generator", "Generator"),
}
_CONTAINERS = {
    ("builtins", "set"): "set",
    ("builtins", "frozenset"): "frozenset",
    ("builtins", "list"): "list",
    ("builtins", "tuple"): "tuple",
}
#: Items of an object array searched for nested objects.
_OBJECT_ARRAY_ITEMS = 1000


class GraphDescriber:
    """Turns values of the inert graph into :mod:`.tree` descriptions (never builds them).

    Parameters
    ----------
    policy : Policy
        Gives today's spelling of each global (aliases); nothing is resolved.
    """

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def canonical(self, placeholder: Any) -> tuple[Pair, Pair] | None:
        """``(canonical, raw)`` names of a placeholder global, or None."""
        if isinstance(placeholder, type) and issubclass(placeholder, Global):
            raw = (placeholder.module, placeholder.qualname)
            return self.policy.canonical(raw), raw
        return None

    def __call__(self, value: Any) -> Described:
        tp = type(value)
        if tp in (list, tuple, set, frozenset):
            return Seq(tp.__name__, list(value))
        if tp is dict:
            return Mapping(list(value.items()))
        if isinstance(value, np.ndarray):
            items = None
            if value.dtype.hasobject:
                items = list(value.ravel()[:_OBJECT_ARRAY_ITEMS])
            name = f"{type(value).__module__}.{type(value).__qualname__}"
            return Array(name.replace("numpy._core.", "numpy.").replace("numpy.ma.core.", "numpy.ma."),
                         tuple(value.shape), label_of(value.dtype), items=items)  # fmt: skip
        if tp in (Call, New):
            return self._node(value)
        names = self.canonical(value)
        if names is not None:
            return Reference(names[0], names[1])
        if isinstance(value, (int, float, complex, str, bytes, bytearray, bool, type(None))):
            return Atom(value)
        if tp.__name__ == "_Forbidden":
            return Opaque("persistent id", verdict="forbidden",
                          detail="a persistent id (resolved by application code)")  # fmt: skip
        return Opaque(tp.__name__)

    # -- nodes --------------------------------------------------------------------------------
    def _node(self, node: Node) -> Described:
        if isinstance(node.func, Node):
            return Invocation(node.name, None, list(node.args), id(node), verdict="forbidden",
                              reason="calls the result of another call")  # fmt: skip
        names = self.canonical(node.func)
        if names is None:
            return Opaque("node")
        pair, raw = names
        state, has_build, items = _ops(node)
        if type(node) is New:
            return self._instance(pair, raw, node, list(node.args), state, items)
        args = node.args
        if pair == _RECONSTRUCT and has_build:
            return self._reconstructed(args, state)
        if pair == _FROMBUFFER and len(args) >= 3:
            return self._array("numpy.ndarray", args[2], args[1])
        if pair == _SCALAR and len(args) == 2:
            return self._scalar(args[0], args[1])
        if pair == _MARECONSTRUCT and has_build and type(state) is tuple and len(state) >= 3:
            return self._array("numpy.ma.MaskedArray", state[1], state[2])
        if pair == _DTYPE:
            return Opaque("numpy.dtype", detail=self.dtype_label(node) or "?")
        if pair in _CODECS_ENCODE and len(args) == 2 and type(args[0]) is str:
            # only the text codecs pickles use (a codec lookup by an arbitrary name imports
            # a module of the encodings package)
            if args[1] not in _TEXT_CODECS:
                return Opaque("bytes", detail=f"encoded with {str(args[1])[:20]!r}")
            try:
                return Atom(args[0].encode(args[1]))
            except UnicodeError:
                return Opaque("bytes", detail="undecodable text")
        if pair in _CONTAINERS and len(args) <= 1 and not node.kwargs and not has_build:
            inner = args[0] if args else []
            if type(inner) in (list, tuple, set, frozenset):
                return Seq(_CONTAINERS[pair], list(inner))
        if pair in (_RECONSTRUCTOR, _NEWOBJ, _NEWOBJ_EX) and args:
            cls = self.canonical(args[0])
            if cls is not None:
                rest = list(args[1:]) if pair == _NEWOBJ else []
                return self._instance(cls[0], cls[1], node, rest, state, items)
        if pair[1].rpartition(".")[2].startswith("__pyx_unpickle_") and args:
            cls = self.canonical(args[0])
            if cls is not None:
                inner_state = args[2] if len(args) > 2 else None
                return self._instance(cls[0], cls[1], node, [], inner_state, items)
        if pair in _BUILDS and has_build:
            return Instance(_BUILDS[pair], raw, _state_items(state), id(node),
                            extra=_extra(state))  # fmt: skip
        if has_build or items:
            return self._instance(pair, raw, node, list(args), state, items)
        return Invocation(format_name(raw), raw, list(args) + list(node.kwargs.values()),
                          id(node))  # fmt: skip

    def _instance(self, pair: Pair, raw: Pair, node: Node, args: list, state: Any,
                  items: list) -> Instance:  # fmt: skip
        entries = _state_items(state)
        if items:
            entries = (entries or []) + [("<items>", items)]
        return Instance(pair, raw, entries, id(node), args=args, extra=_extra(state))

    # -- numpy --------------------------------------------------------------------------------
    def dtype_label(self, value: Any) -> str | None:
        """Name of a dtype value: a ``numpy.dtype`` node, a real dtype, or a code string."""
        if isinstance(value, np.dtype):
            return label_of(value)
        if isinstance(value, (str, bytes)):
            return label_from_code(value, None)
        if type(value) is Call:
            names = self.canonical(value.func)
            if names is None or names[0] != _DTYPE or not value.args:
                return None
            state, _, _ = _ops(value)
            return label_from_code(value.args[0], state)
        return None

    def _array(self, type_name: str, shape: Any, dtype: Any, items: Any = None) -> Described:
        if type(shape) is int:
            shape = (shape,)
        if type(shape) is not tuple or not all(type(d) is int for d in shape):
            return Opaque(type_name, detail="malformed shape")
        label = self.dtype_label(dtype)
        return Array(type_name, shape, label, items=items if label == "object" else None)

    def _reconstructed(self, args: tuple, state: Any) -> Described:
        subtype = self.canonical(args[0]) if args else None
        type_name = format_name(subtype[0]) if subtype else "numpy.ndarray"
        if subtype is not None and not self.policy.verdict(*subtype[1]).trusted:
            return Instance(subtype[0], subtype[1], _state_items(state), id(state),
                            extra=_extra(state))  # fmt: skip
        if type(state) is not tuple or len(state) not in (4, 5):
            return Opaque(type_name, detail="malformed array state")
        shape, dtype, _, raw = state[-4:]
        items = raw if type(raw) is list else None
        return self._array(type_name.replace("numpy._core.", "numpy."), shape, dtype, items)

    def _scalar(self, dtype: Any, raw: Any) -> Described:
        label = self.dtype_label(dtype)
        if label is None:
            return Opaque("numpy scalar", detail="malformed dtype")
        if type(raw) is Call:
            encoded = self._node(raw)
            raw = encoded.value if isinstance(encoded, Atom) else None
        name = label.lstrip(">")
        type_name = f"numpy.{name}" if name.isidentifier() else "numpy.generic"
        return Array(type_name, None, label, value=decode_scalar(label, raw))


def _ops(node: Node) -> tuple[Any, bool, list]:
    """``(BUILD state, had BUILD, items added by APPEND/SETITEM/ADD)``."""
    state = None
    has_build = False
    items: list = []
    for op in node.ops or ():
        if op[0] == OP_BUILD and not has_build:
            state, has_build = op[1], True
        elif op[0] == OP_EXTEND:
            items.extend(op[1])
        elif op[0] == OP_SETITEM:
            items.append((op[1], op[2]))
        elif op[0] == OP_ADD:
            items.append(op[1])
    return state, has_build, items


def _state_items(state: Any) -> list[tuple[Any, Any]] | None:
    """State entries of an object: a dict, or ``(dict, slots dict)`` as ``__reduce_ex__``
    writes for classes with ``__slots__``."""
    if type(state) is dict:
        return list(state.items())
    if (
        type(state) is tuple
        and len(state) == 2
        and all(s is None or type(s) is dict for s in state)
    ):
        out: list[tuple[Any, Any]] = []
        for part in state:
            if part:
                out.extend(part.items())
        return out
    return None


def _extra(state: Any) -> Any:
    return None if state is None or _state_items(state) is not None else state


def _protocol(src: Source, options: InspectOptions) -> int | None:
    head = src.head(2)
    comp = detect_compressor(src.head(16))
    if comp is not None:
        try:
            head = open_decompressed(src.stream(), comp, options.limits).read(2)
        except Exception:  # noqa: BLE001 - reported by the parse
            return None
    if len(head) == 2 and head[0] == pickle.PROTO[0]:
        return head[1]
    return 0 if head else None


def inspect_stream(src: Source, options: InspectOptions) -> InspectReport:
    """Inspect a pickle or joblib file (any protocol, any compressor).

    Parameters
    ----------
    src : Source
    options : InspectOptions

    Returns
    -------
    InspectReport

    Raises
    ------
    FormatError
        Corrupt, truncated or unknown stream.
    LimitExceededError
        A parse limit (:class:`safeload.Limits`) exceeded.
    """
    protocol = _protocol(src, options)
    parsed = read_source(src, options.limits)
    return report_from_graph(parsed, options, protocol)


def report_from_graph(parsed: ParsedStream, options: InspectOptions,
                      protocol: int | None) -> InspectReport:  # fmt: skip
    """The report of a parsed stream (see :func:`inspect_stream`)."""
    policy = options.policy
    ctx = parsed.context
    problems = [Problem(op, detail) for op, detail in ctx.forbidden]
    summary = check_graph(parsed.root, policy, options.limits)
    forbidden_pairs: dict[Pair, str] = {}
    for issue in summary.issues:
        problems.append(Problem(issue.rule, issue.message))
        if issue.pair is not None:
            pair = policy.canonical(issue.pair)
            if policy.is_trusted(pair):
                forbidden_pairs.setdefault(pair, issue.message)
    globals_: list[GlobalInfo] = []
    for raw in ctx.globals:
        if raw in ctx.consumed:
            continue  # joblib array wrappers, replaced by the reader and never built
        if raw[0] in JOBLIB_MODULES:
            globals_.append(GlobalInfo(format_name(raw), "untrusted", "joblib's array wrapper "
                            "outside a joblib array position"))  # fmt: skip
            continue
        verdict = policy.verdict(*raw)
        state = verdict.state
        reason = verdict.reason
        if verdict.trusted and verdict.canonical in forbidden_pairs:
            state, reason = "forbidden", forbidden_pairs[verdict.canonical]
        globals_.append(GlobalInfo(format_name(raw), state, reason))
    builder = TreeBuilder(options, GraphDescriber(policy), forbidden_pairs)
    root = builder.build(parsed.root)
    return InspectReport(
        path=options.path,
        format=parsed.format,
        root=root,
        globals=globals_,
        problems=problems,
        sklearn_version=root.sklearn_version or next(iter(builder.versions), None),
        sklearn_versions=list(builder.versions),
        protocol=protocol,
        notes=builder.notes,
    )
