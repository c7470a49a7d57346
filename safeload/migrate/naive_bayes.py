"""Migrations of naive Bayes estimators."""

from __future__ import annotations

from typing import Any

from ._common import rename
from ._registry import migration


@migration(cls="sklearn.naive_bayes.GaussianNB", versions="<1.0")
def gaussian_nb_var(state: Any, ctx: Any) -> Any:
    """Rename GaussianNB's ``sigma_`` to ``var_``.

    scikit-learn 1.0 (PR #18996) renamed the per-class feature variances ``sigma_`` to ``var_``
    (``sigma_`` was removed in 1.2); the values are the same.
    """
    return rename(state, {"sigma_": "var_"})
