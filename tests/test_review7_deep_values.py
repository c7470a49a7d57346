"""Review 7: deeply nested values that C code walks recursively, reached through the pickle path.

A pickle can build a structured dtype nested 100,000 levels deep by calling
``numpy.dtype([("a", inner)])`` on the previous one (each call is one level, so the parse's
``max_depth`` never sees the depth); numpy's converter, comparison and repr then recurse in C
without a stack guard.  Dtypes now nest at most ``MAX_DTYPE_NESTING`` (32) levels, checked on
the call's arguments, on a dtype's state and in the dtype validator.
"""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest

import safeload
from safeload._dtypestate import MAX_DTYPE_NESTING, dtype_nesting


def _nested_dtype_stream(levels: int) -> bytes:
    """GLOBAL numpy.dtype, memoized; then ``levels`` calls ``dtype([("a", previous)])``."""
    return (
        b"\x80\x02cnumpy\ndtype\nq\x00"
        + b"h\x00]X\x01\x00\x00\x00a" * levels
        + b"X\x02\x00\x00\x00f8"
        + b"\x86a\x85R" * levels
        + b"."
    )


_RAISED = """
import sys
sys.setrecursionlimit(10**7)
import safeload
limits = safeload.Limits(max_depth=10**8, max_items=10**9)
try:
    safeload.load(sys.argv[1], limits=limits)
    print("loaded")
except safeload.SafeloadError as exc:
    print(type(exc).__name__, str(exc)) if sys.argv[2] == "message" else print(
        "refused", type(exc).__name__
    )
"""


def _load_raised(path, message: bool = False) -> str:
    """stdout of ``safeload.load(path)`` in a child whose recursion limit and ``max_depth`` are
    raised (a crash is a failed assertion here, not a dead test run)."""
    proc = subprocess.run(
        [sys.executable, "-c", _RAISED, str(path), "message" if message else "type"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_dtype_nesting_counts_fields_and_descriptions():
    assert dtype_nesting(np.dtype("f8")) == 0
    assert dtype_nesting(np.dtype([("a", "f8")])) == 1
    assert dtype_nesting(np.dtype([("a", [("b", "f8")])])) == 2
    assert dtype_nesting(np.dtype(("f8", (2, 3)))) == 1  # a subarray's base
    assert dtype_nesting([("a", "f8")]) == 2  # the list, then the tuple
    assert dtype_nesting({"names": ["a"], "formats": ["f8"]}) == 2


def test_a_dtype_as_deep_as_allowed_loads():
    dt = np.dtype("f8")
    for _ in range(MAX_DTYPE_NESTING):
        dt = np.dtype([("a", dt)])
    assert dtype_nesting(dt) == MAX_DTYPE_NESTING
    assert safeload.loads(pickle.dumps(dt)) == dt
    arr = np.zeros(3, dt)
    assert safeload.loads(pickle.dumps(arr)).dtype == dt


def test_a_dtype_built_one_level_per_call_is_refused_past_the_bound():
    with pytest.raises(safeload.ForbiddenOperationError, match="nested more than 32"):
        safeload.loads(_nested_dtype_stream(40))


def test_a_dtype_nested_100000_levels_does_not_crash(tmp_path):
    path = tmp_path / "deep_dtype.pkl"
    path.write_bytes(_nested_dtype_stream(100_000))
    assert _load_raised(path).strip() == "refused ForbiddenOperationError"


def test_a_deep_value_in_a_validation_message_is_described_not_rendered(tmp_path):
    # review 7: validators formatted file values with {value!r:.80}, which renders the whole
    # repr first: a 300,000-deep list as KNeighborsClassifier._fit_method crashed the load
    n = 300_000
    path = tmp_path / "knn.pkl"
    path.write_bytes(
        b"\x80\x02csklearn.neighbors._classification\nKNeighborsClassifier\n)\x81}("
        b"X\x06\x00\x00\x00_fit_XK\x01X\x0b\x00\x00\x00_fit_method"
        + b"]" * n
        + b"a" * (n - 1)
        + b"ub."
    )
    out = _load_raised(path, message=True)
    assert out.startswith("ValidationError ")
    assert "_fit_method = [[[[...]]]] is not one of" in out


def test_no_validator_or_migration_renders_a_file_value_with_repr():
    # the family: every message about file content goes through _text.describe
    import pathlib
    import re

    root = pathlib.Path(safeload.__file__).parent
    found = [
        f"{path.relative_to(root)}:{n}"
        for sub in ("validate", "migrate")
        for path in sorted((root / sub).glob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"!r:\.\d+\}|\brepr\(", line)
    ]
    assert found == []
