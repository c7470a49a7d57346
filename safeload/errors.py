"""Exceptions raised by safeload.

Every error safeload raises on bad input is a :class:`SafeloadError`, so a service can catch one
class and be sure nothing else escapes from a load, a scan or a conversion.  The hierarchy follows
the pipeline stages (parse → audit → build → validate) so a caller can tell a corrupt file from a
hostile one.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable

__all__ = [
    "SafeloadError",
    "IntegrityError",
    "FormatError",
    "LegacyFormatError",
    "UntrustedTypesError",
    "ForbiddenOperationError",
    "LimitExceededError",
    "ValidationError",
    "PolicyError",
    "MigrationError",
    "UnmigratedLegacyError",
    "VersionMismatchWarning",
]


class SafeloadError(Exception):
    """Base class of every error safeload raises for bad input or a refused file."""


class FormatError(SafeloadError, pickle.UnpicklingError):
    """The file is corrupt, truncated, or not in a format safeload reads.

    Raised for unknown magic bytes, streams that stop before ``STOP``, invalid opcodes, bad
    compression framing, and well-formed files of a foreign format (a plain ``.npy``, a zip that
    is not a safeload or skops file).
    """


class LegacyFormatError(FormatError):
    """The file was written by an older scikit-learn and names classes that no longer exist.

    Raised instead of :class:`UntrustedTypesError` when *every* global the policy refuses is a
    scikit-learn name that a later version removed (``sklearn.ensemble._gb_losses.
    BinomialDeviance``, ``sklearn.utils.deprecation.DeprecationDict`` ...) and the stream uses
    no forbidden construct: the file is not hostile, it needs a conversion to today's classes.
    A file that also names any other untrusted global raises :class:`UntrustedTypesError`
    listing all of them, the removed ones included.  Nothing named in the file was imported or
    called.

    Parameters
    ----------
    types : iterable of (str, str)
        Pairs ``(name, reason)``; ``name`` is ``module.qualname`` as the stream spells it.

    Attributes
    ----------
    types : list of str
        The removed names, sorted.
    reasons : dict of str to str
        Why each one is refused (what replaced it).
    """

    def __init__(self, types: Iterable[tuple[str, str]]):
        pairs = sorted(dict(types).items())
        self.types: list[str] = [name for name, _ in pairs]
        self.reasons: dict[str, str] = dict(pairs)
        lines = [f"  - {name}: {reason}" for name, reason in pairs]
        super().__init__(
            "the file was written by an older scikit-learn version: it names classes that were "
            f"removed from scikit-learn ({len(pairs)}):\n"
            + "\n".join(lines)
            + "\nIt needs a conversion to today's classes (safeload convert) before it can be "
            "loaded. Nothing was imported or called."
        )


class UntrustedTypesError(SafeloadError, pickle.UnpicklingError, TypeError):
    """The file names globals that the policy does not trust.

    The whole stream is parsed before this is raised, so :attr:`types` lists *every* untrusted
    ``module.qualname`` in the file, sorted, and :attr:`reasons` says why each one is refused.
    Nothing named in the file was imported or called.

    Parameters
    ----------
    types : iterable of (str, str)
        Pairs ``(name, reason)``; ``name`` is ``module.qualname`` as the stream spells it.
    message : str, optional
        Extra context put before the list.

    Notes
    -----
    Subclasses :class:`pickle.UnpicklingError` (drop-in for code that caught pickle errors) and
    :class:`TypeError` (like ``skops.io.exceptions.UntrustedTypesFoundException``).
    """

    def __init__(self, types: Iterable[tuple[str, str]], message: str | None = None):
        pairs = sorted(dict(types).items())
        self.types: list[str] = [name for name, _ in pairs]
        self.reasons: dict[str, str] = dict(pairs)
        lines = [f"  - {name}: {reason}" for name, reason in pairs]
        head = message or "the file references globals that are not trusted"
        advice = (
            "Nothing was imported or called. If you have checked these types and trust them, "
            "pass them explicitly: safeload.load(path, trusted=[...])."
        )
        super().__init__(f"{head} ({len(pairs)}):\n" + "\n".join(lines) + "\n" + advice)


class ForbiddenOperationError(SafeloadError, pickle.UnpicklingError):
    """The stream uses a pickle mechanism that safeload never allows.

    Examples: ``BUILD`` on a class, function or module (monkey-patching), persistent ids,
    extension-registry codes (``EXT1``/``EXT2``/``EXT4``), out-of-band buffers, a trusted
    reconstructor called with an untrusted argument (``copyreg._reconstructor`` with
    ``base=Popen``, numpy's ``__randomstate_ctor`` with a foreign constructor).

    Parameters
    ----------
    operation : str
        Short stable identifier of the forbidden construct, e.g. ``"build-on-class"``.
    message : str
        Human-readable explanation.
    """

    def __init__(self, operation: str, message: str):
        self.operation = operation
        super().__init__(f"{operation}: {message}")


class LimitExceededError(SafeloadError, pickle.UnpicklingError):
    """A resource limit of :class:`safeload.Limits` was exceeded.

    Raised before the allocation it guards, so refusing a bomb costs bounded time and memory.

    Parameters
    ----------
    limit : str
        Name of the :class:`~safeload.Limits` field, e.g. ``"max_array_bytes"``.
    actual : int or None
        The value the file asked for (or reached), in the limit's unit; None when an
        allocation failed before the amount was known.
    allowed : int
        The limit in force.
    """

    def __init__(self, limit: str, actual: int, allowed: int, what: str = ""):
        self.limit = limit
        self.actual = actual
        self.allowed = allowed
        detail = f" ({what})" if what else ""
        super().__init__(
            f"limit {limit} exceeded{detail}: the file needs {_amount(actual)}, the limit is "
            f"{_amount(allowed)}. Raise it with safeload.Limits({limit}=...) only for files you "
            "trust."
        )


def _amount(value: int | None) -> str:
    """``1,234`` — or ``more than 2**64`` for integers too long to print cheaply."""
    if value is None:
        return "more than the memory available (an allocation failed)"
    if isinstance(value, int) and value.bit_length() > 64:
        return "more than 2**64"
    return f"{value:,}"


class ValidationError(SafeloadError, ValueError):
    """Built content that C code would index unsafely (tree nodes, sparse indices, ...).

    Trusting a type is not trusting its content: a ``sklearn.tree._tree.Tree`` whose child
    indices point outside its node array crashes the process on ``predict``.
    """


class PolicyError(SafeloadError, ValueError):
    """A trust policy was built or extended in a way safeload refuses (``trusted=True``, a
    wildcard, a name that can load or execute code)."""


class MigrationError(SafeloadError):
    """A file written by an older scikit-learn can not be migrated to today's classes exactly.

    Raised by a migration rule when today's scikit-learn can not reproduce what the old version
    computed (AdaBoost's removed ``SAMME.R`` algorithm ...), or when an inert stand-in of a
    removed class would survive into the returned object.  Nothing the file named was called;
    no estimator whose outputs differ from the old version's is returned.

    Parameters
    ----------
    reason : str
        Short stable identifier of the refusal, e.g. ``"adaboost-samme-r"``.
    message : str
        Human-readable explanation naming the class and the scikit-learn change.

    Attributes
    ----------
    reason : str
    """

    def __init__(self, reason: str, message: str):
        self.reason = reason
        super().__init__(f"{reason}: {message}")


class UnmigratedLegacyError(MigrationError, LegacyFormatError):
    """Names scikit-learn removed are still used where no migration rule replaces them.

    Both a :class:`MigrationError` (reason ``"removed-class-survives"``) and a
    :class:`LegacyFormatError`: the inert stand-in of a removed class would survive into the
    returned object, so the file is refused as one that needs a conversion.

    Parameters
    ----------
    types : iterable of (str, str)
        Pairs ``(name, reason)`` of the removed names that survived.
    """

    def __init__(self, types: Iterable[tuple[str, str]]):
        self.reason = "removed-class-survives"
        LegacyFormatError.__init__(self, types)


class VersionMismatchWarning(UserWarning):
    """A file written by another scikit-learn version was migrated while loading.

    The message names the source version, today's version and every migration applied
    (see :mod:`safeload.migrate`).
    """


class IntegrityError(FormatError):
    """A safe-format member's bytes do not match the SHA-256 its manifest records (or, for
    ``manifest.json`` itself, the CRC-32 of the zip directory: ``docs/FORMAT.md`` §3).

    Attributes
    ----------
    members : list of str
        Every member whose hash failed, in archive order.
    """

    def __init__(self, members: list[str]) -> None:
        self.members = list(members)
        shown = ", ".join(self.members[:5]) + (" ..." if len(self.members) > 5 else "")
        check = "CRC-32" if self.members == ["manifest.json"] else "SHA-256"
        super().__init__(
            f"{len(self.members)} member(s) changed since the file was written "
            f"({check} mismatch): {shown}"
        )
