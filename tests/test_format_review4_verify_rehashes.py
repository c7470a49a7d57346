"""Review 4 (regression test): ``safeload verify`` hashes every member from the file's map (``_byte_checks``) and
then loads the model again with ``load_parts(..., verify=False)`` (comment: "every member was
hashed above, on these same bytes").  For a path they are not the same bytes: the load re-reads
the file (one ``os.pread`` for a small file since this session, ``readinto`` for large arrays),
so a write between the two yields a report whose hashes, load, probe and cv_score checks are
about different contents, and "ok" for a model that is not the one hashed.
"""

import os
import sys

import numpy as np

import safeload
import safeload.verify  # noqa: F401 - the module, shadowed by the function on the package
from safeload.format import archive

from . import _safezip as sz

verify_mod = sys.modules["safeload.verify"]


def test_verify_does_not_vouch_for_bytes_it_did_not_hash(tmp_path, monkeypatch):
    arr = np.arange(1000, dtype=np.float64)
    data = safeload.dumps([arr])
    path = tmp_path / "m.safeload"
    path.write_bytes(data)
    start, _ = sz.member_offsets(data)["arrays/000000.npy"]

    original = verify_mod._byte_checks

    def then_write(report, data_, limits):
        result = original(report, data_, limits)
        fd = os.open(path, os.O_WRONLY)  # a writer changes one value after the hash check
        try:
            os.pwrite(fd, np.float64(1e300).tobytes(), start + 128 + 8 * 10)
        finally:
            os.close(fd)
        return result

    loaded = []
    load_parts = archive.load_parts

    def record(*args, **kwargs):
        out = load_parts(*args, **kwargs)
        loaded.append(out["root"])
        return out

    monkeypatch.setattr(verify_mod, "_byte_checks", then_write)
    monkeypatch.setattr(archive, "load_parts", record)
    report = safeload.verify(path)
    # the report is not ok, and the load that would have been probed was refused: the bytes it
    # read are hashed again and differ from the manifest's
    assert not report.ok and not loaded
    load = next(c for c in report.checks if c.name == "load")
    assert load.status == "failed" and "changed since the file was written" in load.detail


def test_verify_reports_each_check_once_for_a_manifest_it_refuses(tmp_path):
    # a newer format_version: the manifest parses, breaks the schema and the loader's rule M3;
    # verify printed two "manifest" rows (FAILED, then skipped)
    data = sz.edit(safeload.dumps([np.arange(3)]), manifest=lambda m: m.update(format_version=3))
    path = tmp_path / "m.safeload"
    path.write_bytes(data)
    report = safeload.verify(path)
    names = [c.name for c in report.checks]
    assert len(names) == len(set(names)), names
    assert report.check("manifest").status == "failed" and report.exit_code == 1
