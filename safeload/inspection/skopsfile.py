"""Inspector of skops files: the ``schema.json`` tree of a skops zip, read as data.

A skops file is a zip archive holding ``schema.json`` — a tree of nodes ``{"__class__",
"__module__", "__loader__", "content" ...}`` — and one ``.npy`` member per numeric array.  This
module reads the schema with :mod:`json` (bounded size, bounded integers) and each array's
``.npy`` *header* only (numpy's own header parser, which evaluates nothing); ``skops.io.load``
is never called and skops does not even need to be installed.  The type names are the ones
``skops.io.get_untrusted_types`` lists (:func:`safeload.scanners.jsondoc.skops_type_names`),
checked against safeload's policy.

Node kinds follow skops' ``NODE_TYPE_MAPPING`` (protocols 0–3): ``ObjectNode``/``TreeNode``/
``ReduceNode`` … become objects with their state, ``NdArrayNode`` arrays, ``JsonNode`` atoms,
``ListNode``/``TupleNode``/``DictNode`` … containers, ``FunctionNode``/``TypeNode``/
``MethodNode`` references, ``CachedNode`` the earlier node of the same ``__id__``.
"""

from __future__ import annotations

import json
import zipfile
from typing import Any

from numpy.lib import format as npformat

from ..errors import FormatError, LimitExceededError
from ..jsonnest import check_json_nesting
from ..policy import format_name
from ..scanners.archive import MAX_MEMBERS
from ..scanners.collector import Collector
from ..scanners.jsondoc import (
    MAX_INT_DIGITS,
    MAX_JSON_BYTES,
    SKOPS_LOADERS,
    is_skops_schema,
    skops_type_names,
    walk_json,
)
from ..source import Source
from .dtypes import NUMERIC_KINDS, decode_scalar, label_of
from .report import GlobalInfo, InspectReport, Problem
from .tree import (
    Array,
    Atom,
    Described,
    InspectOptions,
    Instance,
    Mapping,
    Opaque,
    Reference,
    Seq,
    TreeBuilder,
)

__all__ = ["inspect_skops", "SkopsDescriber", "read_json_member"]

Pair = tuple[str, str]

_SEQUENCES = {"ListNode": "list", "TupleNode": "tuple", "SetNode": "set"}
_OBJECTS = frozenset(
    {"ObjectNode", "TreeNode", "ReduceNode", "LossNode", "SGDNode", "QuantileForestNode",
     "RandomStateNode", "RandomGeneratorNode", "BunchNode", "_DictWithDeprecatedKeysNode",
     "ConstructorFromReduceNode", "PartialNode"}
)  # fmt: skip
_REFERENCES = {"FunctionNode": "function", "TypeNode": "type", "UfuncNode": "function",
               "OperatorFuncNode": "function"}  # fmt: skip
_KEY_TYPES = {"int": int, "float": float, "str": str}


def _parse_int(text: str) -> int:
    if len(text) > MAX_INT_DIGITS:
        raise ValueError(f"an integer literal of {len(text):,} digits")
    return int(text)


def read_json_member(zf: zipfile.ZipFile, name: str, limits: Any) -> Any:
    """Parse the JSON member ``name`` (at most 64 MiB and ``max_decompressed_bytes``).

    Raises
    ------
    FormatError
        Missing, too large, encrypted or corrupt member, or invalid JSON.
    """
    try:
        info = zf.getinfo(name)
    except KeyError as exc:
        raise FormatError(f"the archive has no {name}") from exc
    cap = min(MAX_JSON_BYTES, limits.max_decompressed_bytes)
    if info.file_size > cap:
        raise FormatError(f"{name} declares {info.file_size:,} bytes (more than {cap:,})")
    try:
        with zf.open(info) as fh:
            data = fh.read(cap + 1)
    except Exception as exc:  # noqa: BLE001 - BadZipFile, RuntimeError (encrypted), zlib errors
        raise FormatError(f"cannot read {name}: {type(exc).__name__}: {exc}") from exc
    if len(data) > cap:
        raise FormatError(f"{name} holds more than {cap:,} bytes")
    check_json_nesting(data, name)  # LimitExceededError, past what the C stack holds
    try:
        return json.loads(data, parse_int=_parse_int)
    except RecursionError as exc:
        raise FormatError(f"{name} is nested deeper than the recursion limit") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise FormatError(f"{name} is not valid JSON: {str(exc)[:200]}") from exc


def _str(value: Any) -> str | None:
    return value if type(value) is str and value else None


