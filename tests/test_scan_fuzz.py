"""Mutation tests: ``scan`` fails closed on corrupted inputs and never imports what they name.

Seeds are small real files of every container (pickles of protocols 0-5, joblib plain and
compressed, a gzip pickle, a torch-style zip, an ``.npy``, a skops file) plus streams naming a
module that does not exist; hypothesis flips, deletes, inserts and truncates bytes.  For every
mutant ``scan`` must return a report (never raise), render it and never import the fake
module; ``load`` must either refuse the mutant with a ``SafeloadError`` or load it, and then
``scan`` must have called it safe.
"""

from __future__ import annotations

import gzip
import io
import pickle
import sys
import uuid

import joblib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

import safeload
from safeload.report import ScanReport

from .attacks._pickle_builder import B, G, New, dumps, joblib_array, make_zip

pytestmark = pytest.mark.filterwarnings("ignore")

PROBE = f"safeload_fuzz_probe_{uuid.uuid4().hex}"


def _joblib_bytes(obj, **kw) -> bytes:
    buf = io.BytesIO()
    joblib.dump(obj, buf, **kw)
    return buf.getvalue()


def _seeds() -> list[bytes]:
    X = np.arange(24, dtype=float).reshape(12, 2)
    model = LogisticRegression().fit(X, np.arange(12) % 2)
    scaler = StandardScaler().fit(X)
    probe = [New(G(PROBE, "Thing")), G(PROBE, "run")("x"), B(New(G(PROBE, "Other")), {"a": 1})]
    seeds = [pickle.dumps(model, protocol=p) for p in range(6)]
    seeds += [dumps(probe, p) for p in (0, 2, 4)]
    seeds += [
        _joblib_bytes(scaler),
        _joblib_bytes(scaler, compress=3),
        gzip.compress(pickle.dumps(scaler, protocol=4)),
        make_zip([("archive/data.pkl", dumps(probe, 2)), ("archive/version", b"3\n")]),
        dumps([joblib_array("O", (1,), dumps(probe, 2))], 4),
    ]
    buf = io.BytesIO()
    np.save(buf, np.arange(6.0))
    seeds.append(buf.getvalue())
    import skops.io

    seeds.append(skops.io.dumps(scaler))
    return seeds


SEEDS = _seeds()

mutation = st.one_of(
    st.tuples(st.just("flip"), st.floats(0, 1, exclude_max=True), st.integers(1, 255)),
    st.tuples(st.just("delete"), st.floats(0, 1, exclude_max=True), st.integers(1, 16)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("truncate"), st.floats(0, 1), st.just(0)),
)


def _mutate(data: bytes, mutations) -> bytes:
    buf = bytearray(data)
    for kind, where, arg in mutations:
        if not buf:
            break
        pos = int(where * len(buf))
        if kind == "flip" and pos < len(buf):
            buf[pos] ^= arg
        elif kind == "delete":
            del buf[pos : pos + arg]
        elif kind == "insert":
            buf[pos:pos] = arg
        elif kind == "truncate":
            del buf[pos:]
    return bytes(buf)


def _check(data: bytes) -> None:
    report = safeload.scan(data)
    assert isinstance(report, ScanReport)
    assert report.safe == (not any(f.blocking for f in report.findings))
    assert report.to_json() and report.to_sarif()["runs"][0]["results"] is not None
    assert not [m for m in sys.modules if m.startswith("safeload_fuzz_probe_")]
    if any("bad-dtype-state" in f.message for f in report.findings):
        return  # numpy's dtype.__setstate__ may crash on it: never hand it to the loader
    try:
        safeload.loads(data)
    except safeload.SafeloadError:
        pass  # refused: whatever scan said, nothing ran
    else:
        # soundness: everything scan reports unsafe, load refuses
        assert report.safe, [f.message for f in report.findings if f.blocking]


@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
@given(seed=st.integers(0, len(SEEDS) - 1), mutations=st.lists(mutation, min_size=1, max_size=4))
def test_mutated_files_always_give_a_report(seed, mutations):
    _check(_mutate(SEEDS[seed], mutations))


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.binary(max_size=512))
def test_random_bytes_always_give_a_report(data):
    _check(data)


@pytest.mark.parametrize("index", range(len(SEEDS)))
def test_every_truncation_of_a_seed_is_reported(index):
    data = SEEDS[index]
    step = max(1, len(data) // 64)
    for end in range(0, len(data), step):
        report = safeload.scan(data[:end])
        assert not report.safe or end == len(data)
    assert not [m for m in sys.modules if m.startswith("safeload_fuzz_probe_")]
