"""Safe-format arrays left in the file (``read_arrays(lazy=True)``): large members are read
where the graph uses them, a tree's node and value arrays through a reused scratch buffer, and
hashed from the file on a worker thread meanwhile."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.preprocessing import StandardScaler

import safeload
from safeload.errors import FormatError, IntegrityError
from safeload.format import decode as D
from safeload.readers import payloads as P

from ._safezip import edit, member_offsets, read_graph


@pytest.fixture(scope="module")
def forest():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(6000, 6))
    y = rng.integers(0, 3, size=6000)
    return RandomForestClassifier(n_estimators=4, random_state=0).fit(X, y), X


def _spy_borrow(monkeypatch):
    calls = []
    original = P.PayloadSource.borrow

    def spy(self, p, slot):
        calls.append((slot, p.length))
        return original(self, p, slot)

    monkeypatch.setattr(P.PayloadSource, "borrow", spy)
    return calls


def test_forest_arrays_are_lent_to_the_trees(forest, tmp_path, monkeypatch):
    model, X = forest
    path = tmp_path / "rf.safeload"
    safeload.dump(model, path)
    calls = _spy_borrow(monkeypatch)
    got = safeload.load(path)
    np.testing.assert_array_equal(got.predict_proba(X), model.predict_proba(X))
    for a, b in zip(got.estimators_, model.estimators_, strict=True):
        assert (
            a.tree_.__getstate__()["nodes"].tobytes() == b.tree_.__getstate__()["nodes"].tobytes()
        )
    assert len(calls) == 2 * len(model.estimators_)
    assert {slot for slot, _ in calls} == {0, 1}
    # from bytes (no file): the arrays are read eagerly, nothing is lent
    calls.clear()
    again = safeload.load(path.read_bytes())
    np.testing.assert_array_equal(again.predict_proba(X), model.predict_proba(X))
    assert calls == []


def test_large_arrays_outside_trees_are_fresh_and_writable(tmp_path):
    scaler = StandardScaler().fit(np.random.default_rng(1).normal(size=(50, 20_000)))
    path = tmp_path / "s.safeload"
    safeload.dump(scaler, path)
    got = safeload.load(path)
    np.testing.assert_array_equal(got.mean_, scaler.mean_)
    assert got.mean_.flags.writeable and got.mean_.flags.owndata
    got.mean_[0] = 1e9
    assert safeload.load(path).mean_[0] == scaler.mean_[0]


def test_a_changed_byte_in_a_lent_array_is_named(forest, tmp_path):
    model, _ = forest
    data = bytearray(safeload.dumps(model))
    offsets = member_offsets(bytes(data))
    name = max((n for n in offsets if n.startswith("arrays/")), key=lambda n: offsets[n][1])
    start, size = offsets[name]
    data[start + size - 1000] ^= 0x01  # inside a tree's node array: still loads, hash differs
    path = tmp_path / "bad.safeload"
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError) as info:
        safeload.load(path)
    assert name in str(info.value)


def _tree_state_and_slot(path, monkeypatch):
    """(graph, the JSON state of the first tree, the slot of its nodes array)."""
    graph = read_graph(path.read_bytes())
    seen = {}
    original = D.Decoder._ndarray

    def spy(self, v, depth):
        value = original(self, v, depth)
        seen.setdefault(v.get("i"), len(self.slots) - 1)
        return value

    monkeypatch.setattr(D.Decoder, "_ndarray", spy)
    monkeypatch.setattr(D, "_TABLES", {})  # handler tables are cached per class
    safeload.load(path)
    monkeypatch.undo()

    def find(node):
        if isinstance(node, dict):
            body = node.get("v") if node.get("$") == "dict" else None
            if isinstance(body, dict) and {"nodes", "values", "node_count"} <= body.keys():
                return node
            for x in node.values():
                hit = find(x)
                if hit is not None:
                    return hit
        elif isinstance(node, list):
            for x in node:
                hit = find(x)
                if hit is not None:
                    return hit
        return None

    state = find(graph["root"])
    return graph, state, seen[state["v"]["nodes"]["i"]]


def _ref_inside_state(graph, state, slot):
    state["v"]["extra"] = {"$": "ref", "id": slot}


def _ref_after_tree(graph, state, slot):
    graph["root"] = [graph["root"], {"$": "ref", "id": slot}]


@pytest.mark.parametrize(
    ("forge", "message"),
    [
        (_ref_inside_state, "also referenced from elsewhere"),
        (_ref_after_tree, "after the tree copied it"),
    ],
)
def test_a_lent_tree_array_referenced_again_is_refused(
    forest, tmp_path, monkeypatch, forge, message
):
    model, _ = forest
    path = tmp_path / "rf.safeload"
    safeload.dump(model, path)
    graph, state, slot = _tree_state_and_slot(path, monkeypatch)
    forge(graph, state, slot)
    forged = tmp_path / "forged.safeload"
    forged.write_bytes(edit(path.read_bytes(), graph=lambda _: graph))
    with pytest.raises(FormatError, match=message):
        safeload.load(forged)


def test_a_file_cut_short_after_opening_is_a_safeload_error(forest, tmp_path, monkeypatch):
    model, _ = forest
    path = tmp_path / "rf.safeload"
    safeload.dump(model, path)
    from safeload.format import archive

    original = archive.read_arrays

    def then_truncate(*args, **kwargs):
        out = original(*args, **kwargs)
        with open(path, "r+b") as fh:
            fh.truncate(path.stat().st_size // 2)
        return out

    monkeypatch.setattr(archive, "read_arrays", then_truncate)
    with pytest.raises((FormatError, IntegrityError)):
        safeload.load(path)
