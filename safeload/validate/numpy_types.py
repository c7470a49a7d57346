"""Validators for numpy objects whose ``__setstate__`` trusts the pickle.

* ``numpy.dtype.__setstate__`` (``arraydescr_setstate`` in numpy's ``descriptor.c``) takes the
  field offsets, the item size, the subarray shape *and the flags* from the state.  Offsets past
  the item size make every field access read out of bounds, and an object field whose
  ``NPY_ITEM_REFCOUNT``/``NPY_LIST_PICKLE`` flags were cleared lets ``ndarray.__setstate__``
  fill it from raw bytes, which numpy then dereferences as ``PyObject*``.  The checked dtype is
  rebuilt through the public constructor (which refuses out-of-range and overlapping-object
  fields) and must be identical, flags included.  Every structured array in a scikit-learn model
  (``Tree`` nodes, HistGradientBoosting predictor records, KD-tree ``node_data``) carries such a
  dtype.
* ``MT19937`` (and ``RandomState``, which wraps one): the ``pos`` of the state is assigned
  without a range check and ``mt19937_next`` reads ``key[pos++]``; ``Philox``: ``buffer_pos``
  indexes ``buffer[4]``; ``SeedSequence`` (Cython auto-pickle): ``pool_size`` bounds the loops over
  ``pool``.
"""

from __future__ import annotations

import numpy as np

from .._dtypestate import MAX_DTYPE_NESTING, dtype_nesting
from .._text import describe
from ..limits import Limits
from . import register
from ._common import fail, get_array, get_int

__all__ = ["validate_dtype", "validate_random_state", "validate_bit_generator"]

_MT_N = 624


def _canonical(dt: np.dtype) -> np.dtype:
    if dt.fields is not None:
        names = dt.names or ()
        fields = dt.fields
        spec: dict = {
            "names": list(names),
            "formats": [fields[n][0] for n in names],
            "offsets": [fields[n][1] for n in names],
            "itemsize": dt.itemsize,
        }
        titles = [fields[n][2] if len(fields[n]) > 2 else None for n in names]
        if any(t is not None for t in titles):
            spec["titles"] = titles
        return np.dtype(spec, align=dt.isalignedstruct)
    if dt.subdtype is not None:
        base, shape = dt.subdtype
        return np.dtype((base, shape))
    return np.dtype(dt.str)


@register("numpy.dtype")
def validate_dtype(dt: object, limits: Limits) -> None:
    """Check that a dtype is exactly what numpy's constructor builds from its description.

    Follows numpy's ``arraydescr_setstate`` (which trusts offsets, item size and flags) versus
    the ``np.dtype`` constructor (which validates them).

    Parameters
    ----------
    dt : numpy.dtype
        The dtype, after ``__setstate__``.
    limits : Limits
        Unused.

    Raises
    ------
    ValidationError
        If the constructor refuses the description (a field past the item size, a negative
        offset, overlapping object fields) or builds a dtype with other flags, item size or
        alignment.
    """
    if not isinstance(dt, np.dtype):
        fail(dt, "is not a numpy dtype")
    if dtype_nesting(dt) > MAX_DTYPE_NESTING:  # before numpy compares or prints it (in C)
        fail(dt, f"a structured dtype nested more than {MAX_DTYPE_NESTING} levels deep")
    try:
        ref = _canonical(dt)
    except Exception as exc:
        fail(dt, f"{describe(dt, 120)} is not a valid dtype: {exc}")
    if (
        ref != dt
        or ref.flags != dt.flags
        or ref.itemsize != dt.itemsize
        or ref.alignment != dt.alignment
        or ref.hasobject != dt.hasobject
    ):
        fail(
            dt,
            f"{describe(dt, 120)} has flags={dt.flags}, itemsize={dt.itemsize}, "
            f"alignment={dt.alignment}; numpy builds flags={ref.flags}, itemsize={ref.itemsize}, "
            f"alignment={ref.alignment} from the same description",
        )


def _check_mt19937_state(obj: object, state: object) -> None:
    if not isinstance(state, dict) or not isinstance(state.get("state"), dict):
        fail(obj, "bit generator state is not a dict")
    inner = state["state"]
    get_array(obj, "state['key']", inner.get("key"), ndim=1, shape=(_MT_N,), kinds="u")
    get_int(obj, "state['pos']", inner.get("pos"), 0, _MT_N)


@register("numpy.random.mtrand.RandomState")
def validate_random_state(rs: object, limits: Limits) -> None:
    """Check the MT19937 position of a legacy ``RandomState``.

    Follows ``numpy/random/_mt19937.pyx`` (``state`` setter) and ``mt19937_next``
    (``key[pos++]``, refilled only when ``pos == 624``).

    Parameters
    ----------
    rs : numpy.random.RandomState
        The random state, after ``__setstate__``.
    limits : Limits
        Unused.

    Raises
    ------
    ValidationError
        If ``pos`` is outside ``[0, 624]`` or the key is not 624 words.
    """
    st = rs.get_state(legacy=False)  # type: ignore[attr-defined]
    if st.get("bit_generator") == "MT19937":
        _check_mt19937_state(rs, st)


@register(
    "numpy.random._mt19937.MT19937",
    "numpy.random._philox.Philox",
    "numpy.random.bit_generator.SeedSequence",
)
def validate_bit_generator(obj: object, limits: Limits) -> None:
    """Check the index fields of ``MT19937``, ``Philox`` and ``SeedSequence`` states.

    Follows ``numpy/random/_mt19937.pyx``, ``_philox.pyx`` (``buffer[buffer_pos]`` while
    ``buffer_pos < 4``) and ``bit_generator.pyx::SeedSequence`` (``mix_entropy`` and
    ``generate_state`` loop over ``pool_size`` entries of ``pool``).

    Parameters
    ----------
    obj : MT19937, Philox or SeedSequence
        The object, after its state was restored.
    limits : Limits
        Unused.

    Raises
    ------
    ValidationError
        Naming the out-of-range position or size.
    """
    name = type(obj).__name__
    if name == "SeedSequence":
        pool = get_array(obj, "pool", obj.pool, ndim=1, dtype=np.uint32)  # type: ignore[attr-defined]
        size = get_int(obj, "pool_size", obj.pool_size, 1)  # type: ignore[attr-defined]
        if pool.shape[0] != size:
            fail(obj, f"pool has {pool.shape[0]} words but pool_size = {size}")
        get_int(obj, "n_children_spawned", obj.n_children_spawned, 0)  # type: ignore[attr-defined]
        return
    st = obj.state  # type: ignore[attr-defined]
    if name == "MT19937":
        _check_mt19937_state(obj, st)
    elif name == "Philox":
        get_array(obj, "buffer", st.get("buffer"), ndim=1, shape=(4,))
        get_int(obj, "buffer_pos", st.get("buffer_pos"), 0, 4)
