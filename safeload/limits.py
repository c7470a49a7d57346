"""Resource limits applied while reading a file.

Every limit is checked *before* the allocation it guards, so a decompression bomb, a memo bomb or
a huge declared shape is refused in bounded time and memory with a
:class:`~safeload.errors.LimitExceededError` carrying the limit's name and the value asked for.
"""

from __future__ import annotations

import dataclasses

from .errors import LimitExceededError

__all__ = ["Limits", "DEFAULT_LIMITS"]

_GiB = 1 << 30


@dataclasses.dataclass(frozen=True)
class Limits:
    """Resource limits for one load or scan (immutable; build a new one to change a field).

    Parameters
    ----------
    max_file_bytes : int
        Largest input accepted, in bytes, as stored (compressed) on disk. Default 16 GiB.
    max_decompressed_bytes : int
        Largest pickle stream accepted after decompression, in bytes (raw arrays of joblib files
        included). Default 16 GiB.
    max_array_bytes : int
        Largest single array (``prod(shape) * itemsize``), in bytes. Default 8 GiB.
    max_total_array_bytes : int
        Sum of all arrays in one file, in bytes. Default 16 GiB.
    max_depth : int
        Deepest nesting of containers and objects. Default 200 (a stacked pipeline of pipelines
        reaches about 25). A safe-format file is never decoded deeper than 1,000 levels,
        whatever this says (``docs/FORMAT.md`` §6: the C stack, not this limit, is the bound).
    max_memo : int
        Largest memo index a ``PUT``/``BINPUT``/``LONG_BINPUT`` may use. A legitimate pickler
        numbers its memo entries 0, 1, 2, ..., so an index larger than the opcode count is always
        hostile (CVE-2018-20406 resized the C unpickler's memo to the index). Default 2**26.
    max_opcodes : int
        Most opcodes in one pickle stream. Default 2**28.
    max_items : int
        Most container items and objects counted *with* shared references expanded (a memo
        "billion laughs" is a 1 KiB file holding 10**9 references). Default 20_000_000.
    max_globals : int
        Most distinct globals one file may name. Default 10_000.
    max_int_bytes : int
        Longest binary integer literal (``LONG1``/``LONG4``; a safe-format ``int``), in bytes.
        Default 1 MiB.
    max_json_bytes : int
        Largest JSON member of a safe-format file (``graph.json``, ``manifest.json``), in bytes
        after decompression. Default 256 MiB (a 200k-term vocabulary takes about 4 MiB).
    max_members : int
        Most members in a safe-format (zip) file. Default 1,000,000.
    """

    max_file_bytes: int = 16 * _GiB
    max_decompressed_bytes: int = 16 * _GiB
    max_array_bytes: int = 8 * _GiB
    max_total_array_bytes: int = 16 * _GiB
    max_depth: int = 200
    max_memo: int = 1 << 26
    max_opcodes: int = 1 << 28
    max_items: int = 20_000_000
    max_globals: int = 10_000
    max_int_bytes: int = 1 << 20
    max_json_bytes: int = 256 << 20
    max_members: int = 1_000_000

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise TypeError(f"Limits.{field.name} must be a non-negative int, got {value!r}")

    def check(self, name: str, actual: int, what: str = "") -> None:
        """Raise :class:`~safeload.errors.LimitExceededError` if ``actual`` exceeds limit ``name``.

        Parameters
        ----------
        name : str
            Field name of this dataclass.
        actual : int
            The value to check, in the field's unit.
        what : str, optional
            What was being measured, for the message.

        Raises
        ------
        LimitExceededError
            When ``actual > getattr(self, name)``.
        """
        allowed = getattr(self, name)
        if actual > allowed:
            raise LimitExceededError(name, actual, allowed, what)


DEFAULT_LIMITS = Limits()