class SkopsDescriber:
    """Turns skops schema nodes into :mod:`.tree` descriptions (never constructs them).

    Parameters
    ----------
    zf : zipfile.ZipFile
        The skops archive (only ``.npy`` headers, and the first bytes of 0-d numeric arrays,
        are read).
    ids : dict
        ``__id__`` → the first node that carries it (targets of ``CachedNode``).
    policy : Policy
    """

    def __init__(self, zf: zipfile.ZipFile, ids: dict[Any, dict], policy: Any) -> None:
        self.zf = zf
        self.ids = ids
        self.policy = policy
        self._headers: dict[str, Described] = {}

    def __call__(self, node: Any) -> Described:
        if type(node) is list:
            return Seq("list", node)
        if type(node) is not dict:
            return (
                Atom(node)
                if type(node) in (int, float, str, bool, type(None))
                else Opaque(type(node).__name__)
            )
        loader = node.get("__loader__")
        module, cls = _str(node.get("__module__")), _str(node.get("__class__"))
        if loader == "CachedNode":
            target = self.ids.get(_hashable(node.get("__id__")))
            if target is None or target is node:
                return Opaque("cached node", verdict="forbidden",
                              detail="refers to an unknown __id__")  # fmt: skip
            return self(target)
        if type(loader) is not str or loader not in SKOPS_LOADERS or not module or not cls:
            return Opaque(f"{module}.{cls}" if module and cls else "skops node",
                          verdict="forbidden", detail=f"unknown skops loader {str(loader)[:60]!r}")  # fmt: skip
        raw: Pair = (module, cls)
        pair = self.policy.canonical(raw)
        content = node.get("content")
        if loader == "JsonNode":
            return self._json(content)
        if loader in _SEQUENCES:
            return Seq(_SEQUENCES[loader], content if type(content) is list else [])
        if loader == "DictNode":
            return Mapping(self._dict_items(node))
        if loader == "DefaultDictNode":
            main = content.get("main") if type(content) is dict else None
            items = self._dict_items(main) if type(main) is dict else []
            return Mapping(items, kind="defaultdict")
        if loader == "NdArrayNode":
            return self._ndarray(node, pair)
        if loader == "MaskedArrayNode":
            data = self(content.get("data")) if type(content) is dict else None
            if isinstance(data, Array):
                data.type_name = "numpy.ma.MaskedArray"
                return data
            return Opaque("numpy.ma.MaskedArray")
        if loader == "DTypeNode":
            inner = self(content)
            label = inner.dtype if isinstance(inner, Array) else None
            return Opaque("numpy.dtype", detail=label or "?")
        if loader == "MethodNode":
            obj = content.get("obj") if type(content) is dict else None
            func = content.get("func") if type(content) is dict else None
            if type(obj) is dict and _str(func):
                owner = (str(obj.get("__module__")), f"{obj.get('__class__')}.{func}")
                return Reference(self.policy.canonical(owner), owner, what="method")
            return Opaque(format_name(raw), verdict="forbidden", detail="malformed MethodNode")
        if loader in _REFERENCES:
            return Reference(pair, raw, what=_REFERENCES[loader])
        if loader in ("BytesNode", "BytearrayNode"):
            size = self._member_size(node.get("file"))
            return Opaque(cls, detail=None if size is None else f"{size:,} bytes")
        if loader in _OBJECTS:
            return self._object(node, pair, raw, loader, content)
        return Opaque(format_name(pair))  # SliceNode, SparseMatrixNode, ZoneInfoNode ...

    # -- pieces -------------------------------------------------------------------------------
    def _json(self, content: Any) -> Described:
        if type(content) is not str:
            return Opaque("json", verdict="forbidden", detail="JsonNode without text content")
        try:
            check_json_nesting(content, "a JsonNode")
            value = json.loads(content, parse_int=_parse_int)
        except (ValueError, RecursionError, LimitExceededError):
            return Opaque("json", verdict="forbidden", detail="invalid JSON in a JsonNode")
        if type(value) is list:
            return Seq("list", value)
        if type(value) is dict:
            return Mapping(list(value.items()))
        return Atom(value)

    def _dict_items(self, node: dict) -> list[tuple[Any, Any]]:
        content = node.get("content")
        if type(content) is not dict:
            return []
        key_types = node.get("key_types")
        kinds = key_types.get("content") if type(key_types) is dict else None
        items = list(content.items())
        if type(kinds) is list and len(kinds) == len(items):
            out = []
            for (key, value), kind in zip(items, kinds, strict=True):
                kind_name = kind.get("__class__") if type(kind) is dict else None
                convert = _KEY_TYPES.get(kind_name) if type(kind_name) is str else None
                try:
                    out.append((convert(key) if convert else key, value))
                except ValueError:
                    out.append((key, value))
            return out
        return items

    def _object(self, node: dict, pair: Pair, raw: Pair, loader: str, content: Any) -> Described:
        state: list[tuple[Any, Any]] | None = None
        extra = None
        args: list[Any] = []
        if loader == "ConstructorFromReduceNode":
            inner = self(content)
            args = inner.items if isinstance(inner, Seq) else [content]
        elif loader == "PartialNode" and type(content) is dict:
            state = list(content.items())
        elif type(content) is dict and content.get("__loader__") == "DictNode":
            state = self._dict_items(content)
        elif content is not None:
            extra = content
        reduce = node.get("__reduce__")
        if type(reduce) is dict and "args" in reduce:
            inner = self(reduce["args"])
            args = inner.items if isinstance(inner, Seq) else [reduce["args"]]
        return Instance(pair, raw, state, id(node), args=args, extra=extra)

    def _member_size(self, name: Any) -> int | None:
        if type(name) is not str:
            return None
        try:
            return self.zf.getinfo(name).file_size
        except KeyError:
            return None

    def _ndarray(self, node: dict, pair: Pair) -> Described:
        type_name = format_name(pair).replace("numpy._core.", "numpy.")
        if node.get("type") == "json":
            shape = node.get("shape")
            content = node.get("content")
            if type(shape) is list and all(type(d) is int for d in shape):
                return Array(type_name, tuple(shape), "object",
                             items=content if type(content) is list else None)  # fmt: skip
            return Array(type_name, None, "object",
                         items=content if type(content) is list else None)  # fmt: skip
        name = node.get("file")
        if type(name) is not str:
            return Opaque(type_name, verdict="forbidden", detail="NdArrayNode without a file")
        cached = self._headers.get(name)
        if cached is None:
            cached = self._headers[name] = self._npy(name, type_name, pair)
        return cached

    def _npy(self, name: str, type_name: str, pair: Pair) -> Described:
        """Shape and dtype from the ``.npy`` header of member ``name`` (its data is not read,
        except the few bytes of a 0-d numeric array stored for a numpy scalar)."""
        try:
            info = self.zf.getinfo(name)
            with self.zf.open(info) as fh:
                version = npformat.read_magic(fh)
                if version == (1, 0):
                    shape, _, dtype = npformat.read_array_header_1_0(fh)
                else:
                    shape, _, dtype = npformat.read_array_header_2_0(fh)
                scalar = pair[1] != "ndarray" and shape == ()
                value = None
                label = label_of(dtype)
                if scalar and dtype.kind in NUMERIC_KINDS and dtype.itemsize <= 16:
                    value = decode_scalar(label, fh.read(dtype.itemsize))
        except KeyError:
            return Opaque(type_name, verdict="forbidden", detail=f"missing member {name[:80]!r}")
        except Exception as exc:  # noqa: BLE001 - numpy raises ValueError/SyntaxError/...
            return Opaque(type_name, verdict="forbidden",
                          detail=f"unreadable .npy header: {type(exc).__name__}")  # fmt: skip
        return Array(type_name, None if scalar else tuple(shape), label, value=value)


