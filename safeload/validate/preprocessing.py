"""Validator for ``OneHotEncoder``.

``OneHotEncoder.transform`` (``sklearn/preprocessing/_encoders.py``) computes, per input column
``i``, an integer code ``X_int[:, i]`` (``_encode``: ``np.searchsorted(categories_[i], x)`` for
numeric categories, a dict lookup otherwise), remaps it through
``_default_to_infrequent_mappings[i]``, removes ``_drop_idx_after_grouping[i]``, adds the offset
``cumsum(_n_features_outs)[i]`` and hands the result to ``csr_array((data, indices, indptr),
shape=(n, sum(_n_features_outs)))`` — a constructor that does not range-check indices.  The
default ``sparse_output=False`` then calls ``toarray()`` (``csr_todense``), which writes each
index unchecked: a code at or past ``_n_features_outs[i]`` writes out of bounds.  ``searchsorted``
only returns valid codes when the numeric categories are sorted.
"""

from __future__ import annotations

import numpy as np

from ..limits import Limits
from . import register
from ._common import MISSING, as_int_array, fail, get_array, get_int, state

__all__ = ["validate_one_hot_encoder"]


def _check_sorted(est: object, i: int, cats: np.ndarray) -> None:
    if cats.dtype.kind not in "biuf" or cats.size < 2:
        return
    values = cats
    if cats.dtype.kind == "f":
        nan = np.isnan(cats)
        if nan[:-1].any():
            fail(est, f"categories_[{i}] has a NaN before its last entry")
        values = cats[~nan]
    if values.size > 1 and not (values[1:] > values[:-1]).all():
        fail(
            est,
            f"categories_[{i}] is not strictly increasing (numeric categories are looked "
            "up with searchsorted)",
        )


@register("sklearn.preprocessing._encoders.OneHotEncoder")
def validate_one_hot_encoder(est: object, limits: Limits) -> None:
    """Check that every code ``transform`` can produce lands inside its output block.

    Checks (once ``categories_`` is set): ``categories_`` is a list of ``n_features_in_`` 1-D
    arrays, numeric ones strictly increasing (NaN last); ``_n_features_outs`` has one
    non-negative count per feature; infrequent indices are category codes; and, simulating the
    remapping and dropping of ``transform``, every reachable code of column ``i`` is in
    ``[0, _n_features_outs[i])``.

    Parameters
    ----------
    est : OneHotEncoder
        The encoder.
    limits : Limits
        Unused.

    Raises
    ------
    ValidationError
        Naming the feature and the code that would fall outside its block.
    """
    d = state(est)
    if "categories_" not in d:
        return
    cats_list = d["categories_"]
    if not isinstance(cats_list, list):
        fail(est, f"categories_ is a {type(cats_list).__name__}, not a list")
    n_features = len(cats_list)
    n_in = d.get("n_features_in_", MISSING)
    if get_int(est, "n_features_in_", n_in, 1) != n_features:
        fail(est, f"categories_ has {n_features} entries, n_features_in_ = {n_in}")
    outs = d.get("_n_features_outs", MISSING)
    if not isinstance(outs, list | tuple | np.ndarray) or len(outs) != n_features:
        fail(est, f"_n_features_outs must have {n_features} entries (one per feature)")
    outs = [get_int(est, f"_n_features_outs[{i}]", v, 0) for i, v in enumerate(outs)]

    infrequent = bool(d.get("_infrequent_enabled", False))
    if infrequent:
        infreq_idx = d.get("_infrequent_indices", MISSING)
        mappings = d.get("_default_to_infrequent_mappings", MISSING)
        for name, value in (
            ("_infrequent_indices", infreq_idx),
            ("_default_to_infrequent_mappings", mappings),
        ):
            if not isinstance(value, list) or len(value) != n_features:
                fail(est, f"{name} must be a list with one entry per feature")
    drop = d.get("_drop_idx_after_grouping", None)
    if drop is not None:
        drop = get_array(est, "_drop_idx_after_grouping", drop, ndim=1, shape=(n_features,))

    for i, cats in enumerate(cats_list):
        cats = get_array(est, f"categories_[{i}]", cats, ndim=1)
        _check_sorted(est, i, cats)
        n_cats = cats.shape[0]
        if not infrequent and (drop is None or drop[i] is None):
            # the codes are 0 .. n_cats - 1: the largest must fit (no array needed)
            if n_cats > outs[i]:
                _outside(est, i, n_cats - 1, outs[i])
            continue
        codes = np.arange(n_cats, dtype=np.int64)
        if infrequent:
            idx = infreq_idx[i]
            if idx is not None:
                idx = as_int_array(est, f"_infrequent_indices[{i}]", idx)
                if idx.size == 0 or idx.min() < 0 or idx.max() >= n_cats:
                    fail(est, f"_infrequent_indices[{i}] must hold category codes in [0, {n_cats})")
            mapping = mappings[i]
            if mapping is not None:
                mapping = as_int_array(est, f"_default_to_infrequent_mappings[{i}]", mapping)
                codes = np.unique(mapping[:n_cats])
        if drop is not None and drop[i] is not None:
            to_drop = get_int(est, f"_drop_idx_after_grouping[{i}]", drop[i])
            codes = codes[codes != to_drop]
            codes = codes - (codes > to_drop)
        if codes.size and (codes.min() < 0 or codes.max() >= outs[i]):
            _outside(est, i, int(codes.min()) if codes.min() < 0 else int(codes.max()), outs[i])


def _outside(est: object, i: int, bad: int, n_out: int) -> None:
    fail(
        est,
        f"feature {i} can be encoded as column {bad} of its block, outside "
        f"[0, {n_out}) (_n_features_outs[{i}])",
    )
