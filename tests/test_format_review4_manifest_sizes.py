"""Review 4 (regression test): the manifest's recorded member sizes were not compared with the
zip's sizes by ``load`` (graph.json) nor by ``inspect``/``scan`` (any member), while ``safeload verify``
refuses the same files.  In format version 2 the size also decides the digest form (rule M4:
"the form follows from the size alone; an entry in the other form MUST be refused"), so a
graph.json over 1 MiB recorded with one whole-member ``sha256`` (and a small size) is accepted.
"""

import numpy as np
import pytest

import safeload
from safeload.errors import SafeloadError

from . import _safezip as sz

MIB = 1 << 20


def _big_graph_file() -> bytes:
    # a graph.json over 1 MiB: many distinct strings
    value = [f"term-{i:07d}-" + "x" * 40 for i in range(25_000)]
    data = safeload.dumps([value, np.arange(5)])
    assert len(sz.read_members(data)["graph.json"]) > MIB
    assert "sha256_blocks" in sz.read_manifest(data)["members"]["graph.json"]
    return data


def _outcomes(path):
    out = {}
    try:
        safeload.load(path)
        out["load"] = "ok"
    except SafeloadError as exc:
        out["load"] = type(exc).__name__
    try:
        safeload.inspect(path)
        out["inspect"] = "ok"
    except SafeloadError as exc:
        out["inspect"] = type(exc).__name__
    out["scan"] = "ok" if safeload.scan(path).safe else "refused"
    out["verify"] = "ok" if safeload.verify(path).ok else "refused"
    return out


def test_graph_over_one_mib_recorded_with_a_whole_digest_is_refused_everywhere(tmp_path):
    import hashlib

    data = _big_graph_file()
    raw_graph = sz.read_members(data)["graph.json"]

    def whole(man):  # the v1 form, and a size that puts it under the 1 MiB threshold
        man["members"]["graph.json"] = {
            "size": 1000,
            "sha256": hashlib.sha256(raw_graph).hexdigest(),
        }

    hostile = sz.edit(data, manifest=whole)
    path = tmp_path / "g.safeload"
    path.write_bytes(hostile)
    out = _outcomes(path)
    assert out["verify"] == "refused"  # verify: "…bytes, the manifest records 1,000"
    # rule M4: the digest form follows from the size; load/inspect/scan must refuse as well
    assert out == {
        "load": "FormatError",
        "inspect": "FormatError",
        "scan": "refused",
        "verify": "refused",
    }, out


def test_graph_json_size_that_differs_from_the_zip_is_refused_by_load(tmp_path):
    data = safeload.dumps([np.arange(5)])
    hostile = sz.edit(data, manifest=lambda m: m["members"]["graph.json"].update(size=-7))
    path = tmp_path / "g.safeload"
    path.write_bytes(hostile)
    assert not safeload.verify(path).ok
    with pytest.raises(SafeloadError):
        safeload.load(path)


def test_array_size_that_differs_from_the_zip_is_refused_by_scan_and_inspect(tmp_path):
    data = safeload.dumps([np.arange(5)])
    hostile = sz.edit(data, manifest=lambda m: m["members"]["arrays/000000.npy"].update(size=12345))
    path = tmp_path / "a.safeload"
    path.write_bytes(hostile)
    with pytest.raises(SafeloadError, match="M4"):
        safeload.load(path)  # the loader refuses it (rule M4)
    assert not safeload.verify(path).ok
    assert not safeload.scan(path).safe  # scan says the file is safe to load
    with pytest.raises(SafeloadError):
        safeload.inspect(path)
