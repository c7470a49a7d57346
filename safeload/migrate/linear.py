"""Migrations of linear models."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._common import add_defaults, legacy_of
from ._registry import migration

LOGISTIC = (
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.linear_model._logistic.LogisticRegressionCV",
)


@migration(cls="sklearn.linear_model._base.LinearRegression", versions="<0.24")
def linear_regression_positive(state: Any, ctx: Any) -> Any:
    """Add ``positive=False`` to LinearRegression.

    scikit-learn 0.24 (PR #17578) added the ``positive`` parameter; older models were fitted
    without the constraint, and ``predict`` is ``X @ coef_ + intercept_`` either way.
    """
    return add_defaults(state, {"positive": False})


SGD_CLASSIFIER = "sklearn.linear_model._stochastic_gradient.SGDClassifier"
SGD_LOG = "sklearn.linear_model._sgd_fast.Log"


@migration(cls=SGD_CLASSIFIER, versions="*")
def sgd_log_loss(state: Any, ctx: Any) -> Any:
    """Replace the removed ``_sgd_fast.Log`` loss object and rename ``loss="log"``.

    scikit-learn 1.1 renamed ``SGDClassifier(loss="log")`` to ``loss="log_loss"`` (the old name
    was removed in 1.3), and later versions dropped the ``Log`` loss class of ``_sgd_fast`` for
    ``sklearn._loss._loss.CyHalfBinomialLoss``, now stored in ``_loss_function_`` (the public
    ``loss_function_`` of older versions was deprecated and removed).  The loss object is used
    only by ``fit``/``partial_fit``, which rebuild it from ``loss``; ``decision_function`` is
    ``X @ coef_.T + intercept_`` and ``predict_proba`` for the logistic loss is
    ``_predict_proba_lr`` — the sigmoid of the decision function (binary), normalized over the
    classes (one-vs-rest) — in the old and today's versions alike, with the same ``coef_`` and
    ``intercept_``.  So the outputs are unchanged, and ``predict_proba`` stays available (today's
    class offers it only for ``loss="log_loss"``).  Keyed on the state's content (a ``Log``
    stand-in or ``loss="log"``), not on the version.
    """
    if type(state) is not dict:
        return None
    keys = [k for k in ("loss_function_", "_loss_function_") if legacy_of(state.get(k), SGD_LOG)]
    if not keys and state.get("loss") != "log":
        return None
    from sklearn._loss._loss import CyHalfBinomialLoss

    state = dict(state)
    for key in keys:
        del state[key]
    if keys:
        state["_loss_function_"] = CyHalfBinomialLoss()
    if state.get("loss") == "log":
        state["loss"] = "log_loss"
    return state


def _effective_multi_class(state: dict) -> str:
    """What scikit-learn 0.20 – 1.4 ``_check_multi_class`` resolved ``multi_class`` to."""
    multi_class = state.get("multi_class", "auto")
    classes = state.get("classes_")
    n_classes = len(classes) if isinstance(classes, np.ndarray) else 0
    if multi_class == "warn":  # 0.20 – 0.21 default: one-vs-rest
        return "ovr"
    if multi_class == "auto":
        if state.get("solver") == "liblinear" or n_classes <= 2:
            return "ovr"
        return "multinomial"
    return str(multi_class)


@migration(cls=LOGISTIC, versions="<1.7")
def logistic_one_vs_rest(state: Any, ctx: Any) -> Any:
    """Rebuild a one-vs-rest multiclass LogisticRegression as a ``OneVsRestClassifier``.

    scikit-learn 1.7 removed ``LogisticRegression(multi_class=...)`` (deprecated in 1.5,
    PR #28703): today's multiclass ``LogisticRegression`` always applies a softmax, whereas the
    old one-vs-rest model (``multi_class="ovr"``, the 0.20 – 0.21 default ``"warn"``, and
    ``"auto"`` with ``liblinear``) normalized per-class sigmoids.  The equivalent estimator is a
    ``OneVsRestClassifier`` holding one binary ``LogisticRegression`` per class with that class's
    row of ``coef_``/``intercept_``: its ``decision_function`` is the same matrix, its
    ``predict_proba`` the same normalized sigmoids and its ``predict`` the same argmax.  The
    object is replaced wherever the file references it.  Binary models are unchanged (both
    versions use one sigmoid) and only the obsolete parameter is dropped.
    """
    if type(state) is not dict or "coef_" not in state:
        return None
    classes = state.get("classes_")
    mode = _effective_multi_class(state)
    if not isinstance(classes, np.ndarray) or len(classes) <= 2 or mode != "ovr":
        if "multi_class" in state:
            state = dict(state)
            del state["multi_class"]
            return state
        return None
    state = dict(state)
    state.pop("multi_class", None)
    ctx.replace(ctx.obj, _one_vs_rest(ctx.obj, state))
    return state


def _one_vs_rest(old: Any, state: dict) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.preprocessing import LabelBinarizer

    coef = np.asarray(state["coef_"], dtype=np.float64)
    intercept = np.asarray(state["intercept_"], dtype=np.float64).reshape(-1)
    classes = state["classes_"]
    if coef.ndim != 2 or coef.shape[0] != len(classes) or intercept.shape[0] != len(classes):
        raise ValueError("coef_/intercept_ do not have one row per class")
    params = {k: state[k] for k in ("C", "penalty", "solver", "max_iter", "tol") if k in state}
    version = _today()
    binaries = []
    for k in range(len(classes)):
        est = LogisticRegression(**params)
        est.__dict__.update(
            coef_=coef[k : k + 1].copy(),
            intercept_=intercept[k : k + 1].copy(),
            classes_=np.array([0, 1]),
            n_features_in_=int(coef.shape[1]),
            n_iter_=np.array([0], dtype=np.int32),
            _sklearn_version=version,
        )
        if "feature_names_in_" in state:
            est.feature_names_in_ = state["feature_names_in_"]
        binaries.append(est)
    binarizer = LabelBinarizer(sparse_output=True).fit(classes)
    ovr = OneVsRestClassifier(LogisticRegression(**params))
    ovr.__dict__.update(
        estimators_=binaries,
        label_binarizer_=binarizer,
        classes_=binarizer.classes_,
        n_features_in_=int(coef.shape[1]),
        _sklearn_version=version,
    )
    if "feature_names_in_" in state:
        ovr.feature_names_in_ = state["feature_names_in_"]
    return ovr


def _today() -> str:
    import sklearn

    return sklearn.__version__