def _hashable(value: Any) -> Any:
    return value if type(value) in (int, str) else None


def inspect_skops(src: Source, options: InspectOptions) -> InspectReport:
    """Inspect a skops file from its schema and array headers.

    Parameters
    ----------
    src : Source
    options : InspectOptions

    Returns
    -------
    InspectReport
        ``protocol`` is the skops protocol; ``metadata["skops_version"]`` the version of skops
        that wrote the file.

    Raises
    ------
    FormatError
        Not a zip archive, no skops ``schema.json``, or a member that can not be read.
    """
    try:
        zf = zipfile.ZipFile(src.stream())
    except Exception as exc:  # noqa: BLE001 - BadZipFile and struct errors
        raise FormatError(f"unreadable zip archive: {type(exc).__name__}: {exc}") from exc
    with zf:
        if len(zf.infolist()) > MAX_MEMBERS:
            raise FormatError(f"zip archive with more than {MAX_MEMBERS:,} members")
        schema = read_json_member(zf, "schema.json", options.limits)
        if not is_skops_schema(schema):
            raise FormatError("schema.json is not a skops schema")
        col = Collector(options.path, options.policy, options.limits)
        names = skops_type_names(schema, col, location="schema.json")
        ids: dict[Any, dict] = {}
        try:
            for node in walk_json(schema, options.limits.max_items):
                key = _hashable(node.get("__id__"))
                if key is not None and node.get("__loader__") != "CachedNode":
                    ids.setdefault(key, node)
        except OverflowError as exc:
            raise FormatError("skops schema with more values than Limits.max_items") from exc
        globals_: list[GlobalInfo] = []
        for pair in dict.fromkeys(names):
            verdict = options.policy.verdict(*pair)
            globals_.append(GlobalInfo(format_name(pair), verdict.state, verdict.reason))
        problems = [Problem(f.rule, f.message) for f in col.findings]
        builder = TreeBuilder(options, SkopsDescriber(zf, ids, options.policy))
        root = builder.build(schema)
    protocol = schema.get("protocol")
    metadata = {}
    if _str(schema.get("_skops_version")):
        metadata["skops_version"] = schema["_skops_version"][:40]
    return InspectReport(
        path=options.path,
        format="skops",
        root=root,
        globals=globals_,
        problems=problems,
        sklearn_version=root.sklearn_version or next(iter(builder.versions), None),
        sklearn_versions=list(builder.versions),
        protocol=protocol if type(protocol) is int else None,
        metadata=metadata,
        notes=builder.notes,
    )
