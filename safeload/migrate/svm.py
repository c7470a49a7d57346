"""Migrations of libsvm-based estimators."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._registry import migration

LIBSVM = (
    "sklearn.svm._classes.SVC",
    "sklearn.svm._classes.NuSVC",
    "sklearn.svm._classes.SVR",
    "sklearn.svm._classes.NuSVR",
    "sklearn.svm._classes.OneClassSVM",
)


@migration(cls=LIBSVM, versions="<0.23")
def libsvm_private_attributes(state: Any, ctx: Any) -> Any:
    """Move ``n_support_``/``probA_``/``probB_`` to ``_n_support``/``_probA``/``_probB``.

    scikit-learn 0.23 (PR #16530) stored the libsvm model fields ``_n_support``, ``_probA`` and
    ``_probB`` privately (``n_support_`` became a property, ``probA_``/``probB_`` were
    deprecated and later removed); 0.22 added ``break_ties`` (False reproduces the old
    ``predict``); 0.24 added ``n_features_in_``.
    """
    if type(state) is not dict or "_n_support" in state:
        return None
    state = dict(state)
    n_support = state.pop("n_support_", None)
    if isinstance(n_support, np.ndarray):
        state["_n_support"] = n_support.astype(np.int32)
    for old, new in (("probA_", "_probA"), ("probB_", "_probB")):
        if old in state:
            state[new] = state.pop(old)
    state.setdefault("break_ties", False)
    sv = state.get("support_vectors_")
    if "n_features_in_" not in state and hasattr(sv, "shape") and len(sv.shape) == 2:
        state["n_features_in_"] = int(sv.shape[1])
    return state


@migration(cls=LIBSVM, versions="<1.9")
def libsvm_effective_probability(state: Any, ctx: Any) -> Any:
    """Add ``_effective_probability`` (= ``probability``) and ``_num_iter``.

    scikit-learn 1.9 deprecated ``SVC(probability=True)`` and reads the resolved flag from
    ``_effective_probability``; 1.1 stored the libsvm iteration counts in ``_num_iter``.
    """
    if type(state) is not dict or "_effective_probability" in state:
        return None
    state = dict(state)
    state["_effective_probability"] = bool(state.get("probability", False))
    if "_num_iter" not in state:
        n_iter = state.get("n_iter_")
        if not isinstance(n_iter, np.ndarray):
            classes = state.get("classes_")
            n_models = len(classes) * (len(classes) - 1) // 2 if hasattr(classes, "__len__") else 1
            n_iter = np.zeros(max(n_models, 1), dtype=np.int32)
        state["_num_iter"] = n_iter
    return state


@migration(cls=("sklearn.svm._classes.SVC", "sklearn.svm._classes.NuSVC"), versions="<0.21")
def svc_batch_scaled_ovr(state: Any, ctx: Any) -> Any:
    """Refuse 0.20 multiclass SVC/NuSVC with ``decision_function_shape="ovr"``.

    Until scikit-learn 0.20, ``_ovr_decision_function`` scaled the summed one-vs-one confidences by the
    largest absolute confidence *of the whole batch* passed to ``decision_function``; 0.21
    changed it to the per-sample monotonic ``s / (3 * (|s| + 1))``.  A value that depends on the
    other rows of the batch can not be reproduced by today's (or any) estimator, so the model is
    refused (``predict`` and ``predict_proba`` are unaffected, but an estimator with any differing
    output is never returned).
    """
    if type(state) is not dict or state.get("decision_function_shape") != "ovr":
        return None
    classes = state.get("classes_")
    if hasattr(classes, "__len__") and len(classes) > 2:
        raise ctx.refuse(
            "svc-ovr-batch-scaled",
            f"{ctx.owner or 'SVC'} written by scikit-learn {ctx.version_text}: its one-vs-rest "
            "decision_function was scaled by the largest confidence of each batch (changed in "
            "0.21); today's SVC can not reproduce it",
        )
    return None
