"""Walk an inert graph the way the build stage would, without building anything.

:class:`safeload.build.Builder` refuses, besides untrusted globals, graphs that are too deep,
that expand to too many items once shared references are counted each time (memo "billion
laughs"), that use an object inside its own constructor arguments, that call the result of a
call, or that call a trusted callable with arguments :mod:`safeload.constraints` refuses.  The
scanner must report those files as unsafe too, so :func:`check_graph` repeats the builder's walk
— same order, same memo, same depth and item counting — iteratively (no recursion, whatever the
nesting), and applies the static call rules of :mod:`safeload.scanners.callrules` to each node.
It also picks up ``_sklearn_version`` from the first estimator state it meets.

Nothing is imported, called or allocated from the file: placeholders are compared by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._dtypestate import dtype_state_problem
from ..graph import ATOMIC_TYPES, OP_BUILD, OP_EXTEND, OP_SETITEM, Call, Global, New
from ..limits import Limits
from ..policy import Policy
from ..readers.joblib_reader import SkippedArray
from .callrules import NodeChecker, is_dtype_node, placeholder_pair

__all__ = ["GraphIssue", "GraphSummary", "check_graph"]

_ATOMIC = ATOMIC_TYPES | {np.ndarray, SkippedArray}
_NODES = (Call, New)
_IN_PROGRESS = 0
_DONE = 1


@dataclass
class GraphIssue:
    """Something the build stage would refuse.

    Attributes
    ----------
    rule : str
        Finding rule name (``forbidden-call``, ``call-of-result``, ``limit-exceeded``,
        ``graph-cycle``).
    message : str
    pair : (str, str) or None
        The global involved (its first opcode gives the finding an offset).
    """

    rule: str
    message: str
    pair: tuple[str, str] | None = None


@dataclass
class GraphSummary:
    """What :func:`check_graph` found."""

    issues: list[GraphIssue] = field(default_factory=list)
    sklearn_version: str | None = None
    items: int = 0
    complete: bool = True


class _ArgsDone:
    """Marker in a node's child list: its constructor arguments are built (memo → done)."""

    __slots__ = ("key",)

    def __init__(self, key: int) -> None:
        self.key = key


class _Abort(Exception):
    """A limit was exceeded: the builder stops there, so does the walk."""


def _all_atomic(items: Any) -> bool:
    return set(map(type, items)) <= _ATOMIC


def _sklearn_version(ops: list) -> str | None:
    for op in ops:
        if op[0] != OP_BUILD:
            continue
        state = op[1]
        if type(state) is tuple and len(state) == 2:
            state = state[0]
        if type(state) is dict:
            version = state.get("_sklearn_version")
            if type(version) is str:
                return version[:64]
    return None


