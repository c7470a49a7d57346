"""One resource test per limit, measured in a child process: time and peak RSS.

Every bomb of issue 8 — decompression bombs with every compressor, an opcode bomb in a
compressed stream, memo "billion laughs", a hash bomb, deep nesting, huge declared shapes
(``_reconstruct``, joblib wrappers, ``.npy`` headers, the safe format's arrays), zip bombs, long
JSON numbers and deep JSON, oversized integers and files — is handed to ``load`` and to ``scan``
in a fresh interpreter.  The child resets its peak-RSS counter (``/proc/self/clear_refs``)
before each case, runs it under an address-space limit and reports the exception, the elapsed
time and the growth of ``VmHWM``; the test asserts the exact refusal and both bounds.

All the cases of one entry point run in one child (importing scikit-learn costs more than all
the bombs together); a case that hangs or crashes fails every case of that child.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
import pickle
import struct
import subprocess
import sys
import textwrap
import zipfile
import zlib
from pathlib import Path

import pytest

from .attacks._pickle_builder import (
    G,
    Ops,
    dumps,
    gzip_members_bomb,
    joblib_array,
    make_zip,
    npy_bytes,
)

MiB = 1 << 20
SMALL = {"max_decompressed_bytes": 16 * MiB}


# --------------------------------------------------------------------------- payloads
def _binbytes8(n: int) -> bytes:
    return Ops(5).op(pickle.BINBYTES8, struct.pack("<Q", n)).raw(b"\0" * n).done()


def _zlib_repeat(block: bytes, times: int, wbits: int) -> bytes:
    """A deflate stream of ``block * times`` made by repeating one fully flushed block (the
    trailer's checksum is wrong, which the reader would only see after its limit)."""
    c = zlib.compressobj(9, zlib.DEFLATED, wbits)
    head = c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)
    body = c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)
    return head + body * (times - 1) + c.flush()


def _lz4(data: bytes) -> bytes:
    import lz4.frame

    return lz4.frame.compress(data)


DECOMPRESSION = {
    "zlib": lambda d: zlib.compress(d, 1),
    "gzip": lambda d: gzip.compress(d, 1, mtime=0),
    "bz2": lambda d: bz2.compress(d, 1),
    "xz": lambda d: lzma.compress(d, format=lzma.FORMAT_XZ, preset=0),
    "lzma": lambda d: lzma.compress(d, format=lzma.FORMAT_ALONE, preset=0),
    "lz4": _lz4,
}


def _memo_bomb(fan: int = 10, levels: int = 9) -> bytes:
    o = Ops(4).empty_list().binput(0)
    for i in range(1, levels + 1):
        o.mark()
        for _ in range(fan):
            o.binget(i - 1)
        o.op(pickle.LIST).binput(i)
    return o.done()


def _hash_bomb(fan: int = 16, levels: int = 9) -> bytes:
    o = Ops(4).int_(0).tuple_(1).binput(0).pop()
    for i in range(1, levels + 1):
        o.mark()
        for _ in range(fan):
            o.binget(i - 1)
        o.tuple_marked().binput(i)
        if i < levels:
            o.pop()
    o.pop().empty_set().mark().binget(levels).additems()
    return o.done()


def _deep(n: int = 200_000) -> bytes:
    return Ops(4).raw(pickle.MARK * n + pickle.LIST * n).done()


def _safe_format(members: dict[str, bytes], method: int = zipfile.ZIP_STORED) -> bytes | None:
    """A safe-format archive of a small model with some members replaced (hashes fixed)."""
    import safeload

    dumps_ = getattr(safeload, "dumps", None)
    if dumps_ is None:
        return None
    import hashlib

    import numpy as np
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit(np.arange(8.0).reshape(4, 2), [0, 1, 0, 1])
    with zipfile.ZipFile(io.BytesIO(dumps_(model))) as zf:
        current = {i.filename: zf.read(i) for i in zf.infolist()}
    current.update(members)
    manifest = json.loads(current["manifest.json"])
    for name, body in current.items():
        if name in manifest["members"]:
            manifest["members"][name] = {
                "size": len(body),
                "sha256": hashlib.sha256(body).hexdigest(),
            }
    current["manifest.json"] = json.dumps(manifest).encode()
    return make_zip(list(current.items()), compression=method)


def _zip_bomb() -> bytes:
    """A zip whose member inflates to 1 GiB from about 1 MiB (catalogue Z10)."""
    deflated = _zlib_repeat(b"\0" * (16 * MiB), 64, -15)
    name = b"archive/data.pkl"
    size = 1 << 30
    crc = 0
    local = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 8, 0, 0, crc, len(deflated), size,
                        len(name), 0) + name  # fmt: skip
    central = struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, crc,
                          len(deflated), size, len(name), 0, 0, 0, 0, 0, 0) + name  # fmt: skip
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 1, 1, len(central),
                      len(local) + len(deflated), 0)  # fmt: skip
    return local + deflated + central + end


