"""Inert object graph produced by the readers.

A reader parses a stream into plain Python containers (``list``, ``dict``, ``tuple``, ``set``,
``frozenset``), atoms (``int``, ``str``, ``bytes`` ...) and the node types below.  **Creating a
node never imports or calls anything from the file**: that is the contract that lets ``scan`` and
the audit stage run on hostile files.

How the stdlib unpicklers are made inert
----------------------------------------
``find_class`` returns a *placeholder class* per global (a fresh subclass of :class:`Global`
whose metaclass is :class:`GlobalMeta`).  The stdlib machinery then does the rest:

* ``REDUCE``/``INST``/``OBJ`` call the placeholder → ``GlobalMeta.__call__`` records a
  :class:`Call` node.
* ``NEWOBJ``/``NEWOBJ_EX`` call the placeholder's ``tp_new`` → ``Global.__new__`` records a
  :class:`New` node (the C unpickler insists the class be a *type*, hence classes, not objects).
* ``BUILD``/``APPEND(S)``/``SETITEM(S)``/``ADDITEMS`` on a node call its ``__setstate__``,
  ``extend``, ``__setitem__`` or ``add``, which record the operation on the node in order.
* ``BUILD`` on a placeholder class (monkey-patching a class, function or module) reaches
  ``GlobalMeta.__setstate__``, which records a forbidden operation instead of doing anything.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = [
    "Global",
    "GlobalMeta",
    "Node",
    "Call",
    "New",
    "ParseContext",
    "OP_BUILD",
    "OP_EXTEND",
    "OP_SETITEM",
    "OP_ADD",
    "ATOMIC_TYPES",
]

OP_BUILD = 0
OP_EXTEND = 1
OP_SETITEM = 2
OP_ADD = 3

#: Types whose instances hold no references to other parsed objects.
ATOMIC_TYPES = frozenset({int, float, str, bytes, bytearray, bool, type(None), complex})


class ParseContext:
    """Everything one parse records besides the object graph (one per stream, never shared).

    Attributes
    ----------
    globals : dict of (str, str) to type
        Placeholder class per global (a :class:`GlobalRef` for a safe-format file), in the
        order the stream first named them.
    forbidden : list of (str, str)
        ``(operation, detail)`` for constructs safeload never allows (BUILD on a class,
        persistent ids ...), recorded so the audit can report them with the untrusted names.
    global_order : list of (str, str)
        Every ``find_class`` call in order (one entry per global-naming opcode, repeats kept).
    global_offsets : list of int or None
        Byte offsets matching ``global_order``, recorded by the pure-Python (joblib) reader;
        empty for the C path, whose offsets are ``StreamInfo.global_offsets``.
    consumed : set of (str, str)
        Globals the reader itself replaced (joblib array wrappers).
    """

    __slots__ = (
        "globals",
        "forbidden",
        "global_order",
        "global_offsets",
        "consumed",
        "__weakref__",
    )

    def __init__(self) -> None:
        self.globals: dict[tuple[str, str], type | GlobalRef] = {}
        self.global_order: list[tuple[str, str]] = []
        #: Byte offset of the opcode behind each entry of ``global_order`` (same length), filled
        #: by the pure-Python (joblib) reader only: offsets in the decompressed stream, ``None``
        #: where the position is unknown.  The C path gets them from ``StreamInfo`` instead.
        self.global_offsets: list[int | None] = []
        self.forbidden: list[tuple[str, str]] = []
        #: globals the reader itself replaced (joblib array wrappers): never resolved or built
        self.consumed: set[tuple[str, str]] = set()

    def placeholder(self, module: str, qualname: str) -> type:
        """Return the placeholder class for a global (one per distinct pair).

        Called from ``find_class``; records the name, imports nothing.
        """
        return self._record(module, qualname, self._placeholder_class)

    def reference(self, module: str, qualname: str) -> GlobalRef:
        """Return the :class:`GlobalRef` for a global a safe-format file names (one per
        distinct pair), recorded as :meth:`placeholder` records it; imports nothing.

        Nothing calls a safe-format global during the parse, so it needs no placeholder class
        (creating one costs ~6 µs and a reference cycle per global per load).
        """
        return self._record(module, qualname, GlobalRef)  # type: ignore[return-value]

    def _record(self, module: str, qualname: str, make: Callable[..., Any]) -> Any:
        """Record one naming of ``(module, qualname)``; ``make(module, qualname)`` builds its
        stand-in the first time the pair is named."""
        key = (module, qualname)
        self.global_order.append(key)
        found = self.globals.get(key)
        if found is None:
            if type(module) is not str or type(qualname) is not str:
                raise TypeError("global names must be str")
            found = self.globals[key] = make(module, qualname)
        return found

    def _placeholder_class(self, module: str, qualname: str) -> type:
        return GlobalMeta(
            "Global",
            (Global,),
            {"__slots__": (), "module": module, "qualname": qualname, "context": self},
        )


class GlobalRef:
    """A global named by a safe-format file (:meth:`ParseContext.reference`): its module and
    qualname, what the audit and :meth:`safeload.build.Builder.plan` read of a placeholder.

    Parameters
    ----------
    module, qualname : str
    """

    __slots__ = ("module", "qualname")

    def __init__(self, module: str, qualname: str) -> None:
        self.module = module
        self.qualname = qualname

    def __repr__(self) -> str:
        return f"<global {self.module}.{self.qualname}>"


class GlobalMeta(type):
    """Metaclass of placeholder globals: calling one records a :class:`Call` node."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Call:
        return Call(cls, args, kwargs)

    def __setstate__(cls, state: Any) -> None:
        cls.context.forbidden.append(
            (
                "build-on-global",
                f"BUILD sets state on {cls.module}.{cls.qualname} itself (a class, function or "
                "module), which would monkey-patch it for the whole process",
            )
        )

    def __repr__(cls) -> str:
        return f"<global {cls.module}.{cls.qualname}>"


