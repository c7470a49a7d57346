"""Validators for the text and dict vectorizers and the feature hashers.

* ``CountVectorizer._count_vocab`` (``sklearn/feature_extraction/text.py``) and
  ``DictVectorizer._transform`` (``_dict_vectorizer.py``) build a CSR matrix with
  ``shape[1] = len(vocabulary_)`` and column indices taken from the *values* of
  ``vocabulary_``.  ``csr_array((data, indices, indptr))`` does not range-check indices, so a
  vocabulary value ``>= len(vocabulary_)`` makes ``transform(...).toarray()`` (``csr_todense``)
  or any ``X @ W`` downstream write/read out of bounds.
* ``_hashing_fast.pyx::transform`` computes ``abs(h) % n_features`` in C with
  ``cdivision=True``: ``n_features == 0`` raises SIGFPE in ``FeatureHasher.transform`` and
  ``HashingVectorizer.transform``, which never re-validate their parameters.
"""

from __future__ import annotations

import numpy as np

from .._text import describe
from ..limits import Limits
from . import register
from ._common import MISSING, as_int_array, fail, get_int, state

try:  # optional C helper; the numpy code below is the reference
    from .._speedups import is_index_permutation  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - built without a compiler
    is_index_permutation = None

__all__ = ["validate_hasher", "validate_vocabulary"]

_INT32_MAX = int(np.iinfo(np.int32).max)


@register(
    "sklearn.feature_extraction._hash.FeatureHasher",
    "sklearn.feature_extraction.text.HashingVectorizer",
)
def validate_hasher(est: object, limits: Limits) -> None:
    """Check ``n_features`` of a feature hasher is in ``[1, 2**31 - 1]``.

    Follows the ``_parameter_constraints`` of ``FeatureHasher``/``HashingVectorizer`` and the C
    modulo in ``sklearn/feature_extraction/_hashing_fast.pyx::transform``.

    Parameters
    ----------
    est : FeatureHasher or HashingVectorizer
        The estimator (stateless: its parameters are all there is).
    limits : Limits
        Unused.

    Raises
    ------
    ValidationError
        If ``n_features`` is not an integer in that range.
    """
    d = state(est)
    get_int(est, "n_features", d.get("n_features", MISSING), 1, _INT32_MAX)


def _check_vocab(est: object, vocab: object, limits: Limits) -> int:
    if not isinstance(vocab, dict):
        fail(est, f"vocabulary_ is a {type(vocab).__name__}, not a dict")
    n = len(vocab)
    limits.check("max_items", n, "vocabulary_ entries")
    if is_index_permutation is not None and is_index_permutation(vocab):
        return n
    values = as_int_array(est, "vocabulary_ values", vocab.values())
    if n == 0:
        return 0
    bad = (values < 0) | (values >= n)
    if bad.any():
        k = int(np.argmax(bad))
        term = list(vocab)[k]
        fail(
            est,
            f"vocabulary_[{describe(term, 60)}] = {int(values[k])} is outside [0, {n}) (len(vocabulary_))",
        )
    counts = np.bincount(values, minlength=n)
    if (counts != 1).any():
        k = int(np.argmax(counts != 1))
        fail(
            est,
            f"vocabulary_ maps {int(counts[k])} terms to column {k}; the values must be a "
            f"permutation of range({n})",
        )
    return n


@register(
    "sklearn.feature_extraction.text.CountVectorizer",
    "sklearn.feature_extraction._dict_vectorizer.DictVectorizer",
)
def validate_vocabulary(est: object, limits: Limits) -> None:
    """Check that ``vocabulary_`` maps terms onto a permutation of ``range(len(vocabulary_))``.

    Covers ``CountVectorizer`` and its subclass ``TfidfVectorizer``, and ``DictVectorizer`` (whose
    ``feature_names_`` must also have one entry per column).

    Parameters
    ----------
    est : CountVectorizer, TfidfVectorizer or DictVectorizer
        The vectorizer (checked once ``vocabulary_`` is set).
    limits : Limits
        ``max_items`` bounds the vocabulary size walked.

    Raises
    ------
    ValidationError
        Naming the term and its out-of-range or duplicated column.
    """
    d = state(est)
    if "vocabulary_" not in d:
        return
    n = _check_vocab(est, d["vocabulary_"], limits)
    names = d.get("feature_names_", MISSING)
    if names is not MISSING and (not isinstance(names, list) or len(names) != n):
        fail(est, f"feature_names_ must be a list of {n} names (len(vocabulary_))")
