"""Migrations of probability calibration."""

from __future__ import annotations

from typing import Any

from ._common import rename
from ._registry import migration


@migration(cls="sklearn.calibration.CalibratedClassifierCV", versions="<1.2")
def calibrated_cv_estimator(state: Any, ctx: Any) -> Any:
    """Rename ``base_estimator`` to ``estimator``.

    scikit-learn 1.2 (PR #22054) renamed the parameter; 1.4 removed ``base_estimator``.
    """
    return rename(state, {"base_estimator": "estimator"})


@migration(cls="sklearn.calibration._CalibratedClassifier", versions="<1.2")
def calibrated_classifier_fields(state: Any, ctx: Any) -> Any:
    """Rename the fields of the per-fold ``_CalibratedClassifier``.

    scikit-learn 0.24 (PR #17856) renamed ``calibrators_`` to ``calibrators`` and dropped the
    ``label_encoder_`` (today the positive-class indices are computed from ``classes`` and
    ``estimator.classes_`` at predict time, with the same result); 1.2 renamed
    ``base_estimator`` to ``estimator``.
    """
    renamed = rename(state, {"base_estimator": "estimator", "calibrators_": "calibrators"})
    if renamed is None:
        return None
    renamed.pop("label_encoder_", None)
    renamed.pop("classes_", None)
    return renamed
