"""Probes: a few input rows stored with a model, and the outputs the model gave on them.

:func:`make_probe` runs when :func:`safeload.dump` is called with ``probe=X``: it keeps the first
rows of ``X`` (at most :data:`MAX_ROWS` rows and :data:`MAX_BYTES` bytes) and the output of
every prediction method of the estimator (:data:`METHODS`) on them.  :func:`run_probe` is what
:func:`safeload.verify` does with a loaded model: call the same methods on the same rows and
compare — labels (integer, boolean, string and object outputs) exactly, floating-point outputs
within a tolerance.

The probe is a value of the file's graph (``graph.json`` key ``"probe"``) made only of types the
format stores natively: arrays, dicts with string keys, lists and strings, plus a scipy sparse
matrix for sparse inputs.  A pandas ``DataFrame`` is stored as its columns (names, one array
per column, dtype names) with the kind ``"dataframe"``; it is rebuilt as a ``DataFrame`` when
pandas is installed, since pandas objects are not trusted types of the format.

Tolerance
---------
Floating-point outputs pass when ``|actual - stored| <= atol + rtol * |stored|`` element-wise
(the rule of :func:`numpy.allclose`), NaN matching NaN, with :data:`RTOL` ``= 1e-7`` and
:data:`ATOL` ``= 1e-9`` for float64 outputs.  The same model on the same stack gives bit-identical
outputs; another BLAS, CPU or numpy version changes the order of floating-point sums, which
moves float64 results by a few units in the last place (about 1e-16 relative, 1e-13 after long
sums) — ``rtol`` leaves nine orders of magnitude for that and still catches any change of a
coefficient, a threshold or a tree.  ``atol`` covers values that should be zero (probabilities
of 1e-17, decision values at a boundary), where a relative bound means nothing.  Outputs of a
lower precision (float32, float16) get at least 64 times their machine epsilon for both
(float32: about 7.6e-6).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = [
    "METHODS",
    "MAX_ROWS",
    "MAX_BYTES",
    "RTOL",
    "ATOL",
    "PROBE_VERSION",
    "ProbeResult",
    "make_probe",
    "run_probe",
    "probe_input",
    "tolerance_for",
]

#: Prediction methods probed, in this order (each only when the estimator has it).
METHODS = ("predict", "predict_proba", "decision_function", "transform", "score_samples")
#: Most input rows stored.
MAX_ROWS = 100
#: Most bytes of input stored, and most bytes of each stored output.
MAX_BYTES = 1 << 20
#: Relative tolerance for float64 outputs.
RTOL = 1e-7
#: Absolute tolerance for float64 outputs.
ATOL = 1e-9
#: Version of the probe value's layout.
PROBE_VERSION = 1
_LOW_PRECISION_FACTOR = 64


# --------------------------------------------------------------------------- input rows
def _row_count(total_rows: int, row_bytes: float) -> int:
    rows = min(total_rows, MAX_ROWS)
    if row_bytes > 0:
        rows = min(rows, int(MAX_BYTES // row_bytes))
    if rows < 1:
        raise ValueError(
            f"one row of the probe input takes {int(row_bytes):,} bytes, more than the "
            f"{MAX_BYTES:,} bytes a probe may store"
        )
    return rows


def _text_bytes(values: Any) -> int:
    return sum(len(v.encode("utf-8")) if isinstance(v, str) else 16 for v in values)


def _array_row_bytes(arr: np.ndarray) -> float:
    if arr.shape[0] == 0:
        return 0.0
    if arr.dtype.hasobject:
        return _text_bytes(arr[:1].ravel().tolist()) + 8 * (arr[:1].size)
    return arr[:1].nbytes


def _sparse_nbytes(mat: Any) -> int:
    return int(mat.data.nbytes + mat.indices.nbytes + mat.indptr.nbytes)


def _is_dataframe(X: Any) -> bool:
    module = type(X).__module__
    return (module == "pandas" or module.startswith("pandas.")) and type(X).__name__ == "DataFrame"


def _column_values(col: Any) -> np.ndarray:
    """A pandas column as a numpy array the format stores (object columns of atoms stay
    object arrays; extension dtypes become numpy dtypes or object)."""
    values = col.to_numpy()
    if not isinstance(values, np.ndarray):  # pragma: no cover - to_numpy returns ndarrays
        values = np.asarray(values, dtype=object)
    return values


def _probe_input(X: Any) -> tuple[dict, int]:
    """The stored form of the first rows of ``X`` and their count."""
    import scipy.sparse as sp  # type: ignore[import-untyped]

    if _is_dataframe(X):
        n_total = len(X)
        row_bytes = 0.0
        if n_total:
            head = X.iloc[:1]
            row_bytes = sum(_array_row_bytes(_column_values(head[c])) for c in head.columns)
        n = _row_count(n_total, row_bytes)
        part = X.iloc[:n]
        columns = list(part.columns)
        for name in columns:
            if not isinstance(name, (str, int, float, bool)):
                raise TypeError(
                    f"probe DataFrame column names must be str or numbers, got {type(name)}"
                )
        data = [np.ascontiguousarray(_column_values(part.iloc[:, i])) for i in range(len(columns))]
        dtypes = [str(t) for t in part.dtypes]
        return {"kind": "dataframe", "columns": columns, "data": data, "dtypes": dtypes}, n
    if sp.issparse(X):
        mat = sp.csr_matrix(X)
        n_total = mat.shape[0]
        n = min(n_total, MAX_ROWS)
        while n > 1 and _sparse_nbytes(mat[:n]) > MAX_BYTES:
            n = max(1, n // 2)
        part = mat[:n]
        if _sparse_nbytes(part) > MAX_BYTES:
            raise ValueError(f"one row of the probe input takes more than {MAX_BYTES:,} bytes")
        part.sort_indices()
        return {"kind": "sparse", "value": part}, n
    if isinstance(X, (list, tuple)) and all(isinstance(v, str) for v in X):
        n_total = len(X)
        n = min(n_total, MAX_ROWS)
        while n > 1 and _text_bytes(X[:n]) > MAX_BYTES:
            n = max(1, n // 2)
        if _text_bytes(X[:n]) > MAX_BYTES:
            raise ValueError(f"the first probe document is longer than {MAX_BYTES:,} bytes")
        return {"kind": "text", "value": [str(v) for v in X[:n]]}, n
    if hasattr(X, "to_numpy") and not isinstance(X, np.ndarray):  # pandas Series and friends
        X = X.to_numpy()
    arr = np.asarray(X)
    if arr.ndim == 0:
        raise ValueError("the probe input must have at least one dimension (rows)")
    n = _row_count(arr.shape[0], _array_row_bytes(arr))
    part = arr[:n]
    part = part.copy() if part.dtype.hasobject else np.ascontiguousarray(part)
    return {"kind": "ndarray", "value": part}, n


def probe_input(stored: dict) -> Any:
    """The input rows of a stored probe, as the estimator gets them.

    A ``"dataframe"`` probe becomes a pandas ``DataFrame`` with its column names and dtypes
    when pandas is installed, else a 2-d object array of its columns.

    Parameters
    ----------
    stored : dict
        ``probe["input"]`` of a probe value (see :func:`make_probe`).

    Returns
    -------
    numpy.ndarray, scipy.sparse matrix, list of str or pandas.DataFrame

    Raises
    ------
    ValueError
        An input of an unknown kind.
    """
    kind = stored.get("kind") if isinstance(stored, dict) else None
    if kind in ("ndarray", "sparse", "text"):
        return stored["value"]
    if kind == "dataframe":
        columns, data = list(stored["columns"]), list(stored["data"])
        try:
            import pandas as pd  # type: ignore[import-untyped]
        except ImportError:
            return np.column_stack([np.asarray(c, dtype=object) for c in data]) if data else None
        frame = pd.DataFrame(dict(zip(range(len(columns)), data, strict=True)))
        frame.columns = columns
        for i, dtype in enumerate(stored.get("dtypes") or []):
            if str(frame.dtypes.iloc[i]) != dtype:
                # on failure keep the stored values: they are what the model saw
                with contextlib.suppress(TypeError, ValueError):
                    frame.isetitem(i, frame.iloc[:, i].astype(dtype))
        return frame
    raise ValueError(f"unknown probe input kind {str(kind)[:40]!r}")


# --------------------------------------------------------------------------- outputs
def _output_array(out: Any) -> tuple[np.ndarray | None, str | None]:
    """An output as an array the format stores, or ``(None, reason)``."""
    import scipy.sparse as sp  # type: ignore[import-untyped]

    if sp.issparse(out):
        dense_bytes = math.prod(out.shape) * out.dtype.itemsize
        if dense_bytes > MAX_BYTES:
            return None, f"sparse output of {dense_bytes:,} bytes once dense (too large)"
        out = out.toarray()
    elif hasattr(out, "to_numpy") and not isinstance(out, np.ndarray):
        out = out.to_numpy()
    elif isinstance(out, (list, tuple)):
        try:
            out = np.asarray(out)
        except ValueError:
            return None, "an output that is not one array"
    if not isinstance(out, np.ndarray):
        return None, f"an output of type {type(out).__name__}"
    if out.dtype.hasobject:
        if not all(isinstance(v, (str, int, float, bool)) for v in out.ravel().tolist()):
            return None, "an object array of other values than str, int, float, bool"
        size = _text_bytes(out.ravel().tolist()) + 8 * out.size
    else:
        if out.dtype.kind not in "biufcUS":
            return None, f"an output of dtype {out.dtype}"
        size = out.nbytes
    if size > MAX_BYTES:
        return None, f"an output of {size:,} bytes (more than {MAX_BYTES:,})"
    return (out.copy() if out.dtype.hasobject else np.ascontiguousarray(out)), None


def _call(estimator: Any, method: str, X: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(estimator, method)(X)


def _has(estimator: Any, method: str) -> bool:
    try:  # scikit-learn's available_if raises AttributeError when the method does not apply
        return callable(getattr(estimator, method, None))
    except Exception:  # noqa: BLE001 - a property raising something else
        return False


def make_probe(estimator: Any, X: Any) -> tuple[dict, dict]:
    """Store the first rows of ``X`` and the estimator's outputs on them.

    Parameters
    ----------
    estimator : object
        A fitted estimator (or pipeline).
    X : array-like, scipy.sparse matrix, list of str or pandas.DataFrame
        Input the estimator accepts.  The first :data:`MAX_ROWS` (100) rows are kept, fewer
        when they take more than :data:`MAX_BYTES` (1 MiB).

    Returns
    -------
    extra_roots : dict
        ``{"probe": {"version": 1, "input": {...}, "outputs": {method: ndarray}}}``, a graph
        value for :func:`safeload.format.archive.write_archive`.  ``input`` is
        ``{"kind": "ndarray" | "sparse" | "text", "value": ...}`` or
        ``{"kind": "dataframe", "columns": [...], "data": [ndarray per column],
        "dtypes": [str]}``.
    manifest_info : dict
        The manifest's ``probe`` summary: ``rows``, ``input`` (the kind), ``methods`` (stored,
        in :data:`METHODS` order), ``skipped`` (method → why it was not stored),
        ``tolerance`` (``rtol``, ``atol`` for float64 outputs).

    Raises
    ------
    ValueError
        A single row larger than 1 MiB, or no prediction method that works on the rows.
    TypeError
        DataFrame column names that are not strings or numbers.
    """
    stored, n = _probe_input(X)
    rows = probe_input(stored)
    outputs: dict[str, np.ndarray] = {}
    skipped: dict[str, str] = {}
    for method in METHODS:
        if not _has(estimator, method):
            continue
        try:
            out = _call(estimator, method, rows)
        except Exception as exc:  # noqa: BLE001 - e.g. predict_proba of a hard-voting ensemble
            skipped[method] = f"raised {type(exc).__name__}: {str(exc)[:200]}"
            continue
        arr, reason = _output_array(out)
        if arr is None:
            skipped[method] = str(reason)
        else:
            outputs[method] = arr
    if not outputs:
        detail = "; ".join(f"{m}: {r}" for m, r in skipped.items()) or "none of " + ", ".join(
            METHODS
        )
        raise ValueError(f"no prediction method of the estimator works on the probe ({detail})")
    value = {"version": PROBE_VERSION, "input": stored, "outputs": outputs}
    info: dict[str, Any] = {
        "rows": n,
        "input": stored["kind"],
        "methods": list(outputs),
        "tolerance": {"rtol": RTOL, "atol": ATOL},
    }
    if skipped:
        info["skipped"] = skipped
    return {"probe": value}, info


# --------------------------------------------------------------------------- re-running
@dataclass
class ProbeResult:
    """The comparison of one method's output with the stored one.

    Attributes
    ----------
    method : str
    ok : bool
    kind : str
        ``"labels"`` (compared exactly), ``"float"`` (within tolerance), ``"error"`` (the
        method is missing or raised), ``"shape"`` (the output has another shape).
    size : int
        Number of output elements compared.
    mismatches : int
        Elements that differ (labels) or are outside the tolerance (floats).
    max_abs_diff : float or None
        Largest ``|actual - stored|`` (floats; NaN against a number counts as ``inf``).
    rtol, atol : float or None
        The tolerance used (floats).
    detail : str
        One line for people.
    """

    method: str
    ok: bool
    kind: str
    size: int = 0
    mismatches: int = 0
    max_abs_diff: float | None = None
    rtol: float | None = None
    atol: float | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-ready)."""
        out = asdict(self)
        if out["max_abs_diff"] is not None and not math.isfinite(out["max_abs_diff"]):
            out["max_abs_diff"] = str(out["max_abs_diff"])
        return out


