"""Review 7: a deeply nested tuple used as a dict key or set item crashed the process.

CPython's tuple hash recurses once per nested level without a stack guard, so hashing 40,000
nested tuples overflowed a thread's 1 MiB stack (200,000 the main thread's 8 MiB) — with every
default setting.  The opcode pre-scan now bounds the weight of each key it models
(``opscan.MAX_KEY_DEPTH``: the stack model tracks each value's tuple nesting), the scanner's Python
unpickler does the same, and the builder measures the keys ``set(...)``/``dict(...)`` would
hash (``_hashing.MAX_KEY_NESTING``).  Each file runs in a child process with a 1 MiB thread
stack, where a crash is a failed assertion.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from safeload._hashing import MAX_KEY_NESTING, key_nesting
from safeload.errors import LimitExceededError
from safeload.readers.opscan import MAX_KEY_DEPTH

N = 50_000
DEEP = b")" + b"\x85" * N  # EMPTY_TUPLE, then TUPLE1 N times

STREAMS = {
    "SETITEM": b"\x80\x02}" + DEEP + b"K\x01s.",
    "SETITEMS": b"\x80\x02}(" + DEEP + b"K\x01u.",
    "DICT": b"\x80\x02(" + DEEP + b"K\x01d.",
    "ADDITEMS": b"\x80\x04\x8f(" + DEEP + b"\x90.",
    "FROZENSET": b"\x80\x04(" + DEEP + b"\x91.",
    # the list is not hashed while parsing: set(...) hashes it when the builder calls it
    "set() at build": b"\x80\x02cbuiltins\nset\n](" + DEEP + b"e\x85R.",
}

_SCRIPT = """
import sys, threading
import safeload
path, command, raised = sys.argv[1], sys.argv[2], sys.argv[3] == "raised"
kwargs = {"limits": safeload.Limits(max_depth=10**8, max_items=10**9)} if raised else {}
if raised:
    sys.setrecursionlimit(10**7)
def run():
    try:
        result = getattr(safeload, command)(path, **kwargs)
    except safeload.LimitExceededError as exc:
        print("refused", exc.limit, exc.allowed)
    except safeload.SafeloadError as exc:
        print("refused", type(exc).__name__)
    else:
        print("report", result.safe) if command == "scan" else print("returned")
threading.stack_size(1 << 20)
thread = threading.Thread(target=run)
thread.start()
thread.join()
"""


def _run(tmp_path, data: bytes, command: str, raised: bool = False) -> str:
    path = tmp_path / "deep.pkl"
    path.write_bytes(data)
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(path), command, "raised" if raised else "default"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    return proc.stdout.strip()


@pytest.mark.parametrize("raised", [False, True], ids=["default", "raised-limits"])
@pytest.mark.parametrize("opcode", sorted(STREAMS))
def test_a_deep_tuple_key_is_refused_by_load(tmp_path, opcode, raised):
    out = _run(tmp_path, STREAMS[opcode], "load", raised)
    if opcode != "set() at build":
        assert out == f"refused max_depth {MAX_KEY_DEPTH}"  # the pre-scan, before parsing
    elif raised:
        assert out == f"refused max_depth {MAX_KEY_NESTING}"  # the builder, before set(...)
    else:
        assert out == "refused max_depth 200"  # the parse's nesting limit comes first


@pytest.mark.parametrize("opcode", ["SETITEM", "FROZENSET", "set() at build"])
@pytest.mark.parametrize("command", ["scan", "inspect"])
def test_scan_and_inspect_survive_a_deep_tuple_key(tmp_path, opcode, command):
    out = _run(tmp_path, STREAMS[opcode], command, raised=True)
    if command == "scan":
        # a key of the stream is a finding; set(...) over a list is only hashed by a build,
        # which scan does not do (load refuses it, above)
        assert out == ("report True" if opcode == "set() at build" else "report False")
    else:
        assert out in ("returned", f"refused max_depth {MAX_KEY_DEPTH}")


@pytest.mark.parametrize("scanner", ["c", "python"])
def test_the_pre_scan_bound_is_exact(scanner, monkeypatch):
    from safeload.limits import Limits
    from safeload.readers import opscan

    if scanner == "python":
        monkeypatch.setattr(opscan, "_opscan", None)
    k = MAX_KEY_DEPTH  # EMPTY_TUPLE (nesting 0, its hash recurses into nothing), then k TUPLE1
    opscan.scan_opcodes(b"\x80\x02}" + b")" + b"\x85" * k + b"K\x01s.", Limits())
    with pytest.raises(LimitExceededError) as info:
        opscan.scan_opcodes(b"\x80\x02}" + b")" + b"\x85" * (k + 1) + b"K\x01s.", Limits())
    assert (info.value.limit, info.value.actual) == ("max_depth", MAX_KEY_DEPTH + 1)


def test_a_shallow_tuple_key_loads():
    import pickle

    import safeload

    key = ("a", (1, (2.5, ("b",))))
    assert safeload.loads(pickle.dumps({key: 1, frozenset([key]): 2}, protocol=4)) == {
        key: 1,
        frozenset([key]): 2,
    }


def test_set_at_build_takes_keys_up_to_max_key_nesting(tmp_path):
    k = MAX_KEY_NESTING  # EMPTY_TUPLE (nesting 0), then k TUPLE1: MAX_KEY_NESTING levels
    stream = b"\x80\x02cbuiltins\nset\n](" + b")" + b"\x85" * k + b"e\x85R."
    assert _run(tmp_path, stream, "load", raised=True) == "returned"
    stream = b"\x80\x02cbuiltins\nset\n](" + b")" + b"\x85" * (k + 1) + b"e\x85R."
    assert _run(tmp_path, stream, "load", raised=True) == f"refused max_depth {MAX_KEY_NESTING}"


def test_key_nesting_measures_depth_once_per_shared_tuple():
    leaf = (1, 2)
    shared = leaf
    for _ in range(60):  # 2**60 paths: measured once per tuple, not per path
        shared = (shared, shared)
    assert key_nesting([shared, "a", (1,)]) == 61
    assert key_nesting({(leaf,): 1}) == 2
    assert key_nesting(["a", 1, None, ()]) == 0  # an empty tuple's hash recurses into nothing
    assert key_nesting([((),)]) == 1
    deep = ()
    for _ in range(100_000):
        deep = (deep,)
    assert key_nesting([deep]) == 100_000  # iterative: no RecursionError, no crash


# ---------------------------------------------------------------- review 7, second pass
def _memo_chain(chunks: int, per_chunk: int, as_frozenset: bool) -> bytes:
    """``tuple(...)`` REDUCE results chained through the memo: each chunk is ``per_chunk``
    tuples around the previous chunk's result, so neither the parse's depth limit nor the
    pre-scan (a REDUCE result starts at depth 0) sees the real nesting, which only the
    builder's rebuilt key has."""
    import struct

    def put(i):
        return b"r" + struct.pack("<I", i)

    def get(i):
        return b"j" + struct.pack("<I", i)

    body = b"]" + b"cbuiltins\ntuple\n" + put(0) + b"0"
    for j in range(1, chunks + 1):
        inner = b"K\x01" if j == 1 else get(j - 1)
        body += get(0) + inner + b"\x85" * per_chunk + b"\x85R" + put(j) + b"a"
    if as_frozenset:
        return b"\x80\x04" + body + b"(" + get(chunks) + b"\x91a."
    return b"\x80\x02" + body + b"}" + get(chunks) + b"K\x01sa."


