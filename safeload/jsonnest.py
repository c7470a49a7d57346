"""How deep JSON nests, checked before Python's ``json`` parser recurses into it.

``json.loads`` recurses on the C stack (about 100 bytes a level) and stops only at Python's
recursion limit.  Applications raise that limit (scikit-learn users do, to pickle deep trees);
above a few tens of thousands, a file nested deeper than the C stack can hold crashes the
process instead of raising ``RecursionError``.  Every JSON document safeload parses from a file
(the safe format's ``manifest.json`` and ``graph.json``, a ``.skops`` file's ``schema.json``)
goes through :func:`check_json_nesting` first, and the safe format's decoder never nests values
deeper than :data:`MAX_VALUE_NESTING` (``docs/FORMAT.md`` §6).
"""

from __future__ import annotations

import json
import re
import sys

import numpy as np

from .errors import LimitExceededError

__all__ = ["MAX_JSON_NESTING", "MAX_VALUE_NESTING", "check_json_nesting", "json_nesting"]

#: deepest nesting of values the safe format's decoder builds, whatever ``Limits.max_depth``
#: says: its C walk recurses on the C stack, and a tagged value whose handler is Python adds
#: an interpreter frame (about 740 bytes a level: review 7 crashed a 1 MiB thread with 1,450
#: nested tuples), so 1,000 levels stay under 1 MiB (CPython 3.12 caps its own C recursion
#: the same way, ``Py_C_RECURSION_LIMIT``)
MAX_VALUE_NESTING = 1000
#: deepest JSON parsed once the recursion limit no longer protects the C stack: a value nests
#: at most 3 JSON levels (a dict of pairs, ``{"$": "dict", "items": [[k, v]]}``), so no file the
#: decoder accepts is deeper, and the parser's stack stays under 1 MiB
MAX_JSON_NESTING = 3 * MAX_VALUE_NESTING

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_STEP = np.zeros(256, np.int8)
_STEP[[ord("["), ord("{")]] = 1
_STEP[[ord("]"), ord("}")]] = -1


def json_nesting(text: str) -> int:
    """How deep the arrays and objects of JSON ``text`` nest, brackets in strings not counted.

    Strings are removed as JSON reads them (RFC 8259 §7); where the text is no valid JSON the
    count may differ from a parser's only after the point the parser refuses it.
    """
    bare = _STRING.sub('""', text).encode("utf-8", "surrogatepass")
    steps = _STEP[np.frombuffer(bare, np.uint8)]
    return int(np.cumsum(steps, dtype=np.int32).max(initial=0))


def check_json_nesting(raw: str | bytes, name: str) -> None:
    """Refuse JSON nested deeper than :data:`MAX_JSON_NESTING`, when Python's recursion limit
    is above it (at or below it, ``json`` raises ``RecursionError`` before the C stack is at
    risk, and this costs nothing).

    Bytes are decoded as ``json.loads`` decodes them (UTF-8, or UTF-16/32 told apart by
    ``json.detect_encoding``: review 7 hid the brackets of a BOM-less UTF-16 document inside a
    "string" its UTF-8 reading saw); bytes that do not decode are refused here, as the parser
    would refuse them.  A document is no deeper than its count of ``[`` and ``{`` (tens of
    microseconds, enough for most); otherwise :func:`json_nesting` measures it.

    Parameters
    ----------
    raw : str or bytes
        The JSON text, before it is parsed.
    name : str
        The member, for the message.

    Raises
    ------
    LimitExceededError
        ``max_depth``, naming the nesting found and :data:`MAX_JSON_NESTING`.
    """
    if sys.getrecursionlimit() <= MAX_JSON_NESTING:
        return
    if isinstance(raw, str):
        text = raw
    else:
        try:
            text = bytes(raw).decode(json.detect_encoding(raw), "surrogatepass")
        except (UnicodeDecodeError, LookupError):
            raise LimitExceededError(
                "max_depth", None, MAX_JSON_NESTING, f"JSON nesting of {name} (not decodable)"
            ) from None
    if text.count("[") + text.count("{") <= MAX_JSON_NESTING:
        return
    deepest = json_nesting(text)
    if deepest > MAX_JSON_NESTING:
        raise LimitExceededError("max_depth", deepest, MAX_JSON_NESTING, f"JSON nesting of {name}")
