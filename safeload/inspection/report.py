"""What :func:`safeload.inspect` returns: an :class:`InspectReport`, a tree of
:class:`InspectNode` with :class:`ValueSummary` leaves, rendered as a dict/JSON or a rich tree.

A report never holds data from the file beyond short summaries: arrays are described by type,
shape and dtype; strings longer than :data:`MAX_TEXT` characters and every ``bytes`` value are
elided; only small scalars are shown.
"""

from __future__ import annotations

import dataclasses
import io
import json
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "InspectReport",
    "InspectNode",
    "ValueSummary",
    "GlobalInfo",
    "Problem",
    "VERDICTS",
    "SHOW_CHOICES",
    "MAX_TEXT",
]

#: Verdicts of a node or global: the policy's four, plus ``forbidden`` for a trusted name used
#: in a way the loader refuses (a value-only function called at load time, BUILD on a class ...).
VERDICTS = ("trusted", "untrusted", "dangerous", "removed", "forbidden")
#: ``show`` values: the whole tree, or only the paths leading to what is not trusted.
SHOW_CHOICES = ("all", "untrusted")
#: Longest string value shown; longer ones are elided with their length.
MAX_TEXT = 40

_COLORS = {
    "trusted": "green",
    "untrusted": "red",
    "dangerous": "bold red",
    "removed": "yellow",
    "forbidden": "bold red",
}


def _compact(obj: Any) -> dict[str, Any]:
    """``asdict`` without the fields that are None or empty (keeps JSON output short)."""
    return {k: v for k, v in dataclasses.asdict(obj).items() if v is not None and v != []}


