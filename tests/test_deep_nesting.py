"""Deep nesting in a safe-format file where the application raised Python's recursion limit.

Review 6: with ``sys.setrecursionlimit`` raised (scikit-learn users do, to pickle deep trees)
and ``max_depth`` raised, 150,000 nested levels overflowed the C stack, in ``json``'s scanner
and in the C walk (``format/_walk.c``): a crash, not a ``SafeloadError``.  Both now stop at a
fixed ceiling (``docs/FORMAT.md`` §6).  Each load runs in a child process, where a crash is a
failed assertion.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
import zipfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import safeload
from safeload import jsonnest
from safeload.format.decode import MAX_NESTING

from . import _safezip as sz

_SCRIPT = """
import sys, threading
sys.setrecursionlimit(10**7)
import safeload
data = open(sys.argv[1], "rb").read()
limits = safeload.Limits(max_depth=10**8, max_items=10**9)
def run():
    try:
        safeload.loads(data, limits=limits)
    except safeload.LimitExceededError as exc:
        print("refused", exc.limit, exc.allowed)
    except safeload.SafeloadError as exc:
        print("refused", type(exc).__name__)
    else:
        print("loaded")
threading.stack_size(int(sys.argv[2]))
thread = threading.Thread(target=run)
thread.start()
thread.join()
"""


def _with_graph(text: str) -> bytes:
    """The empty list's file with ``graph.json`` replaced by ``text`` (hashes recomputed)."""
    return sz.edit(safeload.dumps([]), members=lambda t: t.update({sz.GRAPH: text.encode()}))


def _graph(root: str) -> str:
    return '{"globals": [], "dtypes": [], "arrays": [], "root": ' + root + "}"


def _load_in_child(tmp_path, data: bytes, stack: int = 8 << 20) -> str:
    path = tmp_path / "deep.safeload"
    path.write_bytes(data)
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_SCRIPT), str(path), str(stack)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    return proc.stdout.strip()


def test_json_nested_past_the_c_stack_is_refused_before_it_is_parsed(tmp_path):
    n = 150_000  # json's scanner overflowed an 8 MiB stack at about 80,000
    out = _load_in_child(tmp_path, _with_graph(_graph("[" * n + "1" + "]" * n)))
    assert out == f"refused max_depth {jsonnest.MAX_JSON_NESTING}"


def test_brackets_inside_json_strings_do_not_count_as_nesting(tmp_path):
    text = '"' + "[{" * 30_000 + '\\"' + '"'  # one string holding 60,000 brackets
    out = _load_in_child(tmp_path, _with_graph(_graph("[" + text + "]")))
    assert out == "loaded"


@pytest.mark.parametrize(
    ("levels", "expected"),
    [
        (450, "loaded"),
        (600, f"refused max_depth {MAX_NESTING}"),  # 1,200 levels of values: the C walk's cap
        (6000, f"refused max_depth {3 * MAX_NESTING}"),  # 18,000 of JSON: crashed json before
    ],
)
def test_values_nest_at_most_max_nesting_levels_whatever_max_depth_says(tmp_path, levels, expected):
    # each level is two values (a dict tag, the list in it) and three JSON levels; in a thread
    # with a 1 MiB stack, as some applications run their loads
    node = "1"
    for _ in range(levels):
        node = '{"$": "dict", "v": {"a": [' + node + "]}}"
    assert _load_in_child(tmp_path, _with_graph(_graph(node)), stack=1 << 20) == expected


def test_the_json_check_finds_the_deepest_point(monkeypatch):
    monkeypatch.setattr(sys, "getrecursionlimit", lambda: 10**7)  # the check runs above 6,000
    top = jsonnest.MAX_JSON_NESTING
    assert top == 3000
    jsonnest.check_json_nesting("[" * top + "]" * top, "graph.json")  # at the ceiling
    for raw in ('{"a": ' + "[" * top + "]" * top + "}", b'{"a": ' + b"[" * top + b"]" * top + b"}"):
        with pytest.raises(safeload.LimitExceededError) as info:
            jsonnest.check_json_nesting(raw, "graph.json")
        assert info.value.actual == top + 1
    # bytes json would not decode either are refused here, without guessing at their nesting
    with pytest.raises(safeload.LimitExceededError) as info:
        jsonnest.check_json_nesting(b'"\xff' + b"[" * top + b'"[]', "schema.json")
    assert info.value.actual is None and "not decodable" in str(info.value)


def _depth(value) -> int:
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    return 0


_TEXT = st.text(alphabet='[]{}"\\/ab\n\u00e9\U0001f600', max_size=12)


@settings(max_examples=300, deadline=None)
@given(
    st.recursive(
        st.none() | st.integers() | _TEXT,
        lambda kids: st.lists(kids, max_size=4) | st.dictionaries(_TEXT, kids, max_size=4),
        max_leaves=40,
    ),
    st.booleans(),
)
def test_the_json_scan_counts_nesting_as_json_reads_it(value, ascii_only):
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert jsonnest.json_nesting(text) == _depth(value)


