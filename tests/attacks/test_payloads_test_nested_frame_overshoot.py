"""Regression tests from the second attack review of deferred payloads (session 3).
Fixed: a skeleton the unpickler refuses is parsed again as the original stream, in a fresh context.

The finding as reported:

Low severity (fail-closed difference from pickle): ``find_payloads`` hops the outer FRAME
and lands on a genuine BINBYTES8 (so ``_defer`` accepts it), but a FRAME opcode *inside* the
outer frame (transparent to the C unpickler, which only checks that a frame's bytes exist)
covers the payload.  In the skeleton the payload shrank to one NEXT_BUFFER byte, so that
inner FRAME now declares more bytes than the skeleton has: the C unpickler raises "pickle data
was truncated" and safeload refuses a stream ``pickle.loads`` reads (and ``scan`` calls safe)."""

import os
import pickle
import struct

import safeload


def _stream() -> tuple[bytes, bytes]:
    n = 1 << 16
    payload = os.urandom(n)
    body = b"\x8e" + struct.pack("<Q", n) + payload + b"\x94."  # BINBYTES8, MEMOIZE, STOP
    inner = b"\x95" + struct.pack("<Q", len(body))  # FRAME covering the payload
    outer = b"\x95" + struct.pack("<Q", len(inner))  # FRAME holding only the inner FRAME
    return b"\x80\x05" + outer + inner + body, payload


def test_pickle_reads_it():
    data, payload = _stream()
    assert pickle.loads(data) == payload
    assert safeload.scan(data).safe


def test_loads_matches_pickle():
    data, payload = _stream()
    assert safeload.loads(data) == payload  # fails: FormatError, pickle data was truncated


def test_load_matches_pickle(tmp_path):
    data, payload = _stream()
    path = tmp_path / "f.pkl"
    path.write_bytes(data)
    assert safeload.load(path) == payload
