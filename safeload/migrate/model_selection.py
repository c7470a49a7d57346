"""Migrations of model-selection objects (``GridSearchCV`` and friends)."""

from __future__ import annotations

from typing import Any

from .._text import describe
from ._common import legacy_of
from ._registry import migration

SEARCHES = (
    "sklearn.model_selection._search.GridSearchCV",
    "sklearn.model_selection._search.RandomizedSearchCV",
)
DEPRECATION_DICT = "sklearn.utils.deprecation.DeprecationDict"
PASSTHROUGH = "sklearn.metrics._scorer._passthrough_scorer"
PREDICT_SCORER = "sklearn.metrics._scorer._PredictScorer"


@migration(cls=DEPRECATION_DICT, versions="<0.22", kind="standin")
def deprecation_dict(standin: Any, ctx: Any) -> Any:
    """Turn 0.20's ``DeprecationDict`` ``cv_results_`` into a plain ``dict``.

    scikit-learn 0.20 wrapped ``cv_results_`` in ``sklearn.utils.deprecation.DeprecationDict``
    to warn about the ``*_train_score`` keys; 0.21 dropped the wrapper and 0.22 removed the
    class.  The items are kept, the warnings (its state: ``FutureWarning`` and messages) dropped.
    """
    return dict(standin)


@migration(cls=SEARCHES, versions="<1.1")
def passthrough_scorer(state: Any, ctx: Any) -> Any:
    """Replace the removed ``_passthrough_scorer`` function by today's ``_PassthroughScorer``.

    Until 1.0, ``scoring=None`` stored the function ``sklearn.metrics._scorer.
    _passthrough_scorer`` in ``scorer_``; scikit-learn 1.1 (PR #22299) replaced it by the
    ``_PassthroughScorer(estimator)`` class, which calls ``estimator.score`` the same way.
    """
    if type(state) is not dict or not legacy_of(state.get("scorer_"), PASSTHROUGH):
        return None
    from sklearn.metrics._scorer import _PassthroughScorer

    state = dict(state)
    state["scorer_"] = _PassthroughScorer(state.get("estimator"))
    return state


@migration(cls=PREDICT_SCORER, versions="<1.4", kind="standin")
def predict_scorer(standin: Any, ctx: Any) -> Any:
    """Replace the removed ``_PredictScorer`` by today's ``_Scorer(response_method="predict")``.

    ``make_scorer``/``get_scorer`` built a ``_PredictScorer`` for metrics on ``predict``
    outputs (``scoring="neg_mean_squared_error"`` ...) until scikit-learn 1.4 merged
    the scorer classes into ``_Scorer`` with a ``response_method``.  Both compute
    ``sign * score_func(y_true, estimator.predict(X), **kwargs)``; the state keeps
    ``_score_func``, ``_sign`` and ``_kwargs``.  The score function is the one the file named,
    already audited (a trusted scikit-learn metric).
    """
    state = standin.state
    if type(state) is not dict or not {"_score_func", "_sign", "_kwargs"} <= set(state):
        raise ctx.refuse("scorer-state", f"unexpected _PredictScorer state: {describe(state, 80)}")
    sign, kwargs = state["_sign"], state["_kwargs"]
    if sign not in (1, -1) or type(kwargs) is not dict:
        raise ctx.refuse("scorer-state", "_PredictScorer with a bad sign or kwargs")
    from sklearn.metrics._scorer import _Scorer

    return _Scorer(state["_score_func"], sign, dict(kwargs), response_method="predict")
