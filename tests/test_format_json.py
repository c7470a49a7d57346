"""graph.json is parsed by msgspec when it is installed, with Python's ``json`` as the reference.

``archive._parse_text`` returns msgspec's result only when msgspec accepts the text; on any
error the stdlib decoder parses it again and decides (and names the problem).  So the property
to hold is: whenever msgspec accepts a text, the stdlib accepts it too and builds the same
values, with the same types, float bits, key order and duplicate-key outcome.
"""

from __future__ import annotations

import json
import math
import struct
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import safeload
from safeload.errors import FormatError, LimitExceededError
from safeload.format import archive

needs_fast = pytest.mark.skipif(archive._FAST_JSON is None, reason="msgspec not installed")


def _same(a, b) -> bool:
    """Equal values of identical types; floats bit for bit (``-0.0`` is not ``0.0``)."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        return struct.pack("<d", a) == struct.pack("<d", b) or (math.isnan(a) and math.isnan(b))
    if type(a) is list:
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is dict:
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return a == b


def _stdlib(text: str):
    return archive._JSON.decode(text)


_ints = st.one_of(
    st.integers(-(2**70), 2**70),
    st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64 - 1, 2**64, -(2**64)]),
    st.integers(-(10**400), 10**400),
)
_floats = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308]),
)
_atoms = st.one_of(st.none(), st.booleans(), _ints, _floats, st.text(max_size=20))
_values = st.recursive(
    _atoms,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=40,
)


@needs_fast
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(_values, st.booleans(), st.sampled_from([None, 0, 2]))
def test_fast_parse_equals_the_stdlib_on_written_json(value, ascii_only, indent):
    text = json.dumps(value, ensure_ascii=ascii_only, indent=indent)
    assert _same(archive._parse_text(text, "graph.json"), _stdlib(text))


# texts near JSON: numbers at the edges of int64/uint64/double, escapes, duplicate keys, junk
_pieces = st.sampled_from(
    [
        "[", "]", "{", "}", ",", ":", '"', '"a"', '"a":', "\\", "\\u", "\\ud800", "\\udc00",
        "\\u00e9", "\\n", "\\/", "0", "-0", "1", "-", "+", ".", "e", "E", "5", "9" * 19,
        "9" * 25, "18446744073709551616", "-9223372036854775809", "1e400", "1e-400", "0.1",
        "true", "false", "null", "NaN", "Infinity", " ", "\t", "\n", "\x00", "\x1f", "é",
        "\ud83d", "\u2028",
    ]
)  # fmt: skip


@needs_fast
@settings(max_examples=3000, deadline=None)
@given(st.lists(_pieces, max_size=30))
def test_whatever_msgspec_accepts_the_stdlib_reads_the_same(pieces):
    text = "".join(pieces)
    try:
        fast = archive._FAST_JSON(text)
    except (ValueError, RecursionError):
        return  # the stdlib decides these
    assert _same(fast, _stdlib(text))


@needs_fast
@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1, "b": 2, "a": 3}',  # the last value wins, at the first key's place
        "[18446744073709551616, -9223372036854775809, 18446744073709551615]",
        "[" + "9" * 400 + "]",
        "[1e400, -1e400]",  # inf: msgspec refuses, the stdlib reads (the decoder refuses later)
        '["\\ud800"]',  # a lone surrogate: the stdlib keeps it
        "[-0.0, -0, 5e-324, 1E5]",
    ],
)
def test_edge_texts_give_the_stdlib_result(text):
    assert _same(archive._parse_text(text, "graph.json"), _stdlib(text))


def test_stdlib_decides_errors_and_limits(monkeypatch):
    for bad in ('{"a": NaN}', '{"a": 1', "[1,]", '["a\tb"]'):
        with pytest.raises(FormatError, match="J1"):
            archive._parse_text(bad, "graph.json")
    deep = "[" * 3000 + "]" * 3000  # msgspec's own depth limit, then the nesting check
    with pytest.raises(LimitExceededError):
        archive._parse_text(deep, "graph.json")


def test_loads_without_msgspec(monkeypatch, tmp_path):
    from sklearn.linear_model import LogisticRegression

    est = LogisticRegression().fit([[0.0, 1.0], [1.0, 0.0], [2.0, 1.0]], [0, 1, 1])
    path = tmp_path / "m.safeload"
    safeload.dump(est, path)
    monkeypatch.setattr(archive, "_FAST_JSON", None)
    got = safeload.load(path)
    assert got.coef_.tolist() == est.coef_.tolist()
    assert got.predict([[3.0, 0.0]]).tolist() == est.predict([[3.0, 0.0]]).tolist()


def test_msgspec_parses_only_under_the_default_recursion_limit(monkeypatch):
    # msgspec takes ~450 bytes of C stack a level, json ~100: with the limit raised, a 2,900
    # level graph.json crashed a 1 MiB thread (tests/test_deep_nesting.py), so json parses
    calls = []

    def fast(text):
        calls.append(text)
        return archive._JSON.decode(text)

    monkeypatch.setattr(archive, "_FAST_JSON", fast)
    limit = sys.getrecursionlimit()
    try:
        sys.setrecursionlimit(archive._FAST_JSON_MAX_RECURSION)
        assert archive._parse_text("[1]", "graph.json") == [1]
        assert calls == ["[1]"]
        sys.setrecursionlimit(archive._FAST_JSON_MAX_RECURSION + 1)
        assert archive._parse_text("[2]", "graph.json") == [2]
        assert calls == ["[1]"]
    finally:
        sys.setrecursionlimit(limit)
