"""Validator for ``scipy.interpolate.BSpline`` (held by ``SplineTransformer.bsplines_``).

A pickled ``BSpline`` is rebuilt from its ``__dict__`` (``_t``, ``_c``, ``k``, ...), so none of
the checks of ``BSpline.__init__`` (``scipy/interpolate/_bsplines.py``) run.  ``__call__`` hands
the arrays to the C++ ``_dierckx.evaluate_spline``, which reads ``c[interval - k + a]`` without
bounds checks: too few coefficients read heap memory into the result, a negative degree aborts
the process (``std::length_error``).
"""

from __future__ import annotations

import numpy as np

from .._text import describe
from ..limits import Limits
from . import register
from ._common import MISSING, fail, get_array, get_int, state, type_name

__all__ = ["validate_bspline"]

_ASARRAY = {
    "scipy._lib.array_api_compat.numpy._aliases.asarray",
    "numpy.asarray",
}


@register("scipy.interpolate._bsplines.BSpline")
def validate_bspline(spl: object, limits: Limits) -> None:
    """Re-run the checks of ``BSpline.__init__`` on the restored state.

    Checks: ``k >= 0``; the knots ``_t`` are a 1-D ``float64`` array, finite,
    non-decreasing, with ``n = len(t) - k - 1 >= k + 1`` and at least two distinct internal
    knots; the coefficients ``_c`` are a float64/complex128 array of at least one dimension with
    ``c.shape[0] >= n``; ``axis`` indexes ``c``; ``extrapolate`` is a bool or ``"periodic"``;
    ``_asarray`` is the array-API ``asarray`` scipy stores.

    Parameters
    ----------
    spl : scipy.interpolate.BSpline
        The spline, after its ``__dict__`` was restored.
    limits : Limits
        Unused.

    Raises
    ------
    ValidationError
        With the message of the ``BSpline.__init__`` check that fails.
    """
    d = state(spl)
    k = get_int(spl, "k", d.get("k", MISSING), 0)
    t = get_array(spl, "t", d.get("_t", MISSING), ndim=1, dtype=np.float64)
    c = get_array(spl, "c", d.get("_c", MISSING))
    n = t.shape[0] - k - 1
    if n < k + 1:
        fail(spl, f"t has {t.shape[0]} knots; degree k = {k} needs at least {2 * k + 2}")
    if not np.isfinite(t).all():
        fail(spl, "t has NaN or infinite knots")
    if (np.diff(t) < 0).any():
        fail(spl, "t is not non-decreasing")
    if np.unique(t[k : n + 1]).shape[0] < 2:
        fail(spl, "t needs at least two distinct internal knots")
    if c.ndim < 1 or c.shape[0] < n:
        fail(spl, f"c has shape {c.shape}; t and k = {k} need at least {n} coefficients")
    if c.dtype not in (np.dtype(np.float64), np.dtype(np.complex128)):
        fail(spl, f"c has dtype {c.dtype}, expected float64 or complex128")
    get_int(spl, "axis", d.get("axis", 0), 0, c.ndim - 1)
    extrapolate = d.get("extrapolate", True)
    if not (isinstance(extrapolate, bool | np.bool_) or extrapolate == "periodic"):
        fail(spl, f"extrapolate = {describe(extrapolate, 60)} is not a bool or 'periodic'")
    asarray = d.get("_asarray", MISSING)
    if asarray is not MISSING:
        name = f"{getattr(asarray, '__module__', '?')}.{getattr(asarray, '__qualname__', '?')}"
        if name not in _ASARRAY:
            fail(spl, f"_asarray is {name} ({type_name(type(asarray))}), not an asarray function")
