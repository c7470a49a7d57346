"""Classes for tests/test_format_walk.py: objects whose BUILD is (or is not) a plain
``__setstate__`` call.  Importable as ``tests._plainnode`` so a policy can trust them."""

from __future__ import annotations

from typing import Any


class Plain:
    def __init__(self, value: Any) -> None:
        self.value = value

    def __getstate__(self) -> dict:
        return {"value": self.value}

    def __setstate__(self, state: dict) -> None:
        self.value = ("set", state["value"])


class Other(Plain):
    """What ``Redirecting.__new__`` returns instead of a ``Redirecting``."""


class Redirecting(Plain):
    def __new__(cls, *args: Any) -> Any:
        return object.__new__(Other)


class Failing(Plain):
    def __setstate__(self, state: dict) -> None:
        raise ValueError("no such state")


class NoSetstate:
    """``BUILD`` updates the instance ``__dict__`` (pickle's default)."""

    def __init__(self, value: Any) -> None:
        self.value = value


class Picky(Plain):
    """A ``__setstate__`` that refuses one value: the first object builds, a later one fails
    (the later ones take the C walk's path, ``format/_walk.c``)."""

    def __setstate__(self, state: dict) -> None:
        if state["value"] == "bad":
            raise ValueError("bad value")
        super().__setstate__(state)


class Exploding(Plain):
    """``__new__`` works ``budget`` times, then raises ``error``."""

    budget = 1
    error: BaseException = ValueError("no more")

    def __new__(cls, *args: Any) -> Any:
        if cls.budget <= 0:
            raise cls.error
        cls.budget -= 1
        return object.__new__(cls)
