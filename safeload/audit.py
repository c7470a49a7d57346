"""Audit stage: decide on the strings of every global, then resolve only trusted ones.

The whole stream has been parsed (nothing imported, nothing called) before this runs, so one
error lists *every* untrusted global in the file, together with any forbidden construct the parse
recorded (``BUILD`` on a class, persistent ids, extension codes).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import ForbiddenOperationError, FormatError, LegacyFormatError, UntrustedTypesError
from .graph import ParseContext
from .policy import Policy, Verdict, format_name
from .readers.joblib_reader import JOBLIB_MODULES

__all__ = ["audit", "verdicts"]

Pair = tuple[str, str]


def verdicts(context: ParseContext, policy: Policy) -> dict[tuple[str, str], Verdict]:
    """Policy verdict for every distinct global the stream named (imports nothing)."""
    return {pair: policy.verdict(*pair) for pair in context.globals}


def audit(
    context: ParseContext, policy: Policy, standins: Mapping[Pair, Any] | None = None
) -> dict[type, Any]:
    """Check every global of a parsed stream and resolve the trusted ones.

    Parameters
    ----------
    context : ParseContext
        The parse's record of globals and forbidden constructs.
    policy : Policy
    standins : mapping of (str, str) to object, optional
        Inert stand-ins (:mod:`safeload.migrate`) for removed scikit-learn names, keyed by
        canonical pair.  When every refused global of the file is such a legacy name *and* each
        has a stand-in, and the stream uses no forbidden construct, those globals resolve to
        their stand-ins instead of raising :class:`LegacyFormatError` (the names stay untrusted:
        nothing of that name is imported).  Any other untrusted global still raises
        :class:`UntrustedTypesError` listing all of them.

    Returns
    -------
    dict
        Placeholder class → the real trusted object (imported only now), or its stand-in.

    Raises
    ------
    LegacyFormatError
        When every refused global is a name scikit-learn removed, or one stored only inside
        such a class (the file was written by an older version and needs a conversion), and
        no forbidden construct was recorded.
    UntrustedTypesError
        Listing every untrusted global, removed ones included (forbidden constructs are named
        in the message too).
    ForbiddenOperationError
        When every global is trusted but the stream used a forbidden construct.
    FormatError
        When a trusted name does not exist in the installed libraries.
    """
    untrusted: list[tuple[str, str]] = []
    removed: list[tuple[str, str]] = []  # names that only say an older scikit-learn wrote it
    only_removed = True
    all_verdicts = verdicts(context, policy)
    legacy = policy.legacy_names(all_verdicts.values())
    for pair, verdict in all_verdicts.items():
        if pair in context.consumed:
            continue  # replaced by the reader (a joblib array wrapper), never built
        if pair[0] in JOBLIB_MODULES:
            untrusted.append(
                (
                    format_name(pair),
                    "joblib's array wrapper outside a joblib array "
                    "position (the reader replaces wrappers; it is never built)",
                )
            )
            only_removed = False
            continue
        if not verdict.trusted:
            read_as = ""
            if verdict.canonical != pair:
                read_as = f" (read as {format_name(verdict.canonical)})"
            untrusted.append((format_name(pair), verdict.reason + read_as))
            if pair in legacy:
                removed.append((format_name(pair), legacy[pair] + read_as))
            else:
                only_removed = False
    legacy_standins: dict[tuple[str, str], Any] = {}
    if untrusted and only_removed and not context.forbidden:
        # every refused name is a scikit-learn class of an older version: a legacy file, not a
        # hostile one (still nothing is imported: removed names are never trusted)
        if standins is not None:
            legacy_standins = {
                pair: standins[all_verdicts[pair].canonical]
                for pair in legacy
                if all_verdicts[pair].canonical in standins
            }
        if len(legacy_standins) != len(removed):
            raise LegacyFormatError(removed)
        untrusted = []
    if untrusted:
        message = "the file references globals that are not trusted"
        if context.forbidden:
            message += "; it also uses " + ", ".join(sorted({op for op, _ in context.forbidden}))
        raise UntrustedTypesError(untrusted, message)
    if context.forbidden:
        operation, detail = context.forbidden[0]
        more = f" (and {len(context.forbidden) - 1} more)" if len(context.forbidden) > 1 else ""
        raise ForbiddenOperationError(operation, detail + more)
    resolved: dict[type, Any] = {}
    for pair, placeholder in context.globals.items():
        if pair in context.consumed:
            continue
        if pair in legacy_standins:
            resolved[placeholder] = legacy_standins[pair]
            continue
        canonical = policy.canonical(pair)
        try:
            resolved[placeholder] = policy.resolve(canonical)
        except (ImportError, AttributeError) as exc:
            raise FormatError(
                f"{format_name(pair)} is trusted but does not exist in the installed libraries "
                f"({type(exc).__name__}: {exc}); the file was written by another version"
            ) from exc
    return resolved
