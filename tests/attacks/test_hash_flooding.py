"""Family *hash flooding*: dict keys and set items chosen to share one hash (issue 8).

str and bytes hashes are randomised per process, but an int's hash is ``n mod (2**61 - 1)``
(with its sign), so ints ``k * (2**61 - 1) + 7`` all hash to 7 and every insertion into a dict
or set walks past all the previous ones: 200,000 such keys (2.6 MB of pickle) keep
``pickle.load`` busy for minutes.  Tuples holding them collide the same way, and because
xxHash (the tuple hash) can be inverted lane by lane, so do pairs ``(float, int)`` with a
solved second item, without any big int.  Floats alone do not flood (a 53-bit mantissa: at
most about 200 floats share a hash).

The pre-scan (``opscan``, raw pickles) and the joblib reader (compressed streams) charge every
value whose hash can be chosen to collide the worst case -- the number of such values placed
before it in a dict, set, list or tuple -- against ``max_items``; 200,000 keys are refused
after about 6,300, in well under a second, by ``load`` and by ``scan``.  Every stream here is
written opcode by opcode: building the colliding dict or set in the test itself would take as
long as the attack.
"""

from __future__ import annotations

import multiprocessing
import pickle
import struct
import time
import zlib

import numpy as np
import pytest

import safeload
from safeload.errors import LimitExceededError
from safeload.limits import DEFAULT_LIMITS
from safeload.readers import opscan

from .conftest import Limit, assert_refused_bounded

N = 200_000
P = 2**61 - 1
KEYS = [k * P + 7 for k in range(1, N + 1)]  # all hash to 7: 9-byte LONG1 ints


def _binlong(n: int) -> bytes:
    body = pickle.encode_long(n)
    return b"\x8a" + bytes([len(body)]) + body


def _textlong(n: int) -> bytes:
    return b"L%dL\n" % n


def _batches(items: list[bytes], size: int = 1000):
    for i in range(0, len(items), size):
        yield b"".join(items[i : i + size])


def dict_setitems(keys: list[bytes], proto: int) -> bytes:
    """``{key: 0, ...}`` as a pickler writes it: EMPTY_DICT, then MARK ... SETITEMS batches."""
    pairs = [k + b"K\x00" for k in keys]
    body = b"".join(b"(" + batch + b"u" for batch in _batches(pairs))
    return b"\x80" + bytes([proto]) + b"}" + body + b"."


def dict_opcode(keys: list[bytes], proto: int) -> bytes:
    """MARK key value key value ... DICT: one opcode hashes them all."""
    return b"\x80" + bytes([proto]) + b"(" + b"".join(k + b"K\x00" for k in keys) + b"d."


def dict_protocol0(keys: list[bytes]) -> bytes:
    """Protocol 0: ``(dp0`` then one SETITEM per key."""
    return b"(dp0\n" + b"".join(k + b"I0\ns" for k in keys) + b"."


def set_additems(items: list[bytes]) -> bytes:
    """Protocol 4+: EMPTY_SET, MARK ... ADDITEMS batches."""
    body = b"".join(b"(" + batch + b"\x90" for batch in _batches(items))
    return b"\x80\x05\x8f" + body + b"."


def frozenset_opcode(items: list[bytes]) -> bytes:
    return b"\x80\x05(" + b"".join(items) + b"\x91."


def set_reduce(items: list[bytes], proto: int, name: bytes = b"set") -> bytes:
    """Protocols 0-3 pickle ``set(x)`` as ``builtins.set([...])`` (REDUCE): the builder hashes
    the list's items."""
    if proto == 0:
        return b"c__builtin__\n" + name + b"\n((lp0\n" + b"".join(i + b"a" for i in items) + b"tR."
    body = b"".join(b"(" + batch + b"e" for batch in _batches(items))
    return b"\x80\x02c__builtin__\n" + name + b"\n]" + body + b"\x85R."


# -- xxHash (CPython's tuple hash) inverted for the second lane -------------------------------
_P1, _P2, _P5 = 11400714785074694791, 14029467366897019727, 2870177450012600261
_P2_INV = pow(_P2, -1, 2**64)


