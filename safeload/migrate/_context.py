"""Per-load migration state: which version wrote each object, and which rules were applied.

The build stage calls :meth:`MigrationContext.enter` before it builds an object's state (so the
objects inside inherit the container's ``_sklearn_version``), :meth:`MigrationContext.rewrite`
just before the state is set, and :meth:`MigrationContext.finish` once the whole graph is built,
before the content validators run.
"""

from __future__ import annotations

import types
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import MigrationError, UnmigratedLegacyError
from ..graph import ATOMIC_TYPES
from ._registry import UNKNOWN_VERSION, Migration, Version, parse_version, rules_for
from ._standins import is_standin, is_standin_class, names_of

__all__ = ["AppliedMigration", "MigrationReport", "MigrationContext", "class_name"]

_SKIP_WALK = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, np.dtype)


def class_name(obj: Any) -> str:
    """``"module.qualname"`` of ``obj``'s class; a stand-in's removed name."""
    if is_standin(obj):
        return obj.legacy_name
    tp = type(obj)
    return f"{tp.__module__}.{tp.__qualname__}"


@dataclass(frozen=True)
class AppliedMigration:
    """One rule applied to objects of one class.

    Attributes
    ----------
    rule : str
        The rule's name (``"trees.node_missing_go_to_left"``).
    cls : str
        ``"module.qualname"`` it was applied to.
    source_version : str or None
        ``_sklearn_version`` of those objects (or of their container); None when unknown.
    count : int
        How many objects of the file it rewrote.
    summary : str
        What changed in scikit-learn (first line of the rule's docstring).
    """

    rule: str
    cls: str
    source_version: str | None
    count: int
    summary: str

    def __str__(self) -> str:
        times = f" x{self.count}" if self.count > 1 else ""
        return f"{self.rule} ({self.cls}{times}): {self.summary}"


@dataclass
class MigrationReport:
    """What a load migrated.

    Attributes
    ----------
    source_version : str or None
        ``_sklearn_version`` of the outermost estimator of the file (None: not recorded,
        scikit-learn < 0.18 or no estimator).
    target_version : str
        The installed scikit-learn version the objects were migrated to.
    applied : list of AppliedMigration
    """

    source_version: str | None
    target_version: str
    applied: list[AppliedMigration] = field(default_factory=list)

    @property
    def migrated(self) -> bool:
        """True when at least one rule rewrote something."""
        return bool(self.applied)

    def message(self) -> str:
        """The text of the :class:`~safeload.errors.VersionMismatchWarning`."""
        lines = [f"  - {a}" for a in self.applied]
        return (
            f"the file was written by scikit-learn {self.source_version or 'unknown (<0.18)'}; "
            f"safeload migrated it to scikit-learn {self.target_version} "
            f"({len(self.applied)} migration(s)):\n" + "\n".join(lines)
        )