def tolerance_for(dtype: np.dtype, rtol: float = RTOL, atol: float = ATOL) -> tuple[float, float]:
    """``(rtol, atol)`` for outputs of ``dtype``: the float64 values, raised to 64 machine
    epsilons of a lower-precision float dtype."""
    if dtype.kind in "fc" and dtype.itemsize < (8 if dtype.kind == "f" else 16):
        floor = _LOW_PRECISION_FACTOR * float(np.finfo(dtype).eps)
        return max(rtol, floor), max(atol, floor)
    return rtol, atol


def _compare(method: str, actual: np.ndarray, stored: np.ndarray, rtol: float,
             atol: float) -> ProbeResult:  # fmt: skip
    if actual.shape != stored.shape:
        return ProbeResult(method, False, "shape", size=int(stored.size),
                           detail=f"output shape {actual.shape}, stored {stored.shape}")  # fmt: skip
    if stored.dtype.kind in "fc" and actual.dtype.kind in "biufc":
        r, a = tolerance_for(stored.dtype, rtol, atol)
        x = actual.astype(np.result_type(actual.dtype, stored.dtype, np.float64), copy=False)
        s = stored.astype(x.dtype, copy=False)
        with np.errstate(invalid="ignore", over="ignore"):
            diff = np.abs(x - s)
            same_special = (np.isnan(x) & np.isnan(s)) | (x == s)
            diff = np.where(same_special, 0.0, diff)
            diff = np.where(np.isnan(diff), np.inf, diff)
            bad = diff > a + r * np.abs(np.where(np.isfinite(s), s, 0))
        worst = float(diff.max()) if diff.size else 0.0
        count = int(bad.sum())
        ok = count == 0
        detail = (
            f"max |diff| {worst:.3g} over {s.size} values (tolerance rtol={r:g}, atol={a:g})"
            + ("" if ok else f"; {count} outside")
        )
        return ProbeResult(method, ok, "float", int(s.size), count, worst, r, a, detail)
    try:
        equal = np.asarray(actual == stored)
        if equal.shape != stored.shape:
            raise ValueError("not element-wise")
    except (TypeError, ValueError):
        equal = np.array(
            [a == b for a, b in zip(actual.ravel().tolist(), stored.ravel().tolist(), strict=True)]
        )
    count = int(stored.size - int(np.count_nonzero(equal)))
    ok = count == 0
    detail = f"{count} of {stored.size} labels differ" if count else f"{stored.size} labels equal"
    return ProbeResult(method, ok, "labels", int(stored.size), count, detail=detail)


