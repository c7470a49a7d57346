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

__all__ = ["collision_probes", "CHECK_ABOVE"]

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
