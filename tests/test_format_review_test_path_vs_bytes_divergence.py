"""Regression test from the attack review of session 3 on an attempt to leave safe-format members in the file
until the graph used them (reverted: the hash no longer covered the bytes used).  It holds for the
format as it is: one read of each member, hashed as read.

The finding as reported:

The same file is accepted from bytes / mmap_mode="r" but refused (FormatError) from a path,
only because it is > 1 MiB (lazy members): a reference to a tree's node array elsewhere."""

import io
import json
import zipfile

import numpy as np
from sklearn.ensemble import RandomForestClassifier

import safeload
from safeload.errors import SafeloadError

from . import _safezip as sz


def _rewrite(members, graph):
    members = dict(members)
    members["graph.json"] = sz.json_bytes(graph)
    return sz.build(sz.rehash(members))  # sizes and digests recomputed, in the manifest's form


def test_same_file_same_outcome_from_path_and_bytes(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(6000, 6))
    model = RandomForestClassifier(n_estimators=4, random_state=0).fit(X, rng.integers(0, 3, 6000))
    raw = safeload.dumps(model)
    members = {
        n: zipfile.ZipFile(io.BytesIO(raw)).read(n)
        for n in zipfile.ZipFile(io.BytesIO(raw)).namelist()
    }
    graph = json.loads(members["graph.json"])

    # the first tree's state: nodes then values then a list re-using the nodes array (its slot)
    def trees(node, out):
        if isinstance(node, dict):
            st = node.get("state")
            if isinstance(st, dict) and isinstance(st.get("v"), dict) and "nodes" in st["v"]:
                out.append(st["v"])
            for x in node.values():
                trees(x, out)
        elif isinstance(node, list):
            for x in node:
                trees(x, out)
        return out

    state = trees(graph["root"], [])[0]
    # slot of the nodes array: found by decoding once from bytes with a spy
    from safeload.format import decode as D

    seen, orig = {}, D.Decoder._ndarray

    def spy(self, v, depth):
        r = orig(self, v, depth)
        seen.setdefault(v.get("i"), len(self.slots) - 1)
        return r

    D.Decoder._ndarray = spy
    saved = dict(D._TABLES)
    D._TABLES.clear()
    try:
        safeload.load(raw)
    finally:
        D.Decoder._ndarray = orig
        D._TABLES.clear()
        D._TABLES.update(saved)
    state["extra"] = [{"$": "ref", "id": seen[state["nodes"]["i"]]}]
    forged = _rewrite(members, graph)
    path = tmp_path / "f.safeload"
    path.write_bytes(forged)

    def outcome(src, **kw):
        try:
            safeload.load(src, **kw)
            return "ok"
        except SafeloadError as e:
            return type(e).__name__

    assert outcome(forged) == outcome(path, mmap_mode="r") == outcome(path)
