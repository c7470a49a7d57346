"""Migrations of preprocessing transformers, and of Python 2 byte-string labels."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._common import add_defaults
from ._registry import migration

#: Fitted attributes that hold labels, categories or vocabularies.
LABEL_ATTRIBUTES = ("classes_", "categories_", "vocabulary_", "stop_words_")


def _to_str(value: Any) -> Any:
    if isinstance(value, np.ndarray) and value.dtype.kind == "S":
        return np.char.decode(value, "latin-1")
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, list):
        return [_to_str(v) for v in value]
    if isinstance(value, dict) and any(isinstance(k, bytes) for k in value):
        return {_to_str(k): v for k, v in value.items()}
    if isinstance(value, set) and any(isinstance(k, bytes) for k in value):
        return {_to_str(k) for k in value}
    return value


@migration(cls="*", versions="<0.21")
def python2_byte_strings(state: Any, ctx: Any) -> Any:
    """Decode Python 2 byte-string labels, categories and vocabularies to ``str``.

    Python 2 ``str`` labels are stored by numpy as byte strings (dtype ``S``); in Python 3 the
    same arrays compare unequal to ``str`` labels and ``predict``/``inverse_transform`` return
    ``bytes``.  scikit-learn 0.20 was the last version supporting Python 2 (0.21 release notes),
    so only states written by < 0.21 are decoded (latin-1, as numpy and joblib read Python 2
    strings).  Applies to ``classes_``, ``categories_``, ``vocabulary_`` and ``stop_words_``.
    """
    if type(state) is not dict:
        return None
    changed = {}
    for key in LABEL_ATTRIBUTES:
        if key in state:
            new = _to_str(state[key])
            if new is not state[key] and not (
                isinstance(new, list) and all(a is b for a, b in zip(new, state[key], strict=False))
            ):
                changed[key] = new
    if not changed:
        return None
    state = dict(state)
    state.update(changed)
    return state


@migration(cls="sklearn.preprocessing._data.MinMaxScaler", versions="<0.24")
def min_max_scaler_clip(state: Any, ctx: Any) -> Any:
    """Add ``clip=False`` to MinMaxScaler.

    scikit-learn 0.24 (PR #17833) added the ``clip`` parameter; older scalers never clipped.
    """
    return add_defaults(state, {"clip": False})


@migration(cls="sklearn.preprocessing._encoders.OneHotEncoder", versions="<1.2")
def one_hot_encoder_attributes(state: Any, ctx: Any) -> Any:
    """Bring an old OneHotEncoder's fitted attributes to today's set.

    Added in scikit-learn since: ``n_features_in_`` (0.24, SLEP010), ``drop``/``drop_idx_``
    (0.21, PR #12908; None keeps every category), infrequent categories (1.1, PR #16018:
    ``_infrequent_enabled=False``, ``max_categories``/``min_frequency`` None),
    ``_n_features_outs`` (1.1, one output column per category), ``sparse`` renamed
    ``sparse_output`` (1.2, PR #24412), ``feature_name_combiner`` (1.3) and
    ``_drop_idx_after_grouping`` (1.2).  0.20's ``_legacy_mode`` attributes are dropped (a
    legacy-mode encoder, ``_legacy_mode=True``, is refused: today's class has no such mode).
    """
    if type(state) is not dict:
        return None
    categories = state.get("categories_")
    if not isinstance(categories, list):
        return None
    if state.get("_legacy_mode"):
        raise ctx.refuse(
            "one-hot-legacy-mode",
            "OneHotEncoder fitted in the legacy integer mode of scikit-learn 0.20, removed in 0.22",
        )
    state = dict(state)
    for key in ("_legacy_mode", "_n_values", "_categories", "_categorical_features", "n_values"):
        state.pop(key, None)
    if "categorical_features" in state:
        del state["categorical_features"]
    if state.get("categories") is None:
        state["categories"] = "auto"
    state.setdefault("n_features_in_", len(categories))
    state.setdefault("drop", None)
    state.setdefault("drop_idx_", None)
    state.setdefault("_drop_idx_after_grouping", state["drop_idx_"])
    state.setdefault("_infrequent_enabled", False)
    state.setdefault("max_categories", None)
    state.setdefault("min_frequency", None)
    if "_n_features_outs" not in state:
        state["_n_features_outs"] = [len(c) for c in categories]
    if "sparse_output" not in state:
        state["sparse_output"] = state.pop("sparse", True)
    state.setdefault("feature_name_combiner", "concat")
    return state


@migration(cls="sklearn.dummy.DummyClassifier", versions="<1.0")
def dummy_strategy(state: Any, ctx: Any) -> Any:
    """Add ``_strategy``, the strategy DummyClassifier resolved at fit time.

    scikit-learn 0.24 (PR #17997) stores the resolved strategy in ``_strategy``; the old
    default ``"warn"`` meant ``"stratified"`` (0.22 – 0.23), and 0.24 changed the default to
    ``"prior"``.
    """
    if type(state) is not dict or "_strategy" in state:
        return None
    state = dict(state)
    strategy = state.get("strategy", "stratified")
    state["_strategy"] = "stratified" if strategy == "warn" else strategy
    return state
