"""Migrations of nearest-neighbour estimators and their KD/ball trees."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._registry import migration

EUCLIDEAN = "sklearn.metrics._dist_metrics.EuclideanDistance"
NEIGHBORS = (
    "sklearn.neighbors._classification.KNeighborsClassifier",
    "sklearn.neighbors._classification.RadiusNeighborsClassifier",
    "sklearn.neighbors._regression.KNeighborsRegressor",
    "sklearn.neighbors._regression.RadiusNeighborsRegressor",
    "sklearn.neighbors._unsupervised.NearestNeighbors",
    "sklearn.neighbors._lof.LocalOutlierFactor",
)


@migration(cls=EUCLIDEAN, versions="*", kind="standin")
def euclidean_distance(standin: Any, ctx: Any) -> Any:
    """Replace the removed ``EuclideanDistance`` metric by today's ``EuclideanDistance64``.

    scikit-learn 1.1 (PR #22590) split the distance metrics into float64 and float32 variants
    (``EuclideanDistance64``/``EuclideanDistance32``) and removed ``EuclideanDistance``.  The
    Euclidean metric has no parameters (its state ``(p, vec, mat)`` is ``(2.0, [0.], [[0.]])``),
    so a fresh ``DistanceMetric.get_metric("euclidean")`` is the same metric.
    """
    state = standin.state
    if not (type(state) is tuple and len(state) == 3 and state[0] == 2.0):
        raise ctx.refuse("euclidean-state", f"unexpected EuclideanDistance state: {state!r:.80}")
    from sklearn.metrics import DistanceMetric

    return DistanceMetric.get_metric("euclidean")


@migration(cls=NEIGHBORS, versions="<1.0")
def neighbors_fit_shape(state: Any, ctx: Any) -> Any:
    """Set ``n_samples_fit_`` and ``n_features_in_`` from the training data ``_fit_X``.

    scikit-learn 0.24 added ``n_features_in_`` (SLEP010) and ``n_samples_fit_`` (PR #18016),
    which ``kneighbors`` reads to bound ``n_neighbors``.
    """
    if type(state) is not dict:
        return None
    fit_x = state.get("_fit_X")
    if not isinstance(fit_x, np.ndarray) or fit_x.ndim != 2:
        return None
    if "n_samples_fit_" in state and "n_features_in_" in state:
        return None
    state = dict(state)
    state.setdefault("n_samples_fit_", int(fit_x.shape[0]))
    state.setdefault("n_features_in_", int(fit_x.shape[1]))
    return state
