"""Migrations of text feature extraction."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._registry import migration


@migration(cls="sklearn.feature_extraction.text.TfidfTransformer", versions="<1.5")
def tfidf_idf_diag(state: Any, ctx: Any) -> Any:
    """Replace the sparse diagonal ``_idf_diag`` by the ``idf_`` vector.

    scikit-learn 1.5 (PR #27219) stores the inverse document frequencies as the 1-D array
    ``idf_`` and ``transform`` weights the counts only when ``idf_`` exists — an old file's
    ``_idf_diag`` is silently ignored, giving unweighted (wrong) outputs.  The diagonal is read
    from the CSR arrays after checking the matrix really is an ``n x n`` diagonal (the sparse
    matrix is not validated yet, so scipy's own ``diagonal()`` is not called on it).
    """
    if type(state) is not dict or "idf_" in state or "_idf_diag" not in state:
        return None
    diag = state["_idf_diag"]
    data = getattr(diag, "data", None)
    indices = getattr(diag, "indices", None)
    indptr = getattr(diag, "indptr", None)
    shape = getattr(diag, "shape", None)
    n = shape[0] if isinstance(shape, tuple) and len(shape) == 2 else -1
    ok = (
        isinstance(data, np.ndarray)
        and isinstance(indices, np.ndarray)
        and isinstance(indptr, np.ndarray)
        and shape == (n, n)
        and data.shape == (n,)
        and np.array_equal(indices, np.arange(n))
        and np.array_equal(indptr, np.arange(n + 1))
    )
    if not ok:
        raise ctx.refuse("tfidf-idf-diag", "TfidfTransformer._idf_diag is not an n x n diagonal")
    state = dict(state)
    del state["_idf_diag"]
    state["idf_"] = np.array(data, dtype=np.float64)
    return state
