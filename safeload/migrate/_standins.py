"""Inert stand-ins for classes and functions that scikit-learn removed.

A file written by an older scikit-learn names globals that no longer exist
(``sklearn.ensemble._gb_losses.MultinomialDeviance``, ``sklearn.utils.deprecation.DeprecationDict``
...).  With migrations enabled, the audit maps each such name — exactly, and only when a migration
rule consumes it — to a stand-in defined here instead of refusing the file.  A stand-in imports
and runs nothing: it records the state the file gave (``__setstate__``), and for dict/list based
classes the items.  Migration rules turn stand-ins into today's objects; a stand-in that survives
into the returned object makes the load fail with :class:`~safeload.errors.MigrationError`.

The removed names are *not* trusted: nothing of that name is imported, and outside a load with
migrations (``migrate=False``, :func:`safeload.scan`) they are still refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

__all__ = [
    "LegacyState",
    "LegacyDict",
    "LegacyList",
    "LegacyValue",
    "LegacyReconstructor",
    "LegacyCall",
    "make_standins",
    "is_standin",
    "is_standin_class",
]


class LegacyState:
    """Stand-in instance of a removed class: holds the state the file set, nothing else.

    Attributes
    ----------
    legacy_name : str
        ``"module.qualname"`` of the removed class (canonical spelling).
    state : object
        What the file's ``BUILD`` set (None when it set nothing).
    """

    legacy_name = ""
    state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<stand-in for removed {self.legacy_name}>"


class LegacyDict(dict):
    """Stand-in of a removed ``dict`` subclass (``DeprecationDict``): the items plus the state."""

    legacy_name = ""
    state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<stand-in for removed {self.legacy_name} with {len(self)} items>"


class LegacyList(list):
    """Stand-in of a removed ``list`` subclass (``_RemainderColsList``): the items plus the state."""

    legacy_name = ""
    state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<stand-in for removed {self.legacy_name} with {len(self)} items>"


class LegacyValue:
    """Stand-in of a removed function or class used only as a value (``_passthrough_scorer``).

    It can not be called or instantiated by the file: it is not a class, and the build stage
    refuses calls of values.
    """

    __slots__ = ("legacy_name",)

    def __init__(self, legacy_name: str):
        self.legacy_name = legacy_name

    def __repr__(self) -> str:
        return f"<stand-in for removed {self.legacy_name}>"


class LegacyCall(LegacyState):
    """What calling a :class:`LegacyReconstructor` gives: the arguments of the call, inert.

    Attributes
    ----------
    legacy_name : str
        The removed function that was called.
    args : tuple
        The built arguments the file passed.
    """

    args: tuple = ()


class LegacyReconstructor(LegacyValue):
    """Stand-in of a removed Cython reconstructor (``__pyx_unpickle_<Class>``) that files call.

    Calling it runs nothing: it returns a :class:`LegacyCall` that records the arguments, which a
    migration rule turns into today's object (or refuses).  The build stage checks the call
    against the rule of the helper's name first (:mod:`safeload.constraints`: the class argument
    must be the trusted class the helper is named after); a result that no rule converts makes
    the load fail like any surviving stand-in.
    """

    __slots__ = ()

    def __call__(self, *args: Any) -> LegacyCall:
        call = LegacyCall()
        call.legacy_name = self.legacy_name
        call.args = args
        return call


_BASES = {"object": LegacyState, "dict": LegacyDict, "list": LegacyList}


def make_standins(kinds: Mapping[str, str]) -> Mapping[tuple[str, str], Any]:
    """One stand-in per removed name.

    Parameters
    ----------
    kinds : mapping of str to str
        Canonical ``"module.qualname"`` → ``"object"``, ``"dict"``, ``"list"``, ``"value"`` or
        ``"reconstructor"``.

    Returns
    -------
    mapping of (str, str) to object
        ``(module, qualname)`` → a stand-in class (a fresh subclass of :class:`LegacyState`,
        :class:`LegacyDict` or :class:`LegacyList`), a :class:`LegacyValue` or a
        :class:`LegacyReconstructor`; read-only.
    """
    out: dict[tuple[str, str], Any] = {}
    for name, kind in kinds.items():
        module, _, qualname = name.rpartition(".")
        if kind == "value":
            out[(module, qualname)] = LegacyValue(name)
            continue
        if kind == "reconstructor":
            out[(module, qualname)] = LegacyReconstructor(name)
            continue
        base = _BASES[kind]
        out[(module, qualname)] = type(
            f"Legacy_{qualname}",
            (base,),
            {"legacy_name": name, "__module__": __name__, "__slots__": ()}
            if base is not LegacyState
            else {"legacy_name": name, "__module__": __name__},
        )
    return MappingProxyType(out)


def is_standin(obj: Any) -> bool:
    """True for a stand-in instance or value (not for the stand-in classes themselves)."""
    return isinstance(obj, (LegacyState, LegacyDict, LegacyList, LegacyValue))


def is_standin_class(obj: Any) -> bool:
    """True for a stand-in class itself (the removed class referenced as a value)."""
    return isinstance(obj, type) and issubclass(obj, (LegacyState, LegacyDict, LegacyList))


def standin_name(obj: Any) -> str:
    """The removed name a stand-in replaces."""
    return obj.legacy_name


def names_of(standins: Iterable[Any]) -> list[str]:
    """Sorted removed names of some stand-ins (for messages)."""
    return sorted({standin_name(s) for s in standins})
