"""Concurrent loads: safeload keeps no per-load state in shared objects.

Eight real model files (different estimators, pickle and joblib, compressed and not) are loaded
from eight threads at once, each file five times, with a barrier before every round so the loads
really overlap; every result must be a fresh object predicting exactly what the original does.
Hostile streams loaded concurrently with good files must raise in their own thread, naming only
their own globals, without running anything and without disturbing the good loads, and a
``trusted=`` extension passed by one thread must not leak into another.
"""

from __future__ import annotations

import pickle
import threading
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from typing import Any

import numpy as np
import pytest

import safeload
from safeload import UntrustedTypesError

from ._estimators import SEED, assert_identical, blobs, dump

N_THREADS = 8
ROUNDS = 5
BARRIER_TIMEOUT = 120


def _models() -> dict[str, tuple[Any, str]]:
    """name -> (unfitted estimator, format of its file)."""
    from sklearn.cluster import KMeans
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC
    from sklearn.tree import DecisionTreeRegressor

    return {
        "random-forest": (RandomForestClassifier(10, random_state=SEED), "joblib-zlib"),
        "hist-gradient-boosting": (
            HistGradientBoostingClassifier(max_iter=10, random_state=SEED),
            "pickle-p5",
        ),
        "knn-kd-tree": (KNeighborsClassifier(3, algorithm="kd_tree"), "joblib"),
        "knn-ball-tree-regressor": (
            KNeighborsRegressor(3, algorithm="ball_tree", metric="manhattan"),
            "pickle-p2",
        ),
        "scaler-logreg": (make_pipeline(StandardScaler(), LogisticRegression()), "joblib-gzip"),
        "svc": (SVC(), "pickle-p0"),
        "decision-tree-regressor": (DecisionTreeRegressor(random_state=SEED), "joblib-xz"),
        "kmeans": (KMeans(3, n_init=2, random_state=SEED), "joblib-bz2"),
    }


def _outputs(est: Any, X: np.ndarray) -> dict[str, np.ndarray]:
    out = {"predict": est.predict(X)}
    if hasattr(est, "predict_proba"):
        out["predict_proba"] = est.predict_proba(X)
    if hasattr(est, "decision_function"):
        out["decision_function"] = est.decision_function(X)
    if hasattr(est, "transform"):
        out["transform"] = est.transform(X)
    return out


@pytest.fixture(scope="module")
def model_files(tmp_path_factory) -> dict[str, tuple[Any, Any, dict[str, np.ndarray]]]:
    """name -> (path, fitted estimator, expected outputs on a copy of X)."""
    from sklearn.base import is_regressor

    directory = tmp_path_factory.mktemp("threads")
    X, y = blobs()
    X_eval = X.copy()
    files = {}
    for name, (est, fmt) in _models().items():
        target = X @ np.array([1.0, 2.0, -1.0]) if is_regressor(est) else y
        est.fit(X, target)
        expected = _outputs(est, X_eval)
        path = dump(est, fmt, directory / f"{name}.{fmt}")
        files[name] = (path, est, expected)
    return files


def _run_concurrently(workers: list) -> list[Any]:
    """Run each zero-argument callable in its own thread and return their results."""
    assert len(workers) == N_THREADS
    with ThreadPoolExecutor(N_THREADS) as pool:
        futures = [pool.submit(w) for w in workers]
        return [f.result(timeout=600) for f in futures]


def test_eight_files_from_eight_threads(model_files):
    assert len(model_files) == N_THREADS
    X = blobs()[0].copy()
    barrier = threading.Barrier(N_THREADS, timeout=BARRIER_TIMEOUT)
    overlap = {"max": 0, "now": 0}
    lock = threading.Lock()

    def worker(path):
        loaded = []
        for _ in range(ROUNDS):
            barrier.wait()
            with lock:
                overlap["now"] += 1
                overlap["max"] = max(overlap["max"], overlap["now"])
            try:
                loaded.append(safeload.load(path))
            finally:
                with lock:
                    overlap["now"] -= 1
        return loaded

    results = _run_concurrently([lambda p=path: worker(p) for path, _, _ in model_files.values()])
    assert overlap["max"] > 1, "the loads never overlapped"
    every = [est for loaded in results for est in loaded]
    assert len({id(est) for est in every}) == N_THREADS * ROUNDS  # no load returns a shared object
    for (name, (_, original, expected)), loaded in zip(model_files.items(), results, strict=True):
        assert len(loaded) == ROUNDS
        for est in loaded:
            assert type(est) is type(original), name
            assert_identical(original, est, name)
            got = _outputs(est, X)
            assert list(got) == list(expected), name
            for method, want in expected.items():
                np.testing.assert_array_equal(got[method], want, err_msg=f"{name}.{method}")


# -- hostile streams next to good files -------------------------------------------------------


def _global_reduce_p0(module: str, name: str, arg: str) -> bytes:
    """Protocol 0: ``GLOBAL module name; MARK; UNICODE arg; TUPLE; REDUCE; STOP``."""
    return f"c{module}\n{name}\n(V{arg}\ntR.".encode()