def run_probe(
    estimator: Any, probe_value: dict, *, rtol: float = RTOL, atol: float = ATOL
) -> list[ProbeResult]:
    """Call every stored method on the stored rows and compare with the stored outputs.

    Parameters
    ----------
    estimator : object
        The loaded model.
    probe_value : dict
        The decoded ``"probe"`` graph value (see :func:`make_probe`).
    rtol, atol : float
        Tolerance for float64 outputs (see the module docstring; raised for lower precisions).

    Returns
    -------
    list of ProbeResult
        One per stored method, in the stored order.

    Raises
    ------
    ValueError
        A probe value that is not one :func:`make_probe` writes.
    """
    if (
        not isinstance(probe_value, dict)
        or not isinstance(probe_value.get("outputs"), dict)
        or not isinstance(probe_value.get("input"), dict)
    ):
        raise ValueError("the probe value holds 'input' and 'outputs'")
    if probe_value.get("version") != PROBE_VERSION:
        raise ValueError(f"probe version {probe_value.get('version')!r} is not supported")
    rows = probe_input(probe_value["input"])
    results: list[ProbeResult] = []
    for method, stored in probe_value["outputs"].items():
        stored = np.asarray(stored)
        if not _has(estimator, method):
            results.append(ProbeResult(method, False, "error", int(stored.size),
                                       detail=f"the model has no {method}()"))  # fmt: skip
            continue
        try:
            out = _call(estimator, method, rows)
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            results.append(ProbeResult(method, False, "error", int(stored.size),
                                       detail=f"{method}() raised {type(exc).__name__}: "
                                       f"{str(exc)[:200]}"))  # fmt: skip
            continue
        actual, reason = _output_array(out)
        if actual is None:
            results.append(ProbeResult(method, False, "error", int(stored.size),
                                       detail=f"{method}() returned {reason}"))  # fmt: skip
            continue
        results.append(_compare(method, actual, stored, rtol, atol))
    return results
