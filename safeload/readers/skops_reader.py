"""``.skops`` files: audited against safeload's policy, loaded by skops, validated by safeload.

skops (``skops.io``) stores an estimator as a zip of ``schema.json`` and ``.npy`` members and
loads it without pickle, trusting a built-in list of types plus what the caller passes.
safeload walks ``schema.json`` itself (bounded, nothing imported) and checks *every* type and
function the file names against its own exact-name policy — not only the ones skops would ask
about — then lets ``skops.io.load`` build the object with exactly those names trusted, and runs
safeload's content validators on the result.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

from ..errors import FormatError, LimitExceededError, SafeloadError, UntrustedTypesError
from ..jsonnest import check_json_nesting
from ..limits import Limits
from ..policy import Policy, format_name
from ..source import Source

__all__ = ["is_skops_archive", "load_skops", "skops_globals"]

_SCHEMA = "schema.json"


def _zip(src: Source) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(io.BytesIO(bytes(src.data)) if not src.file else src.stream())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise FormatError(f"corrupt zip archive: {exc}") from None


def is_skops_archive(src: Source) -> bool:
    """True when the zip archive has a ``schema.json`` member (skops' layout)."""
    try:
        with _zip(src) as zf:
            return _SCHEMA in zf.namelist()
    except Exception:  # noqa: BLE001 - any damage: not a skops file; the caller refuses it
        return False


def _check_with_scanner(src: Source, policy: Policy, limits: Limits) -> None:
    """Refuse what ``safeload.scan`` reports unsafe in the archive (duplicate or overlapping
    members, data after the end record, unknown skops loaders, pickled members ...): the loader
    and the scanner must agree on every file."""
    from ..scan import scan

    report = scan(bytes(src.data), policy=policy, limits=limits)
    if report.safe:
        return
    if report.untrusted_types:
        reasons = {name: "not trusted by the policy" for name in report.untrusted_types}
        raise UntrustedTypesError(sorted(reasons.items()), "the .skops file names untrusted types")
    blocking = [f"{f.rule_id} {f.message}" for f in report.findings if f.blocking]
    raise FormatError("the .skops archive is malformed: " + "; ".join(blocking[:5]))


def _read_schema(src: Source, limits: Limits) -> dict:
    try:
        return _read_schema_unchecked(src, limits)
    except SafeloadError:
        raise
    except Exception as exc:  # noqa: BLE001 - zipfile's BadZipFile, NotImplementedError ...
        raise FormatError(f"corrupt .skops archive: {type(exc).__name__}: {exc}") from None


def _read_schema_unchecked(src: Source, limits: Limits) -> dict:
    with _zip(src) as zf:
        info = zf.getinfo(_SCHEMA)
        if info.file_size > limits.max_json_bytes:
            raise LimitExceededError(
                "max_json_bytes", info.file_size, limits.max_json_bytes, "skops schema.json"
            )
        total = sum(i.file_size for i in zf.infolist())
        limits.check("max_decompressed_bytes", total, "skops archive members")
        with zf.open(info) as fh:
            raw = fh.read(limits.max_json_bytes + 1)
    check_json_nesting(raw, "skops schema.json")  # skops.io.load parses it again, as deep
    try:
        schema = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise FormatError(f"skops schema.json is not valid JSON: {str(exc)[:100]}") from None
    if not isinstance(schema, dict):
        raise FormatError("skops schema.json is not an object")
    return schema


def skops_globals(schema: dict, limits: Limits) -> list[tuple[str, str]]:
    """Every (module, qualname) a skops schema names: node classes and stored functions/types.

    Walks the JSON iteratively with a node budget (``Limits.max_items``); imports nothing.

    Raises
    ------
    LimitExceededError
        More nodes than ``max_items``, or nesting deeper than ``max_depth``.
    """
    found: dict[tuple[str, str], None] = {}
    stack: list[tuple[Any, int]] = [(schema, 0)]
    budget = limits.max_items
    while stack:
        node, depth = stack.pop()
        budget -= 1
        if budget < 0:
            raise LimitExceededError("max_items", limits.max_items + 1, limits.max_items, "skops")
        if depth > limits.max_depth:
            raise LimitExceededError("max_depth", depth, limits.max_depth, "skops schema nesting")
        if isinstance(node, dict):
            module, cls = node.get("__module__"), node.get("__class__")
            if isinstance(module, str) and isinstance(cls, str):
                found[(module, cls)] = None
            loader = node.get("__loader__")
            content = node.get("content")
            if loader == "JsonNode" and isinstance(content, str):
                check_json_nesting(content, "a skops JsonNode")  # skops.io.load parses it
            if loader in ("FunctionNode", "TypeNode") and isinstance(content, dict):
                fmod, fname = (
                    content.get("module_path"),
                    content.get("function") or content.get("name"),
                )
                if isinstance(fmod, str) and isinstance(fname, str):
                    found[(fmod, fname)] = None
            stack.extend((v, depth + 1) for v in node.values() if isinstance(v, (dict, list)))
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node if isinstance(v, (dict, list)))
    return list(found)


