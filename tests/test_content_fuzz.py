"""Content validation fuzzing: corrupt the fitted arrays C code indexes, inside valid files.

A file can be a perfectly valid pickle of trusted types whose *content* crashes the process
later: a tree whose child index points outside its node array, a KD-tree index past the data, a
HistGradientBoosting predictor node naming a missing child, a sparse matrix whose indices run
past its shape.  For each family this module fits a small model, picks the arrays that C code
indexes, overwrites a few elements with boundary values (-2, -1, n, n + 1, 2**31 - 1, NaN ...)
*in place in the pickled / joblib bytes* (so the file stays valid), and has a child process
load the file and call ``predict`` (or multiply the matrix).

Allowed: the load raises ``ValidationError``, or it returns a model whose ``predict`` gives an
output of the right shape.  Not allowed: a signal (segfault, abort), another exception from the
load, or an exception from ``predict`` after the load accepted the content.

Cases run in a child that reports each one before and after it runs; when the child dies, the
case it was running is replayed alone in a fresh child (its exit signal is the verdict) and the
remaining cases continue in a new child.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.filterwarnings("ignore")

X = np.random.default_rng(0).normal(size=(60, 4))
Y = (X[:, 0] + X[:, 1] > 0).astype(int)
BOUNDARY_INT = (-3, -2, -1, 0, 1, 2**31 - 1, -(2**31), 2**40)
BOUNDARY_FLOAT = (float("nan"), float("inf"), -float("inf"), 1e308)


def _model(family: str):
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestRegressor
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.tree import DecisionTreeClassifier

    if family == "tree":
        return DecisionTreeClassifier(max_depth=4, random_state=0).fit(X, Y)
    if family == "forest":
        return RandomForestRegressor(2, max_depth=3, random_state=0).fit(X, Y)
    if family == "kd_tree":
        return KNeighborsClassifier(3, algorithm="kd_tree", leaf_size=4).fit(X, Y)
    if family == "ball_tree":
        return KNeighborsClassifier(3, algorithm="ball_tree", leaf_size=4).fit(X, Y)
    if family == "hgb":
        return HistGradientBoostingClassifier(max_iter=3, max_depth=3, min_samples_leaf=5).fit(X, Y)
    if family == "sparse_coef":
        return LogisticRegression().fit(X, Y).sparsify()
    if family == "csr":
        from scipy import sparse

        return sparse.random(8, 6, density=0.5, format="csr", random_state=0)
    raise ValueError(family)


def _arrays(family: str, model) -> dict[str, np.ndarray]:
    """The arrays of ``model`` that C/Cython code indexes (the validators' subjects)."""
    if family in ("tree", "forest"):
        trees = [model.tree_] if family == "tree" else [e.tree_ for e in model.estimators_]
        out = {}
        for i, t in enumerate(trees):
            state = t.__getstate__()
            out[f"nodes{i}"] = state["nodes"]
            out[f"values{i}"] = state["values"]
        return out
    if family in ("kd_tree", "ball_tree"):
        state = model._tree.__getstate__()
        return {"idx_array": state[1], "node_data": state[2], "node_bounds": state[3]}
    if family == "hgb":
        return {f"pred{i}": p[0].nodes for i, p in enumerate(model._predictors)}
    if family == "sparse_coef":
        return {"indices": model.coef_.indices, "indptr": model.coef_.indptr}
    if family == "csr":
        return {"indices": model.indices, "indptr": model.indptr}
    raise ValueError(family)


def _mutate(arr: np.ndarray, rng: random.Random) -> np.ndarray:
    out = arr.copy()
    flat = out.reshape(-1)
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(flat.shape[0])
        if out.dtype.names:
            field = rng.choice(out.dtype.names)
            kind = out.dtype[field].kind
        else:
            field, kind = None, out.dtype.kind
        n = flat.shape[0]
        if kind == "f":
            value = rng.choice((*BOUNDARY_FLOAT, n, -1.0))
        else:
            value = rng.choice((*BOUNDARY_INT, n, n + 1, n - 1))
        try:
            with np.errstate(all="ignore"):
                if field is None:
                    flat[i] = np.array(value).astype(out.dtype)
                else:
                    flat[i][field] = np.array(value).astype(out.dtype[field])
        except (OverflowError, ValueError):
            flat[i] = 0 if field is None else flat[i]
    return out


def _dump(model, container: str) -> bytes:
    if container == "pickle":
        return pickle.dumps(model, protocol=4)
    import joblib

    buf = io.BytesIO()
    joblib.dump(model, buf)
    return buf.getvalue()


FAMILIES = ("tree", "forest", "kd_tree", "ball_tree", "hgb", "sparse_coef", "csr")
PER_FAMILY = 40


def _cases() -> list[tuple[str, str, bytes]]:
    """``(case id, family, file bytes)``: PER_FAMILY mutants per family, half pickle half joblib."""
    out = []
    for family in FAMILIES:
        model = _model(family)
        arrays = _arrays(family, model)
        for container in ("pickle", "joblib"):
            data = _dump(model, container)
            rng = random.Random(f"{family}-{container}")
            made = 0
            attempts = 0
            while made < PER_FAMILY // 2 and attempts < 200:
                attempts += 1
                name = rng.choice(sorted(arrays))
                raw = np.ascontiguousarray(arrays[name]).tobytes()
                if len(raw) < 8 or data.count(raw) != 1:
                    continue
                mutated = np.ascontiguousarray(_mutate(arrays[name], rng)).tobytes()
                if mutated == raw:
                    continue
                case = data.replace(raw, mutated)
                out.append((f"{family}-{container}-{name}-{made}", family, case))
                made += 1
    return out


_CHILD = textwrap.dedent(
    """
    import json, sys, warnings
    import numpy as np
    import safeload
    warnings.simplefilter("ignore")
    X = np.array(json.loads(sys.argv[1]))
    for line in sys.stdin:
        name, family, path = json.loads(line)
        print("START " + name, flush=True)
        res = {}
        try:
            obj = safeload.load(path)
        except safeload.ValidationError as exc:
            res = {"outcome": "validation", "message": str(exc)[:200]}
        except safeload.SafeloadError as exc:
            res = {"outcome": "refused:" + type(exc).__name__, "message": str(exc)[:300]}
        except BaseException as exc:
            res = {"outcome": "load-error:" + type(exc).__name__, "message": str(exc)[:300]}
        else:
            try:
                if family == "csr":
                    out = obj @ np.ones(obj.shape[1])
                    dense = obj.toarray()
                    ok = out.shape == (obj.shape[0],) and dense.shape == obj.shape
                else:
                    out = obj.predict(X)
                    if hasattr(obj, "kneighbors"):
                        obj.kneighbors(X)
                    if hasattr(obj, "predict_proba"):
                        obj.predict_proba(X)
                    ok = out.shape == (X.shape[0],)
                res = {"outcome": "ok" if ok else "bad-shape", "message": str(out.shape)}
            except BaseException as exc:
                res = {"outcome": "predict-error:" + type(exc).__name__,
                       "message": str(exc)[:300]}
        print("END " + json.dumps([name, res]), flush=True)
    """
)


def _run(items: list[tuple[str, str, str]], cwd: Path) -> tuple[dict, str | None, int]:
    """Run ``items`` in one child; return the results, the case it died in, and its status."""
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(X[:7].tolist())],
        input="".join(json.dumps(item) + "\n" for item in items),
        capture_output=True,
        text=True,
        timeout=120 + 5 * len(items),
        cwd=cwd,
        env=dict(os.environ, SAFELOAD_CANARY_DIR=str(cwd)),
    )
    results: dict = {}
    running = None
    for line in proc.stdout.splitlines():
        if line.startswith("START "):
            running = line[6:]
        elif line.startswith("END "):
            name, res = json.loads(line[4:])
            results[name] = res
            running = None
    return results, running, proc.returncode


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("content-fuzz")
    cwd = tmp_path_factory.mktemp("content-cwd")
    items = []
    for name, family, data in _cases():
        path = folder / f"{name}.bin"
        path.write_bytes(data)
        items.append((name, family, str(path)))
    results: dict = {}
    todo = items
    while todo:
        got, died_in, status = _run(todo, cwd)
        results.update(got)
        if died_in is None:
            assert status == 0, status
            break
        alone = [item for item in todo if item[0] == died_in]
        _, again, alone_status = _run(alone, cwd)  # confirm in a fresh child
        results[died_in] = {
            "outcome": f"crash:{alone_status}" if again else f"crash-in-batch:{status}",
            "message": alone[0][2],
        }
        done = set(results)
        todo = [item for item in todo if item[0] not in done]
    assert os.listdir(cwd) == []
    return results


CASE_IDS = [name for name, _, _ in _cases()]


@pytest.mark.parametrize("family", FAMILIES)
def test_corrupted_content_is_refused_or_harmless(family, outcomes):
    mine = {k: v for k, v in outcomes.items() if k.startswith(family + "-")}
    assert len(mine) >= PER_FAMILY // 2, sorted(mine)
    bad = {k: v for k, v in mine.items() if v["outcome"] not in ("validation", "ok")}
    assert bad == {}, bad


def test_the_mutations_reach_the_validators(outcomes):
    """The cases are not all trivially harmless: many are refused by a validator."""
    validated = [k for k, v in outcomes.items() if v["outcome"] == "validation"]
    assert len(validated) >= len(outcomes) // 4, len(validated)
    families = {k.split("-")[0] for k in validated}
    assert {"tree", "kd_tree", "hgb", "csr"} <= families, families