#: name -> (payload factory, Limits kwargs, entry points, expected error class, expected limit)
CASES: dict[str, tuple] = {}
for _comp, _fn in DECOMPRESSION.items():
    CASES[f"decompression-{_comp}"] = (
        lambda fn=_fn: fn(_binbytes8(64 * MiB)),
        SMALL,
        "LimitExceededError",
        "max_decompressed_bytes",
    )
    CASES[f"decompression-joblib-array-{_comp}"] = (
        lambda fn=_fn: fn(dumps([joblib_array("f8", (8 * MiB,))], 4)),
        SMALL,
        "LimitExceededError",
        "max_decompressed_bytes",
    )
CASES.update(
    {
        "decompression-gzip-2GiB-default-limits": (
            lambda: gzip_members_bomb(
                Ops(5).op(pickle.BINBYTES8, struct.pack("<Q", 1 << 40)).value(),
                2048 * MiB,
                b".",
                member=16 * MiB,
            ),
            {},
            "LimitExceededError",
            "max_decompressed_bytes",
        ),
        "opcode-bomb-gzip-default-limits": (
            lambda: gzip_members_bomb(b"\x80\x04", 2**29, b"N.", member=16 * MiB, fill=b"N0"),
            {},
            "LimitExceededError",
            "max_opcodes",
        ),
        "opcode-bomb-xz-default-limits": (
            lambda: lzma.compress(b"\x80\x04" + b"N0" * (64 * MiB) + b"N.", preset=0),
            {},
            "LimitExceededError",
            "max_opcodes",
        ),
        "memo-bomb-raw": (_memo_bomb, {}, "LimitExceededError", "max_items"),
        "memo-bomb-gzip": (
            lambda: gzip.compress(_memo_bomb()),
            {},
            "LimitExceededError",
            "max_items",
        ),
        "hash-bomb-raw": (_hash_bomb, {}, "LimitExceededError", "max_items"),
        "hash-bomb-bz2": (
            lambda: bz2.compress(_hash_bomb()),
            {},
            "LimitExceededError",
            "max_items",
        ),
        "deep-nesting-raw": (_deep, {}, "LimitExceededError", "max_depth"),
        "deep-nesting-zlib": (
            lambda: zlib.compress(_deep()),
            {},
            "LimitExceededError",
            "max_depth",
        ),
        "huge-shape-reconstruct": (
            lambda: dumps(
                G("numpy._core.multiarray", "_reconstruct")(G("numpy", "ndarray"), (2**40,), b"b"),
                2,
            ),
            {},
            "LimitExceededError",
            "max_array_bytes",
        ),
        "huge-shape-joblib-wrapper": (
            lambda: dumps([joblib_array("f8", (2**37,), b"")], 4),
            {},
            "LimitExceededError",
            "max_array_bytes",
        ),
        "huge-shape-bytearray": (
            lambda: dumps(G("builtins", "bytearray")(2**36), 2),
            {},
            "LimitExceededError",
            "max_array_bytes",
        ),
        "huge-length-binbytes8": (
            lambda: Ops(5).op(pickle.BINBYTES8, struct.pack("<Q", 1 << 40)).raw(b"abcd").done(),
            {},
            "FormatError",
            None,
        ),
        "huge-memo-index": (
            lambda: Ops(4).none().op(pickle.LONG_BINPUT, struct.pack("<I", 2**31)).stop().value(),
            {},
            "LimitExceededError",
            "max_memo",
        ),
        "long-int-long4": (
            lambda: Ops(2).op(pickle.LONG4, struct.pack("<i", 2 * MiB)).raw(b"\1" * 2 * MiB).done(),
            {},
            "LimitExceededError",
            "max_int_bytes",
        ),
        "long-int-text": (
            lambda: Ops(0).op(pickle.INT, b"9" * (2 * MiB) + b"\n").done(),
            {},
            "FormatError",
            None,
        ),
        "file-size": (
            lambda: _binbytes8(64 * MiB),
            {"max_file_bytes": MiB},
            "LimitExceededError",
            "max_file_bytes",
        ),  # fmt: skip
        "zip-bomb": (_zip_bomb, {}, "FormatError", None),
        "npy-huge-header": (
            lambda: npy_bytes("<f8", (2**36,), b"\0" * 64),
            {},
            "FormatError",
            None,
        ),
    }
)
#: safe-format JSON and array bombs (skipped while ``safeload.dumps`` does not exist)
SAFE_CASES = {
    "safe-format-deep-json": (
        lambda: _safe_format({"graph.json": b"[" * 300_000 + b"]" * 300_000}),
        {},
        ("FormatError", "LimitExceededError"),
        None,
    ),
    "safe-format-long-json-number": (
        lambda: _safe_format({"graph.json": b'{"a": ' + b"7" * (2 * MiB) + b"}"}),
        {},
        ("FormatError", "LimitExceededError"),
        None,
    ),
    "safe-format-huge-array": (
        lambda: _safe_format(
            {"arrays/000000.npy": npy_bytes("<f8", (2**40,), b"\0" * 64)},
        ),
        {},
        ("FormatError", "LimitExceededError"),
        None,
    ),
    "safe-format-deflate-bomb": (
        lambda: _safe_format(
            {"arrays/000000.npy": npy_bytes("<f8", (64 * MiB,), b"\0" * (512 * MiB))},
            zipfile.ZIP_DEFLATED,
        ),
        {"max_decompressed_bytes": 64 * MiB, "max_array_bytes": 64 * MiB},
        ("FormatError", "LimitExceededError"),
        None,
    ),
}
ALL = {**CASES, **SAFE_CASES}