def _stack_global_reduce_p4(module: str, name: str, arg: str) -> bytes:
    """Protocol 4: ``SHORT_BINUNICODE module, name; STACK_GLOBAL; arg; TUPLE1; REDUCE``."""

    def short_unicode(text: str) -> bytes:
        raw = text.encode()
        assert len(raw) < 256
        return b"\x8c" + bytes([len(raw)]) + raw

    return (
        b"\x80\x04"
        + short_unicode(module)
        + short_unicode(name)
        + b"\x93"
        + short_unicode(arg)
        + b"\x85R."
    )


def _hostile(marker: Any) -> list[tuple[bytes, list[str]]]:
    """(stream, the names UntrustedTypesError must report) - each would create ``marker``."""
    cmd = f"touch {marker}"
    return [
        (_global_reduce_p0("os", "system", cmd), ["os.system"]),
        (_stack_global_reduce_p4("posix", "system", cmd), ["posix.system"]),
        (_global_reduce_p0("subprocess", "getoutput", cmd), ["subprocess.getoutput"]),
        (
            _stack_global_reduce_p4("builtins", "exec", f"open({str(marker)!r}, 'w')"),
            ["builtins.exec"],
        ),
    ]


def test_hostile_and_good_streams_concurrently(model_files, tmp_path):
    marker = tmp_path / "pwned"
    hostile = _hostile(marker)
    good = list(model_files.values())[: N_THREADS - len(hostile)]
    X = blobs()[0].copy()
    barrier = threading.Barrier(N_THREADS, timeout=BARRIER_TIMEOUT)

    def bad_worker(data):
        errors = []
        for _ in range(ROUNDS):
            barrier.wait()
            try:
                safeload.loads(data)
            except UntrustedTypesError as exc:
                errors.append(exc)
            else:
                errors.append(None)
        return errors

    def good_worker(path):
        loaded = []
        for _ in range(ROUNDS):
            barrier.wait()
            loaded.append(safeload.load(path))
        return loaded

    workers = [lambda d=data: bad_worker(d) for data, _ in hostile]
    workers += [lambda p=path: good_worker(p) for path, _, _ in good]
    results = _run_concurrently(workers)

    assert not marker.exists(), "a hostile stream ran its payload"
    for (_, expected_types), errors in zip(hostile, results[: len(hostile)], strict=True):
        assert len(errors) == ROUNDS
        assert len({id(e) for e in errors}) == ROUNDS
        for exc in errors:
            assert exc is not None, f"{expected_types} loaded"
            assert exc.types == expected_types
            assert exc.reasons[expected_types[0]].startswith("dangerous")
    for (_, original, expected), loaded in zip(good, results[len(hostile) :], strict=True):
        for est in loaded:
            assert type(est) is type(original)
            got = _outputs(est, X)
            for method, want in expected.items():
                np.testing.assert_array_equal(got[method], want)


def test_trusted_extension_does_not_leak_between_threads(model_files):
    """Half the threads pass ``trusted=['fractions.Fraction']``; the others must still refuse."""
    data = pickle.dumps([Fraction(3, 4), Fraction(-1, 3)], protocol=2)
    path, original, expected = model_files["random-forest"]
    X = blobs()[0].copy()
    barrier = threading.Barrier(N_THREADS, timeout=BARRIER_TIMEOUT)

    def worker(index):
        results = []
        for _ in range(ROUNDS):
            barrier.wait()
            if index % 2:
                results.append(safeload.loads(data, trusted=["fractions.Fraction"]))
                results.append(safeload.load(path))
            else:
                try:
                    safeload.loads(data)
                except UntrustedTypesError as exc:
                    results.append(exc.types)
                else:
                    results.append("loaded without trust")
                results.append(safeload.load(path, trusted=["fractions.Fraction"]))
        return results

    results = _run_concurrently([lambda i=i: worker(i) for i in range(N_THREADS)])
    for index, res in enumerate(results):
        assert len(res) == 2 * ROUNDS
        for first, est in zip(res[::2], res[1::2], strict=True):
            if index % 2:
                assert first == [Fraction(3, 4), Fraction(-1, 3)]
                assert type(first[0]) is Fraction
            else:
                assert first == ["fractions.Fraction"]
            assert_identical(original, est)
            np.testing.assert_array_equal(est.predict_proba(X), expected["predict_proba"])
    # and the default policy itself was not extended
    with pytest.raises(UntrustedTypesError):
        safeload.loads(data)
    assert not safeload.Policy.default().is_trusted(("fractions", "Fraction"))


def test_shared_policy_object_across_threads(model_files):
    """One explicit ``Policy`` passed to every thread (the documented way to share a policy)."""
    policy = safeload.Policy.default().extend(["fractions.Fraction"])
    X = blobs()[0].copy()
    barrier = threading.Barrier(N_THREADS, timeout=BARRIER_TIMEOUT)
    items = list(model_files.values())

    def worker(index):
        path, _, _ = items[index]
        out = []
        for _ in range(ROUNDS):
            barrier.wait()
            out.append(safeload.load(path, policy=policy))
        return out

    results = _run_concurrently([lambda i=i: worker(i) for i in range(N_THREADS)])
    for (_, original, expected), loaded in zip(items, results, strict=True):
        for est in loaded:
            assert_identical(original, est)  # before predicting: trees count their queries
            got = _outputs(est, X)
            for method, want in expected.items():
                np.testing.assert_array_equal(got[method], want)
