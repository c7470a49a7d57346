"""Validator for the libsvm-backed estimators (``SVC``, ``NuSVC``, ``SVR``, ``NuSVR``,
``OneClassSVM``).

``BaseLibSVM._dense_predict``/``_sparse_predict``/``predict_proba``/``decision_function``
(``sklearn/svm/_base.py``) hand the fitted arrays straight to ``_libsvm.pyx::predict`` and
``_libsvm_sparse.pyx::libsvm_sparse_predict``, which rebuild a C ``svm_model`` with
``set_model``/``csr_set_model`` (``sklearn/svm/src/libsvm/libsvm_helper.c``,
``libsvm_sparse_helper.c``):

* ``nr_class = len(_n_support)``, ``l = len(support_)`` (dense) or ``len(indptr) - 1``
  (sparse), ``m = nr_class * (nr_class - 1) / 2``;
* ``sv_coef[i] = dual_coef + i * l`` for ``i < nr_class - 1`` (or ``memcpy`` of ``l`` doubles
  per row from ``_dual_coef_.data``), ``rho[i] = -intercept[i]`` for ``i < m``;
* ``memcpy(probA|probB, m doubles)`` when probability estimates are on;
* ``svm_predict_values`` walks ``nSV[i]`` coefficients per class starting at the running sum
  (so ``sum(_n_support) == l`` and no negative count), and a precomputed kernel reads
  ``x[support_[i]]`` from the test row.

``_validate_for_predict`` only checks ``sum(n_support_) == len(support_vectors_)`` for dense
models (CVE-2020-28975); everything else is trusted.
"""

from __future__ import annotations

import numpy as np

from .._text import describe
from ..limits import Limits
from . import register
from ._common import MISSING, check_range, fail, get_array, get_int, is_type, state

__all__ = ["validate_libsvm"]

LIBSVM_IMPL = ("c_svc", "nu_svc", "one_class", "epsilon_svr", "nu_svr")
_CSR = ("scipy.sparse._csr._csr_base",)


def _vec(est: object, field: str, value: object, dtype: type) -> np.ndarray:
    return get_array(est, field, value, ndim=1, dtype=dtype, c_contiguous=True)


