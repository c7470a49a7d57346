"""Public entry points: :func:`load` and :func:`loads`."""

from __future__ import annotations

import warnings
from typing import Any

from .audit import audit
from .build import Builder
from .errors import FormatError, PolicyError, VersionMismatchWarning
from .limits import DEFAULT_LIMITS, Limits
from .policy import Policy
from .readers import read_source, zip_reader_for
from .source import open_source

__all__ = ["load", "loads", "make_policy"]


def make_policy(trusted: Any = None, policy: Policy | None = None) -> Policy:
    """Combine a base policy (default: :meth:`Policy.default`) with ``trusted`` extras.

    Raises
    ------
    PolicyError
        ``trusted=True``, wildcards, or a name that can never be trusted.
    """
    if policy is not None and not isinstance(policy, Policy):
        raise PolicyError(f"policy must be a safeload.Policy, got {type(policy).__name__}")
    return (policy if policy is not None else Policy.default()).extend(trusted)


def load(
    file: Any,
    *,
    trusted: Any = None,
    policy: Policy | None = None,
    limits: Limits | None = None,
    migrate: bool = True,
    verify: bool | None = None,
    mmap_mode: str | None = None,
) -> Any:
    """Load a scikit-learn model from a pickle, joblib or safe-format file without running
    untrusted code.

    The format is detected from the content (pickle protocols 0–5 with or without ``PROTO``;
    joblib plain or compressed with zlib, gzip, bz2, lzma, xz, lz4; files written by
    ``sklearn.externals.joblib``; gzip/bz2/xz-compressed pickles).  The stream is parsed into
    an inert graph, every global is audited against the policy *before anything is imported*,
    then trusted objects are built with their arguments checked, and content that C code
    indexes (trees, KD/ball trees, sparse matrices ...) is validated.

    Parameters
    ----------
    file : str, os.PathLike, binary file object, bytes, or URL
        A path, an open binary file, the file's bytes (as :func:`loads`), or an fsspec URL
        (``s3://``, ``memory://``; needs ``safeload[remote]``).
    trusted : iterable of str or type, optional
        Extra exact ``"module.qualname"`` names (or the types themselves) to trust for this call,
        on top of ``policy``.  ``True`` is refused.
    policy : Policy, optional
        Base policy (default: :meth:`Policy.default`, generated from scikit-learn by
        ``tools/gen_policy.py``).
    limits : Limits, optional
        Resource limits (default :data:`~safeload.limits.DEFAULT_LIMITS`).
    verify : bool or None, default None
        Safe-format files: check every member's SHA-256 against the manifest (a changed byte
        anywhere refuses the file with :class:`IntegrityError`).  ``None`` checks all members
        except array data under ``mmap_mode`` (hashing would read every mapped page); ``True``
        checks everything; ``False`` skips hashing, for speed, when the caller asks.
    mmap_mode : {None, "r"}
        Safe-format files stored uncompressed: return arrays as read-only views into the file
        (zero-copy; ``numpy.load``'s meaning of ``"r"``).
    migrate : bool, default True
        Rewrite states written by older scikit-learn versions into today's
        (:mod:`safeload.migrate`), emitting a :class:`VersionMismatchWarning` that lists the
        migrations applied.  ``False`` loads states as they are and refuses removed classes with
        :class:`LegacyFormatError`.

    Returns
    -------
    object
        The estimator (or whatever trusted object the file holds).

    Raises
    ------
    UntrustedTypesError
        The file names globals the policy does not trust; ``.types`` lists all of them.
    ForbiddenOperationError
        ``BUILD`` on a class/function/module, persistent ids, extension codes, a reconstructor
        called with an untrusted argument, a value-only function called at load time.
    FormatError
        Corrupt, truncated, trailing-data or unknown/foreign format; ``mmap_mode`` with a file
        that is not in the safe format.
    LimitExceededError
        A resource limit was exceeded (checked before allocating).
    ValidationError
        Built content that C code would index out of bounds, or a state a compiled
        ``__setstate__`` would (:mod:`safeload.statechecks`).
    LegacyFormatError
        The file names classes scikit-learn removed and no migration replaces them (or
        ``migrate=False``).
    MigrationError
        The file was written by an older scikit-learn and today's classes can not reproduce
        its outputs (the error names the reason).

    See Also
    --------
    loads : the same for bytes.

    Notes
    -----
    Follows the restrictions the Python documentation recommends ("Restricting Globals") and
    extends them to arguments and state, per scikit-learn's model persistence guide, which
    warns that pickle loading can execute arbitrary code.
    """
    limits = limits or DEFAULT_LIMITS
    pol = make_policy(trusted, policy)
    with open_source(file, limits) as src:
        zip_reader = zip_reader_for(src)
        if zip_reader is not None:
            return zip_reader(src, policy=pol, limits=limits, verify=verify, mmap_mode=mmap_mode)
        if mmap_mode is not None:
            # decided by the content, so the file's fault: a SafeloadError like any other
            raise FormatError(
                "mmap_mode applies to safe-format files only, and this file is not one (a "
                "pickle, a joblib file, or an unknown or corrupt format)"
            )
        parsed = read_source(src, limits, defer_payloads=True)
        if parsed.payloads is not None:  # they are read from src while building
            return _finish(parsed, pol, limits, migrate=migrate)
    return _finish(parsed, pol, limits, migrate=migrate)


def loads(
    data: bytes,
    *,
    trusted: Any = None,
    policy: Policy | None = None,
    limits: Limits | None = None,
    migrate: bool = True,
) -> Any:
    """Like :func:`load`, for the bytes of a pickle or joblib file.

    Parameters
    ----------
    data : bytes-like
    trusted, policy, limits, migrate
        As for :func:`load`.

    Raises
    ------
    UntrustedTypesError, ForbiddenOperationError, FormatError, LimitExceededError, ValidationError
        As for :func:`load`; also ``LegacyFormatError`` and ``MigrationError``.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"loads() takes bytes, got {type(data).__name__}; use load() for files")
    return load(bytes(data), trusted=trusted, policy=policy, limits=limits, migrate=migrate)


def _finish(
    parsed: Any, policy: Policy, limits: Limits, migrate: bool = True, report: bool = False
) -> Any:
    """Audit, build (with migrations unless ``migrate=False``) and validate a parsed stream.

    Returns the object, or ``(object, MigrationReport)`` when ``report`` is true (then no
    :class:`VersionMismatchWarning` is emitted).
    """
    from . import migrate as migrations

    resolved = audit(parsed.context, policy, migrations.STANDINS if migrate else None)
    root = parsed.root
    parsed.root = None
    builder = Builder(policy, limits, resolved)
    builder.payloads = getattr(parsed, "payloads", None)
    if not migrate:
        obj = builder.build_root(root)
        return (obj, None) if report else obj
    standin_ids = {id(v) for v in migrations.STANDINS.values()}
    uses_standins = any(id(v) in standin_ids for v in resolved.values())
    context = migrations.apply(builder, uses_standins=uses_standins)
    obj = builder.build_root(root)
    result = context.report(migrations.target_version())
    if report:
        return obj, result
    if result.migrated:
        warnings.warn(VersionMismatchWarning(result.message()), stacklevel=3)
    return obj