@pytest.mark.parametrize("as_frozenset", [False, True], ids=["dict-key", "frozenset-item"])
def test_a_key_chained_through_reduce_results_is_refused_by_the_builder(tmp_path, as_frozenset):
    # 320 chunks of 190: 60,800 levels, built with every default limit (a 1 MiB thread crashed)
    out = _run(tmp_path, _memo_chain(320, 190, as_frozenset), "load")
    assert out == f"refused max_depth {MAX_KEY_NESTING}"


def _ref_chain_file(kind: str, chunks: int = 320, per_chunk: int = 190) -> bytes:
    """A safe-format file whose tuples nest past the decoder's cap through ``ref`` nodes."""
    import safeload

    from . import _safezip as sz

    parts, prev, nid = [], None, 2  # slots: the root dict 0, the list 1
    for _ in range(chunks):
        first = nid
        inner = "1" if prev is None else '{"$":"ref","id":' + str(prev) + "}"
        parts.append('{"$":"tuple","v":[' * per_chunk + inner + "]}" * per_chunk)
        nid += per_chunk
        prev = first
    ref = '{"$":"ref","id":' + str(prev) + "}"
    last = {
        "set": '{"$":"set","v":[' + ref + "]}",
        "frozenset": '{"$":"frozenset","v":[' + ref + "]}",
        "dictkey": '{"$":"dict","items":[[' + ref + ",1]]}",
    }[kind]
    graph = ("[" + ",".join([*parts, last]) + "]").encode()
    return sz.edit(
        safeload.dumps({"x": 1}),
        members=lambda t: t.update({sz.GRAPH: t[sz.GRAPH].replace(b'"x":1', b'"x":' + graph)}),
    )


@pytest.mark.parametrize("kind", ["set", "frozenset", "dictkey"])
def test_a_key_chained_through_refs_in_a_safe_file_is_refused(tmp_path, kind):
    path_data = _ref_chain_file(kind)
    assert _run(tmp_path, path_data, "load") == f"refused max_depth {MAX_KEY_NESTING}"


@pytest.mark.parametrize("scanner", ["c", "python"])
def test_frozensets_count_in_a_keys_nesting(scanner, monkeypatch):
    # equal keys are compared, and the comparison recurses through frozensets too
    from safeload.limits import Limits
    from safeload.readers import opscan

    if scanner == "python":
        monkeypatch.setattr(opscan, "_opscan", None)
    key = b"K\x01" + b"(" * 0
    for _ in range(600):  # frozenset then tuple, 600 times: 1,200 levels
        key = b"(" + key + b"\x91\x85"
    with pytest.raises(LimitExceededError) as info:
        opscan.scan_opcodes(b"\x80\x04}" + key + b"K\x01s.", Limits(max_depth=10**8))
    assert (info.value.limit, info.value.allowed) == ("max_depth", MAX_KEY_DEPTH)


@pytest.mark.parametrize("which", ["_reconstruct", "_mareconstruct"])
def test_an_array_reconstructor_refuses_a_deep_dtype_description(which):
    # review 7: the dtype argument of numpy's reconstructors went to numpy unmeasured
    import pickle as _pickle

    import safeload

    desc = "f8"
    for _ in range(40):
        desc = [("a", desc)]
    described = _pickle.dumps(desc, protocol=2)[2:-1]  # the opcodes that push it
    if which == "_reconstruct":
        body = b"cnumpy._core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85"
        stream = b"\x80\x02" + body + described + b"\x87R."
    else:
        body = b"cnumpy.ma.core\n_mareconstruct\n(cnumpy.ma.core\nMaskedArray\ncnumpy\nndarray\n"
        stream = b"\x80\x02" + body + b"K\x00\x85" + described + b"tR."
    with pytest.raises(safeload.ForbiddenOperationError, match="nested more than 32"):
        safeload.loads(stream)
