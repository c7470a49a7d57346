"""The safe format's graph as the loader's *inert* graph, for the scanner and the inspector.

:class:`InertDecoder` reads ``graph.json`` with the same rules as :class:`~.decode.Decoder`
but builds nothing the file names: each ``obj``/``call`` becomes a
:class:`~safeload.graph.New`/:class:`~safeload.graph.Call` node of a placeholder global (as the
pickle readers produce), with its state and items recorded as operations, and each array a
zero-length stand-in of its dtype.  :func:`safeload.scanners.graphcheck.check_graph` then
applies the build stage's static call rules to it, exactly as for pickles.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np

from ..graph import OP_BUILD, OP_EXTEND, OP_SETITEM, Call, New, ParseContext
from ..limits import Limits
from ..readers.joblib_reader import SkippedArray
from .decode import Decoder, _bad, _check_collisions

__all__ = ["InertDecoder", "inert_graph"]


class InertDecoder(Decoder):
    """A :class:`Decoder` whose globals stay placeholders and whose arrays stay unread.

    Parameters
    ----------
    context : ParseContext
        Holds one placeholder per entry of the globals table.
    dtypes : list of numpy.dtype
        The member dtype of each array entry (arrays are not read).
    limits : Limits
    """

    def __init__(
        self, context: ParseContext, placeholders: list[type], dtypes: list, limits: Limits
    ):
        stand_ins = [np.empty(0, dtype=d).view(SkippedArray) for d in dtypes]
        super().__init__(placeholders, SimpleNamespace(limits=limits), stand_ins)  # type: ignore[arg-type]
        self.context = context

    def _ndarray(self, v: dict, depth: int) -> np.ndarray:
        index = v.get("i")
        if type(index) is not int or not 0 <= index < len(self.arrays):
            raise _bad("G8", "'ndarray'.i names an array of the table")
        value = self.arrays[index]
        self.slots.append(value)
        return value

    def dec(self, v: Any, depth: int) -> Any:
        if type(v) is dict and v.get("$") == "ndarray":
            if depth > self._max_depth:
                return super().dec(v, depth)
            return self._ndarray(v, depth)
        return super().dec(v, depth)

    def _dict(self, v: dict, depth: int) -> Any:
        if "k" not in v:
            return super()._dict(v, depth)
        keys = v.get("k")
        if type(keys) is not list or "vi" not in v or len(v) != 3:
            raise _bad("G4", "a 'dict' has exactly one of v, items, or k with vi")
        value = list(keys)  # stands for the dict: the same items to count, no hashing
        self.slots.append(value)
        self.dec(v["vi"], depth)
        return value

    def _global(self, v: dict, depth: int) -> Any:
        value = self.placeholders[self._placeholder(v)]
        self.slots.append(value)
        return value

    def _node(self, v: dict, depth: int) -> Any:
        placeholder = self.placeholders[self._placeholder(v)]
        kind = v["$"]
        slot = self._reserve()
        dec = self.dec
        args = tuple(dec(x, depth) for x in self._list_field(v, "args", kind, required=False))
        kwargs = v.get("kwargs")
        if kwargs is not None:
            if type(kwargs) is not dict:
                raise _bad("G4", "'kwargs' is a JSON object")
            kwargs = {k: dec(x, depth) for k, x in kwargs.items()}
        node = (New if kind == "obj" else Call)(placeholder, args, kwargs or {})
        self.slots[slot] = node
        if "state" in v:
            node._record((OP_BUILD, dec(v["state"], depth)))
        if "items" in v:
            node._record((OP_EXTEND, [dec(x, depth) for x in self._list_field(v, "items", kind)]))
        if "setitems" in v:
            raw_pairs = self._list_field(v, "setitems", kind)
            self._count(len(raw_pairs))
            pairs = []
            for pair in raw_pairs:
                if type(pair) is not list or len(pair) != 2:
                    raise _bad("G4", "'setitems' holds [key, value] pairs")
                pairs.append((dec(pair[0], depth), dec(pair[1], depth)))
            _check_collisions([k for k, _ in pairs], self.limits)
            for key, item in pairs:
                node._record((OP_SETITEM, key, item))
        return node


def inert_graph(
    doc: dict, dtypes: list, limits: Limits, key: str = "root"
) -> tuple[Any, ParseContext]:
    """``doc[key]`` as an inert graph, and the parse context naming its globals.

    Raises
    ------
    FormatError
        The graph breaks a rule of ``FORMAT.md`` §4.
    LimitExceededError
    """
    from .decode import check_globals_table

    context = ParseContext()
    placeholders = [context.placeholder(m, q) for m, q in check_globals_table(doc)]
    decoder = InertDecoder(context, placeholders, dtypes, limits)
    return decoder.dec(doc[key], 0), context
