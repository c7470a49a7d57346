"""The registry of migration rules and the scikit-learn version ranges they are keyed on.

A rule is a small function registered with :func:`migration` for one class (exact
``"module.qualname"`` of the object as it is built today, or of the removed class a stand-in
replaces) and a range of source scikit-learn versions.  Rules are data-like: they rewrite a state
(a dict of attributes, the tuple of a Cython object) or replace an inert stand-in; they never call
anything the file named.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Migration",
    "migration",
    "rules_for",
    "all_rules",
    "parse_version",
    "VersionRange",
    "KINDS",
]

#: ``state``: ``func(state, ctx) -> new state | None`` before the object's state is set.
#: ``standin``: ``func(standin, ctx) -> today's object`` for an inert stand-in of a removed class,
#: wherever it appears directly in a state being set.
KINDS = ("state", "standin")

Version = tuple[int, ...]

#: The version assumed when a state carries no ``_sklearn_version`` (scikit-learn < 0.18 did not
#: write one) and no container gave one.
UNKNOWN_VERSION: Version = (0, 0)

_NUMBERS = re.compile(r"\d+")
_CLAUSE = re.compile(r"^(<=|>=|==|<|>)\s*(\d+(?:\.\d+)*)$")


def parse_version(text: Any) -> Version | None:
    """Cached :func:`_parse_version` (a file repeats one version in every estimator)."""
    if type(text) is not str or len(text) > 64:
        return None
    hit = _VERSIONS.get(text)
    if hit is None and text not in _VERSIONS:
        hit = _VERSIONS[text] = _parse_version(text)
        if len(_VERSIONS) > 4096:
            _VERSIONS.clear()
    return hit


_VERSIONS: dict[str, Version | None] = {}


def _parse_version(text: Any) -> Version | None:
    """``"0.20.4"`` → ``(0, 20, 4)``; ``"1.3.dev0"`` → ``(1, 3)``; None for anything else.

    Parameters
    ----------
    text : object
        A ``_sklearn_version`` value from a file (any type; only ``str`` is parsed).

    Returns
    -------
    tuple of int or None
    """
    if type(text) is not str or len(text) > 64:
        return None
    parts: list[int] = []
    for piece in text.split(".")[:3]:
        match = _NUMBERS.match(piece)
        if match is None:
            break
        parts.append(int(match.group()))
        if match.end() != len(piece):
            break
    return tuple(parts) if parts else None


class VersionRange:
    """A conjunction of comparisons such as ``"<1.3"`` or ``">=0.21,<1.4"`` (``"*"``: any).

    Versions compare as integer tuples padded with zeros (``(1, 3)`` equals ``(1, 3, 0)``).
    """

    __slots__ = ("text", "_clauses", "_cache")

    def __init__(self, text: str):
        self.text = text
        self._clauses: list[tuple[str, Version]] = []
        self._cache: dict[Version, bool] = {}
        if text.strip() == "*":
            return
        for raw in text.split(","):
            match = _CLAUSE.match(raw.strip())
            if match is None:
                raise ValueError(f"bad version clause {raw!r} in {text!r}")
            self._clauses.append((match.group(1), tuple(int(x) for x in match.group(2).split("."))))

    def __contains__(self, version: Version) -> bool:
        cache = self._cache
        hit = cache.get(version)
        if hit is None:
            hit = cache[version] = self._contains(version)
        return hit

    def _contains(self, version: Version) -> bool:
        for op, bound in self._clauses:
            width = max(len(version), len(bound))
            a = version + (0,) * (width - len(version))
            b = bound + (0,) * (width - len(bound))
            ok = {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b, "==": a == b}[op]
            if not ok:
                return False
        return True

    def __repr__(self) -> str:
        return f"VersionRange({self.text!r})"


@dataclass(frozen=True)
class Migration:
    """One registered rule.

    Attributes
    ----------
    name : str
        Stable identifier, ``"<topic>.<function name>"`` (e.g. ``"trees.node_missing_go_to_left"``).
    cls : str
        Exact ``"module.qualname"`` the rule is keyed on.
    versions : VersionRange
        Source scikit-learn versions it applies to.
    kind : str
        ``"state"`` or ``"standin"`` (see :data:`KINDS`).
    func : callable
    summary : str
        First line of the rule's docstring (what changed in scikit-learn).
    """

    name: str
    cls: str
    versions: VersionRange
    kind: str
    func: Callable[..., Any]
    summary: str


_RULES: dict[tuple[str, str], list[Migration]] = {}


def migration(
    *, cls: str | tuple[str, ...], versions: str = "*", kind: str = "state"
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated function as a migration rule.

    Parameters
    ----------
    cls : str or tuple of str
        Exact ``"module.qualname"`` (today's spelling; for ``kind="standin"`` the canonical name
        of the removed class or function).  ``"*"`` (state rules only): every object whose
        state carries its own ``_sklearn_version`` (every estimator).
    versions : str
        Source scikit-learn versions, e.g. ``"<1.3"``, ``">=0.21,<1.4"``, ``"*"``.
    kind : {"state", "standin"}

    Returns
    -------
    callable
        The decorator; it returns the function unchanged.

    Raises
    ------
    ValueError
        Unknown ``kind`` or a malformed version range.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown migration kind {kind!r}")
    names = (cls,) if isinstance(cls, str) else tuple(cls)
    vrange = VersionRange(versions)

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        topic = func.__module__.rpartition(".")[2]
        doc = (func.__doc__ or "").strip().splitlines()
        rule_name = f"{topic}.{func.__name__}"
        for name in names:
            rule = Migration(rule_name, name, vrange, kind, func, doc[0] if doc else rule_name)
            _RULES.setdefault((kind, name), []).append(rule)
        return func

    return decorate


def rules_for(kind: str, cls: str) -> list[Migration]:
    """The rules of ``kind`` registered for the exact class name ``cls`` (registration order)."""
    return _RULES.get((kind, cls), [])


def all_rules() -> list[Migration]:
    """Every registered rule, one entry per (rule, class)."""
    return [rule for rules in _RULES.values() for rule in rules]
