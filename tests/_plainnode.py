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
