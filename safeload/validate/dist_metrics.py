"""Validators for ``sklearn.metrics._dist_metrics.DistanceMetric`` objects.

``DistanceMetric{64,32}.__setstate__`` (``sklearn/metrics/_dist_metrics.pyx.tp``) takes ``p``,
``vec`` and ``mat`` from the pickle and sets ``size = vec.shape[0]`` (``mat.shape[0]`` for
Mahalanobis, which also allocates ``buffer`` of that size).  The distance kernels then loop over
the *caller's* number of features and read ``vec[j]`` (``SEuclidean``, weighted ``Minkowski``),
``mat[i, j]``/``buffer[i]`` (``Mahalanobis``) or ``x[0], x[1]`` (``Haversine``) unchecked.  Only
the holder (a KD/Ball tree) knows that number, so :func:`check_metric_width` is called from the
tree validator; :func:`validate_distance_metric` checks what a metric alone can tell.
"""

from __future__ import annotations

import math

import numpy as np

from .._text import describe
from ..limits import Limits
from . import register
from ._common import fail, get_array, type_name

__all__ = ["validate_distance_metric", "check_metric_width", "metric_state"]

BASE_NAME = "sklearn.metrics._dist_metrics.DistanceMetric"


def _kind(metric: object) -> str:
    """Metric class name without the ``64``/``32`` suffix, e.g. ``"MahalanobisDistance"``."""
    name = type(metric).__name__
    return name[:-2] if name.endswith(("64", "32")) else name


def metric_state(metric: object) -> tuple[float, np.ndarray, np.ndarray]:
    """Return ``(p, vec, mat)`` of a metric from its ``__getstate__``, checked for type and rank.

    Raises
    ------
    ValidationError
        If the state is not ``(float, 1-D float64 array, 2-D float64 array, ...)``.
    """
    try:
        st = metric.__getstate__()  # type: ignore[attr-defined]
    except Exception as exc:
        fail(metric, f"__getstate__ failed ({type(exc).__name__}: {exc})")
    if not isinstance(st, tuple) or len(st) < 3:
        fail(metric, "state is not a (p, vec, mat, ...) tuple")
    p, vec, mat = st[0], st[1], st[2]
    if not isinstance(p, float):
        fail(metric, f"p = {describe(p)} is not a float")
    vec = get_array(metric, "vec", vec, ndim=1, dtype=np.float64)
    mat = get_array(metric, "mat", mat, ndim=2, dtype=np.float64)
    return p, vec, mat


@register(BASE_NAME)
def validate_distance_metric(metric: object, limits: Limits) -> None:
    """Validate the parameters of a DistanceMetric on their own.

    Follows the metric classes of ``sklearn/metrics/_dist_metrics.pyx.tp``:

    * ``p`` is not NaN, and ``p > 0`` for Minkowski (``MinkowskiDistance.__init__`` refuses
      ``p <= 0``; the kernels take ``pow(., 1/p)``);
    * Mahalanobis ``mat`` (``VI``) is square;
    * SEuclidean ``vec`` (``V``) is not empty.

    Parameters
    ----------
    metric : DistanceMetric64 or DistanceMetric32
        The metric, after ``__setstate__``.
    limits : Limits
        Unused.

    Raises
    ------
    ValidationError
        Naming the parameter and its bad shape or value.
    """
    p, vec, mat = metric_state(metric)
    kind = _kind(metric)
    if math.isnan(p):
        fail(metric, "p is NaN")
    if kind == "MinkowskiDistance" and not p > 0:
        fail(metric, f"p = {p} must be > 0")
    if kind == "MahalanobisDistance" and mat.shape[0] != mat.shape[1]:
        fail(metric, f"mat (VI) has shape {mat.shape}, it must be square")
    if kind == "SEuclideanDistance" and vec.shape[0] == 0:
        fail(metric, "vec (V) is empty")


def check_metric_width(holder: object, where: str, metric: object, n_features: int) -> None:
    """Check that a metric's parameter arrays fit data with ``n_features`` columns.

    Raises
    ------
    ValidationError
        About ``holder``: Mahalanobis ``mat`` not ``(n, n)``, SEuclidean ``vec`` not ``(n,)``,
        weighted Minkowski ``w`` not ``(n,)``, Haversine with ``n != 2``.
    """
    _, vec, mat = metric_state(metric)
    kind = _kind(metric)
    n = n_features
    if kind == "MahalanobisDistance" and mat.shape != (n, n):
        fail(
            holder,
            f"{where} ({type_name(type(metric))}) has mat (VI) of shape {mat.shape}, "
            f"data has {n} features",
        )
    if kind == "SEuclideanDistance" and vec.shape != (n,):
        fail(
            holder,
            f"{where} ({type_name(type(metric))}) has vec (V) of shape {vec.shape}, "
            f"data has {n} features",
        )
    if kind == "MinkowskiDistance" and vec.shape[0] not in (0, n):
        fail(
            holder,
            f"{where} ({type_name(type(metric))}) has w of shape {vec.shape}, data "
            f"has {n} features",
        )
    if kind == "HaversineDistance" and n != 2:
        fail(holder, f"{where} is a haversine metric but the data has {n} features (needs 2)")