class Global(metaclass=GlobalMeta):
    """Base of placeholder globals.  ``NEWOBJ`` reaches :meth:`__new__` and records a node."""

    __slots__ = ()
    module: str = ""
    qualname: str = ""
    context: ParseContext

    def __new__(cls, *args: Any, **kwargs: Any) -> New:  # type: ignore[misc]
        return New(cls, args, kwargs)


class Node:
    """A deferred construction: ``func`` is a placeholder class; ``ops`` are later mutations.

    Attributes
    ----------
    func : type
        The placeholder of the callable (``Call``) or class (``New``).
    args : tuple
    kwargs : dict
    ops : list of tuple or None
        ``(OP_BUILD, state)``, ``(OP_EXTEND, items)``, ``(OP_SETITEM, key, value)``,
        ``(OP_ADD, item)`` in stream order; ``None`` when there are none.
    """

    __slots__ = ("func", "args", "kwargs", "ops")

    def __init__(self, func: type, args: tuple, kwargs: dict) -> None:
        self.func = func
        self.args = args
        self.kwargs = kwargs
        self.ops: list[tuple] | None = None

    def _record(self, op: tuple) -> None:
        if self.ops is None:
            self.ops = [op]
        else:
            self.ops.append(op)

    # The stdlib unpicklers look these up on the object the opcode targets.
    def __setstate__(self, state: Any) -> None:
        self._record((OP_BUILD, state))

    def extend(self, items: Any) -> None:
        self._record((OP_EXTEND, list(items)))

    def append(self, item: Any) -> None:
        self._record((OP_EXTEND, [item]))

    def __setitem__(self, key: Any, value: Any) -> None:
        self._record((OP_SETITEM, key, value))

    def add(self, item: Any) -> None:
        self._record((OP_ADD, item))

    def __call__(self, *args: Any, **kwargs: Any) -> Call:
        # REDUCE on the *result* of a call (``getattr(os, 'system')(cmd)``): recorded so the
        # parse can go on and report every global; the build stage refuses it.
        return Call(self, args, kwargs)  # type: ignore[arg-type]

    @property
    def name(self) -> str:
        """``module.qualname`` of the callable; bounded for calls of call results (iterative,
        so a 2,000-deep ``f()()()...`` chain neither recurses nor builds a long message)."""
        func = self.func
        depth = 0
        while isinstance(func, Node):
            func = func.func
            depth += 1
        base = f"{func.module}.{func.qualname}" if hasattr(func, "module") else "?"
        return base if depth == 0 else f"<result of {depth} nested call(s) of {base}>"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} args={len(self.args)}>"


class Call(Node):
    """``func(*args, **kwargs)`` — from ``REDUCE``, ``INST`` or ``OBJ``."""

    __slots__ = ()


class New(Node):
    """``cls.__new__(cls, *args, **kwargs)`` — from ``NEWOBJ``/``NEWOBJ_EX``."""

    __slots__ = ()


NODE_TYPES = (Call, New)
