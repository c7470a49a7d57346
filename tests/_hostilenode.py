"""Hostile trusted-looking classes for the C walk's plain obj path against the reference
(tests/test_review6_walk_obj.py).  Importable as ``tests._hostilenode`` so a policy can trust
them; every behaviour is a pure function of the state, so both decoders see the same."""

from __future__ import annotations

from typing import Any

from safeload.errors import FormatError


class P:
    def __setstate__(self, state: Any) -> None:
        self.state = state


class Q(P):
    """A second plain class, so two plans are cached."""


class Mutating(P):
    """Changes the dict it was handed (which may be shared through a reference)."""

    def __setstate__(self, state: Any) -> None:
        if type(state) is dict:
            state["m"] = len(state)
            state.pop("a", None)
        self.state = state


class Raising(P):
    """Raises according to its state: exceptions the two paths must map alike."""

    def __setstate__(self, state: Any) -> None:
        kind = state.get("r") if type(state) is dict else state
        if kind == 1:
            raise ValueError("value")
        if kind == 2:
            raise KeyError("key")
        if kind == 3:
            raise FormatError("own safeload error")
        if kind == 4:
            raise MemoryError()
        if kind == 5:
            raise RecursionError("deep")
        if kind == 6:
            raise TypeError("type")
        self.state = state


class Other:
    """What NewOther.__new__ returns: BUILD goes through _apply_build (instance __dict__)."""


class NewOther(P):
    def __new__(cls, *args: Any) -> Any:
        return object.__new__(Other)


class NewInt(P):
    def __new__(cls, *args: Any) -> Any:
        return 7


class NewClass(P):
    def __new__(cls, *args: Any) -> Any:
        return P  # a class: BUILD on it is forbidden


class NewSub(P):
    """__new__ returns an instance of a subclass (not exactly the class)."""

    def __new__(cls, *args: Any) -> Any:
        return object.__new__(Sub)


class Sub(NewSub):
    def __setstate__(self, state: Any) -> None:
        self.state = ("sub", state)


class Copying(P):
    """Copies the arrays of its state at once, as Tree.__setstate__ does: what it keeps shows
    the bytes an array held when the decoder handed it over."""

    def __setstate__(self, state: Any) -> None:
        import numpy as np

        seen: set[int] = set()

        def snap(x: Any) -> Any:
            if type(x) is np.ndarray:
                return x.copy()
            if id(x) in seen:
                return "cycle"
            seen.add(id(x))
            if type(x) in (list, tuple):
                return type(x)(snap(y) for y in x)
            if type(x) is dict:
                return {k: snap(v) for k, v in x.items()}
            return x

        self.state = snap(state)


class Bare:
    """No ``__setstate__``: BUILD updates the instance ``__dict__`` (``_apply_build``)."""


class AttrRaising(P):
    """Looking ``__setstate__`` up on an instance raises something else than AttributeError."""

    def __getattribute__(self, name: str) -> Any:
        if name == "__setstate__" and object.__getattribute__(self, "__dict__").get("boom"):
            raise ValueError("lookup")
        return object.__getattribute__(self, name)

    def __init__(self, *args: Any) -> None:
        self.boom = bool(args)


class NoneSetstate:
    """``__setstate__ = None``: BUILD updates the instance ``__dict__`` (review 10)."""

    __setstate__ = None


class CountingGetattr:
    """No ``__setstate__``; ``__getattr__`` counts its calls in the instance (review 10: the
    C walk must look ``__setstate__`` up once, as ``_apply_build`` does)."""

    def __getattr__(self, name: str) -> Any:
        if name == "__setstate__":
            vars(self)["lookups"] = vars(self).get("lookups", 0) + 1
        raise AttributeError(name)


class CopyAtoC:
    """Copies one entry of the state dict it is handed into another key of it (review 10):
    through a ref to a dict still being decoded, that writes into raw graph JSON."""

    def __setstate__(self, state: Any) -> None:
        if type(state) is dict and "a" in state and "c" in state:
            state["c"] = state["a"]
        self.s = dict(state)


NAMES = [
    f"tests._hostilenode.{n}"
    for n in (
        "P",
        "Q",
        "Mutating",
        "Raising",
        "NewOther",
        "NewInt",
        "NewClass",
        "NewSub",
        "Copying",
        "Bare",
        "AttrRaising",
        "NoneSetstate",
        "CountingGetattr",
        "CopyAtoC",
    )
]