def _skops_file(schema_text: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("schema.json", schema_text)
    return buf.getvalue()


def test_a_skops_schema_nested_past_the_c_stack_is_refused_before_it_is_parsed(tmp_path):
    # the same family in the .skops path: the scanner, the reader and inspect parsed
    # schema.json with json.loads unchecked
    n = 150_000
    data = _skops_file('{"a": ' + "[" * n + "]" * n + "}")
    assert _load_in_child(tmp_path, data) == "refused FormatError"  # the scanner's finding


def test_a_skops_json_node_nested_past_the_c_stack_is_refused(tmp_path):
    # a JsonNode's content is JSON inside a JSON string: skops.io.load parses it again
    import skops.io as sio

    schema = json.loads(zipfile.ZipFile(io.BytesIO(sio.dumps({"a": 1}))).read("schema.json"))
    n = 150_000
    schema["content"]["a"]["content"] = "[" * n + "]" * n
    out = _load_in_child(tmp_path, _skops_file(json.dumps(schema)))
    assert out == f"refused max_depth {jsonnest.MAX_JSON_NESTING}"


@pytest.mark.parametrize("command", ["scan", "inspect"])
def test_scan_and_inspect_refuse_deep_json_without_crashing(tmp_path, command):
    n = 150_000
    path = tmp_path / "deep.skops"
    path.write_bytes(_skops_file('{"a": ' + "[" * n + "]" * n + "}"))
    script = (
        "import sys; sys.setrecursionlimit(10**7)\n"
        "import safeload\n"
        "try:\n"
        f"    r = safeload.{command}(sys.argv[1]); print('report', r.safe)\n"
        "except safeload.SafeloadError as exc:\n"
        "    print('refused', type(exc).__name__)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    expected = {"scan": "report False", "inspect": "refused LimitExceededError"}[command]
    assert proc.stdout.strip() == expected


@pytest.mark.parametrize(("levels", "expected"), [(990, "loaded"), (1450, "refused")])
def test_tuples_whose_handler_is_python_nest_within_a_1_mib_stack(tmp_path, levels, expected):
    # review 7: each {"$": "tuple"} level calls its Python handler from the C walk, a new
    # interpreter frame (~740 bytes): 1,450 levels crashed a 1 MiB thread under the 2,000 cap
    node = "1"
    for _ in range(levels):
        node = '{"$": "tuple", "v": [' + node + "]}"
    out = _load_in_child(tmp_path, _with_graph(_graph(node)), stack=1 << 20)
    assert out == ("loaded" if expected == "loaded" else f"refused max_depth {MAX_NESTING}")


def test_utf16_json_is_measured_as_json_reads_it(monkeypatch):
    # review 7: BOM-less UTF-16 read as UTF-8 hid every bracket inside a fake string (U+2200
    # is the bytes 00 22 in UTF-16-LE), so 200,000 levels measured 1 and crashed json
    monkeypatch.setattr(sys, "getrecursionlimit", lambda: 10**7)
    n = jsonnest.MAX_JSON_NESTING + 1
    text = '["\u2200' + '", ' + "[" * n + "]" * n + "]"
    for codec in ("utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be", "utf-16", "utf-8"):
        assert json.detect_encoding(text.encode(codec)).replace("-sig", "") in (codec, "utf-8")
        with pytest.raises(safeload.LimitExceededError) as info:
            jsonnest.check_json_nesting(text.encode(codec), "schema.json")
        assert info.value.actual == n + 1, codec


def test_a_utf16_skops_schema_nested_past_the_c_stack_is_refused(tmp_path):
    n = 150_000
    text = '{"a": ["\u2200", ' + "[" * n + "]" * n + "]}"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("schema.json", text.encode("utf-16-le"))
    assert _load_in_child(tmp_path, buf.getvalue()).startswith("refused")


def test_a_deep_probe_sidecar_does_not_crash_convert(tmp_path):
    # review 7: convert read <stem>.probe.json (beside the model, as untrusted) with json.load
    import pickle

    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(model))
    n = 200_000
    (tmp_path / "model.probe.json").write_text('{"calls": ' + "[" * n + "]" * n + "}")
    script = (
        "import sys, os; sys.setrecursionlimit(10**6); import safeload\n"
        "r = safeload.convert(sys.argv[1], sys.argv[2]); print(r.status)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "model.pkl"), str(tmp_path / "o.safeload")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() != "converted"  # the reference could not be read: not verified
    assert not (tmp_path / "o.safeload").exists()


@pytest.mark.parametrize(("levels", "expected"), [(900, "dumped loaded"), (300_000, "refused")])
def test_dump_writes_no_deeper_than_load_reads(tmp_path, levels, expected):
    # review 7: dump honoured a raised max_depth with no ceiling; json.dumps then overflowed
    # the C stack, and a file between the two ceilings was written but could not be loaded
    script = """
import sys, threading
sys.setrecursionlimit(10**7)
import safeload
obj = []
for _ in range(int(sys.argv[1])):
    obj = [obj]
limits = safeload.Limits(max_depth=10**8, max_items=10**9)
def run():
    try:
        data = safeload.dumps(obj, limits=limits)
        print("dumped", end=" ")
        safeload.loads(data, limits=limits)
        print("loaded")
    except safeload.LimitExceededError as exc:
        print("refused", exc.allowed)
threading.stack_size(1 << 20)
thread = threading.Thread(target=run)
thread.start()
thread.join()
"""
    proc = subprocess.run(
        [sys.executable, "-c", script, str(levels)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    want = expected if expected != "refused" else f"refused {MAX_NESTING}"
    assert proc.stdout.strip() == want
