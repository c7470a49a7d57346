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
from .decode import Decoder, _bad

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
        self,
        context: ParseContext,
        placeholders: list[type],
        dtypes: list,
        limits: Limits,
        shapes: list | None = None,
    ):
        # stand-ins of the declared dtype and shape that hold no memory (a zero stride view of
        # one element): the decoder's own checks (pools, vocabularies) apply unchanged, and the
        # static call rules see a SkippedArray, whose values they know they can not judge
        stand_ins = []
        for i, dtype in enumerate(dtypes):
            shape = tuple(shapes[i]) if shapes is not None else (0,)
            stand_ins.append(np.broadcast_to(np.zeros((), dtype=dtype), shape).view(SkippedArray))
        super().__init__(placeholders, SimpleNamespace(limits=limits), stand_ins)  # type: ignore[arg-type]
        self.context = context

    def _objarray(self, v: dict, depth: int) -> Any:
        """An object array's items as a list the graph check walks (a real object ndarray
        would be an atom to it, hiding the calls inside)."""
        value = super()._objarray(v, depth)
        items = value.ravel(order="K").tolist()
        self._replace_slot(value, items)
        return items

    def _replace_slot(self, old: Any, new: Any) -> None:
        for i in range(len(self.slots) - 1, -1, -1):
            if self.slots[i] is old:
                self.slots[i] = new
                return

    def _slice(self, v: dict, depth: int) -> Any:
        value = super()._slice(v, depth)
        parts = [value.start, value.stop, value.step]
        self._replace_slot(value, parts)
        return parts

    @staticmethod
    def _is_array(x: Any) -> bool:
        return isinstance(x, np.ndarray)  # stand-ins for skipped arrays are subclasses

    def _masked(self, v: dict, depth: int) -> Any:
        slot, data, mask, fill = self._masked_parts(v, depth)
        value = [data, mask, fill]
        self.slots[slot] = value
        return value

    def _dict(self, v: dict, depth: int) -> Any:
        if "k" not in v:
            return super()._dict(v, depth)
        keys = v.get("k")
        if type(keys) is not list or "vi" not in v or len(v) != 3:
            raise _bad("G4", "a 'dict' has exactly one of v, items, or k with vi")
        if keys and set(map(type, keys)) != {str}:
            raise _bad("G4", "'dict'.k holds strings")
        self._count(len(keys))
        value = list(keys)  # stands for the dict: the same items to count, no hashing
        self.slots.append(value)
        ints = self.dec(v["vi"], depth)
        if (
            not isinstance(ints, np.ndarray)
            or ints.dtype not in (np.dtype("<i4"), np.dtype("<i8"))
            or ints.ndim != 1
            or ints.shape[0] != len(keys)
        ):
            raise _bad("G4", "'dict'.vi is a 1-d int32 or int64 array as long as k")
        return value

    def _global(self, v: dict, depth: int) -> Any:
        value = self.placeholders[self._placeholder(v)]
        self.slots.append(value)
        return value

    def _node(self, v: dict, depth: int) -> Any:
        placeholder = self.placeholders[self._placeholder(v)]
        kind = v["$"]
        slot = self._reserve()
        args, kwargs = self._arguments(v, kind, depth)
        node = (New if kind == "obj" else Call)(placeholder, args, kwargs or {})
        self.slots[slot] = node
        if "state" in v:
            node._record((OP_BUILD, self.dec(v["state"], depth)))
        if "items" in v:
            node._record((OP_EXTEND, self._items(v, kind, depth)))
        if "setitems" in v:
            for key, item in self._pairs(v, "setitems", kind, depth):
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
    shapes = [spec["shape"] for spec in doc["arrays"]]  # checked by check_array_headers
    decoder = InertDecoder(context, placeholders, dtypes, limits, shapes)
    return decoder.dec(doc[key], 0), context
