"""Migrations of the multiclass meta-estimators (``OneVsRestClassifier``)."""

from __future__ import annotations

from typing import Any

from ._common import add_defaults
from ._registry import migration

ONE_VS_REST = "sklearn.multiclass.OneVsRestClassifier"


@migration(cls=ONE_VS_REST, versions="<1.1")
def one_vs_rest_verbose(state: Any, ctx: Any) -> Any:
    """Add the ``verbose=0`` parameter of ``OneVsRestClassifier``.

    scikit-learn 1.1 added ``verbose`` (passed to joblib while fitting); ``get_params`` and so
    ``clone`` fail without it.  Older models were fitted silently, which ``verbose=0`` keeps;
    predictions do not read it.
    """
    return add_defaults(state, {"verbose": 0})
