"""JSON members of model archives: bounded parsing, skops schemas, safeload manifests.

``json.loads`` is bounded here: documents larger than :data:`MAX_JSON_BYTES`, nesting deeper than
the interpreter's recursion limit (``RecursionError``) or, where an application raised that limit,
than :data:`safeload.jsonnest.MAX_JSON_NESTING`, and integer literals longer than
:data:`MAX_INT_DIGITS` digits are findings, never crashes or quadratic conversions.  Parsed
documents are walked iteratively with an item budget.

A skops file's ``schema.json`` is a tree of nodes ``{"__class__", "__module__", "__loader__",
...}``; skops' ``get_untrusted_types`` lists the ``module.class`` of every node (plus the method
name of ``MethodNode``s) without constructing anything.  :func:`skops_type_names` lists the
same names, which the scanner checks against *safeload's* policy; ``skops.io.load`` is never
called.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from ..errors import LimitExceededError
from ..jsonnest import check_json_nesting
from .collector import Collector

__all__ = [
    "MAX_JSON_BYTES",
    "MAX_INT_DIGITS",
    "load_json",
    "walk_json",
    "skops_type_names",
    "is_skops_schema",
    "SKOPS_LOADERS",
]

MAX_JSON_BYTES = 64 << 20
MAX_INT_DIGITS = 4300

#: ``__loader__`` values of skops' node types (skops.io ``NODE_TYPE_MAPPING``, protocols 0-3).
SKOPS_LOADERS = frozenset(
    {
        "DictNode", "DefaultDictNode", "ListNode", "SetNode", "TupleNode", "BytesNode",
        "BytearrayNode", "SliceNode", "FunctionNode", "MethodNode", "PartialNode", "TypeNode",
        "ConstructorFromReduceNode", "ObjectNode", "JsonNode", "OperatorFuncNode", "CachedNode",
        "NdArrayNode", "MaskedArrayNode", "RandomStateNode", "RandomGeneratorNode", "DTypeNode",
        "SparseMatrixNode", "ReduceNode", "TreeNode", "LossNode", "SGDNode",
        "_DictWithDeprecatedKeysNode", "UfuncNode", "ZoneInfoNode", "QuantileForestNode",
        "BunchNode", "TimeDeltaNode",
    }
)  # fmt: skip


class _HugeInt(ValueError):
    pass


def _parse_int(text: str) -> int:
    if len(text) > MAX_INT_DIGITS:
        raise _HugeInt(f"an integer literal of {len(text):,} digits")
    return int(text)


def load_json(data: bytes, col: Collector, *, location: str) -> Any | None:
    """Parse a JSON member, or record a ``json-malformed`` finding and return None."""
    if len(data) > MAX_JSON_BYTES:
        col.add("json-malformed", f"JSON document of {len(data):,} bytes (more than "
                f"{MAX_JSON_BYTES:,})", location=location)  # fmt: skip
        return None
    try:
        check_json_nesting(data, location)
        return json.loads(data, parse_int=_parse_int)
    except LimitExceededError as exc:
        col.add("json-malformed", f"JSON nested too deep: {exc}", location=location)
    except RecursionError:
        col.add("json-malformed", "JSON nested deeper than the interpreter's recursion limit",
                location=location)  # fmt: skip
    except _HugeInt as exc:
        col.add("json-malformed", f"JSON holds {exc} (more than {MAX_INT_DIGITS})",
                location=location)  # fmt: skip
    except (ValueError, UnicodeDecodeError) as exc:
        col.add("json-malformed", f"invalid JSON: {type(exc).__name__}: {str(exc)[:200]}",
                location=location)  # fmt: skip
    return None


def walk_json(doc: Any, budget: int) -> Iterator[dict]:
    """Yield every dict of a parsed JSON document, iteratively, visiting at most ``budget``
    values (raises ``OverflowError`` beyond)."""
    stack = [doc]
    while stack:
        budget -= 1
        if budget < 0:
            raise OverflowError("too many JSON values")
        item = stack.pop()
        if type(item) is dict:
            yield item
            stack.extend(reversed(list(item.values())))
        elif type(item) is list:
            stack.extend(reversed(item))


def is_skops_schema(doc: Any) -> bool:
    """True for the ``schema.json`` of a skops file (a node with a protocol)."""
    return type(doc) is dict and "__loader__" in doc and "protocol" in doc


def skops_type_names(doc: Any, col: Collector, *, location: str) -> list[tuple[str, str]]:
    """The ``(module, qualname)`` names a skops schema asks the loader to use, in schema order.

    Mirrors the names ``skops.io.get_untrusted_types`` considers (each node's ``__module__``
    and ``__class__``; ``module.Class.method`` for ``MethodNode``; ``operator.<name>`` for
    ``OperatorFuncNode``).  Malformed nodes and unknown loaders are recorded as findings.
    """
    names: list[tuple[str, str]] = []
    try:
        for node in walk_json(doc, col.limits.max_items):
            loader = node.get("__loader__")
            if loader is None:
                continue
            module, cls = node.get("__module__"), node.get("__class__")
            if type(loader) is not str or loader not in SKOPS_LOADERS:
                col.add("skops-malformed", f"unknown skops loader {str(loader)[:100]!r}",
                        location=location)  # fmt: skip
                continue
            if type(module) is not str or type(cls) is not str or not module or not cls:
                col.add("skops-malformed", f"{loader} without a __module__/__class__ pair",
                        location=location)  # fmt: skip
                continue
            if loader == "OperatorFuncNode" and module != "operator":
                col.add("skops-malformed", f"OperatorFuncNode with module {module[:100]!r}",
                        location=location)  # fmt: skip
            names.append((module, cls))
            if loader == "MethodNode":
                content = node.get("content")
                func = content.get("func") if type(content) is dict else None
                obj = content.get("obj") if type(content) is dict else None
                if type(func) is not str or type(obj) is not dict:
                    col.add("skops-malformed", "MethodNode without func/obj",
                            location=location)  # fmt: skip
                    continue
                names.append((str(obj.get("__module__")), f"{obj.get('__class__')}.{func}"))
    except OverflowError:
        col.add("limit-exceeded", f"limit max_items exceeded (skops schema values): more than "
                f"{col.limits.max_items:,}", location=location)  # fmt: skip
    return names