#: bounds for every case: seconds and growth of the peak RSS
MAX_SECONDS = 5.0
MAX_GROWTH = 160 * MiB

_CHILD = textwrap.dedent(
    """
    import json, os, resource, sys, time
    import safeload
    import sklearn.linear_model  # imported before the measurements
    cases = json.loads(sys.stdin.read())
    entry = sys.argv[1]
    def status(key):
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
    vm = status("VmSize:")
    resource.setrlimit(resource.RLIMIT_AS, (vm + (3 << 30), vm + (3 << 30)))
    out = {}
    for name, (path, limits) in cases.items():
        limits = safeload.Limits(**limits)
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # reset VmHWM to the current RSS
        start = status("VmRSS:")
        t0 = time.perf_counter()
        res = {"error": None, "limit": None, "memory_error": False, "unsafe": None}
        try:
            if entry == "load":
                safeload.load(path, limits=limits)
            else:
                report = safeload.scan(path, limits=limits)
                res["unsafe"] = not report.safe
                res["rules"] = sorted({f.rule_id for f in report.findings if f.blocking})
        except BaseException as exc:
            res["error"] = type(exc).__name__
            res["message"] = str(exc)[:300]
            res["limit"] = getattr(exc, "limit", None)
            res["memory_error"] = isinstance(exc, MemoryError) or isinstance(
                exc.__cause__, MemoryError)
        res["seconds"] = time.perf_counter() - t0
        res["growth"] = status("VmHWM:") - start
        out[name] = res
        print(json.dumps({name: res}), flush=True)
    """
)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bombs")
    out = {}
    for name, (factory, *_rest) in ALL.items():
        data = factory()
        if data is None:
            continue
        path = folder / f"{name}.bin"
        path.write_bytes(data)
        out[name] = path
    return out


def _run_child(entry: str, files: dict[str, Path], tmp_path_factory) -> dict:
    cases = {name: (str(path), ALL[name][1]) for name, path in files.items()}
    canary = tmp_path_factory.mktemp("canary")
    cwd = tmp_path_factory.mktemp("cwd")
    env = dict(os.environ, SAFELOAD_CANARY_DIR=str(canary), PYTHONWARNINGS="ignore")
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, entry],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=60 + 2 * MAX_SECONDS * len(cases),
        env=env,
        cwd=cwd,
    )
    results = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            results.update(json.loads(line))
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-3000:])
    assert os.listdir(canary) == [] and os.listdir(cwd) == []
    return results


@pytest.fixture(scope="module")
def loads(files, tmp_path_factory) -> dict:
    return _run_child("load", files, tmp_path_factory)


@pytest.fixture(scope="module")
def scans(files, tmp_path_factory) -> dict:
    return _run_child("scan", files, tmp_path_factory)


def _payload_is_small(files, name) -> None:
    # every bomb is a small file: the point is amplification
    assert files[name].stat().st_size < 3 * MiB or name == "file-size", files[name].stat()


@pytest.mark.parametrize("name", list(ALL))
def test_load_refuses_within_bounds(name, files, loads):
    if name not in files:
        pytest.skip("safeload.dumps does not exist yet")
    _payload_is_small(files, name)
    _, _, expected, limit = ALL[name]
    res = loads[name]
    expected = expected if isinstance(expected, tuple) else (expected,)
    assert res["error"] in expected, res
    if limit is not None:
        assert res["limit"] == limit, res
    assert not res["memory_error"], res
    assert res["seconds"] < MAX_SECONDS, res
    assert res["growth"] < MAX_GROWTH, f"peak RSS grew by {res['growth'] / MiB:.0f} MiB: {res}"


@pytest.mark.parametrize("name", list(ALL))
def test_scan_reports_unsafe_within_bounds(name, files, scans):
    if name not in files:
        pytest.skip("safeload.dumps does not exist yet")
    res = scans[name]
    assert res["error"] is None, res  # scan reports, it does not raise
    assert res["unsafe"] is True, res
    assert res["rules"], res
    assert res["seconds"] < MAX_SECONDS, res
    assert res["growth"] < MAX_GROWTH, f"peak RSS grew by {res['growth'] / MiB:.0f} MiB: {res}"