class MigrationContext:
    """Migration bookkeeping of one load (never shared between loads or threads).

    Attributes
    ----------
    version : tuple of int
        While a rule runs: the source version of the object being migrated (its own
        ``_sklearn_version`` or its nearest container's).
    version_text : str or None
        The same, as the file spelled it.
    owner : str or None
        While a rule runs: class of the nearest enclosing object that carries a
        ``_sklearn_version`` (for a ``Tree``: its ``DecisionTreeClassifier``).
    obj : object
        While a rule runs: the object whose state is being set (rules must not call it).
    uses_standins : bool
        True when the audit resolved removed names to stand-ins.
    """

    def __init__(self, uses_standins: bool = False):
        self.uses_standins = uses_standins
        self.source_version: str | None = None
        self._stack: list[tuple[Version, str, str]] = []
        self._applied: dict[tuple[str, str, str | None], list[Any]] = {}
        self._replacements: dict[int, tuple[Any, Any]] = {}
        self._converted: dict[int, tuple[Any, Any]] = {}
        self.created: list[Any] = []
        self.version: Version = UNKNOWN_VERSION
        self.version_text: str | None = None
        self.owner: str | None = None
        self.obj: Any = None

    # ------------------------------------------------------------------ build hooks
    def enter(self, obj: Any, state: Any) -> bool:
        """Called before ``obj``'s state is built; True when ``obj`` carries its own version."""
        if type(state) is dict:
            text = state.get("_sklearn_version")
            if type(text) is str:
                if self.source_version is None:
                    self.source_version = text
                self._stack.append((parse_version(text) or UNKNOWN_VERSION, text, class_name(obj)))
                return True
        return False

    def leave(self, pushed: bool) -> None:
        """Undo :meth:`enter`."""
        if pushed:
            self._stack.pop()

    def rewrite(self, obj: Any, state: Any, pushed: bool) -> Any:
        """Apply the state rules of ``obj``'s class, then convert stand-ins found in the state.

        Returns
        -------
        object
            The state to set (the same object or a rewritten one).

        Raises
        ------
        MigrationError
            When a rule can not reproduce the old behaviour.
        """
        rules = rules_for("state", class_name(obj))
        if pushed:  # an estimator (it carries its own _sklearn_version): rules for every class
            rules = rules + rules_for("state", "*")
        if not rules and not self.uses_standins:
            return state
        stack = self._stack
        if stack:
            self.version, self.version_text = stack[-1][0], stack[-1][1]
        else:
            self.version, self.version_text = UNKNOWN_VERSION, None
        below = stack[:-1] if pushed else stack
        self.owner = below[-1][2] if below else None
        self.obj = obj
        try:
            for rule in rules:
                if self.version in rule.versions:
                    new = rule.func(state, self)
                    if new is not None:
                        state = new
                        self.record(rule, class_name(obj))
            if self.uses_standins:
                state = self._convert_in(state)
        finally:
            self.obj = None
        return state

    # ------------------------------------------------------------------ helpers for rules
    def record(self, rule: Migration, cls: str) -> None:
        """Note that ``rule`` rewrote one object of class ``cls``."""
        key = (rule.name, cls, self.version_text)
        entry = self._applied.get(key)
        if entry is None:
            self._applied[key] = [rule.summary, 1]
        else:
            entry[1] += 1

    def replace(self, old: Any, new: Any) -> None:
        """Make every reference to ``old`` in the loaded graph point to ``new`` instead."""
        self._replacements[id(old)] = (old, new)
        self.created.append(new)

    def refuse(self, reason: str, message: str) -> MigrationError:
        """Build the :class:`MigrationError` a rule raises when it can not migrate exactly."""
        return MigrationError(reason, message)

    def convert(self, standin: Any) -> Any:
        """Today's object for a stand-in (memoized: a shared stand-in converts once).

        Returns the stand-in itself when no rule applies (it is then refused by
        :meth:`finish`).
        """
        key = id(standin)
        hit = self._converted.get(key)
        if hit is not None:
            return hit[1]
        name = standin.legacy_name
        for rule in rules_for("standin", name):
            if self.version in rule.versions:
                new = rule.func(standin, self)
                self._converted[key] = (standin, new)
                self.record(rule, name)
                return new
        return standin

    def _convert_in(self, state: Any) -> Any:
        if type(state) is dict:
            for key, value in state.items():
                if is_standin(value):
                    state[key] = self.convert(value)
        elif type(state) is tuple and any(is_standin(v) for v in state):
            state = tuple(self.convert(v) if is_standin(v) else v for v in state)
        return state

    # ------------------------------------------------------------------ after the build
    def finish(self, root: Any) -> Any:
        """Redirect replaced objects and refuse surviving stand-ins.

        Returns
        -------
        object
            The root (or its replacement).

        Raises
        ------
        UnmigratedLegacyError
            ``removed-class-survives`` (a :class:`MigrationError` and a
            :class:`LegacyFormatError`) when a stand-in of a removed class is still reachable.
        """
        if not self._replacements and not self.uses_standins:
            return root
        survivors: list[Any] = []
        root = _Rewriter(self._replacements, survivors).fix(root)
        if survivors:
            raise UnmigratedLegacyError(
                (
                    name,
                    "removed-class-survives: no migration rule replaces it where the file uses it",
                )
                for name in names_of(survivors)
            )
        return root

    def report(self, target_version: str) -> MigrationReport:
        """The :class:`MigrationReport` of this load."""
        applied = [
            AppliedMigration(rule, cls, version, count, summary)
            for (rule, cls, version), (summary, count) in self._applied.items()
        ]
        return MigrationReport(self.source_version, target_version, applied)


class _Rewriter:
    """One pass over the built graph: swap replaced objects, collect stand-ins."""

    def __init__(self, replacements: dict[int, tuple[Any, Any]], survivors: list[Any]):
        self.replacements = replacements
        self.survivors = survivors
        self.memo: dict[int, Any] = {}

    def fix(self, x: Any) -> Any:
        tp = type(x)
        if tp in ATOMIC_TYPES:
            return x
        key = id(x)
        memo = self.memo
        if key in memo:
            return memo[key]
        hit = self.replacements.get(key)
        if hit is not None:
            memo[key] = hit[1]
            self.fix_children(hit[1])
            return hit[1]
        if is_standin(x) or is_standin_class(x):
            self.survivors.append(x)
            memo[key] = x
            return x
        memo[key] = x
        if isinstance(x, tuple):
            items = [self.fix(v) for v in x]
            if any(a is not b for a, b in zip(items, x, strict=True)):
                new = type(x)(*items) if hasattr(x, "_fields") else type(x)(items)
                memo[key] = new
                return new
            return x
        self.fix_children(x)
        return x

    def fix_children(self, x: Any) -> None:
        fix = self.fix
        if isinstance(x, list):
            for i, v in enumerate(x):
                new = fix(v)
                if new is not v:
                    x[i] = new
        elif isinstance(x, dict):
            for k, v in list(x.items()):
                fix(k)
                new = fix(v)
                if new is not v:
                    x[k] = new
        elif isinstance(x, (set, frozenset)):
            for v in x:
                fix(v)
        elif isinstance(x, np.ndarray):
            if x.dtype == object:
                flat = x.reshape(-1) if x.flags.c_contiguous else None
                for i, v in enumerate(x.flat):
                    new = fix(v)
                    if new is not v:
                        if flat is None:
                            raise MigrationError(
                                "replace-in-array", "cannot redirect a reference in this array"
                            )
                        flat[i] = new
            return
        if isinstance(x, _SKIP_WALK):
            return
        attrs = getattr(x, "__dict__", None)
        if type(attrs) is dict:
            for k, v in list(attrs.items()):
                new = fix(v)
                if new is not v:
                    attrs[k] = new
