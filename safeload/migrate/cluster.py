"""Migrations of clustering estimators."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._registry import migration


@migration(cls="sklearn.cluster._kmeans.KMeans", versions="<1.0")
def kmeans_fit_attributes(state: Any, ctx: Any) -> Any:
    """Add ``n_features_in_``, ``_n_threads`` and ``_algorithm`` to old KMeans.

    scikit-learn 0.23 (PR #17622) made ``predict``/``transform`` read ``self._n_threads``;
    0.24 added ``n_features_in_`` (SLEP010); 1.1 resolved ``algorithm`` into ``_algorithm``
    (``"auto"``/``"full"`` became ``"lloyd"``).  Prediction (nearest centre) does not depend on
    the thread count or on the fitting algorithm.
    """
    if type(state) is not dict:
        return None
    centers = state.get("cluster_centers_")
    if not isinstance(centers, np.ndarray) or centers.ndim != 2:
        return None
    from sklearn.utils._openmp_helpers import _openmp_effective_n_threads

    state = dict(state)
    state.setdefault("n_features_in_", int(centers.shape[1]))
    state.setdefault("_n_threads", _openmp_effective_n_threads())
    algorithm = state.get("algorithm")
    state.setdefault("_algorithm", "elkan" if algorithm == "elkan" else "lloyd")
    return state