#: Names skops writes for its own node bookkeeping, which are builtins it handles itself.
_SKOPS_BUILTIN_NODES = frozenset(
    {
        ("builtins", "dict"),
        ("builtins", "list"),
        ("builtins", "tuple"),
        ("builtins", "set"),
        ("builtins", "str"),
        ("builtins", "int"),
        ("builtins", "float"),
        ("builtins", "bool"),
        ("builtins", "NoneType"),
        ("builtins", "bytes"),
        ("builtins", "bytearray"),
        ("builtins", "complex"),
        ("builtins", "slice"),
        ("builtins", "function"),
        ("builtins", "type"),
    }
)


def load_skops(
    src: Source,
    *,
    policy: Policy,
    limits: Limits,
    verify: bool | None = None,
    mmap_mode: str | None = None,
) -> Any:
    """Load a ``.skops`` file through skops after auditing it against ``policy``.

    Raises
    ------
    UntrustedTypesError
        Listing every name the file uses that ``policy`` does not trust.
    FormatError
        A corrupt archive, or skops failing on it.
    ValidationError
        Built content that C code would index out of bounds.
    """
    if mmap_mode is not None:
        raise ValueError("mmap_mode applies to safe-format files only")
    try:
        import skops.io as sio
    except ImportError as exc:  # pragma: no cover - skops is a dependency
        raise FormatError("reading .skops files needs the skops package") from exc
    _check_with_scanner(src, policy, limits)
    schema = _read_schema(src, limits)
    untrusted = []
    for pair in skops_globals(schema, limits):
        if pair in _SKOPS_BUILTIN_NODES:
            continue
        verdict = policy.verdict(*pair)
        if not verdict.trusted:
            untrusted.append((format_name(pair), verdict.reason))
    if untrusted:
        raise UntrustedTypesError(sorted(untrusted), "the .skops file names untrusted types")
    data = bytes(src.data)
    try:
        asked = sio.get_untrusted_types(data=data)
        obj = sio.loads(data, trusted=asked)
    except SafeloadError:
        raise
    except Exception as exc:  # noqa: BLE001 - skops refused or failed on the file
        raise FormatError(f"skops could not load the file: {type(exc).__name__}: {exc}") from exc
    _validate_tree(obj, limits)
    return obj


def _validate_tree(obj: Any, limits: Limits) -> None:
    """Run safeload's content validators on every object reachable from ``obj``."""
    from ..validate import has_validator, validate

    seen: set[int] = set()
    stack = [obj]
    budget = limits.max_items
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        budget -= 1
        if budget < 0:
            raise LimitExceededError("max_items", limits.max_items + 1, limits.max_items, "skops")
        if has_validator(type(item)):
            validate(item, limits)
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)
        elif hasattr(item, "__dict__") and not isinstance(item, type):
            stack.extend(vars(item).values())