@register(
    "sklearn.svm._base.BaseLibSVM",
    "sklearn.svm._classes.SVC",
    "sklearn.svm._classes.NuSVC",
    "sklearn.svm._classes.SVR",
    "sklearn.svm._classes.NuSVR",
    "sklearn.svm._classes.OneClassSVM",
)
def validate_libsvm(est: object, limits: Limits) -> None:
    """Validate the fitted arrays of a libsvm-backed estimator (only once ``support_`` is set).

    Checks:

    * ``_impl`` is a libsvm implementation, ``_sparse`` a bool;
    * ``_n_support`` is C-contiguous ``int32`` with ``nr_class >= 2`` entries (exactly 2 for
      one-class and regression), none negative, summing to the number of support vectors for
      classification;
    * ``support_`` is ``int32`` with indices in ``[0, shape_fit_[0])`` (a precomputed kernel
      reads the test row at these positions);
    * dense: ``support_vectors_`` is C-contiguous ``float64`` of shape ``(l, n_features_in_)``
      (unused ``(0, 0)`` for a precomputed kernel) and ``_dual_coef_`` is ``(nr_class - 1, l)``;
    * sparse: ``support_vectors_`` is CSR with ``float64`` data, ``int32`` indices and
      ``n_features_in_`` columns, and ``_dual_coef_`` is CSR whose ``data`` holds exactly
      ``(nr_class - 1) * l`` coefficients;
    * ``_intercept_`` has ``m = nr_class * (nr_class - 1) / 2`` entries; ``_probA``/``_probB``
      have ``0`` or ``m`` entries, and ``m`` when probability estimates are enabled.

    Parameters
    ----------
    est : BaseLibSVM subclass
        The estimator.
    limits : Limits
        Unused.

    Raises
    ------
    ValidationError
        Naming the attribute and the inconsistent shape or value.
    """
    d = state(est)
    if "support_" not in d:
        return
    impl = d.get("_impl", getattr(type(est), "_impl", None))
    if impl not in LIBSVM_IMPL:
        fail(est, f"_impl = {describe(impl, 80)} is not one of {LIBSVM_IMPL}")
    svm_type = LIBSVM_IMPL.index(impl)
    sparse = d.get("_sparse", MISSING)
    if not isinstance(sparse, bool | np.bool_):
        fail(est, f"_sparse = {describe(sparse, 80)} is not a bool")
    kernel = d.get("kernel", getattr(type(est), "kernel", None))
    precomputed = callable(kernel) or kernel == "precomputed"

    n_support = _vec(est, "_n_support", d.get("_n_support"), np.int32)
    nr_class = n_support.shape[0]
    if svm_type >= 2 and nr_class != 2:
        fail(est, f"_n_support has {nr_class} entries, libsvm one-class/regression needs 2")
    if nr_class < 2:
        fail(est, f"_n_support has {nr_class} entries, a libsvm model has at least 2 classes")
    check_range(est, "_n_support", n_support, 0, np.iinfo(np.int32).max)
    m = nr_class * (nr_class - 1) // 2

    support = _vec(est, "support_", d["support_"], np.int32)
    shape_fit = d.get("shape_fit_", MISSING)
    if not isinstance(shape_fit, tuple) or not shape_fit:
        fail(est, f"shape_fit_ = {describe(shape_fit, 80)} is not a shape tuple")
    n_train = get_int(est, "shape_fit_[0]", shape_fit[0], 1)
    check_range(est, "support_", support, 0, n_train)

    sv = d.get("support_vectors_", MISSING)
    dual = d.get("_dual_coef_", MISSING)
    n_in = d.get("n_features_in_", MISSING)
    if not sparse:
        sv = get_array(est, "support_vectors_", sv, ndim=2, dtype=np.float64, c_contiguous=True)
        n_sv = support.shape[0]
        if not precomputed:
            if sv.shape[0] != n_sv:
                fail(
                    est, f"support_vectors_ has {sv.shape[0]} rows but support_ has {n_sv} entries"
                )
            if n_in is not MISSING and sv.shape[1] != get_int(est, "n_features_in_", n_in, 1):
                fail(est, f"support_vectors_ has {sv.shape[1]} columns, n_features_in_ = {n_in}")
        get_array(
            est,
            "_dual_coef_",
            dual,
            ndim=2,
            dtype=np.float64,
            c_contiguous=True,
            shape=(nr_class - 1, n_sv),
        )
    else:
        if precomputed:
            fail(est, "a sparse libsvm model can not use a precomputed or callable kernel")
        if not is_type(sv, *_CSR):
            fail(est, f"support_vectors_ is a {type(sv).__name__}, not a CSR matrix")
        if not is_type(dual, *_CSR):
            fail(est, f"_dual_coef_ is a {type(dual).__name__}, not a CSR matrix")
        sv_d, dual_d = vars(sv), vars(dual)
        _vec(est, "support_vectors_.data", sv_d.get("data"), np.float64)
        _vec(est, "support_vectors_.indices", sv_d.get("indices"), np.int32)
        indptr = _vec(est, "support_vectors_.indptr", sv_d.get("indptr"), np.int32)
        n_sv = indptr.shape[0] - 1
        sv_shape = sv_d.get("_shape")
        if not isinstance(sv_shape, tuple) or len(sv_shape) != 2 or sv_shape[0] != n_sv:
            fail(
                est,
                f"support_vectors_ has shape {describe(sv_shape, 80)} and {n_sv} rows in indptr",
            )
        if n_in is not MISSING and sv_shape[1] != get_int(est, "n_features_in_", n_in, 1):
            fail(est, f"support_vectors_ has {sv_shape[1]} columns, n_features_in_ = {n_in}")
        if support.shape[0] != n_sv:
            fail(est, f"support_ has {support.shape[0]} entries, support_vectors_ {n_sv} rows")
        coef = _vec(est, "_dual_coef_.data", dual_d.get("data"), np.float64)
        if coef.shape[0] != (nr_class - 1) * n_sv:
            fail(
                est,
                f"_dual_coef_ stores {coef.shape[0]} coefficients, libsvm reads "
                f"(n_class - 1) * n_SV = {(nr_class - 1) * n_sv}",
            )
    if svm_type < 2 and int(n_support.sum()) != n_sv:
        fail(est, f"sum(_n_support) = {int(n_support.sum())} but there are {n_sv} support vectors")

    intercept = _vec(est, "_intercept_", d.get("_intercept_"), np.float64)
    if intercept.shape[0] != m:
        fail(
            est,
            f"_intercept_ has {intercept.shape[0]} entries, expected n_class * "
            f"(n_class - 1) / 2 = {m}",
        )
    prob_a = _vec(est, "_probA", d.get("_probA"), np.float64)
    prob_b = _vec(est, "_probB", d.get("_probB"), np.float64)
    for field, arr in (("_probA", prob_a), ("_probB", prob_b)):
        if arr.shape[0] not in (0, m):
            fail(est, f"{field} has {arr.shape[0]} entries, expected 0 or {m}")
    if d.get("_effective_probability", False) and (prob_a.shape[0] != m or prob_b.shape[0] != m):
        fail(
            est,
            f"probability estimates are enabled but _probA/_probB have "
            f"{prob_a.shape[0]}/{prob_b.shape[0]} entries, expected {m}",
        )
