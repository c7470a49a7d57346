"""Fast paths of the shared validator helpers decide what their numpy formulas decide."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sklearn.ensemble import HistGradientBoostingClassifier

import safeload.validate.hist_gradient_boosting as vh
from safeload.errors import ValidationError
from safeload.limits import DEFAULT_LIMITS
from safeload.validate._common import check_flag, is_type


def _reference_flag_error(values, positions) -> str | None:
    """The message of the numpy formula check_flag used before its byte fast path."""
    if values.size == 0:
        return None
    bad = (values != 0) & (values != 1)
    if not bad.any():
        return None
    k = int(np.argmax(bad))
    pos = int(positions[k]) if positions is not None else k
    return f"builtins.object: flags[{pos}] = {int(values[k])} is not 0 or 1"


@settings(max_examples=300, deadline=None)
@given(
    raw=st.lists(st.sampled_from([0, 1, 0, 1, 2, 127, 128, 255]), max_size=12),
    dtype=st.sampled_from(["u1", "i1", "?", "<u2", "<i8", "<f8"]),
    strided=st.booleans(),
    with_positions=st.booleans(),
)
@example(raw=[0, 0, 0, 0, 0, 0, 255, 127], dtype="<f8", strided=False, with_positions=False)
def test_check_flag_agrees_with_the_numpy_formula(raw, dtype, strided, with_positions):
    """Bytes reinterpreted as each dtype (a bool array may hold raw bytes other than 0/1)."""
    data = np.array(raw, dtype=np.uint8)
    width = np.dtype(dtype).itemsize
    data = data[: len(data) - len(data) % width].view(dtype)
    values = data[::2] if strided else data
    positions = np.arange(values.size) * 3 + 5 if with_positions else None
    try:  # a NaN or inf float has no int() for the message: both sides raise ValueError
        expected = _reference_flag_error(values, positions)
    except ValueError as exc:
        expected = f"ValueError: {exc}"
    try:
        check_flag(object(), "flags", values, positions)
        got = None
    except ValidationError as exc:
        got = str(exc)
    except ValueError as exc:
        got = f"ValueError: {exc}"
    assert got == expected


def test_is_type_is_cached_per_type_and_names():
    class Base:
        pass

    class Child(Base):
        pass

    base = f"{__name__}.test_is_type_is_cached_per_type_and_names.<locals>.Base"
    for _ in range(2):  # computed, then cached
        assert is_type(Child(), base)
        assert is_type(Child(), "x.Y", base)
        assert not is_type(Child(), "x.Y")
        assert not is_type(Base(), f"{base[:-4]}Child")


@pytest.fixture(scope="module")
def mapper():
    rng = np.random.RandomState(0)
    X = np.c_[rng.randn(200, 2), rng.randint(0, 5, 200)]
    y = (X[:, 0] > 0).astype(int)
    est = HistGradientBoostingClassifier(max_iter=2, categorical_features=[2], random_state=0)
    return est.fit(X, y)._bin_mapper


@pytest.mark.parametrize(
    ("threshold", "message"),
    [
        (np.zeros(3, dtype=np.float32), "bin_thresholds_[1] has dtype float32, expected float64"),
        (np.zeros((3, 1)), "bin_thresholds_[1] has 2 dimensions (shape (3, 1)), expected 1"),
        ([0.5, 1.5], "bin_thresholds_[1] is a list, not a numpy array"),
        (np.zeros(3, dtype=">f8"), "bin_thresholds_[1] has dtype >f8, expected float64"),
    ],
)
def test_bin_mapper_threshold_messages(mapper, threshold, message):
    bad = type(mapper).__new__(type(mapper))
    bad.__dict__.update(vars(mapper))
    bad.bin_thresholds_ = [*mapper.bin_thresholds_]
    bad.bin_thresholds_[1] = threshold
    vh.validate_bin_mapper(mapper, DEFAULT_LIMITS)
    with pytest.raises(ValidationError) as info:
        vh.validate_bin_mapper(bad, DEFAULT_LIMITS)
    assert str(info.value) == (
        f"sklearn.ensemble._hist_gradient_boosting.binning._BinMapper: {message}"
    )


def test_bin_mapper_subclassed_threshold_array_is_accepted(mapper):
    """get_array accepts ndarray subclasses; the exact-type test only skips it for ndarray."""
    ok = type(mapper).__new__(type(mapper))
    ok.__dict__.update(vars(mapper))
    ok.bin_thresholds_ = [t.view(_Sub) for t in mapper.bin_thresholds_]
    vh.validate_bin_mapper(ok, DEFAULT_LIMITS)


class _Sub(np.ndarray):
    pass