def colliding_float_int_pairs(count: int) -> list[tuple[float, int]]:
    """``count`` tuples ``(float(i), n)`` with one hash, ``n`` below ``2**55`` (a 7-byte LONG1,
    not collidable by itself): ``n``'s lane is solved from ``i``'s so that the accumulator after
    both lanes is the same constant."""
    target = np.uint64(0x0123456789ABCDEF)
    out: list[tuple[float, int]] = []
    start = 1
    with np.errstate(over="ignore"):
        while len(out) < count:
            i = np.arange(start, start + (1 << 23), dtype=np.uint64)
            start += 1 << 23
            acc = np.uint64(_P5) + i * np.uint64(_P2)
            acc = (acc << np.uint64(31)) | (acc >> np.uint64(33))
            acc = acc * np.uint64(_P1)
            lane = (target - acc) * np.uint64(_P2_INV)
            ok = lane < np.uint64(1 << 55)
            out.extend(zip(i[ok].astype(float).tolist(), lane[ok].tolist(), strict=True))
    return out[:count]


def _float_int_key(f: float, n: int) -> bytes:
    return b"G" + struct.pack(">d", f) + _binlong(n) + b"\x86"


def attacks() -> dict[str, bytes]:
    binary = [_binlong(k) for k in KEYS]
    text = [_textlong(k) for k in KEYS]
    tuples = [k + b"\x8c\x01x\x86" for k in binary]  # (k, "x"): the str lane is the same
    text_tuples = [b"(" + k + b"S'x'\nt" for k in text]
    floats = [_float_int_key(f, n) for f, n in colliding_float_int_pairs(N)]
    out = {
        "dict-setitems-p2": dict_setitems(binary, 2),
        "dict-setitems-p5": dict_setitems(binary, 5),
        "dict-opcode-p2": dict_opcode(binary, 2),
        "dict-opcode-p5": dict_opcode(binary, 5),
        "dict-setitem-p0": dict_protocol0(text),
        "set-additems-p5": set_additems(binary),
        "frozenset-p5": frozenset_opcode(binary),
        "set-reduce-p0": set_reduce(text, 0),
        "set-reduce-p2": set_reduce(binary, 2),
        "frozenset-reduce-p2": set_reduce(binary, 2, b"frozenset"),
        "tuple-keys-p5": dict_setitems(tuples, 5),
        "tuple-keys-p0": dict_protocol0(text_tuples),
        "float-int-tuple-keys-p5": dict_setitems(floats, 5),
        "float-int-tuple-set-p5": set_additems(floats),
    }
    for name in ("dict-setitems-p2", "set-reduce-p2", "tuple-keys-p5", "float-int-tuple-keys-p5"):
        out[f"joblib-zlib-{name}"] = zlib.compress(out[name], 3)  # joblib's zlib framing
    return out


ATTACKS = attacks()


def _scan_child(conn, data: bytes) -> None:  # pragma: no cover - runs in the child
    t0 = time.perf_counter()
    report = safeload.scan(data)
    rules = [f.rule for f in report.findings]
    messages = [f.message for f in report.findings]
    conn.send((report.safe, rules, messages, time.perf_counter() - t0))
    conn.close()


def scan_bounded(data: bytes, timeout: float = 10.0):
    """``safeload.scan(data)`` in a forked child: ``(safe, rules, messages, seconds)``, or None
    when it did not answer within ``timeout`` seconds."""
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_scan_child, args=(child, data))
    proc.start()
    child.close()
    result = parent.recv() if parent.poll(timeout) else None
    proc.join(1.0)
    if proc.is_alive():
        proc.kill()
        proc.join()
    return result


@pytest.mark.parametrize("name", list(ATTACKS))
def test_flood_refused_by_load(name):
    out = assert_refused_bounded(ATTACKS[name], Limit("max_items"), max_seconds=10.0)
    assert "hash collisions" in out.message, out.message
    assert out.seconds < 10.0  # about 0.1-0.5 s; before the fix, minutes


@pytest.mark.parametrize("name", list(ATTACKS))
def test_flood_refused_by_scan(name):
    result = scan_bounded(ATTACKS[name])
    assert result is not None, "scan did not answer within 10 s"
    safe, rules, messages, seconds = result
    assert not safe and "limit-exceeded" in rules, (rules, messages)
    assert any("hash collisions" in m for m in messages), messages
    assert seconds < 10.0


@pytest.mark.parametrize("name", [n for n in ATTACKS if not n.startswith("joblib")])
def test_c_and_python_prescans_agree(name):
    data = ATTACKS[name]
    errors = []
    for scanner in (opscan._scan_opcodes_py, opscan._scan_opcodes_c):
        if scanner is opscan._scan_opcodes_c and opscan._opscan is None:
            continue
        start = time.perf_counter()
        with pytest.raises(LimitExceededError) as info:
            scanner(data, DEFAULT_LIMITS)
        assert time.perf_counter() - start < 5.0
        exc = info.value
        errors.append((str(exc), exc.limit, exc.actual, exc.allowed))
    assert errors[0][1] == "max_items" and "hash collisions" in errors[0][0]
    assert len(set(errors)) == 1, errors


