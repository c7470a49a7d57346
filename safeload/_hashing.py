"""The cost of inserting keys whose hashes collide (hash flooding), counted before inserting.

CPython hashes ints to ``n mod (2**61 - 1)`` (and tuples from their items), so a file can
choose dict keys or set items that all share one hash and make insertion quadratic; str and
bytes hashes are randomised (SipHash).  :func:`collision_probes` counts the colliding keys in
one linear pass (a set of the hash values: equal values collapse at once) and returns the
probes inserting them costs, about ``c**2 / 2`` for ``c`` colliding keys; callers charge it to
``Limits.max_items`` like every other expansion (``docs/SECURITY.md``).
"""

from __future__ import annotations

from typing import Any

from .errors import LimitExceededError

__all__ = [
    "collision_probes",
    "CHECK_ABOVE",
    "MAX_KEY_NESTING",
    "check_key_nesting",
    "key_nesting",
]

#: Deepest tuple nesting of a key hashed while building: CPython's tuple hash recurses once per
#: level with no stack guard (review 7: 40,000 levels crashed a thread with a 1 MiB stack).  The
#: pickle stream's own keys are bounded by the opcode scan (``opscan.MAX_KEY_DEPTH``); this
#: bounds what ``set(...)``, ``dict(...)`` and their kin hash when the builder calls them.
MAX_KEY_NESTING = 1000

_NESTING = (tuple, frozenset)

#: Collections this small are inserted without counting (at most ~500k probes).
CHECK_ABOVE = 1024


def collision_probes(keys: Any) -> int:
    """Probes beyond one per key that inserting ``keys`` costs when their hashes collide.

    Parameters
    ----------
    keys : sized iterable
        The dict keys or set items, in insertion order.

    Returns
    -------
    int
        ``c * (c - 1) // 2`` for ``c`` keys whose hash another key already has; 0 for small or
        unhashable collections (inserting those raises, reported elsewhere).
    """
    if type(keys) not in (list, tuple, dict, set, frozenset):
        return 0  # only concrete collections (a range is refused elsewhere, never expanded)
    n = len(keys)
    if n <= CHECK_ABOVE:
        return 0
    try:
        colliding = n - len(set(map(hash, keys)))
    except TypeError:
        return 0
    return colliding * (colliding - 1) // 2


def key_nesting(keys: Any) -> int:
    """How deep the tuples and frozensets among ``keys`` nest: 0 without any (an empty one's
    hash and comparison recurse into nothing), 1 for a flat one — the opcode scan's count
    (``opscan.MAX_KEY_DEPTH``).  Frozensets count because two equal keys are compared, and the
    comparison recurses through them (review 7).

    Iterative and linear in the tuples and frozensets reachable from the keys (one shared in a
    DAG is measured once), so it is safe on any depth.

    Parameters
    ----------
    keys : iterable
        Dict keys or set items, before they are hashed.

    Returns
    -------
    int
    """
    if type(keys) not in (list, tuple, dict, set, frozenset):
        return 0
    types = set(map(type, keys))  # at C speed: most keys are strings or ints
    if not any(issubclass(tp, _NESTING) for tp in types):
        return 0
    heights: dict[int, int] = {}  # id -> nesting below and including that container
    deepest = 0
    for key in keys:
        if not isinstance(key, _NESTING):
            continue
        stack: list[tuple[Any, bool]] = [(key, False)]
        while stack:  # post-order: a container's height once its nesting items have theirs
            node, ready = stack.pop()
            if ready:
                below = [heights[id(x)] for x in node if isinstance(x, _NESTING)]
                heights[id(node)] = 1 + max(below, default=0) if len(node) else 0
            elif id(node) not in heights:
                stack.append((node, True))
                stack.extend((x, False) for x in node if isinstance(x, _NESTING))
        deepest = max(deepest, heights[id(key)])
    return deepest


def check_key_nesting(keys: Any, what: str) -> None:
    """Refuse hashing ``keys`` when they nest deeper than :data:`MAX_KEY_NESTING`.

    Parameters
    ----------
    keys : iterable
        Dict keys or set items about to be inserted.
    what : str
        Where, for the message.

    Raises
    ------
    LimitExceededError
        ``max_depth``: CPython's tuple hash and comparison recurse without a stack guard.
    """
    depth = key_nesting(keys)
    if depth > MAX_KEY_NESTING:
        raise LimitExceededError(
            "max_depth",
            depth,
            MAX_KEY_NESTING,
            f"{what} would hash a key nested {depth:,} tuples deep (CPython's tuple hash "
            "recurses once per level without a stack guard)",
        )
