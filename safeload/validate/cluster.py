"""Validator for k-means cluster centers.

``KMeans.predict``/``MiniBatchKMeans.predict`` (``sklearn/cluster/_kmeans.py``) check ``X``
against ``n_features_in_`` and call ``_labels_inertia`` → ``lloyd_iter_chunked_dense`` /
``lloyd_iter_chunked_sparse`` (``sklearn/cluster/_k_means_lloyd.pyx``), which read
``centers[j, k]`` for ``k < X.shape[1]`` through a ``[:, ::1]`` memoryview with
``boundscheck=False``: centers narrower than the input are read out of bounds.
``BisectingKMeans._predict_recursive`` (``_bisect_k_means.py``) does the same with
``np.vstack((node.left.center, node.right.center))`` at every split of ``_bisecting_tree``.
"""

from __future__ import annotations

from ..limits import Limits
from . import register
from ._common import MISSING, fail, get_array, get_int, state

__all__ = ["validate_kmeans"]


@register("sklearn.cluster._kmeans._BaseKMeans")
def validate_kmeans(est: object, limits: Limits) -> None:
    """Check that ``cluster_centers_`` is C-contiguous float with ``n_features_in_`` columns.

    Parameters
    ----------
    est : KMeans, MiniBatchKMeans or BisectingKMeans
        The estimator (checked once ``cluster_centers_`` is set).
    limits : Limits
        Unused.

    Raises
    ------
    ValidationError
        If ``cluster_centers_`` is not a non-empty 2-D float32/float64 C-contiguous array or its
        width differs from ``n_features_in_`` (which must be present: without it ``predict``
        does not check the input width at all).
    """
    d = state(est)
    if "cluster_centers_" not in d:
        return
    centers = get_array(
        est, "cluster_centers_", d["cluster_centers_"], ndim=2, kinds="f", c_contiguous=True
    )
    n_in = get_int(est, "n_features_in_", d.get("n_features_in_", MISSING), 1)
    if centers.shape[0] < 1 or centers.shape[1] != n_in:
        fail(est, f"cluster_centers_ has shape {centers.shape}, expected (n_clusters >= 1, {n_in})")
    root = d.get("_bisecting_tree", None)
    if root is not None:
        _check_bisecting_tree(est, root, n_in, limits)


def _check_bisecting_tree(est: object, root: object, n_in: int, limits: Limits) -> None:
    """Walk ``_bisecting_tree`` (iteratively, each node once) and check the split centers."""
    stack = [(root, "_bisecting_tree")]
    seen: set[int] = set()
    while stack:
        node, where = stack.pop()
        if id(node) in seen:
            fail(est, f"{where} is reached twice (the bisecting tree must be a tree)")
        seen.add(id(node))
        limits.check("max_items", len(seen), "nodes of a bisecting k-means tree")
        nd = getattr(node, "__dict__", None)
        if not isinstance(nd, dict):
            fail(est, f"{where} is a {type(node).__name__}, not a tree node")
        left, right = nd.get("left"), nd.get("right")
        if left is None and right is None:
            continue
        if left is None or right is None:
            fail(est, f"{where} has only one child")
        for side, child in (("left", left), ("right", right)):
            center = getattr(child, "__dict__", {}).get("center", MISSING)
            center = get_array(est, f"{where}.{side}.center", center, kinds="f")
            if center.shape not in ((n_in,), (1, n_in)):  # (1, n) when X.mean() was a matrix
                fail(est, f"{where}.{side}.center has shape {center.shape}, expected ({n_in},)")
            stack.append((child, f"{where}.{side}"))