@dataclass
class ValueSummary:
    """A short description of one value (a parameter, a fitted attribute, another attribute).

    Attributes
    ----------
    type : str
        ``"float"``, ``"str"``, ``"NoneType"``, ``"list"``, ``"numpy.ndarray"``,
        ``"numpy.int64"``, ``"function"``, or the class name of an object shown as a child node.
    value : str or None
        ``repr`` of a small scalar or a short string (elided past :data:`MAX_TEXT` characters);
        never set for arrays or bytes.
    shape : list of int or None
        Arrays (``[]`` for a 0-d array); None for everything else, numpy scalars included.
    dtype : str or None
        Arrays and numpy scalars: ``"float64"``, ``"int64"``, ``"bool"``, ``"U5"``, ``"object"``,
        ``"struct[left_child, right_child, ...]"``.
    length : int or None
        Containers, ``str`` and ``bytes``.
    verdict : str or None
        For references to globals (a function or class stored as a value) and calls: the
        policy's verdict (see :data:`VERDICTS`).
    """

    type: str
    value: str | None = None
    shape: list[int] | None = None
    dtype: str | None = None
    length: int | None = None
    verdict: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict without the unset fields."""
        out = _compact(self)
        if self.shape is not None:
            out["shape"] = list(self.shape)
        return out

    def text(self) -> str:
        """One-line rendering: ``ndarray (1, 3) float64``, ``float = 0.5``, ``list[3]``."""
        tp = self.type.removeprefix("builtins.")
        if tp.startswith("numpy.") and self.shape is not None:
            tp = tp.removeprefix("numpy.")
        parts = [tp]
        if self.length is not None and self.value is None:
            parts[0] = f"{tp}[{self.length}]"
        if self.shape is not None:
            parts.append(
                f"({', '.join(map(str, self.shape))}{',' if len(self.shape) == 1 else ''})"
            )
        if self.dtype is not None and not (self.shape is None and tp.endswith(self.dtype)):
            parts.append(self.dtype)
        text = " ".join(parts)
        if self.value is not None:
            text += f" = {self.value}"
        if self.verdict is not None and self.verdict != "trusted":
            text += f" [{self.verdict}]"
        return text


@dataclass
class InspectNode:
    """One object of the graph (an estimator, another object, a call) or the root container.

    Attributes
    ----------
    kind : str
        ``"estimator"`` (a scikit-learn estimator class the policy trusts: ``params`` are
        compared with the class defaults), ``"object"`` (any other instance: every state
        entry not ending in ``_`` is an attribute), ``"call"`` (a call of a function, such as
        ``os.system(...)``; the loader would run it), ``"container"`` (a root list/dict/tuple
        holding objects), ``"shared"`` (an object already shown elsewhere in the tree),
        ``"opaque"`` (something inspect does not decode).
    class_name : str
        ``module.qualname`` in today's spelling (after the policy's aliases).
    verdict : str
        One of :data:`VERDICTS`.
    role : str or None
        How the parent holds it: ``"steps['sc']"``, ``"estimators_[0]"``, ``"tree_"``; None
        for the root.
    reason : str or None
        Why it is not trusted (the policy's reason), None when trusted.
    written_as : str or None
        The name as the file spells it, when an alias changed it.
    params : dict of str to ValueSummary
        ``__init__`` parameters whose value differs from the class default (estimators only).
    fitted : dict of str to ValueSummary
        Fitted attributes: state entries ending in ``_`` (not ``__``).
    attributes : dict of str to ValueSummary
        Other state entries (private attributes, a non-estimator's state, call arguments).
    children : list of InspectNode
        Nested objects, in state order.
    sklearn_version : str or None
        ``_sklearn_version`` from the object's state.
    omitted : int
        Children and entries not shown because of the breadth or depth caps.
    """

    kind: str
    class_name: str
    verdict: str
    role: str | None = None
    reason: str | None = None
    written_as: str | None = None
    params: dict[str, ValueSummary] = field(default_factory=dict)
    fitted: dict[str, ValueSummary] = field(default_factory=dict)
    attributes: dict[str, ValueSummary] = field(default_factory=dict)
    children: list[InspectNode] = field(default_factory=list)
    sklearn_version: str | None = None
    omitted: int = 0

    def walk(self):
        """Yield this node and every descendant, depth first (iterative)."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))

    def find(self, class_name: str) -> list[InspectNode]:
        """Every node of the subtree whose ``class_name`` ends with ``class_name``
        (``"LogisticRegression"`` or the full ``module.qualname``)."""
        return [
            n
            for n in self.walk()
            if n.class_name == class_name or n.class_name.endswith("." + class_name)
        ]

    def _flagged(self) -> bool:
        return self.verdict != "trusted" or any(
            v.verdict not in (None, "trusted")
            for d in (self.params, self.fitted, self.attributes)
            for v in d.values()
        )

    def pruned(self) -> InspectNode | None:
        """The subtree reduced to the paths that lead to untrusted or forbidden things, or
        None when everything in it is trusted (iterative: safe on deep trees)."""
        order = list(self.walk())
        kept: dict[int, InspectNode] = {}
        for node in reversed(order):  # children before parents
            children = [kept[id(c)] for c in node.children if id(c) in kept]
            if not children and not node._flagged():
                continue
            whole = node.verdict != "trusted"  # an untrusted object is shown whole
            kept[id(node)] = dataclasses.replace(
                node,
                params=_untrusted_values(node.params, whole),
                fitted=_untrusted_values(node.fitted, whole),
                attributes=_untrusted_values(node.attributes, whole),
                children=children,
                omitted=0,
            )
        return kept.get(id(self))

    def to_dict(self) -> dict[str, Any]:
        """Nested plain dict (iterative, so a deep tree does not recurse)."""
        out: dict[int, dict[str, Any]] = {}
        for node in reversed(list(self.walk())):
            d: dict[str, Any] = {"kind": node.kind, "class": node.class_name,
                                 "verdict": node.verdict}  # fmt: skip
            for key in ("role", "reason", "written_as", "sklearn_version"):
                value = getattr(node, key)
                if value is not None:
                    d[key] = value
            for key in ("params", "fitted", "attributes"):
                d[key] = {k: v.to_dict() for k, v in getattr(node, key).items()}
            d["children"] = [out.pop(id(c)) for c in node.children]
            if node.omitted:
                d["omitted"] = node.omitted
            out[id(node)] = d
        return out[id(self)]


@dataclass
class GlobalInfo:
    """One distinct global the file names, with the policy's verdict.

    Attributes
    ----------
    name : str
        ``module.qualname`` as the file spells it.
    verdict : str
        One of :data:`VERDICTS`.
    reason : str
        The policy's reason (why trusted, or why not).
    """

    name: str
    verdict: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Problem:
    """A construct the loader refuses whatever the policy (persistent ids, BUILD on a class,
    a value-only function called at load time, a limit exceeded while walking ...).

    Attributes
    ----------
    operation : str
        Stable slug (``build-on-global``, ``forbidden-call``, ``call-of-result``,
        ``limit-exceeded``, ``skops-malformed`` ...).
    detail : str
    """

    operation: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class InspectReport:
    """The object graph of one model file, described without building anything.

    Attributes
    ----------
    path : str or None
    format : str
        ``"pickle"``, ``"joblib"``, ``"joblib+zlib"``, ``"pickle+gzip"``, ``"skops"``,
        ``"safeload"`` ...
    root : InspectNode
    globals : list of GlobalInfo
        Every distinct global (for skops: every ``module.class`` of the schema), in the order
        the file first names them.
    problems : list of Problem
        Forbidden constructs and malformed structure.
    sklearn_version : str or None
        The scikit-learn version that wrote the file (``_sklearn_version`` of the outermost
        estimator that has one).
    sklearn_versions : list of str
        Every distinct ``_sklearn_version`` in the file (more than one means mixed objects).
    protocol : int or None
        Pickle protocol (pickle and joblib files), skops protocol (skops files).
    metadata : dict
        Format-specific facts (``skops_version`` ...).
    manifest : dict or None
        The manifest of a safeload-format file.
    notes : list of str
        What was cut short (depth or breadth caps, the walk budget).
    """

    path: str | None
    format: str
    root: InspectNode
    globals: list[GlobalInfo] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    sklearn_version: str | None = None
    sklearn_versions: list[str] = field(default_factory=list)
    protocol: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    manifest: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def trusted(self) -> bool:
        """True when every global is trusted and no problem was found."""
        return not self.problems and all(g.verdict == "trusted" for g in self.globals)

    @property
    def untrusted_types(self) -> list[str]:
        """Sorted names of every global that is not trusted."""
        return sorted({g.name for g in self.globals if g.verdict != "trusted"})

    def to_dict(self, show: str = "all") -> dict[str, Any]:
        """Plain dict (the ``--format json`` document).

        Parameters
        ----------
        show : {"all", "untrusted"}
            ``"untrusted"`` keeps only the paths of the tree leading to what is not trusted,
            and only the globals that are not trusted.

        Raises
        ------
        ValueError
            For another ``show``.
        """
        root, globals_ = self._view(show)
        return {
            "path": self.path,
            "format": self.format,
            "protocol": self.protocol,
            "sklearn_version": self.sklearn_version,
            "sklearn_versions": list(self.sklearn_versions),
            "trusted": self.trusted,
            "untrusted_types": self.untrusted_types,
            "globals": [g.to_dict() for g in globals_],
            "problems": [p.to_dict() for p in self.problems],
            "metadata": dict(self.metadata),
            "manifest": self.manifest,
            "notes": list(self.notes),
            "tree": root.to_dict() if root is not None else None,
        }

    def to_json(self, show: str = "all", indent: int | None = 2) -> str:
        """:meth:`to_dict` as JSON text."""
        return json.dumps(self.to_dict(show), indent=indent, default=str)

    def _view(self, show: str) -> tuple[InspectNode | None, list[GlobalInfo]]:
        if show not in SHOW_CHOICES:
            raise ValueError(f"show must be one of {SHOW_CHOICES}, got {show!r}")
        if show == "all":
            return self.root, self.globals
        return self.root.pruned(), [g for g in self.globals if g.verdict != "trusted"]

    def render(self, console: Any, show: str = "all") -> None:
        """Print the report on a ``rich.console.Console``: a header, the object tree, the
        globals that are not trusted and the problems."""
        from rich.markup import escape

        root, globals_ = self._view(show)
        verdict = "[green]TRUSTED[/green]" if self.trusted else "[bold red]UNTRUSTED[/bold red]"
        head = [f"[bold]{escape(self.path or '<input>')}[/bold]", verdict, self.format]
        if self.protocol is not None:
            head.append(f"protocol {self.protocol}")
        if self.sklearn_version:
            head.append(f"scikit-learn {escape(self.sklearn_version)}")
        if len(self.sklearn_versions) > 1:
            head.append(f"(versions: {escape(', '.join(self.sklearn_versions))})")
        console.print("  ".join(head))
        for key, value in self.metadata.items():
            console.print(f"  [dim]{escape(key)}:[/dim] {escape(str(value))}")
        if self.manifest is not None:
            console.print("  [dim]manifest:[/dim]")
            for key, value in list(self.manifest.items())[:50]:
                console.print(f"    {escape(str(key))}: {escape(_short_text(value, 100))}")
        if root is not None:
            console.print(_rich_tree(root))
        elif show == "untrusted":
            console.print("[green]every object is trusted[/green]")
        shown = [g for g in globals_ if g.verdict != "trusted"]
        if shown:
            console.print("\n[bold]globals that are not trusted[/bold]")
            for g in shown:
                color = _COLORS.get(g.verdict, "red")
                console.print(f"  [{color}]{g.verdict:>9}[/{color}] {escape(g.name)}"
                              f" [dim]({escape(g.reason)})[/dim]")  # fmt: skip
        if self.problems:
            console.print("\n[bold]forbidden operations and problems[/bold]")
            for p in self.problems:
                console.print(f"  [bold red]{escape(p.operation)}[/bold red] {escape(p.detail)}")
        for note in self.notes:
            console.print(f"[dim]note: {escape(note)}[/dim]")

    def to_text(self, show: str = "all", width: int = 120) -> str:
        """The rendering of :meth:`render` as plain text (no colors)."""
        from rich.console import Console

        buf = io.StringIO()
        console = Console(file=buf, width=width, color_system=None, force_terminal=False,
                          soft_wrap=False, highlight=False)  # fmt: skip
        self.render(console, show)
        return buf.getvalue()


def _untrusted_values(values: dict[str, ValueSummary], whole: bool) -> dict[str, ValueSummary]:
    if whole:
        return dict(values)
    return {k: v for k, v in values.items() if v.verdict not in (None, "trusted")}


def _short_text(value: Any, limit: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _label(node: InspectNode) -> str:
    from rich.markup import escape

    color = _COLORS.get(node.verdict, "red")
    short = node.class_name.rpartition(".")[2] or node.class_name
    parts = []
    if node.role is not None:
        parts.append(f"[cyan]{escape(node.role)}[/cyan]:")
    parts.append(f"[bold]{escape(short)}[/bold]")
    if node.kind == "call":
        parts[-1] = f"[bold]call {escape(node.class_name)}(…)[/bold]"
    else:
        parts.append(f"[dim]{escape(node.class_name)}[/dim]")
    parts.append(f"[{color}]\\[{node.verdict}][/{color}]")
    if node.kind == "shared":
        parts.append("[dim](shown above)[/dim]")
    if node.reason:
        parts.append(f"[dim]{escape(node.reason)}[/dim]")
    if node.written_as:
        parts.append(f"[dim](written as {escape(node.written_as)})[/dim]")
    if node.sklearn_version:
        parts.append(f"[dim]sklearn {escape(node.sklearn_version)}[/dim]")
    return " ".join(parts)


def _rich_tree(root: InspectNode) -> Any:
    """Build a ``rich.tree.Tree`` (iteratively: deep trees do not recurse)."""
    from rich.markup import escape
    from rich.tree import Tree

    tree = Tree(_label(root))
    stack = [(root, tree)]
    while stack:
        node, branch = stack.pop()
        for title, values, sep in (
            ("params", node.params, " = "),
            ("fitted", node.fitted, ": "),
            ("attributes", node.attributes, ": "),
        ):
            if not values:
                continue
            sub = branch.add(f"[dim]{title}[/dim]")
            for key, value in values.items():
                if sep == " = " and value.value is not None:
                    text = value.value
                    if value.verdict not in (None, "trusted"):
                        text += f" [{value.verdict}]"
                else:
                    text = value.text()
                sub.add(f"{escape(key)}{sep if sep == ' = ' else ': '}{escape(text)}")
        pairs = [(child, branch.add(_label(child))) for child in node.children]
        if node.omitted:
            branch.add(f"[dim]… {node.omitted} more[/dim]")
        stack.extend(reversed(pairs))
    return tree