def test_the_pairs_really_collide():
    pairs = colliding_float_int_pairs(50)
    assert len({hash(p) for p in pairs}) == 1
    assert all(len(pickle.encode_long(n)) < 8 for _, n in pairs)  # no collidable int inside
    assert len({hash(k) for k in KEYS[:50]}) == 1


# -- the bound, and what stays loadable ------------------------------------------------------


def test_bound_is_about_6300_colliding_keys():
    """n collidable 9-byte keys cost 2 n visits plus n (n - 1) / 2 probes: 6,323 fit in the
    default 20M, 6,324 do not."""
    fits = opscan.scan_opcodes(dict_setitems([_binlong(k) for k in KEYS[:6323]], 5), DEFAULT_LIMITS)
    assert fits.collidable == 6323 and fits.hash_visits == 2 * 6323 + 6323 * 6322 // 2
    with pytest.raises(LimitExceededError, match="hash collisions"):
        opscan.scan_opcodes(dict_setitems([_binlong(k) for k in KEYS[:6324]], 5), DEFAULT_LIMITS)
    limits = safeload.Limits(max_items=1000)
    with pytest.raises(LimitExceededError, match="hash collisions"):
        opscan.scan_opcodes(dict_setitems([_binlong(k) for k in KEYS[:50]], 5), limits)


@pytest.mark.parametrize("colliding", [False, True])
@pytest.mark.parametrize("compressed", [False, True])
def test_5000_big_int_keys_still_load(colliding, compressed):
    """The charge is the worst case, so 5,000 big-int keys cost 12.5M of the 20M whether they
    collide or not; even when they all collide the load takes a fraction of a second."""
    keys = KEYS[:5000] if colliding else [2**64 + 3 * i for i in range(5000)]
    for proto in (2, 5):
        data = pickle.dumps(dict.fromkeys(keys, 1), protocol=proto)
        if compressed:
            data = zlib.compress(data, 3)
        start = time.perf_counter()
        loaded = safeload.loads(data)
        assert time.perf_counter() - start < 5.0
        assert len(loaded) == 5000 and loaded[keys[-1]] == 1
        assert safeload.scan(data).safe


def test_big_values_and_floats_are_not_charged():
    """Big ints as dict values (PCG64 and SeedSequence states) and float keys cost nothing."""
    state = {f"k{i}": (2**127 + i) for i in range(20_000)}
    floats = {float(2**62 + 2**12 * i): i for i in range(20_000)}
    for obj in (state, floats, {"state": [2**100] * 100}):
        for proto in (0, 2, 5):
            info = opscan.scan_opcodes(pickle.dumps(obj, protocol=proto), DEFAULT_LIMITS)
            assert info.hash_visits < 100_000, (proto, info.hash_visits)
    assert safeload.loads(pickle.dumps(floats, protocol=5)) == floats


class _SetOf:
    """Pickles as ``set(keys)``: many of these share one memoized list."""

    def __init__(self, keys: list) -> None:
        self.keys = keys

    def __reduce__(self):
        return (set, (self.keys,))


@pytest.mark.parametrize("constructor", ["set", "frozenset", "dict"])
def test_one_colliding_list_hashed_by_many_constructor_calls(constructor):
    """The pre-scan charges a memoized list of colliding ints once; the build stage hashes it
    again at every ``set(...)`` call.  Each call is charged its probes (``safeload._hashing``),
    so twenty calls on one 6,000-key list are refused instead of taking seconds."""
    keys = KEYS[:6000]
    arg = keys if constructor != "dict" else [[k, 0] for k in keys]

    class Call(_SetOf):
        def __reduce__(self):
            return ({"set": set, "frozenset": frozenset, "dict": dict}[constructor], (arg,))

    data = pickle.dumps([Call(keys) for _ in range(20)], protocol=4)
    start = time.perf_counter()
    with pytest.raises(LimitExceededError) as info:
        safeload.loads(data)
    assert info.value.limit == "max_items"
    assert time.perf_counter() - start < 2.0
    one = pickle.dumps([Call(keys)], protocol=4)  # a single call: 18M probes, under 20M
    assert len(safeload.loads(one)[0]) == 6000