class _Walker:
    def __init__(self, policy: Policy, limits: Limits, max_issues: int) -> None:
        self.policy = policy
        self.limits = limits
        self.max_issues = max_issues
        self.checker = NodeChecker(policy, limits)
        self.memo: dict[int, int] = {}
        self.sizes: dict[int, int] = {}
        self.items = 0
        self.summary = GraphSummary()
        self.stack: list[list] = []

    def issue(self, rule: str, message: str, pair: tuple[str, str] | None = None) -> None:
        issues = self.summary.issues
        if len(issues) < self.max_issues:
            issues.append(GraphIssue(rule, message, pair))

    def count(self, n: int) -> None:
        self.items += n
        if self.items > self.limits.max_items:
            self.issue(
                "limit-exceeded",
                f"limit max_items exceeded (objects and container items, shared references "
                f"counted each time): the file needs more than {self.limits.max_items:,}",
            )
            raise _Abort

    def run(self, root: Any) -> GraphSummary:
        try:
            self.visit(root, 0)
            stack = self.stack
            while stack:
                frame = stack[-1]
                child = next(frame[0], frame)
                if child is frame:
                    stack.pop()
                    self.sizes[frame[1]] = self.items - frame[2]
                elif type(child) is _ArgsDone:
                    self.memo[child.key] = _DONE
                else:
                    self.visit(child, frame[3])
        except _Abort:
            self.summary.complete = False
        self.summary.items = self.items
        return self.summary

    def visit(self, obj: Any, depth: int) -> None:
        """``Builder.build(obj, depth)``: count, check, and push the children."""
        tp = type(obj)
        if tp in _ATOMIC:
            return
        key = id(obj)
        state = self.memo.get(key)
        if state is not None:
            if state == _IN_PROGRESS:
                self.issue(
                    "graph-cycle",
                    "an object is used inside its own constructor arguments",
                    self._pair(obj),
                )
                return
            self.count(self.sizes.get(key, 0))
            return
        if depth > self.limits.max_depth:
            self.issue(
                "limit-exceeded",
                f"limit max_depth exceeded (nesting of containers and objects): the file needs "
                f"more than {self.limits.max_depth:,}",
            )
            raise _Abort
        start = self.items
        children = self._enter(obj, tp, key)
        if children is None:
            self.sizes[key] = self.items - start
        else:
            self.stack.append([iter(children), key, start, depth + 1])

    def _pair(self, obj: Any) -> tuple[str, str] | None:
        if type(obj) in _NODES and isinstance(obj.func, type):
            return (obj.func.module, obj.func.qualname)
        return None

    def _enter(self, obj: Any, tp: type, key: int) -> list | None:
        """Mark ``obj`` seen, count it and return its children in build order (None: leaf)."""
        memo = self.memo
        if tp is list:
            memo[key] = _DONE
            self.count(len(obj))
            return None if _all_atomic(obj) else [x for x in obj if type(x) not in _ATOMIC]
        if tp is dict:
            memo[key] = _DONE
            self.count(len(obj))
            if _all_atomic(obj) and _all_atomic(obj.values()):
                return None
            return [x for kv in obj.items() for x in kv if type(x) not in _ATOMIC]
        if tp is tuple:
            memo[key] = _DONE
            self.count(len(obj))
            return None if _all_atomic(obj) else [x for x in obj if type(x) not in _ATOMIC]
        if tp is Call or tp is New:
            return self._enter_node(obj, key)
        if isinstance(obj, type) and issubclass(obj, Global):
            memo[key] = _DONE
            return None
        if tp is set or tp is frozenset:
            memo[key] = _DONE
            self.count(len(obj))
            return None if _all_atomic(obj) else [x for x in obj if type(x) not in _ATOMIC]
        # a stand-in for a forbidden opcode (persistent id, EXT): reported by the parse
        memo[key] = _DONE
        return None

    def _check_slot_state(self, state: Any, func: Any) -> None:
        """``BUILD`` with slot state naming ``__class__``/``__dict__``: refused by the build
        stage without ``__setstate__``, and no ``__setstate__`` of a trusted type takes it."""
        if type(state) is tuple and len(state) == 2 and type(state[1]) is dict:
            bad = [k for k in ("__class__", "__dict__") if k in state[1]]
            if bad:
                pair = (func.module, func.qualname) if isinstance(func, type) else None
                name = f"{pair[0]}.{pair[1]}" if pair else "a constructed object"
                self.issue(
                    "forbidden-call",
                    f"build-slot-state: slot state may not set {bad[0]} on {name}",
                    pair,
                )

    def _is_dtype(self, value: Any) -> bool:
        return is_dtype_node(self.policy, value)

    def _check_dtype_state(self, state: Any) -> None:
        """A ``numpy.dtype`` state numpy itself would not write: its ``__setstate__`` trusts
        the state's shape and crashes the interpreter on some (numpy 2.4)."""
        problem = dtype_state_problem(state, self._is_dtype)
        if problem is not None:
            self.issue(
                "forbidden-call",
                f"bad-dtype-state: {problem}; numpy's dtype.__setstate__ can crash the "
                "interpreter on malformed states",
                ("numpy", "dtype"),
            )

    def _enter_node(self, node: Any, key: int) -> list:
        self.memo[key] = _IN_PROGRESS
        self.count(1)
        func = node.func
        if not (isinstance(func, type) and issubclass(func, Global)):
            self.issue(
                "call-of-result",
                "the file calls the result of another call (as in getattr(module, name)(...)); "
                "only named, trusted callables may be called",
            )
        else:
            for rule, message in self.checker.check(node):
                self.issue(rule, message, (func.module, func.qualname))
        ops = node.ops
        if ops and self.summary.sklearn_version is None:
            self.summary.sklearn_version = _sklearn_version(ops)
        for op in ops or ():
            if op[0] == OP_BUILD:
                self._check_slot_state(op[1], func)
                if self._is_dtype(node):
                    self._check_dtype_state(op[1])
        children: list = [a for a in node.args if type(a) not in _ATOMIC]
        kwargs = node.kwargs
        if kwargs:
            children += [x for kv in kwargs.items() for x in kv if type(x) not in _ATOMIC]
        if type(func) in _NODES:
            children.append(func)  # REDUCE on a result: the callable is a graph object too
        children.append(_ArgsDone(key))
        for op in ops or ():
            code = op[0]
            if code == OP_BUILD:
                values: Any = (op[1],)
            elif code == OP_SETITEM:
                values = (op[1], op[2])
            elif code == OP_EXTEND:
                values = op[1]
            else:
                values = (op[1],)
            children += [x for x in values if type(x) not in _ATOMIC]
        return children


def check_graph(root: Any, policy: Policy, limits: Limits, *, max_issues: int = 50) -> GraphSummary:
    """Report what the build stage would refuse in the inert graph ``root``.

    Parameters
    ----------
    root : object
        The root of a graph produced by a reader (atoms, builtin containers, nodes,
        placeholder globals).
    policy : Policy
        Gives canonical names and which names are trusted (nothing is resolved).
    limits : Limits
        ``max_depth``, ``max_items`` and ``max_array_bytes`` apply as in the build stage.
    max_issues : int
        Stop recording after this many issues (the walk goes on to bound the cost only by the
        limits).

    Returns
    -------
    GraphSummary
        Issues (empty when the builder would accept the structure), ``_sklearn_version`` and the
        item count.
    """
    return _Walker(policy, limits, max_issues).run(root)


def global_pair(policy: Policy, value: Any) -> tuple[str, str] | None:
    """Canonical pair of a placeholder (re-exported for the collector)."""
    return placeholder_pair(policy, value)
