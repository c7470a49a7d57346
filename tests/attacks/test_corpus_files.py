"""Every file of the shared malicious corpus (``shared/corpus/malicious/manifest.json``).

* ``must_block``: ``safeload.load(path)`` raises a ``SafeloadError`` — the specific one listed in
  :data:`EXPECTED` — and no canary appears (in ``$SAFELOAD_CANARY_DIR``, in the working
  directory, or at ``/tmp/safeload_canary_Z08_abs`` for the absolute zip-slip file);
* ``must_load``: benign-but-tricky files load;
* ``foreign_format``: well-formed files of a format safeload does not read: ``FormatError``;
* resource-exhaustion files (``G*``, ``Z10``-``Z13``) are refused again in a forked child with a
  memory cap, a time bound and a peak-RSS bound.

Families and public sources: every row of CATALOG.md (A01-Z13), see the ``source`` field of each
manifest entry; this module is the regression net for the corpus, the ``test_<family>.py``
modules generate the variants.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import safeload

from .conftest import (
    Forbidden,
    Format,
    Limit,
    MiB,
    Untrusted,
    assert_refused,
    assert_refused_bounded,
)

ROOT = Path(__file__).resolve().parents[2]
MALICIOUS = Path(os.environ.get("SAFELOAD_CORPUS", ROOT.parent / "shared" / "corpus")) / "malicious"
MANIFEST = MALICIOUS / "manifest.json"
Z08_TARGET = Path("/tmp/safeload_canary_Z08_abs")


def _entries() -> list[dict]:
    if not MANIFEST.exists():
        return []
    with open(MANIFEST, encoding="utf-8") as fh:
        return json.load(fh)["files"]


ENTRIES = _entries()
pytestmark = pytest.mark.skipif(not ENTRIES, reason=f"malicious corpus not found at {MALICIOUS}")

#: The specific refusal of each must_block file (default policy and limits).
EXPECTED = {
    "A01": Untrusted("os.system"),
    "A02": Untrusted("builtins.exec"),
    "A03": Untrusted("builtins.eval"),
    "A04": Untrusted("builtins.__import__", "builtins.getattr"),
    "A05": Untrusted("subprocess.call"),
    "A06": Untrusted("pickle.loads"),
    "A07": Untrusted("marshal.loads", "types.FunctionType"),
    "B01": Untrusted("importlib.import_module", "operator.methodcaller"),
    "B02": Untrusted("pydoc.locate"),
    "B04": Untrusted("time.perf_counter", "timeit.timeit"),
    "B05": Untrusted("cProfile.run"),
    "B07": Untrusted("ctypes.CDLL", "operator.methodcaller"),
    "B08": Untrusted("importlib.import_module", "inspect.getattr_static"),
    "B10": Untrusted("_xxsubinterpreters.create", "_xxsubinterpreters.run_string"),
    "B11": Untrusted("builtins.__dict__", "operator.itemgetter"),
    "B13": Untrusted("importlib.import_module", "operator.attrgetter"),
    "B14": Untrusted("_io.FileIO", "posixpath.expandvars"),
    "B16": Untrusted("numpy.testing._private.utils.runstring"),
    "B17": Untrusted("numpy.lib._format_impl.io.BytesIO", "numpy.lib.format.read_array"),
    "B19": Untrusted("sklearn.datasets.get_data_home"),
    "B20": Untrusted("scipy.io.savemat"),
    "C01": Untrusted("numpy.lib._npyio_impl.os.system"),
    "C02": Untrusted("sklearn.datasets._base.os.system"),
    "C04": Untrusted("builtins.dict.get", "numpy.__builtins__"),
    "C05": Untrusted("numpy.lib._npyio_impl.os.system"),
    "C07": Untrusted("numpy.lib._npyio_impl.os.system", "sklearn.base", "sklearn.base.clone"),
    "C08": Format("STACK_GLOBAL"),
    "C10": Untrusted("__builtin__.eval"),
    "D01": Untrusted("os.system"),
    "D02": Untrusted("os.system"),
    "D04": Untrusted("os.system"),
    "D05": Format("STACK_GLOBAL"),
    "D07": Forbidden("extension-code"),
    "D08": Untrusted("builtins.exec"),
    "D10": Format("truncated"),
    "D11": Untrusted("os.system"),
    "D13": Format(),
    "D14": Untrusted("posix.system"),
    "E01": Untrusted("scipy._lib._testutils.subprocess.Popen"),
    "E02": Untrusted("numpy.memmap"),
    "E04": Untrusted("builtins.exec", "builtins.print"),
    "E05": Untrusted("numpy.ndarray.tofile", "numpy.zeros"),
    "E07": Untrusted("numpy.lib._format_impl.io.BytesIO", "numpy.load"),
    "E08": Untrusted("copy_reg.__newobj__", "numpy.memmap"),
    "F01": Untrusted("builtins.exec"),
    "F02": Untrusted("builtins.exec"),
    "F03": Untrusted("builtins.exec"),
    "F04": Untrusted("builtins.exec"),
    "F05": Untrusted("builtins.exec"),
    "F06": Untrusted("builtins.exec"),
    "F07": Untrusted("builtins.exec"),
    "F08": Format("trailing data"),
    "G01": Limit("max_depth"),
    "G02": Limit("max_array_bytes"),
    "G04": Limit("max_items"),
    "G05": Limit("max_array_bytes"),  # bytearray is trusted; bytearray(2**36) is not
    "G07": Format("truncated"),
    "G08": Limit("max_memo"),
    "N01": Format(),
}
#: Zip archives (Z*) are never read: all FormatError.
ZIP_IDS = {f"Z{i:02d}" for i in range(1, 14)}
#: Resource-exhaustion files, refused again in a bounded child.
RESOURCE_IDS = {e["id"] for e in ENTRIES if e["id"].startswith("G")} | {"Z10", "Z11", "Z12", "Z13"}

MUST_LOAD_GAPS: dict[str, str] = {}  # b18 loads since bytearray is trusted (bounded)


def _path(entry: dict) -> Path:
    return MALICIOUS / "files" / entry["file"]


def _expected(entry: dict):
    if entry["id"] in EXPECTED:
        return EXPECTED[entry["id"]]
    if entry["id"] in ZIP_IDS:
        return Format("zip")
    return None


@pytest.fixture(autouse=True)
def no_absolute_canary():
    if Z08_TARGET.exists():  # left by someone else: it would hide a firing payload
        Z08_TARGET.unlink()
    yield
    assert not Z08_TARGET.exists(), "Z08 wrote its absolute-path canary"


def _ids(kind: str) -> list:
    return [pytest.param(e, id=e["id"]) for e in ENTRIES if e["expected"] == kind]


@pytest.mark.parametrize("entry", _ids("must_block"))
def test_must_block(entry):
    path = _path(entry)
    with pytest.raises(safeload.SafeloadError):
        safeload.load(path)
    expected = _expected(entry)
    if expected is not None:
        assert_refused(path, expected)


@pytest.mark.parametrize(
    "entry",
    [
        pytest.param(
            e,
            id=e["id"],
            marks=[pytest.mark.xfail(strict=True, reason=MUST_LOAD_GAPS[e["id"]])]
            if e["id"] in MUST_LOAD_GAPS
            else [],
        )
        for e in ENTRIES
        if e["expected"] == "must_load"
    ],
)
def test_must_load(entry):
    obj = safeload.load(_path(entry))
    assert obj is not None


@pytest.mark.parametrize("entry", _ids("foreign_format"))
def test_foreign_format(entry):
    assert_refused(_path(entry), Format())


@pytest.mark.parametrize(
    "entry", [pytest.param(e, id=e["id"]) for e in ENTRIES if e["id"] in RESOURCE_IDS]
)
def test_resource_files_bounded(entry):
    expected = _expected(entry)
    assert expected is not None
    out = assert_refused_bounded(_path(entry), expected, max_seconds=10, max_rss_growth=512 * MiB)
    assert out.seconds < 5


def test_every_entry_is_covered():
    assert ENTRIES, "empty manifest"
    kinds = {e["expected"] for e in ENTRIES}
    assert kinds <= {"must_block", "must_load", "foreign_format"}, kinds
    for e in ENTRIES:
        assert _path(e).is_file(), e["file"]
    missing = [e["id"] for e in ENTRIES if e["expected"] == "must_block" and _expected(e) is None]
    assert missing == [], f"add the specific refusal of {missing} to EXPECTED"
